//! `symdiff analyze`: the Hessian's structure, rank, null space,
//! definiteness and factorization, derived from the expression. Each report
//! is an insta snapshot; the facts a solver relies on are also asserted,
//! and every factorization printed was checked numerically by `analyze`
//! itself (the error is part of the report and asserted small here).

fn analyze(expr: &str, wrt: Option<&str>) -> symdiff::analyze::Analysis {
    symdiff::analyze::analyze(expr, wrt).unwrap_or_else(|e| panic!("{}", e.render(expr, None)))
}

fn snap(name: &str, expr: &str, wrt: Option<&str>) -> serde_json::Value {
    let a = analyze(expr, wrt);
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.bind(|| insta::assert_snapshot!(name, a.text));
    a.json
}

#[test]
fn xent_is_diagonal_plus_rank_one_and_singular() {
    let j = snap("analyze_xent", "xent(z, q)", None);
    assert_eq!(j["structure"], "diagonal plus rank one");
    assert_eq!(j["gamma"], "1");
    assert_eq!(j["rank"], "n - 1");
    assert!(j["null_space"].as_str().unwrap().contains("all-ones"));
    assert!(j["null_space"]
        .as_str()
        .unwrap()
        .contains("shift-invariant"));
    assert_eq!(j["definite"], "positive semidefinite");
    assert!(j["factor_checked_error"].as_f64().unwrap() < 1e-12);
    // The third derivative is recognised as a cumulant tensor, class by class.
    assert_eq!(j["third_order"], "cumulant");
}

/// The Theano user's objective: the report says why the Newton step fails
/// and what makes the Hessian invertible.
#[test]
fn the_singular_hessian_question_is_answered() {
    let a = analyze("-sum(q * log(softmax(z)))", None);
    assert!(a.text.contains("so H is singular"), "{}", a.text);
    assert!(a.text.contains("add λ > 0"), "{}", a.text);
    assert!(a.text.contains("fix one coordinate"), "{}", a.text);
}

#[test]
fn logsumexp_factors_as_s_transpose_s() {
    let j = snap("analyze_logsumexp", "logsumexp(z)", None);
    assert_eq!(j["factor_S"], "sqrt(p_i)·(δ_ij − p_j)");
    assert!(j["factor_checked_error"].as_f64().unwrap() < 1e-12);
}

#[test]
fn logistic_regression_is_x_transpose_d_x() {
    let j = snap(
        "analyze_logistic_regression",
        "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y-1) * (X @ w)))/m + 0.0005*dot(w,w)",
        Some("w"),
    );
    assert_eq!(j["structure"], "X^T D X");
    assert_eq!(j["definite"], "positive semidefinite");
}

#[test]
fn an_elementwise_loss_is_diagonal() {
    let j = snap("analyze_diagonal", "sum(z^4) + sum(exp(z))", None);
    assert_eq!(j["structure"], "diagonal");
    assert!(j.get("third_order").is_none());
}

#[test]
fn no_structure_is_said_plainly() {
    let j = snap(
        "analyze_none",
        "x: vec[n]; A: mat[n, n]; dot(x, A @ x) * sum(x)",
        Some("x"),
    );
    assert_eq!(j["structure"], "none");
}

/// A batch: block diagonal over rows, each block the xent structure.
#[test]
fn a_batch_is_block_diagonal_over_rows() {
    let j = snap(
        "analyze_batched_xent",
        "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
        None,
    );
    assert_eq!(j["blocks"], "rows");
    assert_eq!(j["structure"], "diagonal plus rank one");
    assert_eq!(j["rank"], "m*(n - 1)");
}

/// An affine function's Hessian is zero, and says so.
#[test]
fn an_affine_function_has_a_zero_hessian() {
    let a = analyze("x: vec[n]; sum(x) + 2", None);
    assert_eq!(a.json["structure"], "zero");
}

/// Where the third derivative is refused as too large, the Hessian is
/// still analyzed (order 2 alone), and a rank bound is stated, not a term
/// count.
#[test]
fn deep_nesting_falls_back_to_the_hessian_alone() {
    let a = analyze(
        "sum(log(softmax(softmax(softmax(softmax(softmax(softmax(z))))))))",
        None,
    );
    assert_eq!(a.json["structure"], "diagonal plus low rank");
    assert!(a.json.get("third_order").is_none());
    let r = a.json["rank_of_update"].as_u64().unwrap();
    assert!(r < 100, "rank bound {r}");
}

/// The linear classifier's Hessian in its weight matrix: a sum over data
/// rows of Kronecker products `x_c x_cᵀ ⊗ B^c`, singular along `u 1ᵀ`,
/// factored as `SᵀS`; both checked numerically by `analyze`.
#[test]
fn the_linear_classifier_is_a_sum_of_kronecker_products() {
    for (name, expr) in [
        (
            "analyze_linear_classifier",
            "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        ),
        (
            "analyze_multivariate_least_squares",
            "X: mat[m, d]; W: mat[d, k]; Y: mat[m, k]; sum((X @ W - Y)^2) / (2*m)",
        ),
    ] {
        let j = snap(name, expr, Some("W"));
        assert_eq!(j["structure"], "kronecker rows", "{name}");
        assert_eq!(j["definite"], "positive semidefinite", "{name}");
        if name == "analyze_linear_classifier" {
            assert_eq!(j["block"], "diagonal plus rank one");
            assert_eq!(j["rank"], "d*(k - 1)");
            assert!(j["null_checked_error"].as_f64().unwrap() < 1e-12);
            assert!(j["factor_checked_error"].as_f64().unwrap() < 1e-12);
        } else {
            assert_eq!(j["block"], "diagonal");
        }
    }
}

/// A function of one projection `uᵀx` has a rank-one Hessian with no
/// diagonal: rank 1, null space `u^⊥`, no division by the zero diagonal.
#[test]
fn a_function_of_one_projection_is_rank_one() {
    let j = snap("analyze_rank_one", "log(1 + exp(dot(a, x)))", Some("a"));
    assert_eq!(j["structure"], "rank one");
    assert_eq!(j["rank"], "1");
    assert_eq!(j["definite"], "positive semidefinite");
}

/// `xᵀAx`: the Hessian is the constant `A + Aᵀ`, and one Newton step is
/// exact.
#[test]
fn a_quadratic_form_has_a_constant_hessian() {
    let j = snap(
        "analyze_quadratic_form",
        "A: mat[n, n]; dot(x, A @ x)",
        Some("x"),
    );
    assert_eq!(j["structure"], "constant");
    let a = analyze("A: mat[n, n]; dot(x, A @ x)", Some("x"));
    assert!(a.text.contains("H = A + Aᵀ"), "{}", a.text);
}
