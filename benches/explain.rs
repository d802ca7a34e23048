//! `derive --explain` against `derive` on the same input, in the same run
//! (the target: the explanation costs at most 10× the derivation
//! it explains). Both include parsing and the derivation itself; the
//! explanation adds its steps, their printing in text and LaTeX, and the
//! e-graph run of each order's simplify step.
//! Run: `cargo bench --bench explain`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};

#[allow(dead_code)]
mod common;
use common::median;

const CASES: &[(&str, &str, usize, Option<&str>)] = &[
    ("softmax_jacobian", "softmax(z)", 1, None),
    ("xent_grad", "xent(z, q)", 1, None),
    ("xent_d3", "xent(z, q)", 3, None),
    (
        "linear_layer",
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        Some("W"),
    ),
];

fn request(expr: &str, order: usize, wrt: Option<&str>) -> symdiff::Request {
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    req
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("explain_vs_derive");
    for &(name, expr, order, wrt) in CASES {
        let req = request(expr, order, wrt);
        g.bench_with_input(BenchmarkId::new("derive", name), &req, |b, req| {
            b.iter(|| {
                let d = symdiff::derive(black_box(req)).unwrap();
                black_box(d.report(symdiff::Syntax::Text, req.limits).0.len())
            })
        });
        g.bench_with_input(BenchmarkId::new("explain", name), &req, |b, req| {
            b.iter(|| {
                black_box(
                    symdiff::explain::explain(black_box(req))
                        .unwrap()
                        .text()
                        .len(),
                )
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    bench(&mut c);
    c.final_summary();
    println!("\n== derive --explain against derive (printed), medians of this run ==");
    for &(name, ..) in CASES {
        if let (Some(d), Some(e)) = (
            median(&format!("explain_vs_derive/derive/{name}")),
            median(&format!("explain_vs_derive/explain/{name}")),
        ) {
            println!(
                "{name:>18}: derive {:>8.2} ms, explain {:>8.2} ms, ratio {:.2} (target ≤ 10)",
                d / 1e6,
                e / 1e6,
                e / d
            );
        }
    }
}
