//! What the kernel benches share: the STREAM triad that measures this
//! machine's memory bandwidth, and the medians criterion wrote this run.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput};

/// Triad length: three arrays of 128 MiB, far beyond the caches.
pub const TRIAD_LEN: usize = 1 << 24;

/// STREAM's triad arrays.
struct Triad {
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
}

impl Triad {
    fn new() -> Triad {
        Triad {
            a: vec![0.0; TRIAD_LEN],
            b: vec![1.0; TRIAD_LEN],
            c: vec![2.0; TRIAD_LEN],
        }
    }

    /// `a = b + s·c`.
    fn run(&mut self) {
        let s = black_box(3.0);
        for ((x, y), z) in self.a.iter_mut().zip(&self.b).zip(&self.c) {
            *x = y + s * z;
        }
        black_box(&self.a);
    }
}

/// The triad's bandwidth in GB/s, from its time in ns.
fn triad_gbs(ns: f64) -> f64 {
    24.0 * TRIAD_LEN as f64 / ns
}

/// STREAM's `a = b + s·c`, as `triad/stream/{TRIAD_LEN}`.
pub fn triad(c: &mut Criterion) {
    let mut g = c.benchmark_group("triad");
    let mut triad = Triad::new();
    g.throughput(Throughput::Bytes(24 * TRIAD_LEN as u64));
    g.bench_function(BenchmarkId::new("stream", TRIAD_LEN), |b| {
        b.iter(|| triad.run())
    });
    g.finish();
}

/// `f`'s bandwidth as fractions of the triad's, quartiles over rounds.
pub struct Paired {
    rounds: usize,
    /// The first call after each triad, which has just flushed the caches:
    /// every byte comes from memory.
    pub cold: [f64; 3],
    /// The calls after it, as criterion (and a training loop) makes them:
    /// data that fits the last-level cache may stay there.
    pub warm: [f64; 3],
}

/// `f`, which moves `bytes`, against the triad in alternation: each of
/// `rounds` rounds times one triad and then `f` over about as long, so a
/// busy neighbour on the host slows both or neither (criterion measures
/// them seconds apart).
pub fn paired_with_triad(rounds: usize, bytes: f64, mut f: impl FnMut()) -> Paired {
    let mut triad = Triad::new();
    let mut timed_triad = || {
        let start = Instant::now();
        triad.run();
        start.elapsed().as_secs_f64()
    };
    let mut timed = |repeats: usize| {
        let start = Instant::now();
        for _ in 0..repeats {
            f();
        }
        start.elapsed().as_secs_f64() / repeats as f64
    };
    timed_triad();
    timed(1);
    let once = timed(1);
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t_triad = timed_triad();
        let triad_bw = triad_gbs(t_triad);
        cold.push(bytes / timed(1) / triad_bw);
        let repeats = ((t_triad / once) as usize).max(1);
        warm.push(bytes / timed(repeats) / triad_bw);
    }
    let quartiles = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
        [at(0.25), at(0.5), at(0.75)]
    };
    Paired {
        rounds,
        cold: quartiles(cold),
        warm: quartiles(warm),
    }
}

impl Paired {
    /// One line per case, in percent.
    pub fn report(&self, what: &str) {
        for (case, [lo, mid, hi]) in [("cold", self.cold), ("warm", self.warm)] {
            println!(
                "{what}, timed in alternation with the triad ({} rounds), {case}: {:.0}% of its bandwidth (quartiles {:.0}%–{:.0}%)",
                self.rounds,
                100.0 * mid,
                100.0 * lo,
                100.0 * hi
            );
        }
    }
}

/// Prints the bandwidth of benchmark `id`, which moves `bytes`, as a
/// fraction of the triad's by STREAM's convention: best sample against
/// best sample.
pub fn report_best(id: &str, what: &str, bytes: f64) {
    if let (Some(t), Some(bw)) = (best(id), best_bandwidth()) {
        println!(
            "{what}, best samples (STREAM's convention): {:.2} ms, {:.0}% of the triad's {bw:.1} GB/s",
            t / 1e6,
            100.0 * bytes / t / bw
        );
    }
}

/// The triad's bandwidth in GB/s, from this run.
pub fn bandwidth() -> Option<f64> {
    median(&format!("triad/stream/{TRIAD_LEN}")).map(triad_gbs)
}

/// The fastest sample's time per iteration in ns, of a benchmark of this
/// run: STREAM's convention (best of its trials), the least disturbed by
/// the rest of a shared host.
fn best(id: &str) -> Option<f64> {
    let v = criterion_file(id, "sample.json")?;
    let (times, iters) = (v["times"].as_array()?, v["iters"].as_array()?);
    times
        .iter()
        .zip(iters)
        .map(|(t, i)| Some(t.as_f64()? / i.as_f64()?))
        .try_fold(f64::INFINITY, |m, x| Some(m.min(x?)))
}

/// The triad's bandwidth in GB/s by STREAM's convention (its best sample).
fn best_bandwidth() -> Option<f64> {
    best(&format!("triad/stream/{TRIAD_LEN}")).map(triad_gbs)
}

/// Median time in ns of a benchmark of this run.
pub fn median(id: &str) -> Option<f64> {
    criterion_file(id, "estimates.json")?["median"]["point_estimate"].as_f64()
}

/// Removes the median a previous run left for this benchmark, so that a
/// run that skips it (a filter) reports nothing for it.
#[allow(dead_code)] // used by side_by_side only
pub fn forget(id: &str) {
    let _ = std::fs::remove_file(criterion_dir().join(id).join("new").join("estimates.json"));
}

/// Where criterion writes its results.
fn criterion_dir() -> PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .unwrap()
                .join("criterion")
        })
}

/// A JSON file criterion wrote for a benchmark of this run.
fn criterion_file(id: &str, file: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(criterion_dir().join(id).join("new").join(file)).ok()?;
    serde_json::from_str(&text).ok()
}
