//! Random, well-shaped programs of the whole language, for the fuzz and
//! parity tests: a typed generator (so most programs get past the shape
//! checker and exercise the later stages), a point to evaluate them at, and
//! a shrinker that proposes smaller programs of the same shape.

use super::Rng;

/// The shape of a generated expression. Vectors have length `n`; matrices
/// are `n × n` (`A`) or `m × n` (`X`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A number.
    Scalar,
    /// `vec[n]`.
    Vector,
    /// `mat[n, n]`.
    Square,
    /// `mat[m, n]`.
    Wide,
}

/// A generated expression tree.
#[derive(Clone, Debug)]
pub enum Node {
    /// A literal, printed as written.
    Num(String),
    /// A variable.
    Var(&'static str),
    /// `f(args…)`.
    Call(&'static str, Vec<Node>),
    /// `a op b`, parenthesized.
    Bin(&'static str, Box<Node>, Box<Node>),
    /// `-a`.
    Neg(Box<Node>),
}

/// Variables the generator draws from, with their declarations.
pub const VARS: &[(&str, Kind, &str)] = &[
    ("a", Kind::Scalar, "scalar"),
    ("b", Kind::Scalar, "scalar"),
    ("z", Kind::Vector, "vec[n]"),
    ("q", Kind::Vector, "vec[n]"),
    ("u", Kind::Vector, "vec[n]"),
    ("A", Kind::Square, "mat[n, n]"),
    ("X", Kind::Wide, "mat[m, n]"),
];

const ELEMENTWISE: &[&str] = &["exp", "sin", "cos", "tanh", "sigmoid", "softplus"];

impl Node {
    /// The expression as program text.
    pub fn text(&self) -> String {
        match self {
            Node::Num(s) => s.clone(),
            Node::Var(v) => v.to_string(),
            Node::Call(f, args) => format!(
                "{f}({})",
                args.iter().map(Node::text).collect::<Vec<_>>().join(", ")
            ),
            Node::Bin(op, a, b) => format!("({} {op} {})", a.text(), b.text()),
            Node::Neg(a) => format!("-{}", a.text()),
        }
    }

    /// Variables used, in order of first appearance.
    pub fn vars(&self, out: &mut Vec<&'static str>) {
        match self {
            Node::Var(v) => {
                if !out.contains(v) {
                    out.push(v)
                }
            }
            Node::Num(_) => {}
            Node::Call(_, args) => args.iter().for_each(|a| a.vars(out)),
            Node::Bin(_, a, b) => {
                a.vars(out);
                b.vars(out);
            }
            Node::Neg(a) => a.vars(out),
        }
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        1 + match self {
            Node::Num(_) | Node::Var(_) => 0,
            Node::Call(_, args) => args.iter().map(Node::size).sum(),
            Node::Bin(_, a, b) => a.size() + b.size(),
            Node::Neg(a) => a.size(),
        }
    }
}

fn var_of(rng: &mut Rng, kind: Kind) -> Node {
    let names: Vec<&'static str> = VARS
        .iter()
        .filter(|(_, k, _)| *k == kind)
        .map(|(n, _, _)| *n)
        .collect();
    Node::Var(names[(rng.next() * names.len() as f64) as usize % names.len()])
}

fn pick<'a>(rng: &mut Rng, xs: &[&'a str]) -> &'a str {
    xs[(rng.next() * xs.len() as f64) as usize % xs.len()]
}

fn call(f: &'static str, args: Vec<Node>) -> Node {
    Node::Call(f, args)
}

fn bin(op: &'static str, a: Node, b: Node) -> Node {
    Node::Bin(op, Box::new(a), Box::new(b))
}

/// Something positive of the same shape as `x` (for `log`, `sqrt`, bases
/// of powers and divisors).
fn positive(rng: &mut Rng, x: Node) -> Node {
    match (rng.next() * 3.0) as usize {
        0 => bin("+", call("softplus", vec![x]), Node::Num("0.5".into())),
        1 => call("exp", vec![x]),
        _ => bin(
            "+",
            bin("^", x, Node::Num("2".into())),
            Node::Num("0.25".into()),
        ),
    }
}

/// A random expression of shape `kind`, at most `depth` levels deep.
pub fn expr(rng: &mut Rng, kind: Kind, depth: usize) -> Node {
    if depth == 0 || rng.next() < 0.2 {
        if kind == Kind::Scalar && rng.next() < 0.3 {
            let n = pick(rng, &["2", "0.5", "3", "1e-3", "1.5", "7"]);
            return Node::Num(n.into());
        }
        return var_of(rng, kind);
    }
    let d = depth - 1;
    let same = |rng: &mut Rng| expr(rng, kind, d);
    let r = rng.next();
    match kind {
        Kind::Scalar => match (r * 16.0) as usize {
            0 => bin("+", same(rng), same(rng)),
            1 => bin("-", same(rng), same(rng)),
            2 => bin("*", same(rng), same(rng)),
            3 => {
                let inner = same(rng);
                let den = positive(rng, inner);
                bin("/", same(rng), den)
            }
            4 => bin(
                "^",
                same(rng),
                Node::Num(pick(rng, &["2", "3", "-1"]).into()),
            ),
            5 => {
                let inner = same(rng);
                let base = positive(rng, inner);
                bin("^", base, same(rng))
            }
            6 => call(pick(rng, ELEMENTWISE), vec![same(rng)]),
            7 => {
                let inner = same(rng);
                let x = positive(rng, inner);
                call(pick(rng, &["log", "sqrt"]), vec![x])
            }
            8 => call(
                pick(rng, &["sum", "mean", "logsumexp"]),
                vec![expr(rng, Kind::Vector, d)],
            ),
            9 => call(
                "dot",
                vec![expr(rng, Kind::Vector, d), expr(rng, Kind::Vector, d)],
            ),
            10 => call(
                "xent",
                vec![expr(rng, Kind::Vector, d), expr(rng, Kind::Vector, d)],
            ),
            11 => bin("@", expr(rng, Kind::Vector, d), expr(rng, Kind::Vector, d)),
            12 => call("sum", vec![expr(rng, Kind::Square, d)]),
            13 => call(
                "xent",
                vec![expr(rng, Kind::Wide, d), expr(rng, Kind::Wide, d)],
            ),
            14 => Node::Neg(Box::new(same(rng))),
            _ => call("logsumexp", vec![expr(rng, Kind::Wide, d)]),
        },
        Kind::Vector => match (r * 12.0) as usize {
            0 => bin("+", same(rng), same(rng)),
            1 => bin("-", same(rng), same(rng)),
            2 => bin("*", same(rng), same(rng)),
            3 => bin("*", expr(rng, Kind::Scalar, d), same(rng)),
            4 => {
                let inner = same(rng);
                let den = positive(rng, inner);
                bin("/", same(rng), den)
            }
            5 => call(pick(rng, ELEMENTWISE), vec![same(rng)]),
            6 => call(pick(rng, &["softmax", "log_softmax"]), vec![same(rng)]),
            7 => bin("@", expr(rng, Kind::Square, d), same(rng)),
            8 => bin("@", same(rng), expr(rng, Kind::Square, d)),
            9 => call("diag", vec![expr(rng, Kind::Square, d)]),
            10 => bin("+", same(rng), expr(rng, Kind::Scalar, d)),
            _ => Node::Neg(Box::new(same(rng))),
        },
        Kind::Square => match (r * 9.0) as usize {
            0 => bin("+", same(rng), same(rng)),
            1 => bin("*", expr(rng, Kind::Scalar, d), same(rng)),
            2 => call(pick(rng, ELEMENTWISE), vec![same(rng)]),
            3 => call("softmax", vec![same(rng)]),
            4 => call(
                "outer",
                vec![expr(rng, Kind::Vector, d), expr(rng, Kind::Vector, d)],
            ),
            5 => call("diag", vec![expr(rng, Kind::Vector, d)]),
            6 => call("transpose", vec![same(rng)]),
            7 => bin("@", same(rng), same(rng)),
            _ => bin("*", same(rng), expr(rng, Kind::Vector, d)),
        },
        Kind::Wide => match (r * 6.0) as usize {
            0 => bin("+", same(rng), same(rng)),
            1 => bin("@", same(rng), expr(rng, Kind::Square, d)),
            2 => call(pick(rng, ELEMENTWISE), vec![same(rng)]),
            3 => call(pick(rng, &["softmax", "log_softmax"]), vec![same(rng)]),
            4 => bin("+", same(rng), expr(rng, Kind::Vector, d)),
            _ => bin("*", expr(rng, Kind::Scalar, d), same(rng)),
        },
    }
}

/// A whole case: program text, point, variable, order.
#[derive(Clone, Debug)]
pub struct Case {
    /// The expression tree (without declarations).
    pub body: Node,
    /// The variable differentiated.
    pub wrt: &'static str,
    /// The order.
    pub order: usize,
    /// Seed of the point's values.
    pub seed: u64,
}

impl Case {
    /// A random case.
    pub fn random(rng: &mut Rng) -> Case {
        let kind = match (rng.next() * 10.0) as usize {
            0..=5 => Kind::Scalar,
            6 | 7 => Kind::Vector,
            8 => Kind::Square,
            _ => Kind::Wide,
        };
        let depth = 1 + (rng.next() * 4.0) as usize;
        let body = expr(rng, kind, depth);
        Case::around(body, rng)
    }

    /// `body` with a random variable and order (an expression without
    /// variables gets `a` added, so there is one to differentiate).
    pub fn around(body: Node, rng: &mut Rng) -> Case {
        let mut vars = Vec::new();
        body.vars(&mut vars);
        let body = if vars.is_empty() {
            bin("*", body, Node::Var("a"))
        } else {
            body
        };
        let mut vars = Vec::new();
        body.vars(&mut vars);
        let wrt = vars[(rng.next() * vars.len() as f64) as usize % vars.len()];
        let kind = VARS.iter().find(|v| v.0 == wrt).unwrap().1;
        let max_order = match kind {
            Kind::Scalar => 4,
            Kind::Vector => 3,
            _ => 2,
        };
        let order = (rng.next() * (max_order + 1) as f64) as usize % (max_order + 1);
        Case {
            body,
            wrt,
            order,
            seed: 1 + (rng.next() * 1e9) as u64,
        }
    }

    /// Declarations, then the body.
    pub fn program(&self) -> String {
        let mut vars = Vec::new();
        self.body.vars(&mut vars);
        let mut out = String::new();
        for (name, _, ty) in VARS {
            if vars.contains(name) {
                out.push_str(&format!("{name}: {ty}; "));
            }
        }
        out + &self.body.text()
    }

    /// A point for every variable used (`--at` syntax): n = 3, m = 2.
    pub fn point(&self) -> String {
        let mut rng = Rng(self.seed);
        let mut vars = Vec::new();
        self.body.vars(&mut vars);
        let list = |xs: Vec<f64>| {
            format!(
                "[{}]",
                xs.iter()
                    .map(|x| format!("{x}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let mut parts = Vec::new();
        for (name, kind, _) in VARS {
            if !vars.contains(name) {
                continue;
            }
            let value = match kind {
                Kind::Scalar => format!("{}", rng.uniform(0.2, 1.5)),
                Kind::Vector => list(rng.vec(3, -1.0, 1.0)),
                Kind::Square => format!(
                    "[{}]",
                    (0..3)
                        .map(|_| list(rng.vec(3, -1.0, 1.0)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Kind::Wide => format!(
                    "[{}]",
                    (0..2)
                        .map(|_| list(rng.vec(3, -1.0, 1.0)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            };
            parts.push(format!("{name}={value}"));
        }
        parts.join("; ")
    }

    /// Smaller cases of the same shape: each subtree replaced by one of its
    /// children of the same kind, or by a leaf; lower orders.
    pub fn shrinks(&self) -> Vec<Case> {
        let mut out = Vec::new();
        if self.order > 0 {
            out.push(Case {
                order: self.order - 1,
                ..self.clone()
            });
        }
        for body in shrink_node(&self.body) {
            let mut vars = Vec::new();
            body.vars(&mut vars);
            if vars.contains(&self.wrt) {
                out.push(Case {
                    body,
                    ..self.clone()
                });
            }
        }
        out
    }
}

/// Smaller trees: at each node, its children in place of it (the parser
/// and shape checker sort out which of those still make sense), and the
/// same for every child.
fn shrink_node(n: &Node) -> Vec<Node> {
    let mut out = Vec::new();
    match n {
        Node::Num(_) | Node::Var(_) => {}
        Node::Neg(a) => {
            out.push((**a).clone());
            out.extend(shrink_node(a).into_iter().map(|a| Node::Neg(Box::new(a))));
        }
        Node::Bin(op, a, b) => {
            out.push((**a).clone());
            out.push((**b).clone());
            out.extend(
                shrink_node(a)
                    .into_iter()
                    .map(|a| bin(op, a, (**b).clone())),
            );
            out.extend(
                shrink_node(b)
                    .into_iter()
                    .map(|b| bin(op, (**a).clone(), b)),
            );
        }
        Node::Call(f, args) => {
            out.extend(args.iter().cloned());
            for (i, arg) in args.iter().enumerate() {
                for smaller in shrink_node(arg) {
                    let mut args = args.clone();
                    args[i] = smaller;
                    out.push(call(f, args));
                }
            }
        }
    }
    out
}
