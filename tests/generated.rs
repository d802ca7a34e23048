//! `generated/` is what symdiff generates for itself today: this test
//! regenerates every file and fails when one differs (run it with
//! `UPDATE_GENERATED=1` to rewrite them), as rust-analyzer guards its
//! generated sources. The catalogue of those files lives here, beside its
//! guard, not in the library.

use std::path::Path;

use symdiff::codegen::{module, Float, KernelSpec};

/// The command that regenerates `generated/`; every file's header names it.
const REGENERATE: &str = "UPDATE_GENERATED=1 cargo test --release --test generated";

/// A linear softmax classifier over a batch.
const CLASSIFIER: &str =
    "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m";

/// L2-regularized logistic regression over a batch (labels 0 or 1).
const LOGISTIC: &str = "X: mat[m, d]; w: vec[d]; y: vec[m]; \
     sum(softplus(-(2*y - 1) * (X @ w)))/m + 0.0005*dot(w, w)";

/// The files of `generated/` and their kernels.
fn own_kernels() -> Vec<(&'static str, Vec<KernelSpec>)> {
    let spec = |name: &str, expr: &str, order: usize, wrt: Option<&str>| KernelSpec {
        order,
        wrt: wrt.map(str::to_string),
        ..KernelSpec::new(name, expr)
    };
    vec![
        ("xent.rs", vec![spec("xent", "xent(z, q)", 10, None)]),
        ("softmax.rs", vec![spec("softmax", "softmax(z)", 2, None)]),
        (
            "log_softmax.rs",
            vec![spec("log_softmax", "log_softmax(z)", 2, None)],
        ),
        (
            "logsumexp.rs",
            vec![spec("logsumexp", "logsumexp(z)", 3, None)],
        ),
        (
            "batched_xent.rs",
            vec![spec(
                "batched_xent",
                "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
                1,
                None,
            )],
        ),
        (
            "linear_classifier.rs",
            vec![
                spec("linear_w", CLASSIFIER, 1, Some("W")),
                spec("linear_b", CLASSIFIER, 1, Some("b")),
            ],
        ),
        (
            "xent_f32.rs",
            vec![KernelSpec {
                float: Float::F32,
                ..spec("xent_f32", "xent(z, q)", 3, None)
            }],
        ),
        (
            "quadratic.rs",
            vec![spec(
                "quadratic",
                "x: vec[n]; A: mat[n, n]; dot(x, A @ x)",
                2,
                Some("x"),
            )],
        ),
        (
            "logistic_regression.rs",
            vec![spec("logistic", LOGISTIC, 2, Some("w"))],
        ),
    ]
}

#[test]
fn generated_kernels_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for (file, kernels) in own_kernels() {
        let want = module(&kernels, REGENERATE)
            .unwrap_or_else(|e| panic!("generating {file}: {}", e.message));
        let path = dir.join(file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated/{} out of date; regenerate with `{REGENERATE}` and review the diff",
        stale.join(", generated/"),
    );
}
