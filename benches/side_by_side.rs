//! symdiff's side of the side-by-side run against JAX: every item of
//! `benches/jax/side_by_side.py`, timed by criterion on the committed
//! kernels of `generated/`, with the data that script builds (the same
//! formulas, so both sides see the same numbers). A kernel with a
//! `_threads` entry point is timed through it on two threads, as JAX uses
//! both cores; the others run on one.
//!
//! After criterion's report, one line per item, `item<TAB>median ms`, for
//! the script to read; run it alone with `cargo bench --bench side_by_side`,
//! or with JAX interleaved, round by round, with
//! `python3 benches/jax/side_by_side.py`.

use std::hint::black_box;

use criterion::Criterion;

#[allow(dead_code)] // the triad helpers are for the other benches
mod common;
use common::{forget, median};

#[allow(dead_code)]
mod xent {
    include!("../generated/xent.rs");
}
#[allow(dead_code)]
mod xent_f32 {
    include!("../generated/xent_f32.rs");
}
#[allow(dead_code)]
mod softmax {
    include!("../generated/softmax.rs");
}
#[allow(dead_code)]
mod log_softmax {
    include!("../generated/log_softmax.rs");
}
#[allow(dead_code)]
mod logsumexp {
    include!("../generated/logsumexp.rs");
}
#[allow(dead_code)]
mod quadratic {
    include!("../generated/quadratic.rs");
}
#[allow(dead_code)]
mod batched {
    include!("../generated/batched_xent.rs");
}
#[allow(dead_code)]
mod linear {
    include!("../generated/linear_classifier.rs");
}
#[allow(dead_code)]
mod logistic {
    include!("../generated/logistic_regression.rs");
}

/// The data of the script (`data()` there), formula for formula.
mod data {
    /// Logits: `4 sin(0.618 i)`.
    pub fn logits(n: usize) -> Vec<f64> {
        (0..n).map(|i| 4.0 * (0.618 * i as f64).sin()).collect()
    }
    /// Targets summing to one: `(1 + cos(0.3 i))` normalised.
    pub fn targets(n: usize) -> Vec<f64> {
        let raw: Vec<f64> = (0..n).map(|i| 1.0 + (0.3 * i as f64).cos()).collect();
        let s: f64 = raw.iter().sum();
        raw.iter().map(|x| x / s).collect()
    }
    /// A direction: `cos(1.7 i + 0.5)`.
    pub fn direction(n: usize) -> Vec<f64> {
        (0..n).map(|i| (1.7 * i as f64 + 0.5).cos()).collect()
    }
    /// A dense matrix: `sin(0.37 i)` over the flat index.
    pub fn matrix(len: usize, scale: f64) -> Vec<f64> {
        (0..len).map(|i| scale * (0.37 * i as f64).sin()).collect()
    }
    /// One-hot rows: row `r` has its one at column `r mod k`.
    pub fn one_hot(m: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0.0; m * k];
        for r in 0..m {
            y[r * k + r % k] = 1.0;
        }
        y
    }
    pub fn f32s(x: &[f64]) -> Vec<f32> {
        x.iter().map(|&v| v as f32).collect()
    }
}

/// Every item: its name (as the script prints it) and its run.
type Item = (&'static str, Box<dyn FnMut()>);

/// Pushes an item that runs `body` on its own copies of `captured`.
macro_rules! item {
    ($items:ident, $name:expr, $($captured:ident),* => $body:expr) => {{
        $(#[allow(unused_mut)] let mut $captured = $captured.clone();)*
        $items.push(($name, Box::new(move || {
            black_box($body);
        })));
    }};
}

fn vector_items(items: &mut Vec<Item>) {
    let n = 1000;
    let (z, q, v) = (data::logits(n), data::targets(n), data::direction(n));
    let out = vec![0.0; n];
    let square = vec![0.0; n * n];
    item!(items, "xent value n=1000", z, q => xent::xent(&z, &q));
    item!(items, "xent grad n=1000", z, q, out => xent::xent_grad(&z, &q, &mut out));
    item!(items, "xent value+grad n=1000", z, q, out => xent::xent_value_grad(&z, &q, &mut out));
    item!(items, "xent hvp n=1000", z, q, v, out => xent::xent_hvp(&z, &q, &v, &mut out));
    item!(items, "xent Hessian n=1000", z, q, square => xent::xent_hessian_threads(&z, &q, &mut square, 2));
    item!(items, "xent D3[v,v,v] n=1000", z, q, v => xent::xent_d3_dir(&z, &q, &v));
    item!(items, "xent D4[v,v,v,v] n=1000", z, q, v => xent::xent_d4_dir(&z, &q, &v));
    item!(items, "xent Newton (H+0.1I)^-1 v n=1000", z, q, v, out =>
        xent::xent_newton(&z, &q, &v, 0.1, &mut out));
    item!(items, "softmax Jacobian n=1000", z, square => softmax::softmax_grad_threads(&z, &mut square, 2));
    item!(items, "log_softmax Jacobian n=1000", z, square =>
        log_softmax::log_softmax_grad_threads(&z, &mut square, 2));
    item!(items, "logsumexp Hessian n=1000", z, square =>
        logsumexp::logsumexp_hessian_threads(&z, &mut square, 2));

    let n3 = 100;
    let (z3, q3) = (data::logits(n3), data::targets(n3));
    let cube = vec![0.0; n3 * n3 * n3];
    item!(items, "xent D3 full n=100", z3, q3, cube => xent::xent_d3_threads(&z3, &q3, &mut cube, 2));

    let big = 1_000_000;
    let (zb, qb, vb) = (data::logits(big), data::targets(big), data::direction(big));
    let outb = vec![0.0; big];
    item!(items, "xent grad n=1e6", zb, qb, outb => xent::xent_grad(&zb, &qb, &mut outb));
    item!(items, "xent hvp n=1e6", zb, qb, vb, outb => xent::xent_hvp(&zb, &qb, &vb, &mut outb));

    let n32 = 100_000;
    let z32 = data::f32s(&data::logits(n32));
    let q32 = data::f32s(&data::targets(n32));
    let v32 = data::f32s(&data::direction(n32));
    item!(items, "xent D3[v,v,v] f32 n=1e5", z32, q32, v32 =>
        xent_f32::xent_f32_d3_dir(&z32, &q32, &v32));
}

fn matrix_items(items: &mut Vec<Item>) {
    let n = 2048;
    let (x, a) = (data::direction(n), data::matrix(n * n, 1.0));
    let (out, square) = (vec![0.0; n], vec![0.0; n * n]);
    item!(items, "dot(x, A@x) grad n=2048", x, a, out => quadratic::quadratic_grad_threads(&x, &a, &mut out, 2));
    item!(items, "dot(x, A@x) Hessian n=2048", x, a, square =>
        quadratic::quadratic_hessian(&x, &a, &mut square));

    let (m, k) = (4096, 1000);
    let (z, y) = (data::matrix(m * k, 4.0), data::one_hot(m, k));
    let g = vec![0.0; m * k];
    item!(items, "batched xent grad 4096x1000", z, y, g => batched::batched_xent_grad_threads(m, k, &z, &y, &mut g, 2));
    item!(items, "batched xent value+grad 4096x1000", z, y, g =>
        batched::batched_xent_value_grad_threads(m, k, &z, &y, &mut g, 2));

    let (m, d, k) = (4096, 256, 10);
    let x = data::matrix(m * d, 1.0);
    let w = data::matrix(d * k, 0.1);
    let b: Vec<f64> = (0..k).map(|i| 0.01 * i as f64).collect();
    let y = data::one_hot(m, k);
    let (gw, gb) = (vec![0.0; d * k], vec![0.0; k]);
    item!(items, "linear classifier grad W 4096x256x10", x, w, b, y, gw =>
        linear::linear_w_grad_threads(m, d, &x, &w, &b, &y, &mut gw, 2));
    item!(items, "linear classifier grad b 4096x256x10", x, w, b, y, gb =>
        linear::linear_b_grad_threads(m, d, &x, &w, &b, &y, &mut gb, 2));

    let (m, d) = (2048, 256);
    let x = data::matrix(m * d, 1.0);
    let w = data::matrix(d, 0.1);
    let y: Vec<f64> = (0..m).map(|r| (r % 2) as f64).collect();
    let v = data::direction(d);
    let (g, h) = (vec![0.0; d], vec![0.0; d * d]);
    item!(items, "logistic grad 2048x256", y, x, w, g => logistic::logistic_grad_threads(&y, &x, &w, &mut g, 2));
    item!(items, "logistic hvp 2048x256", y, x, w, v, g =>
        logistic::logistic_hvp_threads(&y, &x, &w, &v, &mut g, 2));
    item!(items, "logistic Hessian 2048x256", y, x, w, h =>
        logistic::logistic_hessian_threads(&y, &x, &w, &mut h, 2));
}

/// An item's name as criterion's benchmark id (and directory) takes it.
fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn main() {
    let mut items = Vec::new();
    vector_items(&mut items);
    matrix_items(&mut items);
    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("side_by_side");
    group
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(1500));
    for (name, run) in items.iter_mut() {
        forget(&format!("side_by_side/{}", slug(name)));
        group.bench_function(slug(name), |b| b.iter(&mut *run));
    }
    group.finish();
    c.final_summary();
    println!("side-by-side medians (ms):");
    for (name, _) in &items {
        if let Some(ns) = median(&format!("side_by_side/{}", slug(name))) {
            println!("{name}\t{:.4}", ns / 1e6);
        }
    }
}
