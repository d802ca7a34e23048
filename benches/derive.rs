//! `derive` of xent at orders 1..10 (the targets: order 3 under
//! 20 ms, order 10 under 1 s), with e-graph sizes printed once per order.
//! Baseline in the same run: parsing and lowering alone (order 0).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::hint::black_box;

fn derive_xent(c: &mut Criterion) {
    let mut group = c.benchmark_group("derive_xent");
    group.sample_size(20);
    for order in [0usize, 1, 2, 3, 4, 6, 8, 10] {
        let req = symdiff::Request::new("xent(z,q)", order);
        let d = symdiff::derive(&req).unwrap();
        let nodes: usize = d.stats.iter().map(|s| s.nodes).max().unwrap_or(0);
        eprintln!(
            "order {order}: {} classes, largest e-graph {nodes} e-nodes",
            d.tensor().classes.len()
        );
        group.bench_with_input(BenchmarkId::from_parameter(order), &req, |b, req| {
            b.iter(|| {
                black_box(
                    symdiff::derive(black_box(req))
                        .unwrap()
                        .tensor()
                        .classes
                        .len(),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, derive_xent);
criterion_main!(benches);
