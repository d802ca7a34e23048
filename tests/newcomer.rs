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
