//! What a first-time user meets: the variable chosen when `--wrt` is not
//! given, and syntax errors that say what to type next.

fn default_wrt(expr: &str) -> String {
    symdiff::derive(&symdiff::Request::new(expr, 1))
        .unwrap()
        .wrt
}

#[test]
fn the_default_variable_is_the_logits_not_the_targets() {
    assert_eq!(default_wrt("xent(z, q)"), "z");
    assert_eq!(default_wrt("-sum(q*log(softmax(z)))"), "z");
    assert_eq!(default_wrt("-dot(y, log_softmax(z))"), "z");
    assert_eq!(default_wrt("logsumexp(b) * a"), "b");
    // Without logits: the first variable in order of appearance.
    assert_eq!(default_wrt("q * sum(z)"), "q");
    // Declared variables come first, in declaration order.
    assert_eq!(
        default_wrt("Z: mat[m, k]; Y: mat[m, k]; -sum(Y * log(softmax(Z))) / m"),
        "Z"
    );
    assert_eq!(default_wrt("W: mat[d, k]; X: mat[m, d]; sum(X @ W)"), "W");
}

fn syntax_error(src: &str) -> String {
    let e = symdiff::parse::parse_program(src).unwrap_err();
    let place = e.spots[0].span.start;
    format!("{} @{place}: {}", e.message, e.spots[0].label)
}

#[test]
fn syntax_errors_say_what_to_type_where_it_goes() {
    assert_eq!(
        syntax_error("xent(z q)"),
        "syntax error: unexpected `q` @7: expected an operator (`+ - * / @ ^`), `,` or `)`"
    );
    assert_eq!(
        syntax_error("X: mat[m, n]\nmat[m, n]; X"),
        "syntax error: a declaration must end with `;` @12: expected `;` here"
    );
    assert_eq!(
        syntax_error("(x + 1"),
        "syntax error: the input ends too early @6: expected an operator (`+ - * / @ ^`) or `)`"
    );
    assert_eq!(
        syntax_error("x +"),
        "syntax error: the input ends too early @3: expected an expression"
    );
    let e = symdiff::parse::parse_program("3x").unwrap_err();
    assert!(
        e.notes.iter().any(|n| n.contains("write `3*x`")),
        "{:?}",
        e.notes
    );
}

#[test]
fn a_build_script_unwrap_shows_the_drawn_diagnostic() {
    let e = symdiff::Builder::new()
        .kernel("bad", "xent(z q)")
        .generate()
        .unwrap_err();
    // The structured diagnostic is kept, not only its drawing.
    assert_eq!(e.kernel, "bad");
    assert_eq!(e.expr, "xent(z q)");
    assert!(!e.error.spots.is_empty(), "a place in the expression");
    let shown = format!("{e:?}");
    assert!(shown.contains("kernel `bad`"), "{shown}");
    assert!(
        shown.contains("xent(z q)") && shown.contains('^'),
        "{shown}"
    );
}

#[test]
fn unused_assumptions_are_named() {
    let mut req = symdiff::Request::new("xent(z, q)", 1);
    req.assume = vec![
        symdiff::Fact::parse("sum(z)=1").unwrap(),
        symdiff::Fact::parse("sum(q)=1").unwrap(),
    ];
    let d = symdiff::derive(&req).unwrap();
    assert_eq!(d.used_facts, vec!["sum(q)=1"]);
    assert_eq!(d.unused_facts, vec!["sum(z)=1"]);
}

#[test]
fn points_take_fractions_and_numpy_spacing() {
    let e = symdiff::eval::run("xent(z, q)", "z=[1. 2. 3.]; q=[1/5, 3/10, 1/2]", 0, None).unwrap();
    let f = symdiff::eval::run("xent(z, q)", "z=[1,2,3]; q=[0.2,0.3,0.5]", 0, None).unwrap();
    assert_eq!(e.values, f.values);
}

#[test]
fn the_function_list_names_every_built_in() {
    for name in symdiff::shape::Builtin::NAMES {
        assert!(
            symdiff::shape::FUNCTIONS.contains(&format!("{name}(")),
            "`symdiff functions` does not list `{name}`"
        );
    }
}

fn report(expr: &str, order: usize, assume: &[&str], syntax: symdiff::Syntax) -> String {
    let mut req = symdiff::Request::new(expr, order);
    req.assume = assume
        .iter()
        .map(|a| symdiff::Fact::parse(a).unwrap())
        .collect();
    let d = symdiff::derive(&req).unwrap();
    d.report(syntax, req.limits).0
}

#[test]
fn latex_is_paste_ready() {
    let out = report("xent(z,q)", 3, &[], symdiff::Syntax::Latex);
    // A left-hand side with the derivative's own indices.
    assert!(
        out.contains("\\frac{\\partial^{3} f}{\\partial z_{i} \\partial z_{j} \\partial z_{k}} = "),
        "{out}"
    );
    // diag upright, the matrix form and the assumptions in LaTeX too.
    let out = report("xent(z,q)", 2, &["sum(q)=1"], symdiff::Syntax::Latex);
    assert!(
        out.contains("\\operatorname{diag}\\left(p\\right) - p p^\\top"),
        "{out}"
    );
    assert!(
        out.contains("\\frac{\\partial^{2} f}{\\partial z^{2}} = "),
        "{out}"
    );
    assert!(
        out.contains("\\text{assuming } \\texttt{sum(q)=1}"),
        "{out}"
    );
    // 1/m as a fraction, not m^{-1}.
    let out = report(
        "X: mat[m, d]; W: mat[d, k]; Y: mat[m, k]; xent(X @ W, Y) / m",
        1,
        &[],
        symdiff::Syntax::Latex,
    );
    assert!(!out.contains("^{-1}"), "{out}");
    assert!(out.contains("}{m}"), "{out}");
    assert!(out.contains("^{\\top}"), "{out}");
    // A scalar: ∂²f/∂x².
    let out = report("x^3", 2, &[], symdiff::Syntax::Latex);
    assert!(
        out.contains("\\frac{\\partial^{2} f}{\\partial x^{2}} = 6 \\cdot x"),
        "{out}"
    );
}

#[test]
fn json_has_the_matrix_form() {
    let d = symdiff::derive(&symdiff::Request::new("xent(z,q)", 2)).unwrap();
    let (j, _) = d.json(symdiff::Limits::default());
    assert_eq!(j["matrix_form"], "s·(diag(p) − p pᵀ)");
}

#[test]
fn row_wise_facts_have_their_own_spelling() {
    let batch = "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y)";
    let rows = report(batch, 1, &["rowsum(Y)=1"], symdiff::Syntax::Text);
    assert!(rows.contains("matrix form: A − Y"), "{rows}");
    assert!(rows.contains("assumptions used: rowsum(Y)=1"), "{rows}");
    // sum(Y) of a matrix is its total, as in the language; the report says
    // how to write the per-row fact.
    let total = report(batch, 1, &["sum(Y)=1"], symdiff::Syntax::Text);
    assert!(total.contains("for every row write rowsum(Y)=1"), "{total}");
}

#[test]
fn index_names_read_well_at_any_order() {
    let names = |order: usize| {
        let out = report("xent(z,q)", order, &[], symdiff::Syntax::Text);
        out.lines()
            .find_map(|l| l.strip_prefix("indices: "))
            .unwrap()
            .to_string()
    };
    // No `o` (it reads as 0).
    assert_eq!(names(6), "i j k l m r"); // `n` is the length here
                                         // Past the letters, every index is numbered: one style per result.
    assert_eq!(names(13), "i1 i2 i3 i4 i5 i6 i7 i8 i9 i10 i11 i12 i13");
}
