// The runtime helpers of f32 kernels, emitted verbatim (each under its
// kernel's prefix: `xent_exp`, `xent_exp_shifted`, …) and unit-tested in
// symdiff's own crate (`codegen::runtime`).
//
// `exp(x)` is computed as `2^k · e^r` with `k = round(x / ln 2)` and
// `|r| ≤ ln 2 / 2`; `e^r` by its Taylor polynomial of degree 8. Neither function branches
// on the argument or calls anything, so loops that use them vectorize; this
// polynomial sets the pace of every softmax kernel. `FMA` fuses the
// multiply-adds (for code compiled with the `fma` target feature).

/// `exp(x)` for any argument; results below `exp(-86)` are flushed to
/// zero, NaN stays NaN.
#[inline(always)]
fn exp<const FMA: bool>(x: f32) -> f32 {
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    // Above 88.8 the result is infinite; below -86 it is flushed to zero.
    let xc = x.clamp(-86.0, 88.8);
    // 1.5 · 2^23: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFT: f32 = 12582912.0;
    // ln 2 in two parts, so `k · ln 2` is exact to 2^-40.
    const LN2_HI: f32 = f32::from_bits(0x3f31_8000);
    const LN2_LO: f32 = f32::from_bits(0xb95e_8083);
    let t = fma(xc, core::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, xc));
    let p = exp_poly::<FMA>(r);
    // 2^(k-1) from the integer in t's low bits (exponent bias 127, less
    // one), then one doubling, so the largest k does not overflow the
    // exponent field.
    let half_scale = f32::from_bits(t.to_bits().wrapping_add(126) << 23);
    let y = p * half_scale * 2.0;
    // A NaN's payload bits would reach the exponent field through `t`:
    // NaN in, NaN out, whatever its bits.
    if x.is_nan() {
        x
    } else if x < -86.0 {
        0.0
    } else {
        y
    }
}

/// `exp(x)` for shifted arguments (a logit less its row's shift, `-|x|`):
/// clamped to at most 88, so `p · 2^k` is a normal number, made by adding
/// `k` to the exponent field of `p`, which saves the scaling multiplies on
/// the busiest port. Results below `exp(-86)` are flushed to zero.
#[inline(always)]
fn exp_shifted<const FMA: bool>(x: f32) -> f32 {
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let small = x < -86.0;
    // `clamp` keeps a NaN argument NaN (`max` would not).
    let xc = x.clamp(-86.0, 88.0);
    // 1.5 · 2^23: adding it rounds to an integer kept in the low mantissa bits.
    const SHIFT: f32 = 12582912.0;
    // ln 2 in two parts, so `k · ln 2` is exact to 2^-40.
    const LN2_HI: f32 = f32::from_bits(0x3f31_8000);
    const LN2_LO: f32 = f32::from_bits(0xb95e_8083);
    let t = fma(xc, core::f32::consts::LOG2_E, SHIFT);
    let k = t - SHIFT;
    let r = fma(-k, LN2_LO, fma(-k, LN2_HI, xc));
    let p = exp_poly::<FMA>(r);
    let y = f32::from_bits(p.to_bits().wrapping_add(t.to_bits() << 23));
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

/// `e^r` for `|r| ≤ ln 2 / 2` by its Taylor polynomial of degree 8, in
/// Estrin's scheme.
#[inline(always)]
fn exp_poly<const FMA: bool>(r: f32) -> f32 {
    let fma = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let r2 = r * r;
    let r4 = r2 * r2;
    let q0 = fma(r2, fma(r, 1.0 / 6.0, 0.5), 1.0 + r);
    let q1 = fma(
        r2,
        fma(r, 1.0 / 5040.0, 1.0 / 720.0),
        fma(r, 1.0 / 120.0, 1.0 / 24.0),
    );
    fma(r4, fma(r4, 1.0 / 40320.0, q1), q0)
}

/// `1 / (1 + exp(-x))`, never taking `exp` of a large positive number.
#[inline(always)]
fn sigmoid<const FMA: bool>(x: f32) -> f32 {
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
fn softplus<const FMA: bool>(x: f32) -> f32 {
    x.max(0.0) + exp_shifted::<FMA>(-x.abs()).ln_1p()
}
