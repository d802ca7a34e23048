//! `derive --format latex`: every line is one equation in math mode.
//!
//! `well_formed` always runs and checks the text itself (balanced braces
//! and `\left`/`\right`, nothing but ASCII). `compiles_with_pdflatex`
//! typesets every line with a real TeX engine; it needs `pdflatex`
//! (Debian's texlive-latex-base), so it is `#[ignore]`d here and `.ci/run`
//! installs TeX and runs it with `--ignored`.

use std::process::Command;

/// Derivations that exercise every LaTeX construct the printer has: named
/// parts, deltas, symmetrized classes, sums, powers, fractions, functions,
/// row-wise softmax and matrix forms.
const CASES: &[(&str, usize, Option<&str>)] = &[
    ("xent(z,q)", 1, None),
    ("xent(z,q)", 2, None),
    ("xent(z,q)", 3, None),
    ("xent(z,q)", 10, None),
    ("softmax(z)", 1, None),
    ("log_softmax(z)", 2, None),
    ("logsumexp(z)", 3, None),
    ("sigmoid(x)", 2, None),
    ("tanh(x) / (1 + x^2)", 2, None),
    ("softplus(x) * sqrt(x)", 1, None),
    (
        "def nll(z, y) = -dot(y, log_softmax(z)); nll(z, y) + 0.01 * dot(z, z)",
        2,
        None,
    ),
    (
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        Some("W"),
    ),
    (
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        2,
        Some("b"),
    ),
    (
        "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y-1) * (X @ w)))/m + 0.0005*dot(w,w)",
        2,
        Some("w"),
    ),
    ("sqrt(x) + x^0.5 * log(x)", 3, None),
    ("x^3", 2, None),
];

fn latex(expr: &str, order: usize, wrt: Option<&str>) -> String {
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    let d = symdiff::derive(&req).unwrap_or_else(|e| panic!("{}", e.render(expr, None)));
    d.report(symdiff::Syntax::Latex, req.limits).0
}

/// `derive --explain --format latex`: an `align*` environment.
fn explained(expr: &str, order: usize, wrt: Option<&str>) -> String {
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    symdiff::explain::explain(&req)
        .unwrap_or_else(|e| panic!("{}", e.render(expr, None)))
        .latex()
}

/// The `--explain` cases typeset too (a few: each is a page of steps).
const EXPLAINED: &[(&str, usize, Option<&str>)] = &[
    ("xent(z, q)", 3, None),
    ("softmax(z)", 1, None),
    (
        "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        1,
        Some("W"),
    ),
    ("sqrt(x) + x^0.5 * log(x)", 2, None),
];

#[test]
fn well_formed() {
    let all = CASES.iter().map(|&(e, o, w)| (e, o, latex(e, o, w))).chain(
        EXPLAINED
            .iter()
            .map(|&(e, o, w)| (e, o, explained(e, o, w))),
    );
    for (expr, order, out) in all {
        for line in out.lines().filter(|l| !l.is_empty()) {
            let what = format!("{expr:?} order {order}: {line}");
            assert!(line.is_ascii(), "non-ASCII in LaTeX, {what}");
            let mut depth = 0i64;
            for c in line.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                assert!(depth >= 0, "`}}` without `{{`, {what}");
            }
            assert_eq!(depth, 0, "unbalanced braces, {what}");
            assert_eq!(
                line.matches("\\left").count(),
                line.matches("\\right").count(),
                "\\left without \\right, {what}"
            );
        }
    }
}

#[test]
#[ignore = "needs pdflatex; .ci/run installs it and runs this"]
fn compiles_with_pdflatex() {
    let dir = std::env::temp_dir().join(format!("symdiff-latex-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut doc =
        String::from("\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n");
    for &(expr, order, wrt) in CASES {
        for line in latex(expr, order, wrt).lines().filter(|l| !l.is_empty()) {
            doc.push_str(&format!("\\[ {line} \\]\n"));
        }
    }
    for &(expr, order, wrt) in EXPLAINED {
        doc.push_str(&explained(expr, order, wrt));
    }
    doc.push_str("\\end{document}\n");
    std::fs::write(dir.join("derive.tex"), &doc).unwrap();
    let run = Command::new("pdflatex")
        .args(["-halt-on-error", "-interaction=nonstopmode", "derive.tex"])
        .current_dir(&dir)
        .output()
        .expect("pdflatex runs (install texlive-latex-base)");
    let log = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "pdflatex failed:\n{log}\n--- document ---\n{doc}"
    );
    // TeX reports overfull boxes but also silently drops unknown glyphs.
    assert!(!log.contains("Missing character"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
