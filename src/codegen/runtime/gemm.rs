// The matrix-product helpers of every kernel, f64 and f32 alike (operands
// are converted to f64 as they are packed or read), emitted verbatim under
// the kernel's prefix (`linear_gemm`, …) and unit-tested in symdiff's own
// crate (`codegen::runtime`). `gemm` packs panels and sums 4×8 blocks in
// registers; a product with a side at most 12 wide packs only that side
// (`gemm_narrow`); `gemm_threads` splits the longer side over threads.

/// The matrix products of a kernel (`X @ W`, `Xᵀ G`, `Xᵀ diag(s) X`), all
/// one sum over `r < rows`:
///
/// `c[a·cs[0] + b·cs[1]] += Σ_r s_r · u[r·us[0] + a·us[1]] · v[r·vs[0] + b·vs[1]]`
///
/// for `a < left`, `b < right`, with `s_r = 1` when `scale` is empty.
/// Operands are addressed by strides, so a transposed operand costs
/// nothing. Rows are taken `GEMM_ROWS` at a time; in each such slab the
/// operands are packed (scaled, converted to `f64`) into panels `GEMM_MR`
/// and `GEMM_NR` wide, contiguous in `r`, and every `GEMM_MR × GEMM_NR`
/// block of `c` is summed in registers by [`gemm_block`]: per row, one
/// panel row of each operand and 32 multiply-adds, instead of a load and
/// a store of `c` per multiply-add as in a loop over rank-one updates.
/// With `symmetric` (`u` and `v` the same operand, `c` symmetric on
/// entry) only blocks that reach the diagonal or above are computed, and
/// the lower triangle is copied from the upper one at the end: half the
/// work, and an exactly symmetric result. The smaller of `left` and
/// `right` goes on the `GEMM_MR` side, which pads less.
///
/// With `threads > 1` the longer side is split into that many ranges
/// (for a symmetric product, ranges of rows of equal area above the
/// diagonal), each summed by its own thread (`std::thread::scope`) into
/// its own buffer, which is added to `c` after they all finish: every
/// entry gets the same sum in the same order as with one thread.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm<const FMA: bool>(
    rows: usize,
    left: usize,
    right: usize,
    u: &[impl Copy + Into<f64> + Sync],
    us: [usize; 2],
    v: &[impl Copy + Into<f64> + Sync],
    vs: [usize; 2],
    scale: &[impl Copy + Into<f64> + Sync],
    c: &mut [f64],
    cs: [usize; 2],
    symmetric: bool,
    threads: usize,
) {
    if rows == 0 || left == 0 || right == 0 {
        return;
    }
    if !symmetric && right < left {
        // Cᵀ = Σ s·v ⊗ u: the same sum with the operands swapped.
        gemm_threads::<FMA>(rows, right, left, v, vs, u, us, scale, c, [cs[1], cs[0]], false, threads);
    } else {
        gemm_threads::<FMA>(rows, left, right, u, us, v, vs, scale, c, cs, symmetric, threads);
    }
    if symmetric {
        for a in 0..left {
            for b in 0..a {
                c[a * cs[0] + b * cs[1]] = c[b * cs[0] + a * cs[1]];
            }
        }
    }
}

/// [`gemm`] with `left` on the `GEMM_MR` side, on one thread or split
/// over several (each into a buffer of its own, added after).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_threads<const FMA: bool>(
    rows: usize,
    left: usize,
    right: usize,
    u: &[impl Copy + Into<f64> + Sync],
    us: [usize; 2],
    v: &[impl Copy + Into<f64> + Sync],
    vs: [usize; 2],
    scale: &[impl Copy + Into<f64> + Sync],
    c: &mut [f64],
    cs: [usize; 2],
    symmetric: bool,
    threads: usize,
) {
    // Below about a million multiply-adds a thread costs more than it saves.
    let threads = threads.min(rows.saturating_mul(left).saturating_mul(right) >> 20).max(1);
    if threads == 1 {
        return gemm_panels::<FMA>(rows, 0..left, 0..right, u, us, v, vs, scale, c, cs, symmetric);
    }
    // Ranges of `left` (split along the rows of `c`) or of `right`, on
    // panel boundaries (4 and 8 wide).
    let split_left = symmetric || left >= right;
    let (len, step) = if split_left { (left, 4) } else { (right, 8) };
    let bounds: Vec<usize> = (0..=threads)
        .map(|t| {
            let x = if symmetric {
                // Row ranges of equal area in the upper triangle.
                1.0 - (1.0 - t as f64 / threads as f64).sqrt()
            } else {
                t as f64 / threads as f64
            };
            ((x * len as f64) as usize).div_ceil(step).saturating_mul(step).min(len)
        })
        .collect();
    let ranges: Vec<std::ops::Range<usize>> =
        bounds.windows(2).filter(|w| w[0] < w[1]).map(|w| w[0]..w[1]).collect();
    // A range of the split side as the ranges of `a` and `b`.
    let a_b = move |x: std::ops::Range<usize>| if split_left { (x, 0..right) } else { (0..left, x) };
    // Each range into a buffer of its own, added after they all finish.
    // Measured on the linear classifier's gradients (4096×256×10, two
    // cores): the calling thread only waits, as computing a range itself
    // was no faster than one thread; and threads adding into `c` directly,
    // where their ranges own runs of it, took 2.3 ms against 1.9 for the
    // W gradient (same page faults, a third more CPU time).
    let part = |x: std::ops::Range<usize>| {
        let (a, b) = a_b(x.clone());
        let width = b.len();
        let mut own = vec![0.0f64; a.len() * width];
        gemm_panels::<FMA>(rows, a, b, u, us, v, vs, scale, &mut own, [width, 1], symmetric);
        (x, own)
    };
    let parts: Vec<(std::ops::Range<usize>, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges.iter().map(|x| scope.spawn(|| part(x.clone()))).collect();
        handles.into_iter().map(|h| h.join().expect("a gemm thread does not panic")).collect()
    });
    for (range, own) in parts {
        let (a_range, b_range) = a_b(range);
        let width = b_range.len();
        for (i, a) in a_range.enumerate() {
            for (j, b) in b_range.clone().enumerate() {
                c[a * cs[0] + b * cs[1]] += own[i * width + j];
            }
        }
    }
}

/// The blocks of [`gemm`] with `a` in `a_range` and `b` in `b_range`,
/// added to `c[(a − a0)·cs[0] + (b − b0)·cs[1]]`: packing and blocks.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_panels<const FMA: bool>(
    rows: usize,
    a_range: std::ops::Range<usize>,
    b_range: std::ops::Range<usize>,
    u: &[impl Copy + Into<f64>],
    us: [usize; 2],
    v: &[impl Copy + Into<f64>],
    vs: [usize; 2],
    scale: &[impl Copy + Into<f64>],
    c: &mut [f64],
    cs: [usize; 2],
    symmetric: bool,
) {
    if !symmetric && a_range.len() <= 12 {
        return gemm_narrow::<FMA>(rows, a_range, b_range, u, us, v, vs, scale, c, cs);
    }
    // 4 × 8 accumulators are eight AVX2 registers; 256 rows of a panel
    // pair (24 KiB) stay in the first-level cache across a slab.
    const GEMM_MR: usize = 4;
    const GEMM_NR: usize = 8;
    const GEMM_ROWS: usize = 256;
    let (a0, b0) = (a_range.start, b_range.start);
    let slab = rows.min(GEMM_ROWS);
    let left_panels = a_range.len().div_ceil(GEMM_MR);
    let mut up = vec![0.0f64; left_panels * GEMM_MR * slab];
    let mut vp = [0.0f64; GEMM_NR * GEMM_ROWS];
    let mut r0 = 0;
    while r0 < rows {
        let kc = (rows - r0).min(GEMM_ROWS);
        // The `left` side, all of this slab: the smaller operand.
        for (pa, panel) in up.chunks_exact_mut(GEMM_MR * slab).enumerate() {
            for r in 0..kc {
                let s: f64 = if scale.is_empty() { 1.0 } else { scale[r0 + r].into() };
                for i in 0..GEMM_MR {
                    let a = a0 + pa * GEMM_MR + i;
                    panel[r * GEMM_MR + i] = if a < a_range.end {
                        s * u[(r0 + r) * us[0] + a * us[1]].into()
                    } else {
                        0.0
                    };
                }
            }
        }
        // The `right` side one panel at a time, used by every block of its
        // column while it is in the first-level cache.
        for pb in 0..b_range.len().div_ceil(GEMM_NR) {
            for r in 0..kc {
                for j in 0..GEMM_NR {
                    let b = b0 + pb * GEMM_NR + j;
                    vp[r * GEMM_NR + j] = if b < b_range.end {
                        v[(r0 + r) * vs[0] + b * vs[1]].into()
                    } else {
                        0.0
                    };
                }
            }
            for pa in 0..left_panels {
                // A block wholly below the diagonal is the mirror of one above it.
                if symmetric && b0 + (pb + 1) * GEMM_NR <= a0 + pa * GEMM_MR {
                    break;
                }
                let u_panel = &up[pa * GEMM_MR * slab..][..GEMM_MR * kc];
                let acc = gemm_block::<FMA>(u_panel, &vp[..GEMM_NR * kc]);
                for (i, acc_row) in acc.iter().enumerate() {
                    let a = pa * GEMM_MR + i;
                    if a0 + a >= a_range.end {
                        break;
                    }
                    for (j, x) in acc_row.iter().enumerate() {
                        let b = pb * GEMM_NR + j;
                        if b0 + b >= b_range.end {
                            break;
                        }
                        c[a * cs[0] + b * cs[1]] += x;
                    }
                }
            }
        }
        r0 += kc;
    }
}

/// One `4 × 8` block of [`gemm`]: `Σ_r u_panel[r][i] · v_panel[r][j]`,
/// summed in 32 accumulators that stay in registers. With `FMA` (code
/// compiled for AVX2 and FMA) eight 4-wide multiply-adds per panel row,
/// written with intrinsics: the compiler does not vectorize `mul_add`
/// loops by itself. Otherwise plain multiplies and adds, which it does.
#[inline(always)]
fn gemm_block<const FMA: bool>(u_panel: &[f64], v_panel: &[f64]) -> [[f64; 8]; 4] {
    let rows = u_panel.len() / 4;
    assert!(v_panel.len() >= rows * 8);
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is set only in kernels compiled for AVX2 and FMA,
        // after the CPU was checked for both; the panels hold `rows` rows
        // of 4 and 8 (checked above), and every load reads within them.
        return unsafe { gemm_block_fma(rows, u_panel.as_ptr(), v_panel.as_ptr()) };
    }
    let mut acc = [[0.0f64; 8]; 4];
    for r in 0..rows {
        let ur: &[f64; 4] = u_panel[r * 4..][..4].try_into().unwrap();
        let vr: &[f64; 8] = v_panel[r * 8..][..8].try_into().unwrap();
        for (acc_row, ui) in acc.iter_mut().zip(ur) {
            for (a, vj) in acc_row.iter_mut().zip(vr) {
                *a += ui * vj;
            }
        }
    }
    acc
}

/// [`gemm_block`] with AVX2 multiply-adds. `u` points at `rows × 4`
/// values, `v` at `rows × 8`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_block_fma(rows: usize, u: *const f64, v: *const f64) -> [[f64; 8]; 4] {
    use core::arch::x86_64::*;
    let mut acc = [_mm256_setzero_pd(); 8];
    for r in 0..rows {
        // SAFETY: row `r < rows` of each panel is in bounds (the caller's contract).
        unsafe {
            let lo = _mm256_loadu_pd(v.add(r * 8));
            let hi = _mm256_loadu_pd(v.add(r * 8 + 4));
            for i in 0..4 {
                let ui = _mm256_broadcast_sd(&*u.add(r * 4 + i));
                acc[2 * i] = _mm256_fmadd_pd(ui, lo, acc[2 * i]);
                acc[2 * i + 1] = _mm256_fmadd_pd(ui, hi, acc[2 * i + 1]);
            }
        }
    }
    let mut out = [[0.0f64; 8]; 4];
    for (i, row) in out.iter_mut().enumerate() {
        // SAFETY: each half of a row is four `f64`s, the width of a store.
        unsafe {
            _mm256_storeu_pd(row.as_mut_ptr(), acc[2 * i]);
            _mm256_storeu_pd(row.as_mut_ptr().add(4), acc[2 * i + 1]);
        }
    }
    out
}

/// [`gemm_panels`] when the `left` side is at most 12 wide (`X @ W` and
/// `Xᵀ G` for a classifier with a few classes). Packing the wide side into
/// panels would cost as much as the products (every entry of `X` moved
/// once, for ten multiply-adds), so only the narrow side is packed, 12 per
/// row and contiguous in `r` (zeros past `left`), and the wide side is
/// read where it lies:
///
/// * where it is contiguous along its own index (`vs[1] == 1`: the rows of
///   `X` in `Xᵀ G`), in vectors, each times a broadcast of every narrow
///   value ([`gemm_wide_vectors`]);
/// * otherwise (the columns of `Xᵀ` in `X @ W`, contiguous in `r`) one
///   entry at a time, broadcast, times vectors of the narrow side
///   ([`gemm_narrow_vectors`]).
///
/// Each entry of `c` is the same sum in the same order as in
/// [`gemm_panels`]: per slab of rows, `Σ_r` in order of `r`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn gemm_narrow<const FMA: bool>(
    rows: usize,
    a_range: std::ops::Range<usize>,
    b_range: std::ops::Range<usize>,
    u: &[impl Copy + Into<f64>],
    us: [usize; 2],
    v: &[impl Copy + Into<f64>],
    vs: [usize; 2],
    scale: &[impl Copy + Into<f64>],
    c: &mut [f64],
    cs: [usize; 2],
) {
    // 256 rows of the packed side (24 KiB) stay in the first-level cache.
    const GEMM_ROWS: usize = 256;
    let (a0, left) = (a_range.start, a_range.len());
    let mut up = [0.0f64; 12 * GEMM_ROWS];
    let mut r0 = 0;
    while r0 < rows {
        let kc = (rows - r0).min(GEMM_ROWS);
        for r in 0..kc {
            let s: f64 = if scale.is_empty() { 1.0 } else { scale[r0 + r].into() };
            for i in 0..12 {
                up[r * 12 + i] = if i < left {
                    s * u[(r0 + r) * us[0] + (a0 + i) * us[1]].into()
                } else {
                    0.0
                };
            }
        }
        let panel = &up[..12 * kc];
        let wide = (r0, b_range.clone(), v, vs[0]);
        // Blocks of at most 12 accumulators: narrow values × wide vectors
        // (or wide entries × narrow vectors), as many as `left` needs.
        match (vs[1] == 1, left) {
            (true, 0..=4) => gemm_wide_vectors::<FMA, 4, 2>(panel, left, wide, c, cs),
            (true, 5..=8) => gemm_wide_vectors::<FMA, 8, 1>(panel, left, wide, c, cs),
            (true, _) => gemm_wide_vectors::<FMA, 12, 1>(panel, left, wide, c, cs),
            (false, 0..=4) => gemm_narrow_vectors::<FMA, 1, 8>(panel, left, wide, vs[1], c, cs),
            (false, 5..=8) => gemm_narrow_vectors::<FMA, 2, 4>(panel, left, wide, vs[1], c, cs),
            (false, _) => gemm_narrow_vectors::<FMA, 3, 4>(panel, left, wide, vs[1], c, cs),
        }
        r0 += kc;
    }
}

/// One slab of [`gemm_narrow`] for a wide side contiguous along its own
/// index: `c[i, b] += Σ_r panel[r][i] · v[(r0 + r)·step + b]` for `i < left`
/// and `b` in `b_range`, in blocks of `L` narrow values (`L ≥ left`, the
/// panel's zeros past it) by `4·W` wide ones. The last, partial block is
/// copied into a buffer padded with zeros, so every block is summed by
/// the same code.
#[inline(always)]
fn gemm_wide_vectors<const FMA: bool, const L: usize, const W: usize>(
    panel: &[f64],
    left: usize,
    (r0, b_range, v, step): (usize, std::ops::Range<usize>, &[impl Copy + Into<f64>], usize),
    c: &mut [f64],
    cs: [usize; 2],
) {
    let (kc, width) = (panel.len() / 12, 4 * W);
    let mut tail = [0.0f64; 8 * 256];
    let mut b = b_range.start;
    while b < b_range.end {
        let n = (b_range.end - b).min(width);
        let acc = if n == width {
            gemm_wide_vectors_block::<FMA, L, W>(panel, v, r0 * step + b, step)
        } else {
            for r in 0..kc {
                for j in 0..width {
                    tail[r * width + j] = if j < n { v[(r0 + r) * step + b + j].into() } else { 0.0 };
                }
            }
            gemm_wide_vectors_block::<FMA, L, W>(panel, &tail[..width * kc], 0, width)
        };
        for (i, acc_i) in acc.iter().enumerate().take(left) {
            for j in 0..n {
                c[i * cs[0] + (b - b_range.start + j) * cs[1]] += acc_i[j / 4][j % 4];
            }
        }
        b += width;
    }
}

/// One block of [`gemm_wide_vectors`]:
/// `acc[i][k][l] = Σ_r panel[r][i] · v[at + r·step + 4k + l]`. With `FMA`
/// (AVX2 and FMA) `W` vector loads and `L` broadcasts for `L·W`
/// multiply-adds per row, in registers; otherwise plain loops the
/// compiler vectorizes.
#[inline(always)]
fn gemm_wide_vectors_block<const FMA: bool, const L: usize, const W: usize>(
    panel: &[f64],
    v: &[impl Copy + Into<f64>],
    at: usize,
    step: usize,
) -> [[[f64; 4]; W]; L] {
    let rows = panel.len() / 12;
    if rows == 0 {
        return [[[0.0; 4]; W]; L];
    }
    // Every read below is in bounds if the last row's is.
    assert!(L <= 12 && at + (rows - 1) * step + 4 * W <= v.len());
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is set only in kernels compiled for AVX2 and FMA,
        // after the CPU was checked for both; the panel holds `rows` rows
        // of 12 (at least `L`), and `v` is read at `at + r·step + j` for
        // `r < rows`, `j < 4·W`, in bounds (checked above).
        return unsafe { gemm_wide_vectors_block_fma::<_, L, W>(rows, panel.as_ptr(), v.as_ptr(), at, step) };
    }
    let mut acc = [[[0.0f64; 4]; W]; L];
    for r in 0..rows {
        let x = &v[at + r * step..][..4 * W];
        for (i, acc_i) in acc.iter_mut().enumerate() {
            let ui = panel[r * 12 + i];
            for (k, lanes) in acc_i.iter_mut().enumerate() {
                for (l, a) in lanes.iter_mut().enumerate() {
                    *a += ui * x[4 * k + l].into();
                }
            }
        }
    }
    acc
}

/// [`gemm_wide_vectors_block`] with AVX2 multiply-adds. `u` points at
/// `rows × 12` values; `v` is read at `at + r·step + j`, `j < 4·W`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_wide_vectors_block_fma<T: Copy + Into<f64>, const L: usize, const W: usize>(
    rows: usize,
    u: *const f64,
    v: *const T,
    at: usize,
    step: usize,
) -> [[[f64; 4]; W]; L] {
    use core::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_pd(); W]; L];
    for r in 0..rows {
        // SAFETY: row `r < rows` of the panel and the `4·W` reads of `v`
        // are in bounds (the caller's contract).
        unsafe {
            let p = v.add(at + r * step);
            let x: [__m256d; W] = core::array::from_fn(|k| {
                let e = |l: usize| (*p.add(4 * k + l)).into();
                _mm256_set_pd(e(3), e(2), e(1), e(0))
            });
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let ui = _mm256_broadcast_sd(&*u.add(r * 12 + i));
                for (a, xk) in acc_i.iter_mut().zip(&x) {
                    *a = _mm256_fmadd_pd(ui, *xk, *a);
                }
            }
        }
    }
    let mut out = [[[0.0f64; 4]; W]; L];
    for (o, a) in out.iter_mut().flatten().zip(acc.iter().flatten()) {
        // SAFETY: four `f64`s, the width of a store.
        unsafe { _mm256_storeu_pd(o.as_mut_ptr(), *a) };
    }
    out
}

/// One slab of [`gemm_narrow`] for a wide side read one entry at a time:
/// `c[i, b] += Σ_r panel[r][i] · v[(r0 + r)·step + b·stride]` in blocks
/// of `J` wide entries (past the end, the last one again: summed, never
/// stored) by `4·NV` narrow values (`4·NV ≥ left`).
#[inline(always)]
fn gemm_narrow_vectors<const FMA: bool, const NV: usize, const J: usize>(
    panel: &[f64],
    left: usize,
    (r0, b_range, v, step): (usize, std::ops::Range<usize>, &[impl Copy + Into<f64>], usize),
    stride: usize,
    c: &mut [f64],
    cs: [usize; 2],
) {
    let last = b_range.end - 1;
    for b in b_range.clone().step_by(J) {
        let at: [usize; J] = core::array::from_fn(|j| r0 * step + (b + j).min(last) * stride);
        let acc = gemm_narrow_vectors_block::<FMA, NV, J>(panel, v, at, step);
        for (j, acc_j) in acc.iter().enumerate().take(b_range.end - b) {
            for i in 0..left {
                c[i * cs[0] + (b - b_range.start + j) * cs[1]] += acc_j[i / 4][i % 4];
            }
        }
    }
}

/// One block of [`gemm_narrow_vectors`]:
/// `acc[j][k][l] = Σ_r v[at[j] + r·step] · panel[r][4k + l]`. With `FMA`
/// (AVX2 and FMA) `NV` vector loads and `J` broadcasts for `J·NV`
/// multiply-adds per row, in registers; otherwise plain loops the
/// compiler vectorizes.
#[inline(always)]
fn gemm_narrow_vectors_block<const FMA: bool, const NV: usize, const J: usize>(
    panel: &[f64],
    v: &[impl Copy + Into<f64>],
    at: [usize; J],
    step: usize,
) -> [[[f64; 4]; NV]; J] {
    let rows = panel.len() / 12;
    if rows == 0 {
        return [[[0.0; 4]; NV]; J];
    }
    // Every read below is in bounds if the last row's is.
    assert!(NV <= 3 && at.iter().all(|&x| x + (rows - 1) * step < v.len()));
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is set only in kernels compiled for AVX2 and FMA,
        // after the CPU was checked for both; the panel holds `rows` rows
        // of 12 (at least `4·NV`), and `v` is read at `at[j] + r·step`
        // for `r < rows`, in bounds (checked above).
        return unsafe { gemm_narrow_vectors_block_fma::<_, NV, J>(rows, panel.as_ptr(), v.as_ptr(), at, step) };
    }
    let mut acc = [[[0.0f64; 4]; NV]; J];
    for r in 0..rows {
        let ur = &panel[r * 12..][..4 * NV];
        for (acc_j, &x) in acc.iter_mut().zip(&at) {
            let vj: f64 = v[x + r * step].into();
            for (k, lanes) in acc_j.iter_mut().enumerate() {
                for (l, a) in lanes.iter_mut().enumerate() {
                    *a += vj * ur[4 * k + l];
                }
            }
        }
    }
    acc
}

/// [`gemm_narrow_vectors_block`] with AVX2 multiply-adds. `u` points at
/// `rows × 12` values; `v` is read at `at[j] + r·step`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_narrow_vectors_block_fma<T: Copy + Into<f64>, const NV: usize, const J: usize>(
    rows: usize,
    u: *const f64,
    v: *const T,
    at: [usize; J],
    step: usize,
) -> [[[f64; 4]; NV]; J] {
    use core::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_pd(); NV]; J];
    for r in 0..rows {
        // SAFETY: row `r < rows` of the panel and the `J` reads of `v` are
        // in bounds (the caller's contract).
        unsafe {
            let un: [__m256d; NV] = core::array::from_fn(|k| _mm256_loadu_pd(u.add(r * 12 + 4 * k)));
            for (acc_j, &x) in acc.iter_mut().zip(&at) {
                let vj = _mm256_set1_pd((*v.add(x + r * step)).into());
                for (a, uk) in acc_j.iter_mut().zip(&un) {
                    *a = _mm256_fmadd_pd(vj, *uk, *a);
                }
            }
        }
    }
    let mut out = [[[0.0f64; 4]; NV]; J];
    for (o, a) in out.iter_mut().flatten().zip(acc.iter().flatten()) {
        // SAFETY: four `f64`s, the width of a store.
        unsafe { _mm256_storeu_pd(o.as_mut_ptr(), *a) };
    }
    out
}
