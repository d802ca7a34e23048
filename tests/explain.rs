//! `derive --explain`: the steps from the expression to the derivative,
//! each named. The cases the issue names are insta snapshots; every step
//! of every case, and of random programs, is evaluated at a point and
//! compared with the step before it.

mod common;

use common::programs::Case;
use common::Rng;
use proptest::prelude::*;

fn explain(
    expr: &str,
    order: usize,
    wrt: Option<&str>,
    assume: &[&str],
) -> symdiff::explain::Explanation {
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    req.assume = assume
        .iter()
        .map(|a| symdiff::Fact::parse(a).unwrap())
        .collect();
    symdiff::explain::explain(&req).unwrap_or_else(|e| panic!("{}", e.render(expr, None)))
}

/// Every step equals the one before it at a random point.
fn assert_checked(e: &symdiff::explain::Explanation, what: &str) {
    let worst = e
        .check()
        .unwrap_or_else(|err| panic!("{what}: {}", err.render("", None)));
    assert!(
        worst <= 1e-9,
        "{what}: a step differs from the one before by {worst:e}\n{}",
        e.text()
    );
}

/// (snapshot, program, order, variable, assumptions).
type NamedCase = (
    &'static str,
    &'static str,
    usize,
    Option<&'static str>,
    &'static [&'static str],
);

const CASES: &[NamedCase] = &[
    ("explain_softmax_jacobian", "softmax(z)", 1, None, &[]),
    ("explain_xent_gradient", "xent(z, q)", 1, None, &[]),
    (
        "explain_xent_gradient_sum_q_one",
        "xent(z, q)",
        1,
        None,
        &["sum(q)=1"],
    ),
    (
        "explain_linear_layer_wrt_w",
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        Some("W"),
        &[],
    ),
    ("explain_xent_order_3", "xent(z, q)", 3, None, &[]),
];

#[test]
fn the_named_cases_are_snapshots_and_every_step_checks() {
    for &(name, expr, order, wrt, assume) in CASES {
        let e = explain(expr, order, wrt, assume);
        assert_checked(&e, name);
        let mut s = insta::Settings::clone_current();
        s.set_snapshot_path("../snapshots");
        s.set_prepend_module_to_snapshot(false);
        s.bind(|| insta::assert_snapshot!(name, e.text()));
    }
}

#[test]
fn the_xent_gradient_fits_one_screen_and_reaches_s_p_minus_q() {
    let e = explain("xent(z, q)", 1, None, &[]);
    let text = e.text();
    assert!(text.lines().count() <= 25, "{text}");
    // The index form, then the same as vectors.
    assert!(text.lines().any(|l| l.ends_with("= s·p_i − q_i")), "{text}");
    assert!(
        text.lines().last().unwrap().ends_with("= s·p − q"),
        "{text}"
    );
    // The steps name what they applied.
    for rule in [
        "chain rule through logsumexp",
        "derivative of a variable",
        "contract the deltas",
        "name the common parts",
    ] {
        assert!(text.contains(rule), "no `{rule}` step:\n{text}");
    }
    let with = explain("xent(z, q)", 1, None, &["sum(q)=1"]).text();
    assert!(with.contains("assumption sum(q)=1"), "{with}");
    assert!(with.lines().any(|l| l.ends_with("= p_i − q_i")), "{with}");
}

#[test]
fn the_third_derivative_fits_sixty_lines_and_starts_from_the_second() {
    let text = explain("xent(z, q)", 3, None, &[]).text();
    assert!(text.lines().count() <= 60, "{text}");
    assert!(text.contains("order 2 from above"), "{text}");
    assert!(text.contains("derivative of softmax"), "{text}");
}

#[test]
fn json_gives_rule_before_and_after() {
    let j = explain("softmax(z)", 1, None, &[]).json();
    let steps = j["steps"].as_array().unwrap();
    assert!(steps.len() >= 4);
    for (n, s) in steps.iter().enumerate() {
        assert!(s["rule"].is_string() && s["after"].is_string());
        if n > 0 {
            assert!(s["before"].is_string(), "step {n}");
        }
    }
    assert_eq!(steps.last().unwrap()["after"], "diag(p) − p pᵀ");
}

/// Runs of the same rule fold into one step with a count.
#[test]
fn repeated_rules_fold() {
    let e = explain("sin(sin(sin(x)))", 1, None, &[]);
    let text = e.text();
    assert!(text.contains("chain rule through sin (3 times)"), "{text}");
    assert_checked(&e, "sin∘sin∘sin");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    /// Random programs of the whole language: every step checks.
    #[test]
    fn every_step_of_random_programs_checks(seed in 1u64..u64::MAX) {
        let case = Case::random(&mut Rng(seed));
        let mut req = symdiff::Request::new(&case.program(), case.order.min(2));
        req.wrt = Some(case.wrt.to_string());
        // Programs the derivation refuses (too large, undefined) have
        // nothing to explain.
        if let Ok(e) = symdiff::explain::explain(&req) {
            if let Ok(worst) = e.check() {
                prop_assert!(worst <= 1e-9, "{}: {worst:e}\n{}", case.program(), e.text());
            }
        }
    }
}

/// A scalar variable has no index: `∂²f/∂x²`, `∂x/∂x = 1`.
#[test]
fn scalar_variables_are_written_without_indices() {
    let e = explain("x^3 + sin(x)", 2, None, &[]);
    let text = e.text();
    assert!(text.contains("∂²f/∂x² = "), "{text}");
    assert!(text.contains("∂x/∂x = 1"), "{text}");
    assert!(!text.contains("∂x_"), "{text}");
    assert_checked(&e, "x^3 + sin(x)");
}
