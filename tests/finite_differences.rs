//! Derivatives against finite differences of an independent evaluator.
//!
//! Random expressions are generated together with a plain f64 evaluator of
//! their own; order 1 is checked against central differences of that
//! evaluator, and order k against central differences of order k−1.

use proptest::prelude::*;

/// A numeric evaluator over (x, y, z).
type Evaluator = std::rc::Rc<dyn Fn(f64, f64, &[f64]) -> f64>;

/// A generated expression: its text and its evaluator.
#[derive(Clone)]
struct Gen {
    text: String,
    f: Evaluator,
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn leaf() -> impl Strategy<Value = Gen> {
    prop_oneof![
        Just(Gen {
            text: "x".into(),
            f: std::rc::Rc::new(|x, _, _| x)
        }),
        Just(Gen {
            text: "y".into(),
            f: std::rc::Rc::new(|_, y, _| y)
        }),
        (1..4i32).prop_map(|c| Gen {
            text: format!("{c}"),
            f: std::rc::Rc::new(move |_, _, _| c as f64)
        }),
        Just(Gen {
            text: "logsumexp(z * x)".into(),
            f: std::rc::Rc::new(|x, _, z| {
                let m = z.iter().map(|v| v * x).fold(f64::NEG_INFINITY, f64::max);
                m + z.iter().map(|v| (v * x - m).exp()).sum::<f64>().ln()
            })
        }),
        Just(Gen {
            text: "(dot(z, z) * y)".into(),
            f: std::rc::Rc::new(|_, y, z| z.iter().map(|v| v * v).sum::<f64>() * y)
        }),
    ]
}

fn expr() -> impl Strategy<Value = Gen> {
    leaf().prop_recursive(3, 24, 2, |inner| {
        let un = |name: &'static str, g: fn(f64) -> f64| {
            inner.clone().prop_map(move |a| {
                let f = a.f.clone();
                Gen {
                    text: format!("{name}({})", a.text),
                    f: std::rc::Rc::new(move |x, y, z| g(f(x, y, z))),
                }
            })
        };
        let bin = |op: &'static str, g: fn(f64, f64) -> f64| {
            (inner.clone(), inner.clone()).prop_map(move |(a, b)| {
                let (fa, fb) = (a.f.clone(), b.f.clone());
                Gen {
                    text: format!("({} {op} {})", a.text, b.text),
                    f: std::rc::Rc::new(move |x, y, z| g(fa(x, y, z), fb(x, y, z))),
                }
            })
        };
        prop_oneof![
            bin("+", |a, b| a + b),
            bin("-", |a, b| a - b),
            bin("*", |a, b| a * b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| {
                let (fa, fb) = (a.f.clone(), b.f.clone());
                Gen {
                    text: format!("({} / (2 + {}^2))", a.text, b.text),
                    f: std::rc::Rc::new(move |x, y, z| fa(x, y, z) / (2.0 + fb(x, y, z).powi(2))),
                }
            }),
            un("sin", f64::sin),
            un("cos", f64::cos),
            un("tanh", f64::tanh),
            un("sigmoid", |v| 1.0 / (1.0 + (-v).exp())),
            un("softplus", |v| (1.0 + v.exp()).ln()),
            inner.clone().prop_map(|a| {
                let f = a.f.clone();
                Gen {
                    text: format!("exp({} / 4)", a.text),
                    f: std::rc::Rc::new(move |x, y, z| (f(x, y, z) / 4.0).exp()),
                }
            }),
        ]
    })
}

fn symbolic(expr: &str, at: &str, order: usize, wrt: &str) -> Vec<f64> {
    let program = symdiff::parse::parse_program(expr).unwrap();
    let typed = symdiff::shape::check_with_hints(&program, &[]).unwrap();
    let point = symdiff::eval::bind(&typed, &symdiff::eval::parse_point(at).unwrap()).unwrap();
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = Some(wrt.into());
    let d = symdiff::derive(&req).unwrap();
    symdiff::eval::evaluate(d.tensor(), &point).unwrap()
}

fn point(x: f64, y: f64, z: &[f64], used: &str) -> String {
    let mut parts = Vec::new();
    // x and y are declared, so they are inputs even where unused.
    parts.push(format!("x={x}"));
    parts.push(format!("y={y}"));
    if vars_of(used).contains('z') {
        parts.push(format!(
            "z=[{}]",
            z.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    parts.join("; ")
}

fn vars_of(text: &str) -> String {
    let mut s = String::new();
    for (name, c) in [("x", 'x'), ("y", 'y'), ("z", 'z'), ("q", 'q')] {
        let used = text
            .split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_')
            .any(|tok| tok == name);
        if used {
            s.push(c);
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn derivatives_match_finite_differences(g in expr(), x in -1.5f64..1.5, y in -1.5f64..1.5) {
        let z = [0.3, -0.7, 1.1];
        let used = g.text.clone();
        prop_assume!(vars_of(&used).contains('x'));
        // `z * x` alone would make an undeclared x a vector (the shape its
        // use requires); these are scalars.
        let program = format!("x: scalar; y: scalar; {}", g.text);
        let g = Gen { text: program, f: g.f.clone() };
        let h = 1e-5;
        // Order 1 against the independent evaluator.
        let d1 = symbolic(&g.text, &point(x, y, &z, &used), 1, "x")[0];
        let fd = ((g.f)(x + h, y, &z) - (g.f)(x - h, y, &z)) / (2.0 * h);
        prop_assert!((d1 - fd).abs() <= 1e-5 * fd.abs().max(1.0), "{}: {d1} vs {fd}", g.text);
        // Orders 2 and 3 against differences of the order below.
        for k in 2..=3 {
            let up = symbolic(&g.text, &point(x + h, y, &z, &used), k - 1, "x")[0];
            let down = symbolic(&g.text, &point(x - h, y, &z, &used), k - 1, "x")[0];
            let dk = symbolic(&g.text, &point(x, y, &z, &used), k, "x")[0];
            let fd = (up - down) / (2.0 * h);
            prop_assert!((dk - fd).abs() <= 1e-4 * fd.abs().max(1.0), "{} order {k}: {dk} vs {fd}", g.text);
        }
    }
}

/// Vector expressions: the order-k tensor against differences of order k−1,
/// entry by entry.
#[test]
fn vector_derivatives_match_finite_differences() {
    let cases = [
        ("xent(z, q)", 4),
        ("softmax(z)", 3),
        ("log_softmax(z)", 2),
        ("sqrt(sum(z^2))", 3),
        (
            "def nll(z, y) = -dot(y, log_softmax(z)); nll(z, q) + 0.01 * dot(z, z)",
            3,
        ),
        ("let p = softmax(z); dot(p, p)", 3),
        ("sum(sigmoid(z) * tanh(z)) / mean(exp(z))", 2),
        ("sum(q * log(softmax(z)))", 2),
        ("sum(exp(z)) / sum(exp(z))^2", 2),
    ];
    let z = [0.4, -0.9, 1.3, 0.2];
    let q = [0.1, 0.6, 0.25, 0.3];
    let at = |z: &[f64]| {
        format!(
            "z=[{}]; q=[{}]",
            z.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(","),
            q.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let h = 1e-5;
    for (expr, max_order) in cases {
        let uses_q = vars_of(expr).contains('q');
        let at_z = |z: &[f64]| {
            if uses_q {
                at(z)
            } else {
                at(z).split(';').next().unwrap().to_string()
            }
        };
        for k in 1..=max_order {
            let dk = symbolic(expr, &at_z(&z), k, "z");
            let below = symbolic(expr, &at_z(&z), k - 1, "z");
            let block = below.len();
            for j in 0..z.len() {
                let (mut zp, mut zm) = (z, z);
                zp[j] += h;
                zm[j] -= h;
                let up = symbolic(expr, &at_z(&zp), k - 1, "z");
                let down = symbolic(expr, &at_z(&zm), k - 1, "z");
                for e in 0..block {
                    let fd = (up[e] - down[e]) / (2.0 * h);
                    let got = dk[e * z.len() + j];
                    assert!(
                        (got - fd).abs() <= 1e-5 * fd.abs().max(1.0),
                        "{expr} order {k} entry {e},{j}: {got} vs {fd}"
                    );
                }
            }
        }
    }
}
