//! The generated xent kernels against a plain reference, on arbitrary f64
//! bit patterns for the logits (NaN with any payload, ±∞, subnormals,
//! ±1e308) and any length: NaN exactly where the reference is NaN, and
//! otherwise the same gradient, value-and-gradient and Hessian-vector
//! product to 1e-9 of the terms' magnitudes (sums of absolute values, as the
//! kernel's blocked sums round in another order), and the fused value to
//! 1e-12 of its magnitudes.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(clippy::all, unused)]
mod kernels {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Softmax with the maximum shifted out; NaN where any logit is NaN or
/// +∞ (∞ − ∞), or all are −∞.
fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if z.iter().any(|x| x.is_nan()) {
        return vec![f64::NAN; z.len()];
    }
    let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| x / s).collect()
}

fuzz_target!(|data: &[u8]| {
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let n = words.len() / 2;
    if n == 0 {
        return;
    }
    let z: Vec<f64> = words[..n].iter().map(|&w| f64::from_bits(w)).collect();
    // Targets and directions: finite, of moderate size.
    let q: Vec<f64> = words[n..2 * n]
        .iter()
        .map(|&w| (w % 2001) as f64 / 1000.0 - 1.0)
        .collect();
    // +∞ logits have no finite softmax in either; skip those inputs.
    if z.contains(&f64::INFINITY) {
        return;
    }
    let p = softmax(&z);
    let s: f64 = q.iter().sum();
    // Sums are rounded in a different order in the kernel (blocks): their
    // errors scale with the sums of magnitudes, not with the sums.
    let s_abs: f64 = q.iter().map(|x| x.abs()).sum();
    let mut g = vec![0.0; n];
    kernels::xent_grad(&z, &q, &mut g);
    let pv: f64 = p.iter().zip(&q).map(|(a, b)| a * b).sum();
    let pv_abs: f64 = p.iter().zip(&q).map(|(a, b)| (a * b).abs()).sum();
    let mut vg = vec![0.0; n];
    let value = kernels::xent_value_grad(&z, &q, &mut vg);
    // The fused kernel sums in another order than the value kernel: the
    // same value to 1e-12 of the magnitudes summed, NaN where it is NaN.
    let alone = kernels::xent(&z, &q);
    let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max).abs();
    let magnitudes: f64 = q
        .iter()
        .zip(&z)
        .map(|(a, b)| a.abs() * (b.abs() + top))
        .sum::<f64>()
        + s_abs * (n as f64).ln().max(1.0);
    assert_eq!(value.is_nan(), alone.is_nan(), "value_grad {value} vs value {alone}; z = {z:?}");
    if value.is_finite() && alone.is_finite() {
        assert!(
            (value - alone).abs() <= 1e-12 * magnitudes + 1e-300,
            "value_grad {value} vs value {alone}; z = {z:?}"
        );
    } else if !value.is_nan() {
        assert_eq!(value, alone, "value_grad {value} vs value {alone}; z = {z:?}");
    }
    let mut hv = vec![0.0; n];
    kernels::xent_hvp(&z, &q, &q, &mut hv);
    for i in 0..n {
        let want = s * p[i] - q[i];
        let scale = s_abs * p[i] + q[i].abs();
        for (what, got) in [("grad", g[i]), ("value_grad", vg[i])] {
            if want.is_nan() {
                assert!(got.is_nan(), "{what}[{i}] = {got}, want NaN; z = {z:?}");
            } else {
                assert!((got - want).abs() <= 1e-9 * scale + 1e-300, "{what}[{i}] = {got}, want {want}; z = {z:?}");
            }
        }
        let want = s * (p[i] * q[i] - p[i] * pv);
        if want.is_nan() {
            assert!(hv[i].is_nan(), "hvp[{i}] = {}, want NaN", hv[i]);
        } else {
            let scale = s_abs * p[i] * (q[i].abs() + pv_abs);
            assert!((hv[i] - want).abs() <= 1e-9 * scale + 1e-300, "hvp[{i}] = {}, want {want}; z = {z:?}", hv[i]);
        }
    }
});
