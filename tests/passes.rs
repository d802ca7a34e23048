//! The loop plan after each pass of `Body::finish`, as text, for kernels
//! where every pass does something: an insta snapshot per kernel
//! (`snapshots/passes_*.snap`), so that disabling or changing a pass shows
//! up as a diff of exactly the stage it runs in. A test also checks that
//! each pass changes at least one of these plans (none is dead weight).

use symdiff::codegen::loops::passes::traced;
use symdiff::codegen::{kernel_plans, KernelSpec};

/// (kernel name, expression, order, with respect to): one function name
/// per plan, in the order `kernel_plans` lists them.
const KERNELS: &[(&str, &str, usize, Option<&str>)] = &[
    ("xent", "xent(z, q)", 2, None),
    (
        "batched",
        "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
        1,
        None,
    ),
    (
        "classifier",
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        None,
    ),
    (
        "classifier_w",
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        Some("W"),
    ),
    (
        "logistic",
        "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y-1) * (X @ w)))/m + 0.0005*dot(w,w)",
        2,
        Some("w"),
    ),
    (
        "quadratic",
        "x: vec[n]; A: mat[n, n]; dot(x, A @ x)",
        2,
        Some("x"),
    ),
    // Order 6: the first full tensor emitted by symmetry classes.
    ("logsumexp", "logsumexp(z)", 6, None),
];

fn traces(
    name: &str,
    expr: &str,
    order: usize,
    wrt: Option<&str>,
) -> Vec<(String, Vec<(&'static str, String)>)> {
    let mut spec = KernelSpec::new(name, expr);
    spec.order = order;
    spec.wrt = wrt.map(str::to_string);
    let (plans, traces) = traced(|| kernel_plans(&spec).unwrap());
    assert_eq!(plans.len(), traces.len(), "one trace per function");
    plans.into_iter().map(|(n, _)| n).zip(traces).collect()
}

#[test]
fn plans_after_each_pass() {
    for &(name, expr, order, wrt) in KERNELS {
        let mut text = String::new();
        for (function, trace) in traces(name, expr, order, wrt) {
            text.push_str(&format!("=== {function}\n"));
            let mut before = String::new();
            for (pass, plan) in trace {
                if plan == before {
                    text.push_str(&format!("--- {pass}: unchanged\n"));
                } else {
                    text.push_str(&format!("--- {pass}\n{plan}"));
                }
                before = plan;
            }
        }
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path("../snapshots");
        s.set_prepend_module_to_snapshot(false);
        s.bind(|| insta::assert_snapshot!(format!("passes_{name}"), text));
    }
}

#[test]
fn every_pass_changes_some_plan() {
    let mut changed: Vec<&'static str> = Vec::new();
    for &(name, expr, order, wrt) in KERNELS {
        for (_, trace) in traces(name, expr, order, wrt) {
            for w in trace.windows(2) {
                if w[0].1 != w[1].1 && !changed.contains(&w[1].0) {
                    changed.push(w[1].0);
                }
            }
        }
    }
    for pass in [
        "fuse",
        "sink, fuse",
        "fold_rows",
        "contract",
        "shift",
        "join_sums",
        "products",
        "tile",
        "symmetric",
        "rows",
        "schedule",
    ] {
        assert!(
            changed.contains(&pass),
            "pass `{pass}` changed none of the plans: {changed:?}"
        );
    }
}
