/// The distinct terms of a symmetry class: for each, the block of every
/// derivative slot. Blocks take `sizes` slots each; blocks of one kind are
/// interchangeable, so among them the first slots increase. Their number is
/// `k! / (Π sizes! · Π multiplicities!)`, the orbit of the class.
fn orbit(sizes: &[usize], kinds: &[usize]) -> Vec<Vec<u8>> {
    fn go(
        slot: usize,
        row: &mut Vec<u8>,
        left: &mut [usize],
        sizes: &[usize],
        kinds: &[usize],
        out: &mut Vec<Vec<u8>>,
    ) {
        if slot == row.len() {
            out.push(row.clone());
            return;
        }
        for b in 0..left.len() {
            if left[b] == 0 {
                continue;
            }
            // A block's first slot comes after those of the earlier blocks of its kind.
            let opens = left[b] == sizes[b];
            if opens && (0..b).any(|c| kinds[c] == kinds[b] && left[c] == sizes[c]) {
                continue;
            }
            left[b] -= 1;
            row[slot] = b as u8;
            go(slot + 1, row, left, sizes, kinds, out);
            left[b] += 1;
        }
    }
    let mut out = Vec::new();
    let mut row = vec![0u8; sizes.iter().sum()];
    let mut left = sizes.to_vec();
    go(0, &mut row, &mut left, sizes, kinds, &mut out);
    out
}
