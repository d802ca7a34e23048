//! What the kernel benches share: the STREAM triad that measures this
//! machine's memory bandwidth, and the medians criterion wrote this run.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput};

/// Triad length: three arrays of 128 MiB, far beyond the caches.
pub const TRIAD_LEN: usize = 1 << 24;

/// STREAM's `a = b + s·c`, as `triad/stream/{TRIAD_LEN}`.
pub fn triad(c: &mut Criterion) {
    let mut g = c.benchmark_group("triad");
    let (mut a, bb, cc) = (
        vec![0.0f64; TRIAD_LEN],
        vec![1.0f64; TRIAD_LEN],
        vec![2.0f64; TRIAD_LEN],
    );
    g.throughput(Throughput::Bytes(24 * TRIAD_LEN as u64));
    g.bench_function(BenchmarkId::new("stream", TRIAD_LEN), |b| {
        b.iter(|| {
            let s = black_box(3.0);
            for ((x, y), z) in a.iter_mut().zip(&bb).zip(&cc) {
                *x = y + s * z;
            }
            black_box(&a);
        })
    });
    g.finish();
}

/// The triad's bandwidth in GB/s, from this run.
pub fn bandwidth() -> Option<f64> {
    median(&format!("triad/stream/{TRIAD_LEN}")).map(|t| 24.0 * TRIAD_LEN as f64 / t)
}

/// Median time in ns of a benchmark of this run.
pub fn median(id: &str) -> Option<f64> {
    let dir = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("criterion")
        });
    let text = std::fs::read_to_string(dir.join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}
