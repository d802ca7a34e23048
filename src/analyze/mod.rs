//! Hessian structure, read off the simplified index form: what a solver
//! needs to know before it factors or inverts a Hessian.
//!
//! The order-2 tensor of a scalar function of a vector `z` is split term by
//! term into a diagonal part (`δ_ij` times a function of `i`), outer
//! products `c·u_i v_j` and sums over rows `Σ_b X_bi X_bj w_b`:
//!
//! * **diagonal plus rank one**, `H = diag(d) − κ u uᵀ` (softmax
//!   cross-entropy, logsumexp): with `t = Σ_i u_i²/d_i` and `γ = κ t`,
//!   `H = D^{1/2}(I − κ w wᵀ)D^{1/2}` for `w = D^{-1/2}u`, so `H` is
//!   positive semidefinite iff `d > 0` and `γ ≤ 1`, singular iff `γ = 1`
//!   (null vector `D⁻¹u`), and `H = SᵀS` with
//!   `S = D^{1/2} − α D^{-1/2} u uᵀ`, `α = (1 − √(1 − γ))/t`;
//!   `(H + λI)⁻¹ g` costs O(n) by Sherman–Morrison;
//! * **`Xᵀ diag(w) X` (plus `λ I`)** (logistic regression, least squares,
//!   a layer's Hessian): positive semidefinite where `w ≥ 0`, definite
//!   when also `λ > 0`;
//! * **diagonal**: elementwise losses.
//!
//! Every claim is derived from the expression (`γ`, `D⁻¹u` and the signs
//! of the factors are simplified like any derivative), and a factorization
//! is checked numerically at a random point. Where none of these shapes
//! fits, the report says so.

use crate::derive::{derive, Derivation, Request};
use crate::diag::{Error, Result};
use crate::ir::{fresh, Atom, Dim, Ix, Poly, Term};
use crate::render::{Printer, Syntax};
use crate::sym::Tensor;

mod check;
mod cumulant;
mod forms;
mod kronecker;
mod sign;
mod vector;

pub(crate) use check::random_point_where;
use cumulant::third_order;
use forms::factor_s;
pub(crate) use forms::{hessian_factor, low_rank, rank_one, t_and_gamma};
use sign::{positive_when, sign, when, Sign};
use vector::{rows, vector};

/// What `symdiff analyze` prints.
pub struct Analysis {
    /// The report, one fact per line.
    pub text: String,
    /// The same as data.
    pub json: serde_json::Value,
}

/// Analyzes the Hessian of `expr` with respect to `wrt` (default: as
/// `derive` chooses).
pub fn analyze(expr: &str, wrt: Option<&str>) -> Result<Analysis> {
    // Order 3 too, for the structure of the third derivative; order 2
    // alone when the third is refused as too large.
    let mut req = Request::new(expr, 3);
    req.wrt = wrt.map(str::to_string);
    let d = match derive(&req) {
        Ok(d) => d,
        Err(_) => {
            req.order = 2;
            derive(&req)?
        }
    };
    crate::budget::run(req.deadline, || analyze_derivation(&d))
}

fn analyze_derivation(d: &Derivation) -> Result<Analysis> {
    let h = &d.orders[2];
    if !h.value_idx.is_empty() {
        return Err(Error::new(
            "analyze looks at the Hessian of a scalar: this expression's value has indices",
        )
        .with_note("reduce it to a number first, e.g. with sum(…)"));
    }
    let mut names = d.names();
    let (i, j) = match h.wrt_dims.len() {
        1 => (h.group_indices(0)[0], h.group_indices(1)[0]),
        _ => (0, 0),
    };
    let mut r = Report {
        lines: Vec::new(),
        json: serde_json::Map::new(),
    };
    r.line("f", &d.expr_text());
    let shape = d.at_order(2).symbolic_shape();
    r.line(
        "Hessian",
        &format!("with respect to {} (shape [{}])", d.wrt, shape.join(", ")),
    );
    {
        let mut show = |p: &Poly| show_poly(p, &mut names);
        match h.wrt_dims.len() {
            0 => scalar(h, &mut r, &mut show),
            1 => {
                vector(d, h, i, j, &mut r, &mut show);
                third_order(d, &mut r, &mut show);
            }
            _ => {
                let found = {
                    let mut show = |p: &Poly| show_poly(p, &mut names);
                    rows(d, h, &mut r, &mut show)
                } || kronecker::kronecker(d, h, &mut r, &mut names);
                if !found {
                    r.line(
                        "structure",
                        "none found: a matrix variable's Hessian is analyzed when it is block diagonal over rows or a sum over data rows of Kronecker products (see `derive --order 2`)",
                    );
                    r.json.insert("structure".into(), "none".into());
                }
            }
        }
    }
    let parts: Vec<String> = names
        .parts
        .iter()
        .map(|(n, def, _)| {
            // A row-wise part's definition names itself (`A_ia = …`).
            if def.starts_with(&format!("{n}_")) {
                def.clone()
            } else {
                format!("{n} = {def}")
            }
        })
        .collect();
    if !parts.is_empty() {
        r.lines
            .insert(2, format!("{:<13}{}", "where:", parts.join(", ")));
        r.json.insert(
            "definitions".into(),
            serde_json::Value::Array(parts.into_iter().map(Into::into).collect()),
        );
    }
    r.json.insert("wrt".into(), d.wrt.clone().into());
    Ok(Analysis {
        text: r.lines.join("\n") + "\n",
        json: serde_json::Value::Object(r.json),
    })
}

struct Report {
    lines: Vec<String>,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn line(&mut self, key: &str, text: &str) {
        self.lines.push(format!("{:<13}{text}", format!("{key}:")));
    }
    fn more(&mut self, text: &str) {
        self.lines.push(format!("{:<13}{text}", ""));
    }
}

fn show_poly(p: &Poly, names: &mut crate::render::Names) -> String {
    let mut rec = egg::RecExpr::default();
    crate::compact::display(p).add_to(&mut rec);
    Printer {
        names,
        syntax: Syntax::Text,
        overrides: Default::default(),
    }
    .show(&rec)
}

/// Simplifies a polynomial as derivatives are (identities, then terms
/// combined over common denominators).
pub(crate) fn simplify(p: &Poly) -> Poly {
    let (p, _) = crate::simplify::simplify_poly(
        p,
        &crate::rules::identities(),
        crate::simplify::Limits::default(),
        "analyze",
    );
    crate::simplify::combine_terms(&p)
}

fn scalar(h: &Tensor, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
    let p = h.expanded();
    r.line("structure", &format!("a number: f'' = {}", show(&p)));
    r.json.insert("structure".into(), "scalar".into());
    match sign(&p, show) {
        Sign::Positive { mut conds, nonzero } => {
            conds.extend(nonzero);
            r.line("definite", &positive_when("f'' > 0", &conds));
        }
        Sign::Unknown => r.line(
            "definite",
            "depends on the point (the sign of f'' is not fixed)",
        ),
    }
}

/// The parts of a vector Hessian.
#[derive(Default)]
struct Parts {
    /// `Σ terms · δ_ij`, as a function of `i`.
    diag: Poly,
    /// `c · u_i · v_j` (v written in `i` too).
    outer: Vec<(Poly, Poly, Poly)>,
    /// `Σ_b X_bi X_bj w_b`: matrix name and the weight over a fresh index.
    gram: Vec<(String, Ix, Poly, Dim)>,
    /// Something else.
    other: bool,
}

fn split(terms: &[Term], i: Ix, j: Ix) -> Parts {
    split_rows(terms, i, j, None)
}

/// [`split`] with a spectator index `row` (a batch row every factor may
/// depend on), for one block of a block-diagonal Hessian.
fn split_rows(terms: &[Term], i: Ix, j: Ix, row: Option<Ix>) -> Parts {
    let spectator = |x: &Ix| Some(*x) == row;
    let mut parts = Parts::default();
    for t in crate::matform::merge_row_sums(terms) {
        let is_delta = |f: &crate::ir::Factor| matches!(&*f.atom, Atom::Delta(a, b) if (*a, *b) == (i.min(j), i.max(j)));
        let term = |fs: Vec<crate::ir::Factor>, c: f64| Poly {
            terms: vec![Term {
                factors: fs,
                coef: crate::ir::Real(c),
            }],
        };
        if t.factors.iter().any(is_delta) {
            let rest: Vec<_> = t.factors.iter().filter(|f| !is_delta(f)).cloned().collect();
            if rest
                .iter()
                .all(|f| f.atom.free().iter().all(|x| *x == i || spectator(x)))
            {
                parts.diag = parts.diag.add(&term(rest, t.coef.0));
            } else {
                parts.other = true;
            }
            continue;
        }
        let (mut c, mut u, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let mut both = Vec::new();
        for f in &t.factors {
            let free = f.atom.free();
            if free.iter().all(spectator) {
                c.push(f.clone());
            } else if free.iter().all(|x| *x == i || spectator(x)) {
                u.push(f.clone());
            } else if free.iter().all(|x| *x == j || spectator(x)) {
                v.push(f.clone());
            } else {
                both.push(f.clone());
            }
        }
        match both.as_slice() {
            [] => parts
                .outer
                .push((term(c, t.coef.0), term(u, 1.0), term(v, 1.0).rename(j, i))),
            [f] if u.is_empty() && v.is_empty() && f.exp.0 == 1.0 => match gram(&f.atom, i, j, &[])
            {
                Some((x, k, w, dim)) => {
                    let scale = term(c, t.coef.0);
                    parts.gram.push((x, k, w.mul(&scale), dim))
                }
                None => parts.other = true,
            },
            _ => parts.other = true,
        }
    }
    parts
}

/// `Σ_b X_bi X_bj w_b` → (X, b, w_b, range of b).
/// The weight may also depend on the indices in `others` (a Kronecker
/// block's own indices).
fn gram(a: &Atom, i: Ix, j: Ix, others: &[Ix]) -> Option<(String, Ix, Poly, Dim)> {
    let Atom::Sum { ix, dim, body } = a else {
        return None;
    };
    let b = fresh();
    let body = body.rename(*ix, b);
    let mut name: Option<String> = None;
    let mut weight = Vec::new();
    for t in &body.terms {
        let mut found = (false, false);
        let mut rest = Vec::new();
        for f in &t.factors {
            match &*f.atom {
                Atom::Var { name: n, idx } if f.exp.0 == 1.0 && idx.len() == 2 && idx[0] == b => {
                    if name.as_deref().is_some_and(|x| x != &**n) {
                        return None;
                    }
                    if idx[1] == i && !found.0 {
                        found.0 = true;
                        name = Some(n.to_string());
                        continue;
                    }
                    if idx[1] == j && !found.1 {
                        found.1 = true;
                        name = Some(n.to_string());
                        continue;
                    }
                    rest.push(f.clone());
                }
                _ => rest.push(f.clone()),
            }
        }
        if found != (true, true) {
            return None;
        }
        if rest
            .iter()
            .any(|f| f.atom.free().iter().any(|x| *x != b && !others.contains(x)))
        {
            return None;
        }
        weight.push(Term {
            factors: rest,
            coef: t.coef,
        });
    }
    Some((name?, b, Poly::from_terms(weight), dim.clone()))
}
