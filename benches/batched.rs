//! Batched kernels from `generated/` against hand-written fused kernels in
//! the same run: the batched xent gradient (`Z: mat[m, n]`, m = 4096,
//! n = 1000) and the linear classifier's gradient wrt `W` (m = 4096,
//! d = 256, k = 10), with a STREAM triad for the memory bandwidth, and the
//! batched gradient once more in alternation with the triad, round by round;
//! and the fused `batched_xent_value_grad` against the gradient alone;
//! the logistic-regression Hessian `Xᵀ diag(s) X/m + λI` (m = 2048,
//! d = 256) against the rank-one-update loops it used to be.
//! Run: `cargo bench --bench batched`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};

mod common;
use common::{bandwidth, median};

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

/// The logistic-regression Hessian as rank-one updates row by row (the
/// shape the generated kernel had before its product was blocked):
/// `Σ_r s_r x_r x_rᵀ / m + 0.001 I`.
fn hand_logistic_hessian(m: usize, d: usize, x: &[f64], w: &[f64], out: &mut [f64]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for r in 0..m {
        let xr = &x[r * d..(r + 1) * d];
        let t: f64 = xr.iter().zip(w).map(|(a, b)| a * b).sum();
        let p = 1.0 / (1.0 + (-t).exp());
        let s = p * (1.0 - p) / m as f64;
        for i in 0..d {
            let row = &mut out[i * d..(i + 1) * d];
            for (o, xj) in row.iter_mut().zip(xr) {
                *o += s * xr[i] * xj;
            }
        }
    }
    (0..d).for_each(|i| out[i * d + i] += 0.001);
}

/// Row by row: max, Σexp and Σy in two passes, then the gradient row.
fn hand_batched(m: usize, n: usize, z: &[f64], y: &[f64], out: &mut [f64]) {
    let inv_m = 1.0 / m as f64;
    for r in 0..m {
        let (zr, yr) = (&z[r * n..(r + 1) * n], &y[r * n..(r + 1) * n]);
        let (mut mx, mut sy) = (f64::NEG_INFINITY, 0.0);
        for c in 0..n {
            mx = mx.max(zr[c]);
            sy += yr[c];
        }
        let se: f64 = zr.iter().map(|x| (x - mx).exp()).sum();
        let scale = sy / se * inv_m;
        for (c, o) in out[r * n..(r + 1) * n].iter_mut().enumerate() {
            *o = (zr[c] - mx).exp() * scale - yr[c] * inv_m;
        }
    }
}

/// Forward `Z = XW + b`, row softmax, backward `Xᵀ(diag(Y1)A − Y)/m`.
#[allow(clippy::too_many_arguments)] // the generated kernel's arguments, plus a row buffer
fn hand_linear_w(
    m: usize,
    d: usize,
    k: usize,
    x: &[f64],
    w: &[f64],
    b: &[f64],
    y: &[f64],
    out: &mut [f64],
    a: &mut [f64],
) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for r in 0..m {
        let xr = &x[r * d..(r + 1) * d];
        let ar = &mut a[..k];
        ar.copy_from_slice(b);
        for (i, xi) in xr.iter().enumerate() {
            for (c, wc) in w[i * k..(i + 1) * k].iter().enumerate() {
                ar[c] += xi * wc;
            }
        }
        let mx = ar.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut se = 0.0;
        for v in ar.iter_mut() {
            *v = (*v - mx).exp();
            se += *v;
        }
        let yr = &y[r * k..(r + 1) * k];
        let sy: f64 = yr.iter().sum();
        for c in 0..k {
            ar[c] = (ar[c] * sy / se - yr[c]) / m as f64;
        }
        for (i, xi) in xr.iter().enumerate() {
            for (c, g) in out[i * k..(i + 1) * k].iter_mut().enumerate() {
                *g += xi * ar[c];
            }
        }
    }
}

/// Logits and one-hot targets of the batched xent benchmark.
fn batched_data(m: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let z = (0..m * n)
        .map(|i| ((i as f64) * 0.618).sin() * 4.0)
        .collect();
    let y = (0..m * n)
        .map(|i| if i % n == (i / n) % n { 1.0 } else { 0.0 })
        .collect();
    (z, y)
}

fn bench(c: &mut Criterion) {
    let (m, n) = (4096, 1000);
    let (z, y) = batched_data(m, n);
    let mut out = vec![0.0; m * n];
    let mut g = c.benchmark_group("batched_xent");
    g.throughput(Throughput::Bytes(24 * (m * n) as u64));
    g.bench_function(BenchmarkId::new("generated", "4096x1000"), |b| {
        b.iter(|| {
            batched::batched_xent_grad(m, n, black_box(&z), black_box(&y), black_box(&mut out))
        })
    });
    g.bench_function(BenchmarkId::new("hand", "4096x1000"), |b| {
        b.iter(|| hand_batched(m, n, black_box(&z), black_box(&y), black_box(&mut out)))
    });
    g.finish();

    // A training step's value and gradient: one fused call against the
    // gradient alone (the baseline) and the two separate calls.
    let mut g = c.benchmark_group("value_grad");
    g.bench_function(BenchmarkId::new("grad_alone", "4096x1000"), |b| {
        b.iter(|| {
            batched::batched_xent_grad(m, n, black_box(&z), black_box(&y), black_box(&mut out))
        })
    });
    g.bench_function(BenchmarkId::new("value_grad", "4096x1000"), |b| {
        b.iter(|| {
            batched::batched_xent_value_grad(
                m,
                n,
                black_box(&z),
                black_box(&y),
                black_box(&mut out),
            )
        })
    });
    g.bench_function(BenchmarkId::new("two_calls", "4096x1000"), |b| {
        b.iter(|| {
            batched::batched_xent_grad(m, n, black_box(&z), black_box(&y), black_box(&mut out));
            batched::batched_xent(m, n, black_box(&z), black_box(&y))
        })
    });
    g.finish();

    let (m, d, k) = (4096, 256, 10);
    let x: Vec<f64> = (0..m * d).map(|i| ((i as f64) * 0.37).sin()).collect();
    let w: Vec<f64> = (0..d * k)
        .map(|i| ((i as f64) * 0.91).cos() * 0.1)
        .collect();
    let bias: Vec<f64> = (0..k).map(|i| i as f64 * 0.01).collect();
    let y: Vec<f64> = (0..m * k)
        .map(|i| if i % k == (i / k) % k { 1.0 } else { 0.0 })
        .collect();
    let mut gw = vec![0.0; d * k];
    let mut scratch = vec![0.0; k];
    let mut g = c.benchmark_group("linear_w");
    g.bench_function(BenchmarkId::new("generated", "4096x256x10"), |bch| {
        bch.iter(|| {
            linear::linear_w_grad(
                m,
                d,
                black_box(&x),
                black_box(&w),
                black_box(&bias),
                black_box(&y),
                black_box(&mut gw),
            )
        })
    });
    g.bench_function(
        BenchmarkId::new("generated_2_threads", "4096x256x10"),
        |bch| {
            bch.iter(|| {
                linear::linear_w_grad_threads(
                    m,
                    d,
                    black_box(&x),
                    black_box(&w),
                    black_box(&bias),
                    black_box(&y),
                    black_box(&mut gw),
                    2,
                )
            })
        },
    );
    g.bench_function(BenchmarkId::new("hand", "4096x256x10"), |bch| {
        bch.iter(|| {
            hand_linear_w(
                m,
                d,
                k,
                black_box(&x),
                black_box(&w),
                black_box(&bias),
                black_box(&y),
                black_box(&mut gw),
                &mut scratch,
            )
        })
    });
    g.finish();

    let (m, d) = (2048, 256);
    let x: Vec<f64> = (0..m * d).map(|i| ((i as f64) * 0.37).sin()).collect();
    let w: Vec<f64> = (0..d).map(|i| ((i as f64) * 0.91).cos() * 0.1).collect();
    let y: Vec<f64> = (0..m).map(|i| (i % 2) as f64).collect();
    let mut h = vec![0.0; d * d];
    let mut g = c.benchmark_group("logistic_hessian");
    g.bench_function(BenchmarkId::new("generated", "2048x256"), |bch| {
        bch.iter(|| {
            logistic::logistic_hessian(
                black_box(&y),
                black_box(&x),
                black_box(&w),
                black_box(&mut h),
            )
        })
    });
    g.bench_function(BenchmarkId::new("generated_2_threads", "2048x256"), |bch| {
        bch.iter(|| {
            logistic::logistic_hessian_threads(
                black_box(&y),
                black_box(&x),
                black_box(&w),
                black_box(&mut h),
                2,
            )
        })
    });
    g.bench_function(BenchmarkId::new("rank_one_loops", "2048x256"), |bch| {
        bch.iter(|| hand_logistic_hessian(m, d, black_box(&x), black_box(&w), black_box(&mut h)))
    });
    g.finish();

    common::triad(c);
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(3));
    bench(&mut c);
    c.final_summary();
    println!("\n== batched kernels, medians of this run ==");
    let bw = bandwidth();
    if let (Some(g), Some(h)) = (
        median("batched_xent/generated/4096x1000"),
        median("batched_xent/hand/4096x1000"),
    ) {
        let gbs = 24.0 * 4096.0 * 1000.0 / g;
        println!(
            "batched xent grad 4096x1000: generated {:.2} ms, hand {:.2} ms, hand/generated {:.2}, {:.1} GB/s = {:.0}% of triad {:.1} GB/s",
            g / 1e6, h / 1e6, h / g, gbs, 100.0 * gbs / bw.unwrap_or(f64::NAN), bw.unwrap_or(f64::NAN)
        );
    }
    if let (Some(vg), Some(gr), Some(two)) = (
        median("value_grad/value_grad/4096x1000"),
        median("value_grad/grad_alone/4096x1000"),
        median("value_grad/two_calls/4096x1000"),
    ) {
        println!(
            "batched xent value+grad 4096x1000: fused {:.2} ms, grad alone {:.2} ms (fused/grad {:.2}), two calls {:.2} ms",
            vg / 1e6, gr / 1e6, vg / gr, two / 1e6
        );
    }
    // The bandwidth target by STREAM's convention, best sample against
    // best sample, and with the triad timed in alternation with the kernel
    // rather than seconds apart.
    let (m, n) = (4096, 1000);
    let what = "batched xent grad 4096x1000";
    let bytes = 24.0 * (m * n) as f64;
    common::report_best("batched_xent/generated/4096x1000", what, bytes);
    let (z, y) = batched_data(m, n);
    let mut out = vec![0.0; m * n];
    common::paired_with_triad(15, bytes, || {
        batched::batched_xent_grad(m, n, black_box(&z), black_box(&y), black_box(&mut out))
    })
    .report(what);
    if let (Some(g), Some(h)) = (
        median("linear_w/generated/4096x256x10"),
        median("linear_w/hand/4096x256x10"),
    ) {
        // Forward X @ W and backward Xᵀ G: 2 · 2·m·d·k flops.
        let gflops = 4.0 * 4096.0 * 256.0 * 10.0 / g;
        println!("linear classifier grad wrt W 4096x256x10: generated {:.2} ms ({gflops:.1} GFLOP/s), hand {:.2} ms, hand/generated {:.2}", g / 1e6, h / 1e6, h / g);
        if let Some(t) = median("linear_w/generated_2_threads/4096x256x10") {
            println!(
                "  with 2 threads: {:.2} ms ({:.2}x one thread)",
                t / 1e6,
                g / t
            );
        }
    }
    if let (Some(g), Some(h)) = (
        median("logistic_hessian/generated/2048x256"),
        median("logistic_hessian/rank_one_loops/2048x256"),
    ) {
        // Xᵀ diag(s) X: 2·m·d² flops as a full product (the symmetric one does half).
        let gflops = 2.0 * 2048.0 * 256.0 * 256.0 / g;
        println!("logistic Hessian 2048x256: generated {:.2} ms ({gflops:.1} GFLOP/s full-product equivalent), rank-one loops {:.2} ms, loops/generated {:.2}", g / 1e6, h / 1e6, h / g);
        if let Some(t) = median("logistic_hessian/generated_2_threads/2048x256") {
            println!(
                "  with 2 threads: {:.2} ms ({:.2}x one thread)",
                t / 1e6,
                g / t
            );
        }
    }
}
