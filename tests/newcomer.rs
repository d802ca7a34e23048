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
