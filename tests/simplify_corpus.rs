//! The printed size of derivatives users write, pinned: one insta snapshot
//! lists every derivative of the corpus (the expressions of
//! `shared/bench/simplify/corpus.json` and as many more it never saw) with
//! its operation count, so a change that grows any of them shows up in
//! review. Every printed form is also checked numerically against the
//! normal form it was printed from.

use symdiff::{compact, eval, Limits, Request, Syntax};

const CORPUS: &[(&str, &str)] = &[
    // The benchmark's expressions.
    ("sigmoid(x)", "x"),
    ("x * sigmoid(x)", "x"),
    ("log(1 + exp(x))", "x"),
    ("x * tanh(softplus(x))", "x"),
    (
        "0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x^3)))",
        "x",
    ),
    ("-y * log(sigmoid(x)) - (1 - y) * log(1 - sigmoid(x))", "x"),
    ("(x - mu)^2 / (2 * s^2) + log(s)", "s"),
    ("x^3 / (1 + x^2)", "x"),
    ("1 / (1 + x)^2", "x"),
    ("sqrt(x) + x^0.5 * log(x)", "x"),
    ("exp(x) / (1 + exp(x))", "x"),
    ("log((exp(x) + exp(-x)) / 2)", "x"),
    ("x^y", "x"),
    ("sqrt(1 + x^2)", "x"),
    ("(1 - x)^3 * x^2", "x"),
    ("exp(log(x))", "x"),
    ("sin(x) * cos(x)", "x"),
    ("log(x) / x", "x"),
    // Of the same kind, never tuned for.
    ("1 / (1 + exp(-x))", "x"),
    ("(x^2 - 1) / (x - 1)", "x"),
    ("x * exp(-x^2 / 2)", "x"),
    ("log(1 + x^2)", "x"),
    ("tanh(x)^2", "x"),
    ("x / (1 + x)", "x"),
    ("softplus(x) - softplus(-x)", "x"),
    ("log(sigmoid(x))", "x"),
    ("(a * x + b)^3", "x"),
    ("exp(2 * x) / (1 + exp(2 * x))", "x"),
    ("x^2 * log(x)", "x"),
    ("1 / sqrt(1 + x)", "x"),
];

fn point_for(vars: &[(String, symdiff::shape::Shape)], seed: u64) -> String {
    vars.iter()
        .enumerate()
        .map(|(n, (v, _))| {
            let t = ((seed * 7 + n as u64 * 13) % 17) as f64 / 17.0;
            format!("{v}={}", 0.3 + 1.4 * t)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn corpus_derivatives() {
    let mut table = String::new();
    let mut total = 0;
    for (expr, wrt) in CORPUS {
        for order in 1..=4 {
            let mut req = Request::new(expr, order);
            req.wrt = Some(wrt.to_string());
            let d = symdiff::derive(&req)
                .unwrap_or_else(|e| panic!("{expr}: {}", e.render(expr, None)));
            let (json, _) = d.json(Limits::default());
            let text = json["text"].as_str().unwrap().to_string();
            let poly = d.tensor().expanded();
            let node = compact::display(&poly);
            let ops = node.ops();
            total += ops;
            table.push_str(&format!(
                "{expr} | d{order}/d{wrt}^{order} | {ops} | {text}\n"
            ));
            // The printed form is the same function as the normal form.
            let printed = node.to_poly();
            for seed in 0..3 {
                let at = point_for(&d.typed().vars, seed);
                let point = eval::bind(d.typed(), &eval::parse_point(&at).unwrap()).unwrap();
                let mut ev = eval::Evaluator::new(&point);
                let (want, got) = (ev.poly(&poly), ev.poly(&printed));
                assert!(
                    (want - got).abs() <= 1e-9 * want.abs().max(1.0),
                    "{expr} order {order} at {at}: normal form {want}, printed {got} ({text})"
                );
            }
        }
    }
    let _ = Syntax::Text;
    table.push_str(&format!("total operations: {total}\n"));
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s.bind(|| insta::assert_snapshot!("simplify_corpus", table));
}
