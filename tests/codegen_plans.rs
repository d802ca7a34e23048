//! Every kernel function's loop nests, run by the plan interpreter (no
//! compiler in the loop), against `eval` on programs that cover every
//! built-in, `def`, matrices, batches and layers. This checks lowering,
//! temporaries, inlining and loop fusion on many shapes; the compiled
//! kernels in `tests/kernels.rs` check the emitted Rust.

use std::collections::HashMap;

use symdiff::codegen::{interp, KernelSpec};
use symdiff::shape::Shape;

mod common;
use common::Rng;

const SIZES: &[(&str, usize)] = &[("n", 4), ("m", 3), ("d", 2), ("k", 3), ("h", 2)];

fn size(d: &symdiff::ir::Dim) -> usize {
    match d {
        symdiff::ir::Dim::Fixed(k) => *k,
        symdiff::ir::Dim::Named(n) => SIZES
            .iter()
            .find(|(s, _)| **s == **n)
            .map(|x| x.1)
            .expect("test dims"),
    }
}

fn literal(shape: &Shape, data: &[f64]) -> String {
    let nums = |xs: &[f64]| {
        xs.iter()
            .map(|x| format!("{x:e}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    match shape {
        Shape::Scalar => format!("{:e}", data[0]),
        Shape::Vec(_) => format!("[{}]", nums(data)),
        Shape::Mat(_, c) => {
            let c = size(c);
            format!(
                "[{}]",
                data.chunks(c)
                    .map(|r| format!("[{}]", nums(r)))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
    }
}

#[track_caller]
fn close(got: &[f64], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-9 * (1.0 + w.abs()),
            "{what}[{i}]: plan gives {g}, eval gives {w}"
        );
    }
}

fn check(expr: &str, wrt: Option<&str>, order: usize, seed: u64) {
    let mut rng = Rng(seed);
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    let d = symdiff::derive(&req).unwrap_or_else(|e| panic!("{expr}: {}", e.message));
    // Inputs in parameter order, positive so that log, sqrt and powers are defined.
    let inputs: Vec<Vec<f64>> = d
        .typed()
        .vars
        .iter()
        .map(|(_, s)| {
            (0..s.dims().iter().map(size).product())
                .map(|_| 0.2 + 1.3 * rng.next())
                .collect()
        })
        .collect();
    let at: Vec<String> = d
        .typed()
        .vars
        .iter()
        .zip(&inputs)
        .map(|((n, s), x)| format!("{n}={}", literal(s, x)))
        .collect();
    let at = at.join("; ");
    let wrt_shape = d.typed().var_shape(&d.wrt).unwrap().clone();
    let v: Vec<f64> = (0..wrt_shape.dims().iter().map(size).product())
        .map(|_| rng.next() - 0.5)
        .collect();
    let mut with_v = inputs.clone();
    with_v.push(v.clone());
    let sizes: HashMap<String, usize> = SIZES.iter().map(|(n, s)| (n.to_string(), *s)).collect();

    let mut spec = KernelSpec::new("f", expr);
    spec.order = order;
    spec.wrt = wrt.map(str::to_string);
    let plans: HashMap<String, interp::Plan> = symdiff::codegen::kernel_plans(&spec)
        .unwrap()
        .into_iter()
        .collect();
    let eval_at = |k: usize| common::eval(expr, k, wrt, &at);
    let w = v.len();
    for k in 0..=order {
        let full = eval_at(k);
        let name = match k {
            0 => "f".to_string(),
            1 => "f_grad".to_string(),
            2 => "f_hessian".to_string(),
            _ => format!("f_d{k}"),
        };
        let what = format!("{name} of `{expr}`");
        close(&interp::run(&plans[&name], &with_v, &sizes), &full, &what);
        if k >= 2 {
            // Contract the last index group with v (hvp), or all of them (dir).
            let dir = if k == 2 {
                "f_hvp".to_string()
            } else {
                format!("f_d{k}_dir")
            };
            let contractions = if k == 2 { 1 } else { k };
            let mut t = full.clone();
            for _ in 0..contractions {
                t = t
                    .chunks(w)
                    .map(|c| c.iter().zip(&v).map(|(a, b)| a * b).sum())
                    .collect();
            }
            close(
                &interp::run(&plans[&dir], &with_v, &sizes),
                &t,
                &format!("{dir} of `{expr}`"),
            );
        }
    }
    // The Hessian's diagonal.
    if let (Some(plan), true) = (plans.get("f_hessian_diag"), order >= 2) {
        let h = eval_at(2);
        let diag: Vec<f64> = (0..w).map(|i| h[i * w + i]).collect();
        close(
            &interp::run(plan, &with_v, &sizes),
            &diag,
            &format!("f_hessian_diag of `{expr}`"),
        );
    }
    // The factor: SᵀS = H.
    if let (Some(plan), true) = (plans.get("f_hessian_factor"), order >= 2) {
        let h = eval_at(2);
        let s = interp::run(plan, &with_v, &sizes);
        // One n×n factor per row of a batch (m·n·n entries for w = m·n
        // variables), or one w×w factor: SᵀS is H's block on the diagonal.
        let rows = w * w / s.len();
        let n = w / rows;
        let mut sts = vec![0.0; w * w];
        for r in 0..rows {
            let sr = &s[r * n * n..(r + 1) * n * n];
            for i in 0..n {
                for j in 0..n {
                    sts[(r * n + i) * w + r * n + j] =
                        (0..n).map(|k| sr[k * n + i] * sr[k * n + j]).sum();
                }
            }
        }
        close(&sts, &h, &format!("f_hessian_factor of `{expr}`"));
    }
    // The Newton step solves (H + λI) x = v.
    if let (Some(plan), true) = (plans.get("f_newton"), order >= 2) {
        let h = eval_at(2);
        let lambda = 0.5;
        let mut with_lambda = with_v.clone();
        with_lambda.push(vec![lambda]);
        let x = interp::run(plan, &with_lambda, &sizes);
        let back: Vec<f64> = (0..w)
            .map(|i| (0..w).map(|j| h[i * w + j] * x[j]).sum::<f64>() + lambda * x[i])
            .collect();
        close(&back, &v, &format!("f_newton of `{expr}`"));
    }
    // The least-norm solution for a singular H, given g = H v (in the
    // range): x = H⁺ g is v's projection on the range, so H x = g and x is
    // orthogonal to v − x (which lies in the null space).
    if let (Some(plan), true) = (plans.get("f_newton_least_norm"), order >= 2) {
        let h = eval_at(2);
        let mul = |y: &[f64]| -> Vec<f64> {
            (0..w)
                .map(|i| (0..w).map(|j| h[i * w + j] * y[j]).sum())
                .collect()
        };
        let mut with_g = with_v.clone();
        *with_g.last_mut().unwrap() = mul(&v);
        let x = interp::run(plan, &with_g, &sizes);
        close(
            &mul(&x),
            &mul(&v),
            &format!("f_newton_least_norm of `{expr}`: H x = H v"),
        );
        let dot: f64 = x.iter().zip(&v).map(|(a, b)| a * (b - a)).sum();
        let scale: f64 =
            x.iter().map(|a| a * a).sum::<f64>() + v.iter().map(|a| a * a).sum::<f64>();
        assert!(
            dot.abs() <= 1e-9 * scale,
            "f_newton_least_norm of `{expr}`: x·(v − x) = {dot}"
        );
    }
    // The fused value and gradient: the gradient, then the value.
    if let Some(plan) = plans.get("f_value_grad") {
        let mut want = eval_at(1);
        want.extend(eval_at(0));
        close(
            &interp::run(plan, &with_v, &sizes),
            &want,
            &format!("f_value_grad of `{expr}`"),
        );
    }
}

#[test]
fn vector_programs() {
    let programs = [
        "xent(z, q)",
        "softmax(z)",
        "log_softmax(z)",
        "logsumexp(z)",
        "sum(exp(z) * q)",
        "dot(z, z) + sin(sum(z)) * cos(dot(z, q))",
        "sum(tanh(z) * sigmoid(q)) + softplus(sum(z))",
        "sqrt(sum(z * z) + 1)",
        "mean(z ^ 3) - sum(log(z))",
        "sum(z ^ q)",
        "def nll(z, y) = -dot(y, log_softmax(z)); nll(z, y) + 0.01 * dot(z, z)",
        "let p = softmax(z); dot(p, q) * logsumexp(q * z)",
        // Two softmaxes read at the output's entry: `out` can keep one's
        // exponentials, not both.
        "softmax(z) + softmax(q * z)",
        "x: scalar; x ^ 3 + sin(x) * exp(x) / (1 + x)",
        // A rank-one Hessian with no diagonal: f_newton at d = 0.
        "softplus(dot(z, q))",
        // Diagonal plus rank two (p and q∘p): f_newton by Woodbury.
        "dot(softmax(z), q)",
    ];
    for (i, p) in programs.iter().enumerate() {
        check(p, None, 3, 0x1234 + i as u64);
    }
}

#[test]
fn matrix_programs() {
    let classifier = "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m";
    check("Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m", None, 2, 1);
    check(classifier, Some("W"), 2, 2);
    check(classifier, Some("b"), 2, 3);
    check(classifier, Some("X"), 1, 4);
    check(
        "X: mat[m, d]; W1: mat[d, h]; W2: mat[h, k]; Y: mat[m, k]; xent(tanh(X @ W1) @ W2, Y) / m",
        Some("W1"),
        2,
        5,
    );
    check("A: mat[m, n]; sum(softmax(A) * A)", None, 2, 6);
    check("A: mat[m, n]; log_softmax(A)", None, 1, 7);
    check(
        "M: mat[n, n]; x: vec[n]; dot(x, M @ x) + sum(transpose(M) @ x)",
        Some("x"),
        3,
        8,
    );
    check(
        "u: vec[n]; w: vec[n]; sum(outer(u, w) @ u) + sum(diag(u) @ w)",
        None,
        3,
        9,
    );
    check("Z: mat[m, n]; mean(Z * Z)", None, 2, 10);
}

/// Orders whose full tensors are emitted class by class (more than 64
/// terms): each class's value scattered over its orbit must give every
/// entry that `eval` gives.
#[test]
fn scattered_symmetry_classes() {
    check("xent(z, q)", None, 7, 0x5ca7);
    check("logsumexp(z) + 0.5 * dot(z, z)", None, 6, 0x5ca8);
}

#[test]
fn orbit_rows_are_the_distinct_terms() {
    use symdiff::codegen::loops::orbit_rows;
    // k! / (Π sizes! · Π multiplicities!)
    assert_eq!(orbit_rows(&[1, 1, 1], &[0, 0, 0]).len(), 1);
    assert_eq!(orbit_rows(&[2, 1], &[0, 1]).len(), 3);
    assert_eq!(orbit_rows(&[2, 2], &[0, 0]).len(), 3);
    assert_eq!(orbit_rows(&[2, 2], &[0, 1]).len(), 6);
    assert_eq!(orbit_rows(&[5, 5], &[0, 0]).len(), 126);
    let all: usize = [
        (vec![3], vec![0]),
        (vec![1, 2], vec![0, 1]),
        (vec![1, 1, 1], vec![0, 0, 0]),
    ]
    .iter()
    .map(|(s, k)| orbit_rows(s, k).len())
    .sum();
    assert_eq!(all, 5, "Bell(3) set partitions");
    // Every row is a distinct assignment with the right block sizes.
    let rows = orbit_rows(&[2, 1, 1], &[0, 1, 1]);
    assert_eq!(rows.len(), 6);
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        assert_eq!(r.iter().filter(|&&b| b == 0).count(), 2);
        assert!(seen.insert(r.clone()));
    }
}

#[test]
fn softmax_kernels_read_their_logits_once_before_the_output() {
    // The maximum that shifts the exponentials is taken in their own pass
    // (a `Shift` part), so no separate pass reads `z` for it; `Σq` joins.
    // The value of xent is the exception: it is computed at `z − max(z)`
    // (so `q·z` cannot cancel at huge logits), one pass for the maximum,
    // then the shifted pass.
    use symdiff::codegen::loops::{visit_stmt, Array, RedOp, Scalar, Stmt};
    for (expr, function, before) in [
        ("xent(z, q)", "xent_grad", 0),
        ("xent(z, q)", "xent", 1),
        ("xent(z, q)", "xent_hvp", 0),
        ("softmax(z)", "softmax", 0),
        ("logsumexp(z)", "logsumexp", 0),
    ] {
        let mut spec = KernelSpec::new("f", expr);
        spec.order = 2;
        let plans = symdiff::codegen::kernel_plans(&spec)
            .unwrap_or_else(|e| panic!("{expr}: {}", e.message));
        let name = function.replacen(function.split('_').next().unwrap(), "f", 1);
        let (_, plan) = plans
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{expr}: no `{name}`"));
        let reads_z = |s: &Stmt| {
            let mut hit = false;
            visit_stmt(s, &mut |e| {
                hit |= matches!(e, Scalar::Load(a) if a.array == Array::Input(0))
            });
            hit
        };
        let passes: Vec<&Stmt> = plan.stmts.iter().filter(|s| reads_z(s)).collect();
        assert_eq!(
            passes.len(),
            1 + before,
            "{function}: passes over z: {passes:#?}"
        );
        let Stmt::Pass { parts, .. } = passes[before] else {
            panic!("{function}: the pass over z is not a reduction: {passes:#?}");
        };
        assert!(
            parts.iter().any(|p| p.op == RedOp::Shift),
            "{function}: no shift in {parts:#?}"
        );
    }
}

#[test]
fn directional_kernels_sum_p_dot_v_with_the_exponentials() {
    // `p·v = (Σ v·exp)/Σ exp`: the sum of `v` against the kept exponentials
    // joins their pass, scaled after it, so the Hessian-vector product makes
    // two passes (totals, then the output), not three, and the third
    // directional derivative two (totals, then the centred moments), not
    // four (a pass that scaled the exponentials in place went too).
    use symdiff::codegen::loops::{Stmt, Var};
    for expr in ["xent(z, q)", "logsumexp(z)"] {
        let mut spec = KernelSpec::new("f", expr);
        spec.order = 3;
        let plans = symdiff::codegen::kernel_plans(&spec)
            .unwrap_or_else(|e| panic!("{expr}: {}", e.message));
        for function in ["f_hvp", "f_d3_dir"] {
            let (_, plan) = plans
                .iter()
                .find(|(n, _)| n == function)
                .unwrap_or_else(|| panic!("{expr}: no `{function}`"));
            let passes: Vec<Var> = plan
                .stmts
                .iter()
                .filter_map(|s| match s {
                    Stmt::Pass { var, .. } | Stmt::Loop { var, .. } => Some(*var),
                    _ => None,
                })
                .collect();
            assert_eq!(passes.len(), 2, "{expr}, {function}: {:#?}", plan.stmts);
            let Stmt::Pass { parts, .. } = &plan.stmts[0] else {
                panic!("{expr}, {function}: {:#?}", plan.stmts);
            };
            assert!(
                parts.len() >= 3,
                "{expr}, {function}: Σ v·exp not in the first pass: {parts:#?}"
            );
        }
    }
}

#[test]
fn the_interpreter_runs_the_shift_restart_of_the_scheduled_plan() {
    // The gradient's pass over z shifts by the first block's maximum and
    // runs again from the exact one when the shifted sum passes 1e180. A
    // logit 500 above the first block (e^500 ≈ 1.4e217) makes it restart;
    // one 800 above would overflow without the restart (e^800 = ∞, and the
    // gradient NaN). The interpreter runs the plan as scheduled, so both
    // are checked here without compiling anything.
    use symdiff::codegen::loops::schedule::Schedule;
    use symdiff::codegen::loops::Stmt;
    let mut spec = KernelSpec::new("f", "xent(z, q)");
    spec.order = 1;
    let plans = symdiff::codegen::kernel_plans(&spec).unwrap_or_else(|e| panic!("{}", e.message));
    let (_, plan) = plans.iter().find(|(n, _)| n == "f_grad").expect("f_grad");
    assert!(
        plan.stmts.iter().any(|s| matches!(
            s,
            Stmt::Pass {
                schedule: Schedule::Blocks { restart: true },
                ..
            }
        )),
        "the pass over z restarts: {:#?}",
        plan.stmts
    );
    let n = 200;
    let sizes: HashMap<String, usize> = [("n".to_string(), n)].into();
    let mut rng = Rng(0x5eed_0500);
    for late in [500.0, 800.0] {
        let mut z = rng.vec(n, -1.0, 1.0);
        z[150] = late;
        let q = rng.vec(n, 0.0, 1.0);
        let got = interp::run(plan, &[z.clone(), q.clone()], &sizes);
        // s·softmax(z) − q, shifted by the exact maximum.
        let s: f64 = q.iter().sum();
        let e: Vec<f64> = z.iter().map(|x| (x - late).exp()).collect();
        let total: f64 = e.iter().sum();
        for i in 0..n {
            let want = s * e[i] / total - q[i];
            assert!(
                (got[i] - want).abs() <= 1e-12 * (1.0 + want.abs()),
                "late logit {late}: entry {i} is {}, want {want}",
                got[i]
            );
        }
    }
}

#[test]
fn contractions_of_sums_over_rows_keep_to_vectors() {
    // A Hessian that is itself a sum over rows (`Xᵀ D X`) contracted with
    // `v` is a sum over rows of `X_bi D_b (X v)_b`: no d×d temporary, one
    // pass over `X` (before `sum_inside_out`, the logistic hvp built six
    // d×d sums and took 200 ms at 2048×256). The same holds for the third
    // derivative along `v`.
    for (expr, order, function) in [
        (
            "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y - 1) * (X @ w)))/m + 0.0005*dot(w, w)",
            2,
            "f_hvp",
        ),
        ("X: mat[m, d]; w: vec[d]; sum((X @ w)^2)/m", 2, "f_hvp"),
        ("X: mat[m, d]; w: vec[d]; sum(exp(X @ w))", 3, "f_d3_dir"),
    ] {
        let mut spec = KernelSpec::new("f", expr);
        spec.order = order;
        spec.wrt = Some("w".into());
        let plans = symdiff::codegen::kernel_plans(&spec)
            .unwrap_or_else(|e| panic!("{expr}: {}", e.message));
        let (_, plan) = plans
            .iter()
            .find(|(n, _)| n == function)
            .unwrap_or_else(|| panic!("{expr}: no `{function}`"));
        let widest = plan.temps.iter().filter(|t| t.live).map(|t| t.vars.len()).max();
        assert!(
            widest.unwrap_or(0) <= 1,
            "{expr}: `{function}` has a temporary over {widest:?} indices"
        );
    }
    check(
        "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y - 1) * (X @ w)))/m",
        Some("w"),
        3,
        0x10c1,
    );
}
