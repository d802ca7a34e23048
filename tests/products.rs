//! The batched kernels whose matrix products run through the blocked
//! `gemm` helper (`generated/linear_classifier.rs`,
//! `generated/logistic_regression.rs`), compiled here under
//! `#[deny(warnings)]` and checked against plain loops written out below
//! and against central differences of their own values and gradients, at
//! sizes that cross the helper's panel edges and its 256-row slabs, on
//! both the FMA path and the baseline body; the tiled transpose of
//! `generated/quadratic.rs` (`A + Aᵀ`) across tile edges; and the
//! `_threads` entry points, matrix products and ranges of rows
//! (`generated/batched_xent.rs`) against one thread.

#[deny(warnings)]
mod linear {
    include!("../generated/linear_classifier.rs");

    pub fn w_grad_baseline(
        m: usize,
        d: usize,
        x: &[f64],
        w: &[f64],
        b: &[f64],
        y: &[f64],
        out: &mut [f64],
    ) {
        linear_w_grad_body::<false>(m, d, x, w, b, y, out, 1)
    }
}
#[deny(warnings)]
mod logistic {
    include!("../generated/logistic_regression.rs");

    pub fn hessian_baseline(y: &[f64], x: &[f64], w: &[f64], out: &mut [f64]) {
        logistic_hessian_body::<false>(y, x, w, out, 1)
    }
}

#[deny(warnings)]
mod batched {
    include!("../generated/batched_xent.rs");
}

#[deny(warnings)]
mod quadratic {
    include!("../generated/quadratic.rs");
}

mod common;
use common::Rng;

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `Xᵀ(diag(ΣY) softmax(XW + b) − Y)/m` by plain loops.
fn linear_w_grad_reference(
    m: usize,
    d: usize,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    y: &[f64],
) -> Vec<f64> {
    let k = b.len();
    let mut g = vec![0.0; d * k];
    for r in 0..m {
        let z: Vec<f64> = (0..k)
            .map(|c| b[c] + (0..d).map(|i| x[r * d + i] * w[i * k + c]).sum::<f64>())
            .collect();
        let top = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - top).exp()).collect();
        let (se, sy): (f64, f64) = (e.iter().sum(), y[r * k..(r + 1) * k].iter().sum());
        for c in 0..k {
            let a = (sy * e[c] / se - y[r * k + c]) / m as f64;
            for i in 0..d {
                g[i * k + c] += x[r * d + i] * a;
            }
        }
    }
    g
}

#[test]
fn linear_classifier_gradient_matches_plain_loops_and_differences() {
    let mut rng = Rng(11);
    for &(m, d, k) in &[(1, 1, 2), (7, 3, 10), (300, 13, 5), (513, 9, 17)] {
        let x = rng.vec(m * d, -2.0, 2.0);
        let w = rng.vec(d * k, -1.0, 1.0);
        let b = rng.vec(k, -1.0, 1.0);
        let y = rng.vec(m * k, 0.0, 1.0);
        let want = linear_w_grad_reference(m, d, &x, &w, &b, &y);
        let mut got = vec![0.0; d * k];
        linear::linear_w_grad(m, d, &x, &w, &b, &y, &mut got);
        assert!(
            max_diff(&got, &want) < 1e-12,
            "{m}×{d}×{k}: {}",
            max_diff(&got, &want)
        );
        let mut base = vec![0.0; d * k];
        linear::w_grad_baseline(m, d, &x, &w, &b, &y, &mut base);
        assert!(max_diff(&base, &want) < 1e-12, "baseline {m}×{d}×{k}");
        let mut both = vec![0.0; d * k];
        let value = linear::linear_w_value_grad(m, d, &x, &w, &b, &y, &mut both);
        assert!(max_diff(&both, &want) < 1e-12);
        assert!(
            (value - linear::linear_w(m, d, &x, &w, &b, &y)).abs() < 1e-12 * value.abs().max(1.0)
        );
        // The gradient is the value's derivative.
        for j in [0, d * k / 2, d * k - 1] {
            let h = 1e-6;
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[j] += h;
            wm[j] -= h;
            let fd = (linear::linear_w(m, d, &x, &wp, &b, &y)
                - linear::linear_w(m, d, &x, &wm, &b, &y))
                / (2.0 * h);
            assert!(
                (fd - got[j]).abs() < 1e-7,
                "entry {j}: {fd} against {}",
                got[j]
            );
        }
    }
}

#[test]
fn logistic_hessian_matches_plain_loops_differences_and_its_hvp() {
    let mut rng = Rng(12);
    for &(m, d) in &[(1, 1), (5, 7), (300, 13), (600, 31)] {
        let x = rng.vec(m * d, -2.0, 2.0);
        let w = rng.vec(d, -1.0, 1.0);
        let y: Vec<f64> = (0..m)
            .map(|_| f64::from(u8::from(rng.next() > 0.5)))
            .collect();
        // Xᵀ diag(σ(t)(1 − σ(t))) X / m + 0.001 I, t = ±(Xw).
        let mut want = vec![0.0; d * d];
        for r in 0..m {
            let t: f64 = (0..d).map(|i| x[r * d + i] * w[i]).sum();
            let s = 1.0 / (1.0 + (-t).exp());
            for i in 0..d {
                for j in 0..d {
                    want[i * d + j] += x[r * d + i] * x[r * d + j] * s * (1.0 - s) / m as f64;
                }
            }
        }
        (0..d).for_each(|i| want[i * d + i] += 0.001);
        let mut got = vec![0.0; d * d];
        logistic::logistic_hessian(&y, &x, &w, &mut got);
        assert!(
            max_diff(&got, &want) < 1e-12,
            "{m}×{d}: {}",
            max_diff(&got, &want)
        );
        let mut base = vec![0.0; d * d];
        logistic::hessian_baseline(&y, &x, &w, &mut base);
        assert!(max_diff(&base, &want) < 1e-12, "baseline {m}×{d}");
        for i in 0..d {
            for j in 0..d {
                assert_eq!(got[i * d + j], got[j * d + i], "exactly symmetric");
            }
        }
        // Columns are differences of the gradient; H v is the product.
        let h = 1e-6;
        for j in [0, d / 2, d - 1] {
            let (mut wp, mut wm) = (w.clone(), w.clone());
            wp[j] += h;
            wm[j] -= h;
            let (mut gp, mut gm) = (vec![0.0; d], vec![0.0; d]);
            logistic::logistic_grad(&y, &x, &wp, &mut gp);
            logistic::logistic_grad(&y, &x, &wm, &mut gm);
            for i in 0..d {
                let fd = (gp[i] - gm[i]) / (2.0 * h);
                assert!((fd - got[i * d + j]).abs() < 1e-7, "({i}, {j})");
            }
        }
        let v = rng.vec(d, -1.0, 1.0);
        let mut hv = vec![0.0; d];
        logistic::logistic_hvp(&y, &x, &w, &v, &mut hv);
        for i in 0..d {
            let want: f64 = (0..d).map(|j| got[i * d + j] * v[j]).sum();
            assert!((hv[i] - want).abs() < 1e-12, "hvp {i}");
        }
    }
}

#[test]
fn quadratic_hessian_is_a_plus_a_transpose_across_tile_edges() {
    let mut rng = Rng(13);
    for n in [1, 5, 32, 33, 70] {
        let a = rng.vec(n * n, -1.0, 1.0);
        let x = rng.vec(n, -1.0, 1.0);
        let mut h = vec![0.0; n * n];
        quadratic::quadratic_hessian(&x, &a, &mut h);
        for i in 0..n {
            for j in 0..n {
                assert_eq!(
                    h[i * n + j],
                    a[i * n + j] + a[j * n + i],
                    "n = {n}, ({i}, {j})"
                );
            }
        }
        let mut g = vec![0.0; n];
        quadratic::quadratic_grad(&x, &a, &mut g);
        for i in 0..n {
            let want: f64 = (0..n).map(|j| h[i * n + j] * x[j]).sum();
            assert!((g[i] - want).abs() < 1e-12, "gradient {i}");
        }
    }
}

#[test]
fn threaded_entry_points_give_the_same_numbers() {
    let mut rng = Rng(14);
    // Past a million multiply-adds per product, so two threads are used.
    let (m, d, k) = (4096, 64, 10);
    let x = rng.vec(m * d, -2.0, 2.0);
    let w = rng.vec(d * k, -1.0, 1.0);
    let b = rng.vec(k, -1.0, 1.0);
    let y = rng.vec(m * k, 0.0, 1.0);
    let (mut one, mut two) = (vec![0.0; d * k], vec![0.0; d * k]);
    linear::linear_w_grad(m, d, &x, &w, &b, &y, &mut one);
    linear::linear_w_grad_threads(m, d, &x, &w, &b, &y, &mut two, 2);
    assert_eq!(one, two);
    // The value sums over rows, which two threads group per range: the
    // same to rounding, not to the bit.
    let (v1, v2) = (
        linear::linear_w(m, d, &x, &w, &b, &y),
        linear::linear_w_threads(m, d, &x, &w, &b, &y, 2),
    );
    assert!((v1 - v2).abs() <= 1e-14 * v1.abs(), "{v1} against {v2}");
    let (mut one, mut two) = (vec![0.0; k], vec![0.0; k]);
    linear::linear_b_grad(m, d, &x, &w, &b, &y, &mut one);
    linear::linear_b_grad_threads(m, d, &x, &w, &b, &y, &mut two, 2);
    // Each entry sums m terms of size up to Σ_c Y[r, c]/m (about 5/m):
    // rounding moves it by a few ulp of that scale.
    for (g1, g2) in one.iter().zip(&two) {
        assert!((g1 - g2).abs() <= 1e-14, "{g1} against {g2}");
    }
    let (m, d) = (2048, 64);
    let x = rng.vec(m * d, -2.0, 2.0);
    let w = rng.vec(d, -1.0, 1.0);
    let y: Vec<f64> = (0..m).map(|r| (r % 2) as f64).collect();
    let (mut one, mut two) = (vec![0.0; d * d], vec![0.0; d * d]);
    logistic::logistic_hessian(&y, &x, &w, &mut one);
    logistic::logistic_hessian_threads(&y, &x, &w, &mut two, 2);
    assert_eq!(one, two);
}

#[test]
fn ranges_of_rows_on_threads_keep_each_row() {
    let mut rng = Rng(15);
    // m·n past 2^15 entries, so two ranges of rows run on two threads.
    let (m, n) = (700, 101);
    let z = rng.vec(m * n, -30.0, 30.0);
    let y = rng.vec(m * n, 0.0, 1.0);
    let (mut one, mut two) = (vec![0.0; m * n], vec![0.0; m * n]);
    batched::batched_xent_grad(m, n, &z, &y, &mut one);
    batched::batched_xent_grad_threads(m, n, &z, &y, &mut two, 2);
    // Rows are independent: each one is computed as with one thread.
    assert_eq!(one, two);
    let (v1, v2) = (
        batched::batched_xent(m, n, &z, &y),
        batched::batched_xent_threads(m, n, &z, &y, 2),
    );
    assert!((v1 - v2).abs() <= 1e-14 * v1.abs(), "{v1} against {v2}");
    let (mut g1, mut g2) = (vec![0.0; m * n], vec![0.0; m * n]);
    let (v1, v2) = (
        batched::batched_xent_value_grad(m, n, &z, &y, &mut g1),
        batched::batched_xent_value_grad_threads(m, n, &z, &y, &mut g2, 2),
    );
    assert_eq!(g1, one);
    assert_eq!(g1, g2);
    assert!((v1 - v2).abs() <= 1e-14 * v1.abs(), "{v1} against {v2}");
}
