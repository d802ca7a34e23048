//! The value of an entry of a derivative tensor at a point: plain terms,
//! or a symmetry class summed over its distinct permutations by counting.

use super::*;

/// The value of index `ix` in an environment, innermost binding first.
fn lookup_in(env: &[(Ix, usize)], ix: Ix) -> usize {
    env.iter()
        .rev()
        .find(|(i, _)| *i == ix)
        .map(|(_, v)| *v)
        .expect("index bound in the environment")
}

/// A hash map with a multiply-rotate hasher (the one rustc uses, FxHash):
/// the caches here are keyed by small integers, for which SipHash's
/// protection against chosen keys costs a third of `eval`'s time.
pub(super) type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// FxHash: `h = (h.rotl(5) ^ word) · K` per word.
#[derive(Default)]
pub(super) struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[doc(hidden)]
/// Evaluates atoms with caching.
pub struct Evaluator<'a> {
    point: &'a Point,
    /// Index values in scope, innermost last.
    env: Vec<(Ix, usize)>,
    cache: FastMap<(usize, Vec<usize>), f64>,
    softmax_cache: FastMap<(usize, Vec<usize>), Vec<f64>>,
    /// The free indices of each atom met, by address (computing them
    /// builds a set, once per atom rather than once per entry).
    free: FastMap<usize, Vec<Ix>>,
}

impl<'a> Evaluator<'a> {
    /// A new evaluator at `point`.
    pub fn new(point: &'a Point) -> Self {
        Evaluator {
            point,
            env: Vec::new(),
            cache: FastMap::default(),
            softmax_cache: FastMap::default(),
            free: FastMap::default(),
        }
    }

    fn lookup(&self, ix: Ix) -> usize {
        lookup_in(&self.env, ix)
    }

    pub(super) fn entry_plain(&mut self, p: &Poly, t: &Tensor, key: &[usize]) -> f64 {
        self.env.clear();
        for (i, &ix) in t.value_idx.iter().enumerate() {
            self.env.push((ix, key[i]));
        }
        let nv = t.value_idx.len();
        for (g, ids) in t.groups.iter().enumerate() {
            for (r, &ix) in ids.iter().enumerate() {
                self.env.push((ix, key[nv + g * ids.len() + r]));
            }
        }
        self.poly(p)
    }

    /// The sum of the distinct permutations of class `c` at the entry `key`
    /// (value indices, then the sorted derivative indices), by counting the
    /// ways to assign the derivative positions to the class's blocks.
    pub(super) fn class_entry(&mut self, c: &Class, t: &Tensor, key: &[usize]) -> f64 {
        let nv = t.value_idx.len();
        self.env.clear();
        for (i, &ix) in t.value_idx.iter().enumerate() {
            self.env.push((ix, key[i]));
        }
        let mut global = c.term.coef.0;
        for f in &c.global {
            global *= self.factor(f);
        }
        if global == 0.0 {
            return 0.0;
        }
        // Multiplicities of each distinct derivative index value.
        let mut mult: Vec<(usize, usize)> = Vec::new();
        for &v in &key[nv..] {
            match mult.iter_mut().find(|(u, _)| *u == v) {
                Some(m) => m.1 += 1,
                None => mult.push((v, 1)),
            }
        }
        // Block values: a block with value members sits at their value.
        let mut fixed: Vec<Option<usize>> = Vec::new();
        for b in &c.blocks {
            let vals: Vec<usize> = b
                .value_members
                .iter()
                .map(|m| key[t.value_idx.iter().position(|x| x == m).unwrap()])
                .collect();
            if vals.windows(2).any(|w| w[0] != w[1]) {
                return 0.0;
            }
            fixed.push(vals.first().copied());
        }
        // Atom products of each block at each candidate value (the few
        // distinct derivative index values, or the block's fixed value):
        // sparse, so an entry costs O(k), not O(n).
        let mut tables: Vec<Vec<(usize, f64)>> = Vec::new();
        for b in &c.blocks {
            let mut row = Vec::new();
            let candidates: Vec<usize> = match fixed[tables.len()] {
                Some(v) => vec![v],
                None => mult.iter().map(|(u, _)| *u).collect(),
            };
            for u in candidates {
                self.env.push((b.rep, u));
                let mut prod = 1.0;
                for f in &b.atoms {
                    prod *= self.factor(f);
                }
                self.env.pop();
                row.push((u, prod));
            }
            tables.push(row);
        }
        let sizes: Vec<usize> = c.blocks.iter().map(|b| b.wrt_count).collect();
        let within: f64 = sizes.iter().map(|&s| crate::sym::factorial(s)).product();
        let mut remaining: Vec<(usize, usize)> = mult.clone();
        let total = assign(
            0,
            &c.blocks,
            &fixed,
            &sizes,
            &tables,
            &mut remaining,
            &mut Vec::new(),
        );
        // Σ over all permutations = within · total; distinct ones = / stab.
        global * within * total / c.stab
    }

    /// Value of one factor in the current environment.
    fn factor(&mut self, f: &Factor) -> f64 {
        let v = self.atom(&f.atom);
        if f.exp.0 == 1.0 {
            v
        } else if f.exp.0.fract() == 0.0 && f.exp.0.abs() < 64.0 {
            v.powi(f.exp.0 as i32)
        } else {
            v.powf(f.exp.0)
        }
    }

    /// Value of a polynomial in the current environment.
    pub fn poly(&mut self, p: &Poly) -> f64 {
        p.terms.iter().map(|t| self.term(t)).sum()
    }

    fn term(&mut self, t: &Term) -> f64 {
        let mut v = t.coef.0;
        for f in &t.factors {
            if let Atom::Delta(a, b) = &*f.atom {
                if self.lookup(*a) != self.lookup(*b) {
                    return 0.0;
                }
                continue;
            }
            v *= self.factor(f);
            if v == 0.0 {
                return 0.0;
            }
        }
        v
    }

    fn key(&mut self, a: &Atom) -> (usize, Vec<usize>) {
        let address = a as *const Atom as usize;
        let free = self
            .free
            .entry(address)
            .or_insert_with(|| a.free().into_iter().collect());
        let values = free.iter().map(|&i| lookup_in(&self.env, i)).collect();
        (address, values)
    }

    fn atom(&mut self, a: &Atom) -> f64 {
        match a {
            Atom::Delta(x, y) => f64::from(u8::from(self.lookup(*x) == self.lookup(*y))),
            Atom::Var { name, idx } => {
                let (dims, data) = &self.point.vars[&**name];
                let mut flat = 0;
                for (d, &ix) in dims.iter().zip(idx) {
                    flat = flat * d + self.lookup(ix);
                }
                data[flat]
            }
            Atom::Dim(d) => self.point.sizes[&**d] as f64,
            // A softmax keeps its whole row in a cache of its own.
            Atom::Softmax { .. } => self.compound(a),
            _ => {
                let key = self.key(a);
                if let Some(v) = self.cache.get(&key) {
                    return *v;
                }
                let v = self.compound(a);
                self.cache.insert(key, v);
                v
            }
        }
    }

    fn compound(&mut self, a: &Atom) -> f64 {
        match a {
            Atom::Func(f, u) => f.apply(self.poly(u)),
            Atom::Group(p) => self.poly(p),
            Atom::Pow(b, e) => self.poly(b).powf(self.poly(e)),
            Atom::Sum { ix, dim, body } => {
                let n = self.point.size(dim);
                let mut s = 0.0;
                for k in 0..n {
                    self.env.push((*ix, k));
                    s += self.poly(body);
                    self.env.pop();
                }
                s
            }
            Atom::Lse { ix, dim, body } => {
                let xs = self.row(*ix, dim, body);
                let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            }
            Atom::Softmax { ix, dim, body, at } => {
                // The row depends on the body's free indices but `ix`.
                let address = a as *const Atom as usize;
                let free = self.free.entry(address).or_insert_with(|| {
                    let mut free = body.free();
                    free.remove(ix);
                    free.into_iter().collect()
                });
                let key = (
                    address,
                    free.iter()
                        .map(|&i| lookup_in(&self.env, i))
                        .collect::<Vec<_>>(),
                );
                let at = self.lookup(*at);
                if let Some(p) = self.softmax_cache.get(&key) {
                    return p[at];
                }
                let xs = self.row(*ix, dim, body);
                let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = xs.iter().map(|x| (x - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / s).collect();
                let v = p[at];
                self.softmax_cache.insert(key, p);
                v
            }
            Atom::Delta(..) | Atom::Var { .. } | Atom::Dim(_) => unreachable!("simple atoms"),
        }
    }

    fn row(&mut self, ix: Ix, dim: &Dim, body: &Poly) -> Vec<f64> {
        let n = self.point.size(dim);
        (0..n)
            .map(|k| {
                self.env.push((ix, k));
                let v = self.poly(body);
                self.env.pop();
                v
            })
            .collect()
    }
}

/// Σ over maps of blocks to index values that use each value exactly as
/// often as it occurs: Π_values mult! / Π block sizes! · Π table entries.
fn assign(
    b: usize,
    blocks: &[crate::sym::Block],
    fixed: &[Option<usize>],
    sizes: &[usize],
    tables: &[Vec<(usize, f64)>],
    remaining: &mut Vec<(usize, usize)>,
    chosen: &mut Vec<(usize, usize)>,
) -> f64 {
    if b == blocks.len() {
        if remaining.iter().any(|(_, m)| *m != 0) {
            return 0.0;
        }
        // Multinomial: positions holding value u split among its blocks.
        let mut w = 1.0;
        let mut per_value: HashMap<usize, (usize, f64)> = HashMap::new();
        for &(u, size) in chosen.iter() {
            let e = per_value.entry(u).or_insert((0, 1.0));
            e.0 += size;
            e.1 *= crate::sym::factorial(size);
        }
        for (_, (total, denom)) in per_value {
            w *= crate::sym::factorial(total) / denom;
        }
        return w;
    }
    let size = sizes[b];
    let candidates: Vec<usize> = match fixed[b] {
        Some(v) => vec![v],
        None => remaining.iter().map(|(u, _)| *u).collect(),
    };
    let mut total = 0.0;
    for u in candidates {
        let slot = remaining.iter().position(|(x, _)| *x == u);
        let ok = match slot {
            Some(i) => remaining[i].1 >= size,
            None => size == 0,
        };
        if !ok {
            continue;
        }
        let val = tables[b]
            .iter()
            .find(|(w, _)| *w == u)
            .map_or(0.0, |(_, v)| *v);
        if val == 0.0 {
            continue;
        }
        if let Some(i) = slot {
            remaining[i].1 -= size;
        }
        chosen.push((u, size));
        total += val * assign(b + 1, blocks, fixed, sizes, tables, remaining, chosen);
        chosen.pop();
        if let Some(i) = slot {
            remaining[i].1 += size;
        }
    }
    total
}
