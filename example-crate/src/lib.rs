//! A crate whose softmax cross-entropy kernels come from symdiff at build
//! time: `build.rs` calls `symdiff::Builder`, and the module it writes to
//! `OUT_DIR` is included here.
#![deny(warnings)]

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

pub mod newton;

#[cfg(test)]
mod tests {
    /// The polynomial `exp` that kernels use for arguments of any sign
    /// (here the Poisson kernel's), unfused and fused.
    fn exp(x: f64, fma: bool) -> f64 {
        if fma {
            super::poisson_exp::<true>(x)
        } else {
            super::poisson_exp::<false>(x)
        }
    }

    #[test]
    fn the_polynomial_exp_is_within_two_ulp_of_std_over_its_whole_range() {
        // Every 0.01 from where exp is a normal number to where it overflows.
        let mut xs: Vec<f64> = (0..=141_778).map(|k| -708.0 + k as f64 * 0.01).collect();
        xs.extend([0.0, -0.0, 1e-300, -1e-300, 709.78, -707.99, 709.782]);
        for fma in [false, true] {
            let mut worst = 0;
            for &x in &xs {
                let (got, want) = (exp(x, fma), x.exp());
                let ulps = got.to_bits().abs_diff(want.to_bits());
                assert!(
                    ulps <= 2,
                    "exp({x}) = {got}, std {want}: {ulps} ulp (fma {fma})"
                );
                worst = worst.max(ulps);
            }
            assert!(worst > 0, "a test that cannot fail");
            for x in [-708.5, -745.2, -1e4, f64::NEG_INFINITY] {
                assert_eq!(exp(x, fma), 0.0, "exp({x}) flushes to zero");
            }
            for x in [709.79, 709.8, 1e4, f64::INFINITY] {
                assert_eq!(exp(x, fma), f64::INFINITY, "exp({x}) overflows");
            }
            assert!(exp(f64::NAN, fma).is_nan());
        }
    }
}
