//! The explanation's expressions: a derivative written with its atoms'
//! derivatives left unevaluated (`∂logsumexp(z)/∂z_i`), and the rules that
//! take them one kind of atom at a time.

use std::sync::Arc;

use super::show::show_poly;
use crate::diag::Result;
use crate::ir::{fresh, Atom, Dim, Fun, Ix, Poly};
use crate::render::Names;

/// An expression with unevaluated derivatives `∂atom/∂w[J]`.
#[derive(Clone)]
pub(super) enum Ex {
    /// An evaluated piece.
    P(Poly),
    /// `∂atom/∂w[J]`, not yet taken.
    D(Arc<Atom>),
    /// A sum of parts.
    Add(Vec<Ex>),
    /// `c · Π parts`.
    Mul(f64, Vec<Ex>),
    /// `Σ_k body`.
    Sum(Ix, Dim, Box<Ex>),
}

/// The kind of atom a derivative rule applies to.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Var,
    Func(Fun),
    Group,
    Pow,
    Sum,
    Softmax,
    Lse,
    Constant,
}

pub(super) fn kind_of(a: &Atom) -> Kind {
    match a {
        Atom::Var { .. } => Kind::Var,
        Atom::Func(f, _) => Kind::Func(*f),
        Atom::Group(_) => Kind::Group,
        Atom::Pow(..) => Kind::Pow,
        Atom::Sum { .. } => Kind::Sum,
        Atom::Softmax { .. } => Kind::Softmax,
        Atom::Lse { .. } => Kind::Lse,
        Atom::Delta(..) | Atom::Dim(_) => Kind::Constant,
    }
}

/// What differentiates one order: the variable, its new indices, and the
/// names everything prints with.
pub(super) struct Ctx<'a> {
    pub(super) wrt: &'a str,
    pub(super) j: Vec<Ix>,
    pub(super) names: &'a mut Names,
}

/// The rule that takes the derivative of an atom of `kind`, and its
/// identity.
pub(super) fn rule_of(kind: Kind, ctx: &mut Ctx) -> (String, Option<String>) {
    let w = ctx.wrt;
    let j: Vec<String> = ctx.j.iter().map(|i| ctx.names.name_of(*i)).collect();
    let jn = j.join("");
    match kind {
        Kind::Var if j.is_empty() => (
            "derivative of a variable".into(),
            Some(format!("∂{w}/∂{w} = 1")),
        ),
        Kind::Var => {
            let (a, deltas) = match j.as_slice() {
                [x] => ("a".to_string(), format!("δ_a{x}")),
                _ => (
                    "ab".to_string(),
                    j.iter()
                        .zip(["a", "b", "c"])
                        .map(|(x, y)| format!("δ_{y}{x}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            };
            (
                "derivative of a variable".into(),
                Some(format!("∂{w}_{a}/∂{w}_{jn} = {deltas}")),
            )
        }
        Kind::Func(f) => {
            let u = Poly::var("u", vec![]);
            let mut scratch = Names::new(&[], &Default::default());
            scratch.naming = false;
            let (fp, _) = show_poly(&crate::lower::fun_derivative(f, &u), &mut scratch);
            let name = f.name();
            (
                format!("chain rule through {name}"),
                Some(format!("∂{name}(u) = {fp}·∂u")),
            )
        }
        Kind::Group => ("sum rule".into(), Some("∂(a + b) = ∂a + ∂b".into())),
        Kind::Pow => (
            "power rule".into(),
            Some("∂(a^b) = a^b·(∂b·log(a) + b·∂a/a)".into()),
        ),
        Kind::Sum => (
            "the derivative passes into a sum".into(),
            Some("∂(Σ_a g_a) = Σ_a ∂g_a".into()),
        ),
        Kind::Softmax => (
            "derivative of softmax".into(),
            Some("∂softmax(b)_a = softmax(b)_a·(∂b_a − Σ_m softmax(b)_m·∂b_m)".into()),
        ),
        Kind::Lse => (
            "chain rule through logsumexp".into(),
            Some("∂logsumexp(b) = Σ_m softmax(b)_m·∂b_m".into()),
        ),
        Kind::Constant => ("constants".into(), Some("∂c = 0".into())),
    }
}

/// The identities of the e-graph's rules, by name.
pub(super) fn identity_of(rule: &str) -> Option<&'static str> {
    Some(match rule {
        "softmax-sum-to-one" => "Σ_i softmax(b)_i = 1",
        "softmax-from-exp-ratio" => "exp(b_i)/Σ_k exp(b_k) = softmax(b)_i",
        "softmax-log-of-softmax" => "log(softmax(b)_i) = b_i − logsumexp(b)",
        "logexp-log-of-exp" => "log(exp(x)) = x",
        "logexp-log-sum-exp" => "log(Σ_k exp(b_k)) = logsumexp(b)",
        "logexp-exp-of-log" => "exp(log(x)) = x for x > 0",
        "logexp-exp-of-lse" => "exp(logsumexp(b)) = Σ_k exp(b_k)",
        "factor-common-scalar" => "a·x + a·y = a·(x + y)",
        _ => return None,
    })
}

/// `∂p` by the sum and product rules, the atoms' derivatives left
/// unevaluated.
pub(super) fn d_poly(p: &Poly, wrt: &str) -> Ex {
    let mut out = Vec::new();
    for t in &p.terms {
        for (n, f) in t.factors.iter().enumerate() {
            if !f.atom.uses_var(wrt) {
                continue;
            }
            let e = f.exp.0;
            let mut rest = Poly::atom(f.atom.clone()).powf(e - 1.0);
            for (m, g) in t.factors.iter().enumerate() {
                if m != n {
                    rest = rest.mul(&Poly::atom(g.atom.clone()).powf(g.exp.0));
                }
            }
            out.push(Ex::Mul(
                t.coef.0 * e,
                vec![Ex::P(rest), Ex::D(f.atom.clone())],
            ));
        }
    }
    Ex::Add(out)
}

/// The kind of the outermost unevaluated derivative (fewest sums around
/// it; the first in printing order among those).
pub(super) fn first_kind(ex: &Ex) -> Option<Kind> {
    fn walk(ex: &Ex, depth: usize, best: &mut Option<(usize, Kind)>) {
        match ex {
            Ex::P(_) => {}
            Ex::D(a) => {
                if best.is_none_or(|(d, _)| depth < d) {
                    *best = Some((depth, kind_of(a)));
                }
            }
            Ex::Add(xs) | Ex::Mul(_, xs) => xs.iter().for_each(|x| walk(x, depth, best)),
            Ex::Sum(_, _, b) => walk(b, depth + 1, best),
        }
    }
    let mut best = None;
    walk(ex, 0, &mut best);
    best.map(|(_, k)| k)
}

/// Takes every unevaluated derivative of atoms of `kind`, one level.
pub(super) fn resolve(ex: &Ex, kind: Kind, ctx: &mut Ctx) -> Ex {
    match ex {
        Ex::P(_) => ex.clone(),
        Ex::D(a) if kind_of(a) == kind => take(a, ctx),
        Ex::D(_) => ex.clone(),
        Ex::Add(xs) => Ex::Add(xs.iter().map(|x| resolve(x, kind, ctx)).collect()),
        Ex::Mul(c, xs) => Ex::Mul(*c, xs.iter().map(|x| resolve(x, kind, ctx)).collect()),
        Ex::Sum(k, d, b) => Ex::Sum(*k, d.clone(), Box::new(resolve(b, kind, ctx))),
    }
}

/// A new bound index for a sum the explanation writes, named for printing.
pub(super) fn new_index(ctx: &mut Ctx) -> Ix {
    let k = fresh();
    ctx.names.add_free(k, &[]);
    k
}

/// `∂a` one level down: the atom's own rule, its arguments' derivatives
/// left unevaluated.
pub(super) fn take(a: &Arc<Atom>, ctx: &mut Ctx) -> Ex {
    let wrt = ctx.wrt;
    match &**a {
        Atom::Var { name, idx } => {
            if &**name != wrt {
                return Ex::P(Poly::zero());
            }
            Ex::P(
                idx.iter()
                    .zip(&ctx.j)
                    .fold(Poly::constant(1.0), |acc, (&i, &jj)| {
                        acc.mul(&Poly::delta(i, jj))
                    }),
            )
        }
        Atom::Delta(..) | Atom::Dim(_) => Ex::P(Poly::zero()),
        Atom::Func(f, u) => Ex::Mul(
            1.0,
            vec![Ex::P(crate::lower::fun_derivative(*f, u)), d_poly(u, wrt)],
        ),
        Atom::Group(p) => d_poly(p, wrt),
        Atom::Pow(b, e) => {
            let itself = Poly::pow_sym(b.clone(), e.clone());
            let log_b = Poly::func(Fun::Log, b.clone());
            Ex::Mul(
                1.0,
                vec![
                    Ex::P(itself),
                    Ex::Add(vec![
                        Ex::Mul(1.0, vec![d_poly(e, wrt), Ex::P(log_b)]),
                        Ex::Mul(1.0, vec![Ex::P(e.mul(&b.powf(-1.0))), d_poly(b, wrt)]),
                    ]),
                ],
            )
        }
        Atom::Sum { ix, dim, body } => {
            let k = new_index(ctx);
            Ex::Sum(k, dim.clone(), Box::new(d_poly(&body.rename(*ix, k), wrt)))
        }
        Atom::Softmax { ix, dim, body, at } => {
            // ∂p_at = p_at·(∂x_at − Σ_m p_m ∂x_m)
            let k = fresh();
            let open = body.rename(*ix, k);
            Ex::Mul(
                1.0,
                vec![
                    Ex::P(Poly::atom(a.clone())),
                    Ex::Add(vec![
                        d_poly(&open.rename(k, *at), wrt),
                        Ex::Mul(-1.0, vec![mean_derivative(&open, k, dim, ctx)]),
                    ]),
                ],
            )
        }
        // ∂ logsumexp(x) = Σ_m p_m ∂x_m
        Atom::Lse { ix, dim, body } => {
            let k = fresh();
            mean_derivative(&body.rename(*ix, k), k, dim, ctx)
        }
    }
}

/// `Σ_m p_m ∂x_m` for the entries `x_k` of `open` (free in `k`) and
/// `p = softmax(x)`: the derivative's mean under the softmax.
fn mean_derivative(open: &Poly, k: Ix, dim: &Dim, ctx: &mut Ctx) -> Ex {
    let m = new_index(ctx);
    let k2 = fresh();
    let p_m = Poly::softmax(k2, dim, open.rename(k, k2), m);
    Ex::Sum(
        m,
        dim.clone(),
        Box::new(Ex::Mul(
            1.0,
            vec![Ex::P(p_m), d_poly(&open.rename(k, m), ctx.wrt)],
        )),
    )
}

/// Drops zeros, flattens nested sums and products, and multiplies the
/// evaluated factors of a product into one.
pub(super) fn tidy(ex: Ex) -> Ex {
    match ex {
        Ex::Add(xs) => {
            let mut out = Vec::new();
            for x in xs.into_iter().map(tidy) {
                match x {
                    Ex::Add(ys) => out.extend(ys),
                    x if is_zero(&x) => {}
                    x => out.push(x),
                }
            }
            match out.len() {
                0 => Ex::P(Poly::zero()),
                1 => out.pop().expect("one"),
                _ => Ex::Add(out),
            }
        }
        Ex::Mul(c, xs) => {
            let mut c = c;
            let mut known = Poly::constant(1.0);
            let mut rest = Vec::new();
            for x in xs.into_iter().map(tidy) {
                // Deltas stay factors of their own until they are
                // contracted (multiplied in, they would rename what they
                // multiply).
                match x {
                    Ex::P(p) if !only_deltas(&p) => known = known.mul(&p),
                    Ex::Mul(c2, ys) => {
                        c *= c2;
                        for y in ys {
                            match y {
                                Ex::P(p) if !only_deltas(&p) => known = known.mul(&p),
                                y => rest.push(y),
                            }
                        }
                    }
                    x => rest.push(x),
                }
            }
            if c == 0.0 || known.is_zero() {
                return Ex::P(Poly::zero());
            }
            if rest.is_empty() {
                return Ex::P(known.scale(c));
            }
            // A lone number folds into the coefficient.
            if let Some(v) = known.as_constant() {
                c *= v;
            } else {
                rest.insert(0, Ex::P(known));
            }
            if c == 1.0 && rest.len() == 1 {
                return rest.pop().expect("one");
            }
            Ex::Mul(c, rest)
        }
        Ex::Sum(k, d, b) => {
            let b = tidy(*b);
            if is_zero(&b) {
                return Ex::P(Poly::zero());
            }
            // A sum stays a sum until the step that multiplies out (its
            // deltas are contracted there, as a step of their own).
            Ex::Sum(k, d, Box::new(b))
        }
        other => other,
    }
}

pub(super) fn only_deltas(p: &Poly) -> bool {
    matches!(p.terms.as_slice(), [t] if t.coef.0 == 1.0
        && !t.factors.is_empty()
        && t.factors.iter().all(|f| matches!(&*f.atom, Atom::Delta(..))))
}

pub(super) fn is_zero(ex: &Ex) -> bool {
    matches!(ex, Ex::P(p) if p.is_zero())
}

/// The value of an expression: unevaluated derivatives taken by
/// [`crate::diff::diff`].
pub(super) fn to_poly(ex: &Ex, wrt: &str, j: &[Ix]) -> Result<Poly> {
    Ok(match ex {
        Ex::P(p) => p.clone(),
        Ex::D(a) => crate::diff::diff(&Poly::atom(a.clone()), wrt, j)?,
        Ex::Add(xs) => {
            let mut out = Poly::zero();
            for x in xs {
                out = out.add(&to_poly(x, wrt, j)?);
            }
            out
        }
        Ex::Mul(c, xs) => {
            let mut out = Poly::constant(*c);
            for x in xs {
                out = out.mul(&to_poly(x, wrt, j)?);
            }
            out
        }
        Ex::Sum(k, d, b) => Poly::sum_over(*k, d, &to_poly(b, wrt, j)?),
    })
}
