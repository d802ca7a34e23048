//! The committed xent kernels against a hand-written fused stable gradient
//! and the machine's memory bandwidth, all measured in this one run:
//!
//! * `grad/*`: generated `xent_grad` and the hand-written gradient (libm
//!   `exp`, max and Σq fused in one pass) at n = 10, 1e3, 1e6;
//! * `hvp/*`, `d3_dir/*`, `newton/*`: generated `xent_hvp`, `xent_d3_dir`
//!   and `xent_newton` (`(H + λI)⁻¹ v`, O(n));
//! * `hessian_vs_hvp/*`: the full Hessian against `xent_hvp` applied n times;
//! * `d3_dir_f32/*`: `xent_f32_d3_dir` (f32 data) at n = 1e5;
//! * `quad_hessian/*`: the Hessian `A + Aᵀ` of `xᵀAx` at n = 2048, the
//!   generated (tiled) kernel against the plain double loop;
//! * `triad`: STREAM's `a = b + s·c` on arrays far larger than the caches.
//!
//! After criterion's own report, a table of ratios is printed from the
//! medians criterion just wrote (`target/criterion/*/new/estimates.json`),
//! and the n = 1e6 gradient is timed once more in alternation with the
//! triad, round by round, so that the bandwidth ratio compares the two
//! under the same load from the rest of the host.
//! Run: `cargo bench --bench kernels`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};

mod common;
use common::{bandwidth, median};

#[allow(dead_code)]
mod xent {
    include!("../generated/xent.rs");
}
#[allow(dead_code)]
mod xent_f32 {
    include!("../generated/xent_f32.rs");
}
#[allow(dead_code)]
mod quadratic {
    include!("../generated/quadratic.rs");
}

/// `A + Aᵀ` as two plain loops: every read of `A[j, i]` a new cache line.
fn plain_transpose_sum(n: usize, a: &[f64], out: &mut [f64]) {
    for i in 0..n {
        for j in 0..n {
            out[i * n + j] = a[i * n + j] + a[j * n + i];
        }
    }
}

/// The size of the `A + Aᵀ` benchmark, and the bytes it must move (read
/// `A` once, write `out` once).
const QUAD_N: usize = 2048;
const QUAD_BYTES: f64 = 16.0 * (QUAD_N * QUAD_N) as f64;

fn quad_data() -> (Vec<f64>, Vec<f64>) {
    let a = (0..QUAD_N * QUAD_N)
        .map(|i| ((i as f64) * 0.37).sin())
        .collect();
    (vec![1.0; QUAD_N], a)
}

/// What a careful user writes by hand: stable, fused, libm `exp`.
fn hand_grad(z: &[f64], q: &[f64], out: &mut [f64]) {
    let n = z.len();
    assert!(q.len() == n && out.len() == n);
    let (mut m, mut s) = (f64::NEG_INFINITY, 0.0);
    for i in 0..n {
        m = m.max(z[i]);
        s += q[i];
    }
    let mut se = 0.0;
    for &x in z {
        se += (x - m).exp();
    }
    let scale = s / se;
    for i in 0..n {
        out[i] = (z[i] - m).exp() * scale - q[i];
    }
}

fn data(n: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let z = (0..n).map(|i| ((i as f64) * 0.618).sin() * 4.0).collect();
    let q = (0..n)
        .map(|i| ((i as f64) * 0.314).cos().abs() / n as f64)
        .collect();
    let v = (0..n).map(|i| ((i as f64) * 1.7).sin()).collect();
    (z, q, v)
}

const SIZES: [usize; 3] = [10, 1_000, 1_000_000];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("grad");
    for n in SIZES {
        let (z, q, _) = data(n);
        let mut out = vec![0.0; n];
        g.throughput(Throughput::Bytes(24 * n as u64));
        g.bench_with_input(BenchmarkId::new("generated", n), &n, |b, _| {
            b.iter(|| xent::xent_grad(black_box(&z), black_box(&q), black_box(&mut out)))
        });
        g.bench_with_input(BenchmarkId::new("hand", n), &n, |b, _| {
            b.iter(|| hand_grad(black_box(&z), black_box(&q), black_box(&mut out)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hvp");
    for n in SIZES {
        let (z, q, v) = data(n);
        let mut out = vec![0.0; n];
        g.bench_with_input(BenchmarkId::new("generated", n), &n, |b, _| {
            b.iter(|| {
                xent::xent_hvp(
                    black_box(&z),
                    black_box(&q),
                    black_box(&v),
                    black_box(&mut out),
                )
            })
        });
    }
    g.finish();

    // The O(n) Newton step, (H + λI)⁻¹ v by Sherman–Morrison.
    let mut g = c.benchmark_group("newton");
    for n in SIZES {
        let (z, q, v) = data(n);
        let mut out = vec![0.0; n];
        g.bench_with_input(BenchmarkId::new("generated", n), &n, |b, _| {
            b.iter(|| {
                xent::xent_newton(
                    black_box(&z),
                    black_box(&q),
                    black_box(&v),
                    black_box(1e-3),
                    black_box(&mut out),
                )
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("d3_dir");
    for n in SIZES {
        let (z, q, v) = data(n);
        g.bench_with_input(BenchmarkId::new("generated", n), &n, |b, _| {
            b.iter(|| xent::xent_d3_dir(black_box(&z), black_box(&q), black_box(&v)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hessian_vs_hvp");
    if let (Some(t), Some(p)) = (
        median(&format!("quad_hessian/generated/{QUAD_N}")),
        median(&format!("quad_hessian/plain_loops/{QUAD_N}")),
    ) {
        println!(
            "A + Aᵀ at n = {QUAD_N}: generated {:.1} ms, plain loops {:.1} ms (plain/generated {:.2})",
            t / 1e6,
            p / 1e6,
            p / t
        );
    }
    let what = format!("A + Aᵀ at n = {QUAD_N} (16·n² bytes)");
    let (x, a) = quad_data();
    let mut h = vec![0.0; QUAD_N * QUAD_N];
    common::paired_with_triad(9, QUAD_BYTES, || {
        quadratic::quadratic_hessian(black_box(&x), black_box(&a), black_box(&mut h))
    })
    .report(&what);
    for n in [100usize, 1_000] {
        let (z, q, _) = data(n);
        let mut h = vec![0.0; n * n];
        g.bench_with_input(BenchmarkId::new("hessian", n), &n, |b, _| {
            b.iter(|| xent::xent_hessian(black_box(&z), black_box(&q), black_box(&mut h)))
        });
        g.bench_with_input(BenchmarkId::new("hvp_n_times", n), &n, |b, _| {
            let mut e = vec![0.0; n];
            let mut col = vec![0.0; n];
            b.iter(|| {
                for j in 0..n {
                    e[j] = 1.0;
                    xent::xent_hvp(&z, &q, &e, &mut col);
                    e[j] = 0.0;
                    h[j * n..(j + 1) * n].copy_from_slice(&col);
                }
                black_box(&h);
            })
        });
    }
    g.finish();

    // `D³f[v, v, v]` in f32 at n = 1e5 (an item of the JAX side by side).
    let n = 100_000;
    let (z, q, v) = data(n);
    let f = |x: &[f64]| x.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let (z32, q32, v32) = (f(&z), f(&q), f(&v));
    let mut g = c.benchmark_group("d3_dir_f32");
    g.bench_function(BenchmarkId::new("generated", n), |b| {
        b.iter(|| xent_f32::xent_f32_d3_dir(black_box(&z32), black_box(&q32), black_box(&v32)))
    });
    g.finish();

    let (x, a) = quad_data();
    let mut h = vec![0.0; QUAD_N * QUAD_N];
    let mut g = c.benchmark_group("quad_hessian");
    g.throughput(Throughput::Bytes(QUAD_BYTES as u64));
    g.bench_function(BenchmarkId::new("generated", QUAD_N), |b| {
        b.iter(|| quadratic::quadratic_hessian(black_box(&x), black_box(&a), black_box(&mut h)))
    });
    g.bench_function(BenchmarkId::new("plain_loops", QUAD_N), |b| {
        b.iter(|| plain_transpose_sum(QUAD_N, black_box(&a), black_box(&mut h)))
    });
    g.finish();

    common::triad(c);
}

fn summary() {
    println!("\n== xent kernels, medians of this run ==");
    let bw = bandwidth();
    if let Some(bw) = bw {
        println!("triad bandwidth: {bw:.1} GB/s");
    }
    println!(
        "{:>9} {:>12} {:>12} {:>8} {:>10} {:>10} {:>10} {:>9} {:>9} {:>11}",
        "n",
        "grad",
        "hand",
        "hand/gen",
        "grad GB/s",
        "of triad",
        "hvp",
        "hvp/grad",
        "d3/grad",
        "newton/grad"
    );
    for n in SIZES {
        let (Some(g), Some(h), Some(hv), Some(d3), Some(nt)) = (
            median(&format!("grad/generated/{n}")),
            median(&format!("grad/hand/{n}")),
            median(&format!("hvp/generated/{n}")),
            median(&format!("d3_dir/generated/{n}")),
            median(&format!("newton/generated/{n}")),
        ) else {
            continue;
        };
        let gbs = 24.0 * n as f64 / g;
        println!(
            "{n:>9} {:>10.0}ns {:>10.0}ns {:>8.2} {:>10.1} {:>9.0}% {:>8.0}ns {:>9.2} {:>9.2} {:>11.2}",
            g,
            h,
            h / g,
            gbs,
            bw.map(|b| 100.0 * gbs / b).unwrap_or(f64::NAN),
            hv,
            hv / g,
            d3 / g,
            nt / g
        );
    }
    // The bandwidth target by STREAM's convention, best sample against
    // best sample, and with the triad timed in alternation with the kernel
    // rather than seconds apart.
    let n = 1_000_000;
    let what = format!("xent_grad at n = {n}");
    common::report_best(&format!("grad/generated/{n}"), &what, 24.0 * n as f64);
    let (z, q, _) = data(n);
    let mut out = vec![0.0; n];
    common::paired_with_triad(25, 24.0 * n as f64, || {
        xent::xent_grad(black_box(&z), black_box(&q), black_box(&mut out))
    })
    .report(&what);
    for n in [100usize, 1_000] {
        if let (Some(h), Some(v)) = (
            median(&format!("hessian_vs_hvp/hessian/{n}")),
            median(&format!("hessian_vs_hvp/hvp_n_times/{n}")),
        ) {
            println!(
                "n = {n}: full Hessian {:.1} µs, hvp applied n times {:.1} µs (ratio {:.2})",
                h / 1e3,
                v / 1e3,
                v / h
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    bench(&mut c);
    c.final_summary();
    summary();
}
