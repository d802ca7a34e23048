//! Newton's method on a softmax cross-entropy, as a gradient-boosting
//! library runs it for a leaf's class scores: the exact Hessian through
//! `xent_newton` (O(n), Sherman–Morrison) against the diagonal bound
//! `s·p(1 − p)` that multiclass boosting uses (`xent_hessian_diag`).
//!
//! The problem is made here: an iris-like set of 150 samples in 3 classes
//! (90, 45, 15 of each), whose one-hot labels sum to the counts `q`; the
//! scores `z` minimize `xent(z, q) + λ/2·|z|²`, so at the optimum
//! `s·softmax(z) − q + λ z = 0`.

use crate::{xent, xent_grad, xent_hessian_diag, xent_newton};

/// The per-class label counts of the data set.
pub fn counts() -> Vec<f64> {
    // Labels from a fixed rule over a made-up feature, as a data set would
    // give them: 90, 45 and 15 samples.
    let mut q = vec![0.0; 3];
    for sample in 0..150 {
        let feature = (sample as f64 * 0.618_034).fract();
        let class = if feature < 0.6 {
            0
        } else if feature < 0.9 {
            1
        } else {
            2
        };
        q[class] += 1.0;
    }
    q
}

/// The gradient of `xent(z, q) + λ/2·|z|²` and its norm.
fn gradient(z: &[f64], q: &[f64], lambda: f64, g: &mut [f64]) -> f64 {
    xent_grad(z, q, g);
    for (gi, zi) in g.iter_mut().zip(z) {
        *gi += lambda * zi;
    }
    g.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Iterations of Newton's method until the gradient's norm is below
/// `tol` (at most `max`), with the exact Hessian; returns them and the loss.
pub fn exact(q: &[f64], lambda: f64, tol: f64, max: usize) -> (usize, f64) {
    let n = q.len();
    let (mut z, mut g, mut step) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for it in 0..max {
        if gradient(&z, q, lambda, &mut g) < tol {
            return (it, loss(&z, q, lambda));
        }
        xent_newton(&z, q, &g, lambda, &mut step);
        z.iter_mut().zip(&step).for_each(|(zi, s)| *zi -= s);
    }
    (max, loss(&z, q, lambda))
}

/// The same with the diagonal of the Hessian in its place.
pub fn diagonal(q: &[f64], lambda: f64, tol: f64, max: usize) -> (usize, f64) {
    let n = q.len();
    let (mut z, mut g, mut h) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for it in 0..max {
        if gradient(&z, q, lambda, &mut g) < tol {
            return (it, loss(&z, q, lambda));
        }
        xent_hessian_diag(&z, q, &mut h);
        for i in 0..n {
            z[i] -= g[i] / (h[i] + lambda);
        }
    }
    (max, loss(&z, q, lambda))
}

fn loss(z: &[f64], q: &[f64], lambda: f64) -> f64 {
    xent(z, q) + 0.5 * lambda * z.iter().map(|x| x * x).sum::<f64>()
}
