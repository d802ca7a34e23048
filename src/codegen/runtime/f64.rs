// The runtime helpers of f64 kernels, emitted verbatim (each under its
// kernel's prefix: `xent_exp`, `xent_exp_shifted`, …) and unit-tested in
// symdiff's own crate (`codegen::runtime`).
//
// `exp(x)` is computed as `2^k · e^r` with `k = round(x / ln 2)` and
// `|r| ≤ ln 2 / 2`; `e^r` by a polynomial of degree 11 (a Chebyshev fit,
// error below 4e-18), within 2 ulp of `f64::exp`. Neither function branches
// on the argument or calls anything, so loops that use them vectorize; this
// polynomial sets the pace of every softmax kernel. `FMA` fuses the
// multiply-adds (for code compiled with the `fma` target feature).

/// `exp(x)` for any argument, within 2 ulp of `f64::exp`; results below
/// `exp(-708)` are flushed to zero, NaN stays NaN.
#[inline(always)]
fn exp<const FMA: bool>(x: f64) -> f64 {
    let fma = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    // Above 709.8 the result is infinite; below -708 it is flushed to zero.
    let xc = x.clamp(-708.0, 709.8);
    // 1.5 · 2^52: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFT: f64 = 6755399441055744.0;
    // ln 2 in two parts, so `k · ln 2` is exact to 2^-100.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let t = fma(xc, core::f64::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, xc));
    let p = exp_poly::<FMA>(r);
    // 2^(k-1) from the integer in t's low bits (exponent bias 1023, less
    // one), then one doubling, so the largest k does not overflow the
    // exponent field.
    let half_scale = f64::from_bits(t.to_bits().wrapping_add(1022) << 52);
    let y = p * half_scale * 2.0;
    // A NaN's payload bits would reach the exponent field through `t`:
    // NaN in, NaN out, whatever its bits.
    if x.is_nan() {
        x
    } else if x < -708.0 {
        0.0
    } else {
        y
    }
}

/// `exp(x)` for shifted arguments (a logit less its row's shift, `-|x|`):
/// clamped to at most 709, so `p · 2^k` is a normal number, made by adding
/// `k` to the exponent field of `p`, which saves the scaling multiplies on
/// the busiest port. Results below `exp(-708)` are flushed to zero.
#[inline(always)]
fn exp_shifted<const FMA: bool>(x: f64) -> f64 {
    let fma = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    let small = x < -708.0;
    // `clamp` keeps a NaN argument NaN (`max` would not).
    let xc = x.clamp(-708.0, 709.0);
    // 1.5 · 2^52: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFT: f64 = 6755399441055744.0;
    // ln 2 in two parts, so `k · ln 2` is exact to 2^-100.
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    let t = fma(xc, core::f64::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, xc));
    let p = exp_poly::<FMA>(r);
    let y = f64::from_bits(p.to_bits().wrapping_add(t.to_bits() << 52));
    // A NaN's payload bits would reach the exponent field through `t`:
    // NaN in, NaN out, whatever its bits.
    if x.is_nan() {
        x
    } else if small {
        0.0
    } else {
        y
    }
}

/// `e^r` for `|r| ≤ ln 2 / 2` by Estrin's scheme in `r²` and `r⁴`: a
/// dependency chain of depth 5, not 11, and two multiplies for the powers.
#[inline(always)]
fn exp_poly<const FMA: bool>(r: f64) -> f64 {
    let fma = |a: f64, b: f64, c: f64| if FMA { a.mul_add(b, c) } else { a * b + c };
    const C2: f64 = 0.5000000000000019;
    const C3: f64 = 0.1666666666666668;
    const C4: f64 = 0.0416666666664881;
    const C5: f64 = 0.008333333333319601;
    const C6: f64 = 0.0013888888952314775;
    const C7: f64 = 0.00019841269890047113;
    const C8: f64 = 2.4801485482328494e-05;
    const C9: f64 = 2.755724091857897e-06;
    const C10: f64 = 2.763263963904103e-07;
    const C11: f64 = 2.5110037605963777e-08;
    let r2 = r * r;
    let r4 = r2 * r2;
    let q0 = fma(r2, fma(r, C3, C2), 1.0 + r);
    let q1 = fma(r2, fma(r, C7, C6), fma(r, C5, C4));
    let q2 = fma(r2, fma(r, C11, C10), fma(r, C9, C8));
    fma(r4, fma(r4, q2, q1), q0)
}

/// `1 / (1 + exp(-x))`, never taking `exp` of a large positive number.
#[inline(always)]
fn sigmoid<const FMA: bool>(x: f64) -> f64 {
    let e = exp_shifted::<FMA>(-x.abs());
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// `log(1 + exp(x))` as `max(x, 0) + log(1 + exp(-|x|))`: no overflow for
/// large `x`, no loss of `exp(x)` for very negative `x`.
#[inline(always)]
fn softplus<const FMA: bool>(x: f64) -> f64 {
    x.max(0.0) + exp_shifted::<FMA>(-x.abs()).ln_1p()
}

/// The 64 partial results of a blocked pass (one per position in the
/// block) folded pairwise into the first 4: 32 + 32, then 16 + 16, 8 + 8,
/// 4 + 4, so every add joins two partial results built from equally many
/// entries (the error grows with the log of the length, not the length).
/// `MAX` folds a maximum instead of a sum. Partial results are `f64` in
/// f32 kernels too.
#[inline(always)]
fn fold64<const MAX: bool>(acc: &mut [f64; 64]) {
    let mut half = 32;
    while half >= 4 {
        for l in 0..half {
            acc[l] = if MAX {
                acc[l].max(acc[l + half])
            } else {
                acc[l] + acc[l + half]
            };
        }
        half /= 2;
    }
}

/// Runs `f`, a kernel's range of rows on a thread of its own, in code
/// compiled for AVX2 and FMA when `FMA` is set. A closure gets the target
/// features of the function it is written in, not of the one it is
/// inlined into, so a range run on a thread would otherwise compute every
/// `mul_add` by a call to libm.
#[inline(always)]
fn on_thread<const FMA: bool, R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: `FMA` is set only in kernels compiled for AVX2 and FMA,
        // after the CPU was checked for both.
        return unsafe { on_thread_fma(f) };
    }
    f()
}

/// [`on_thread`] in code compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn on_thread_fma<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Advances `sorted` (non-decreasing, every entry below `n`) to the next
/// such tuple in lexicographic order; false after the last. The entries
/// of a symmetric tensor are walked this way, one per multiset of
/// indices: `C(n + k − 1, k)` of them instead of `n^k`.
#[inline(always)]
fn next_sorted(sorted: &mut [usize], n: usize) -> bool {
    // The last position that can still grow; the ones after it restart
    // at its new value.
    for s in (0..sorted.len()).rev() {
        if sorted[s] + 1 < n {
            let v = sorted[s] + 1;
            sorted[s..].fill(v);
            return true;
        }
    }
    false
}

/// Writes `value` to every entry of `out` (order `sorted.len()`, every
/// index below `n`, row-major) whose indices are a permutation of
/// `sorted`: each distinct permutation once, by the lexicographic
/// next-permutation step, which skips repeats. At most 24 indices (the
/// highest order symdiff computes).
#[inline(always)]
fn fill_permutations<T: Copy>(sorted: &[usize], n: usize, value: T, out: &mut [T]) {
    let k = sorted.len();
    let mut buf = [0usize; 24];
    let p = &mut buf[..k];
    p.copy_from_slice(sorted);
    loop {
        out[p.iter().fold(0, |at, &i| at * n + i)] = value;
        // The last ascent, swapped with the last entry above it, and the
        // tail after it reversed: the next permutation, or none.
        let Some(i) = (1..k).rev().find(|&i| p[i - 1] < p[i]).map(|i| i - 1) else {
            return;
        };
        let j = (i + 1..k).rev().find(|&j| p[j] > p[i]).unwrap_or(i);
        p.swap(i, j);
        p[i + 1..].reverse();
    }
}
