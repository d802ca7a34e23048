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
use crate::ir::{fresh, Atom, Dim, Fun, Ix, Poly, Term};
use crate::render::{Printer, Syntax};
use crate::sym::Tensor;

mod check;
mod kronecker;

use check::check_factor;
pub(crate) use check::random_point_where;

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

fn vector(
    d: &Derivation,
    h: &Tensor,
    i: Ix,
    j: Ix,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let parts = split(&h.expanded().terms, i, j);
    let dim = h.wrt_dims[0].clone();
    rank_structure(d, h, parts, i, j, &dim, None, r, show);
}

/// The Hessian of a matrix variable whose rows do not interact (a batch:
/// `Z: mat[m, n]` with a loss per row): every term has `δ` between the two
/// row indices, so it is block diagonal with one n×n block per row, and
/// each block is analyzed as a vector's Hessian with the row as a
/// spectator index.
fn rows(d: &Derivation, h: &Tensor, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) -> bool {
    let Some((block, r1, c1, c2)) = row_block(h) else {
        return false;
    };
    let parts = split_rows(&block, c1, c2, Some(r1));
    if parts.other || !parts.gram.is_empty() {
        return false;
    }
    r.line(
        "blocks",
        &format!(
            "block diagonal over the rows of {}: one {}×{} block per row, rows do not interact",
            d.wrt, h.wrt_dims[1], h.wrt_dims[1]
        ),
    );
    r.json.insert("blocks".into(), "rows".into());
    let dim = h.wrt_dims[1].clone();
    rank_structure(
        d,
        h,
        parts,
        c1,
        c2,
        &dim,
        Some((r1, h.wrt_dims[0].clone())),
        r,
        show,
    );
    true
}

#[allow(clippy::too_many_arguments)]
fn rank_structure(
    d: &Derivation,
    h: &Tensor,
    parts: Parts,
    i: Ix,
    j: Ix,
    dim: &Dim,
    row: Option<(Ix, Dim)>,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let dim = dim.clone();
    if parts.other && row.is_none() && !h.expanded().uses_var(&d.wrt) {
        constant(d, r);
        return;
    }
    if parts.other || (parts.outer.len() > 1 && !parts.gram.is_empty()) {
        r.line(
            "structure",
            "none found: the Hessian is not diagonal plus low rank nor Xᵀ D X (see `derive --order 2`)",
        );
        r.json.insert("structure".into(), "none".into());
        return;
    }
    if !parts.gram.is_empty() {
        gram_report(&parts, r, show);
        return;
    }
    // Outer products with the same vectors are one: c·u uᵀ.
    let mut rank_one: Vec<(Poly, Poly)> = Vec::new(); // (c, u) with u = v
    let mut asymmetric = false;
    for (c, u, v) in &parts.outer {
        if u == v {
            match rank_one.iter_mut().find(|(_, w)| w == u) {
                Some(e) => e.0 = e.0.add(c),
                None => rank_one.push((c.clone(), u.clone())),
            }
        } else {
            asymmetric = true;
        }
    }
    let diag = parts.diag.clone();
    if parts.outer.is_empty() && diag.is_empty() {
        r.line(
            "structure",
            &format!("zero: the Hessian vanishes (f is affine in {})", d.wrt),
        );
        r.json.insert("structure".into(), "zero".into());
        return;
    }
    if parts.outer.is_empty() {
        r.line(
            "structure",
            &format!("diagonal: H = diag(d) with d_i = {}", show(&diag)),
        );
        r.json.insert("structure".into(), "diagonal".into());
        r.json.insert("d".into(), show(&diag).into());
        match sign(&diag, show) {
            Sign::Positive { conds, nonzero } if nonzero.is_empty() => {
                r.line("definite", &positive_when("positive definite", &conds));
            }
            Sign::Positive { conds, nonzero } => {
                r.line(
                    "definite",
                    &format!(
                        "{}; definite where {}",
                        positive_when("positive semidefinite", &conds),
                        nonzero.join(" and ")
                    ),
                );
            }
            Sign::Unknown => r.line("definite", "depends on the point (the signs of d_i)"),
        }
        r.line("newton", "(H + λI)⁻¹ g = g / (d + λ), entry by entry, O(n)");
        return;
    }
    // Σ c·u vᵀ has its columns in the span of the u's (and rows in the
    // v's): its rank is at most the number of distinct ones.
    let distinct = |pick: fn(&(Poly, Poly, Poly)) -> &Poly| {
        let mut seen: Vec<&Poly> = Vec::new();
        for o in &parts.outer {
            if !seen.contains(&pick(o)) {
                seen.push(pick(o));
            }
        }
        seen.len()
    };
    let rank = if asymmetric {
        distinct(|o| &o.1).min(distinct(|o| &o.2))
    } else {
        rank_one.len()
    };
    if asymmetric || rank_one.len() != 1 {
        let d_text = show(&diag);
        let d_text = if d_text.chars().count() > 200 {
            "(long: see `derive --order 2`)".to_string()
        } else {
            d_text
        };
        r.line(
            "structure",
            &format!("diagonal plus rank at most {rank}: H = diag(d) + Σ c·u vᵀ, d_i = {d_text}"),
        );
        r.json
            .insert("structure".into(), "diagonal plus low rank".into());
        r.json.insert("rank_of_update".into(), rank.into());
        r.line(
            "newton",
            "(H + λI)⁻¹ g by the Woodbury identity, O(n·r²) (`codegen` emits it as f_newton where r ≤ 2)",
        );
        return;
    }
    // H = D − κ u uᵀ.
    let (c, u) = rank_one.pop().expect("one term");
    if diag.is_empty() {
        pure_rank_one(&simplify(&c), &u, &dim, row.as_ref(), r, show);
        return;
    }
    let kappa = simplify(&c.neg());
    r.line("structure", "diagonal plus rank one: H = diag(d) − κ u uᵀ");
    if row.is_some() {
        r.more(&format!(
            "in each row's block: d = {},  u = {},  κ = {} (the row index is the first)",
            show(&diag),
            show(&u),
            show(&kappa)
        ));
    } else {
        r.more(&format!(
            "d_i = {},  u_i = {},  κ = {}",
            show(&diag),
            show(&u),
            show(&kappa)
        ));
    }
    r.json
        .insert("structure".into(), "diagonal plus rank one".into());
    r.json.insert("d".into(), show(&diag).into());
    r.json.insert("u".into(), show(&u).into());
    r.json.insert("kappa".into(), show(&kappa).into());
    let (t, gamma) = t_and_gamma(&diag, &u, &kappa, i, &dim);
    let null = simplify(&u.mul(&diag.powf(-1.0)));
    let d_sign = sign(&diag, show);
    let kappa_sign = sign(&kappa, show);
    r.line(
        "γ",
        &format!(
            "κ·Σ_i u_i²/d_i = {} (H is singular iff γ = 1; PSD iff d > 0 and γ ≤ 1)",
            show(&gamma)
        ),
    );
    r.json.insert("gamma".into(), show(&gamma).into());
    let n = dim.to_string();
    match gamma.as_constant() {
        Some(1.0) => {
            let conds = match (&d_sign, &kappa_sign) {
                (Sign::Positive { conds, nonzero }, _) => {
                    conds.iter().chain(nonzero).cloned().collect()
                }
                _ => vec!["d_i ≠ 0".to_string()],
            };
            let (rank, json_rank) = match &row {
                None => (format!("{n} − 1"), format!("{n} - 1")),
                Some((_, m)) => (
                    format!("{m}·({n} − 1), {n} − 1 per block"),
                    format!("{m}*({n} - 1)"),
                ),
            };
            r.line(
                "rank",
                &format!(
                    "{rank}{}: γ = 1 for every point, so H is singular",
                    when(&conds)
                ),
            );
            r.json.insert("rank".into(), json_rank.into());
            let null_text = if row.is_some()
                && null
                    .free()
                    .iter()
                    .all(|x| Some(*x) == row.as_ref().map(|r| r.0))
            {
                format!(
                    "spanned by the rows' all-ones vectors (one per row: {} changes nothing when a row is shifted by a constant)",
                    "f"
                )
            } else if null.free().is_empty() {
                let why = if d.shift_invariant() {
                    format!(
                        ": f does not change along 1 ({} → {} + c·1; softmax is shift-invariant)",
                        d.wrt, d.wrt
                    )
                } else {
                    String::new()
                };
                format!("spanned by 1, the all-ones vector (H·1 = 0){why}")
            } else {
                format!("spanned by D⁻¹u, entries {}", show(&null))
            };
            r.line("null space", &null_text);
            r.json.insert("null_space".into(), null_text.clone().into());
            if let Sign::Positive { conds, .. } = &d_sign {
                r.line(
                    "definite",
                    &format!(
                        "positive semidefinite{}, never positive definite",
                        when(conds)
                    ),
                );
                r.json
                    .insert("definite".into(), "positive semidefinite".into());
            }
            r.line(
                "invertible",
                "add λ > 0 (H + λI is positive definite), or fix one coordinate (optimize over n − 1 of them, e.g. the last logit at 0)",
            );
        }
        Some(g) if g < 1.0 => {
            r.line("rank", &format!("{n} (γ = {g} < 1)"));
            if let Sign::Positive { conds, nonzero } = &d_sign {
                let all: Vec<String> = conds.iter().chain(nonzero).cloned().collect();
                r.line("definite", &positive_when("positive definite", &all));
            }
        }
        _ => {
            r.line("rank", &format!("{n} where γ ≠ 1, {n} − 1 where γ = 1"));
        }
    }
    // S with H = SᵀS: S_ij = sqrt(d_i) δ_ij − α u_i u_j / sqrt(d_i).
    if let Some(s) = factor_s(&diag, &u, &t, &gamma, i, j) {
        let check = if row.is_some() {
            None
        } else {
            check_factor(d, h, &s, i, j)
        };
        let label = if row.is_some() {
            "each block is SᵀS with S ="
        } else {
            "H = SᵀS with S_ij ="
        };
        r.line("factor", &format!("{label} {}", show(&s)));
        match check {
            Some(err) => r.more(&format!(
                "(checked at a random point with {n} = 5: largest difference {})",
                check::size(err)
            )),
            None if row.is_some() => r.more("(per row block)"),
            None => r.more("(not checked numerically: the point could not be built)"),
        }
        r.json.insert("factor_S".into(), show(&s).into());
        r.json.insert(
            "factor_checked_error".into(),
            check.map_or(serde_json::Value::Null, Into::into),
        );
    }
    r.line(
        "newton",
        "(H + λI)⁻¹ g in O(n) by Sherman–Morrison: x = g/(d + λ) + κ (uᵀ(g/(d + λ))) / (1 − κ uᵀ(u/(d + λ))) · u/(d + λ)",
    );
}

/// A Hessian free of the variable: `f` is quadratic, one Newton step is
/// exact, and the one matrix is factored once.
fn constant(d: &Derivation, r: &mut Report) {
    let matrix = d
        .at_order(2)
        .report(Syntax::Text, crate::simplify::Limits::default())
        .0
        .lines()
        .find_map(|l| l.strip_prefix("matrix form: ").map(str::to_string));
    let h = matrix.map_or_else(
        || "(see `derive --order 2`)".to_string(),
        |m| format!("= {m}"),
    );
    r.line(
        "structure",
        &format!(
            "constant: H {h} at every {} (f is quadratic in {})",
            d.wrt, d.wrt
        ),
    );
    r.json.insert("structure".into(), "constant".into());
    r.line(
        "definite",
        "that of this one symmetric matrix (its eigenvalues), the same everywhere",
    );
    r.line(
        "newton",
        "one step is exact: x − H⁻¹g is the stationary point from any x; factor H once (Cholesky where it is definite)",
    );
}

/// `H = c·u uᵀ` with no diagonal (least squares in its data, a function of
/// one projection `uᵀx`): rank one, null space `u^⊥`, `S = sqrt(c)·uᵀ`.
fn pure_rank_one(
    c: &Poly,
    u: &Poly,
    dim: &Dim,
    row: Option<&(Ix, Dim)>,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let block = if row.is_some() {
        " in each row's block"
    } else {
        ""
    };
    r.line(
        "structure",
        &format!(
            "rank one{block}: H = c·u uᵀ, u = {}, c = {} (f depends on the variable only through uᵀ·it)",
            show(u),
            show(c)
        ),
    );
    r.json.insert("structure".into(), "rank one".into());
    r.json.insert("u".into(), show(u).into());
    r.json.insert("c".into(), show(c).into());
    let (rank, json_rank) = match row {
        None => ("1".to_string(), "1".to_string()),
        Some((_, m)) => (format!("{m}, one per block"), m.to_string()),
    };
    r.line("rank", &format!("{rank} (where c ≠ 0 and u ≠ 0)"));
    r.json.insert("rank".into(), json_rank.into());
    r.line(
        "null space",
        &format!(
            "every direction orthogonal to u (dimension {dim} − 1{})",
            if row.is_some() { " per block" } else { "" }
        ),
    );
    match sign(c, show) {
        Sign::Positive { conds, .. } => {
            r.line(
                "definite",
                &format!(
                    "positive semidefinite{}, never definite when {dim} > 1",
                    when(&conds)
                ),
            );
            r.json
                .insert("definite".into(), "positive semidefinite".into());
            r.line(
                "factor",
                &format!("H = SᵀS with S = sqrt(c)·uᵀ (one row){block}"),
            );
        }
        Sign::Unknown => r.line("definite", "depends on the sign of c"),
    }
    r.line(
        "newton",
        "(H + λI)⁻¹ g = (g − c·(uᵀg)/(λ + c·uᵀu)·u)/λ, O(n), for λ > 0",
    );
}

/// The third derivative as a cumulant tensor, where it is one: every
/// symmetry class is one set partition type π of `{i, j, k}` with a
/// softmax `p` on each block, the same scalar factor `c` throughout, and
/// coefficient `c·(−1)^{|π|−1}(|π|−1)!`. Then `D³f = c·κ₃(p)`, the third
/// cumulant tensor of a categorical distribution with probabilities `p`
/// (checked class by class, not assumed).
fn third_order(d: &Derivation, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
    let Some(t) = d.orders.get(3) else { return };
    if !t.symmetric || t.classes.len() != 3 {
        return;
    }
    let global = &t.classes[0].global;
    let mut softmax: Option<&Atom> = None;
    for c in &t.classes {
        if c.global != *global {
            return;
        }
        for b in &c.blocks {
            let [f] = b.atoms.as_slice() else { return };
            let Atom::Softmax { ix, body, dim, .. } = &*f.atom else {
                return;
            };
            if f.exp.0 != 1.0 {
                return;
            }
            match softmax {
                Some(Atom::Softmax {
                    ix: x,
                    body: y,
                    dim: z,
                    ..
                }) if (x, y, z) != (ix, body, dim) => return,
                _ => softmax = Some(&*f.atom),
            }
        }
        let blocks = c.blocks.len() as i32;
        let want =
            if blocks % 2 == 1 { 1.0 } else { -1.0 } * crate::sym::factorial(blocks as usize - 1);
        if c.term.coef.0 != want {
            return;
        }
    }
    let scale = Poly {
        terms: vec![Term {
            factors: global.clone(),
            coef: crate::ir::Real(1.0),
        }],
    };
    let c = if scale.as_constant() == Some(1.0) {
        String::new()
    } else {
        format!("{}·", show(&scale))
    };
    r.line(
        "third order",
        &format!(
            "D³f = {c}κ₃(p), the third cumulant tensor of Categorical(p): Σ over partitions π of {{i, j, k}} of (−1)^(|π|−1)·(|π|−1)!·Π_B p_B δ_B (as `derive --order 3` prints)"
        ),
    );
    r.json.insert("third_order".into(), "cumulant".into());
}

/// `H = diag(d) + L C Rᵀ` for a vector variable: the diagonal, the
/// distinct left vectors `L`, the distinct right vectors `R` (both in the
/// first index `i`) and the coefficients `C` (`|L| × |R|`), when there
/// are at most `max` of each and nothing else.
pub(crate) struct LowRank {
    pub d: Poly,
    pub left: Vec<Poly>,
    pub right: Vec<Poly>,
    pub c: Vec<Vec<Poly>>,
    pub i: Ix,
    pub dim: Dim,
}

/// The diagonal-plus-low-rank form of a vector Hessian (`max` distinct
/// vectors a side at most).
pub(crate) fn low_rank(h: &Tensor, max: usize) -> Option<LowRank> {
    if !h.value_idx.is_empty() || h.order() != 2 || h.wrt_dims.len() != 1 {
        return None;
    }
    let (i, j) = (h.group_indices(0)[0], h.group_indices(1)[0]);
    let parts = split(&h.expanded().terms, i, j);
    if parts.other || !parts.gram.is_empty() || parts.outer.is_empty() {
        return None;
    }
    let (mut left, mut right): (Vec<Poly>, Vec<Poly>) = (Vec::new(), Vec::new());
    let mut entries = Vec::new();
    for (c, u, v) in &parts.outer {
        let l = left.iter().position(|x| x == u).unwrap_or_else(|| {
            left.push(u.clone());
            left.len() - 1
        });
        let r = right.iter().position(|x| x == v).unwrap_or_else(|| {
            right.push(v.clone());
            right.len() - 1
        });
        entries.push((l, r, c.clone()));
    }
    if left.len() > max || right.len() > max {
        return None;
    }
    let mut c = vec![vec![Poly::zero(); right.len()]; left.len()];
    for (l, r, x) in entries {
        c[l][r] = c[l][r].add(&x);
    }
    Some(LowRank {
        d: parts.diag,
        left,
        right,
        c,
        i,
        dim: h.wrt_dims[0].clone(),
    })
}

/// `H = diag(d) − κ u uᵀ`, for a vector variable or, with `row` set, for
/// each row's block of a batch (the row a spectator index of `d`, `u`, `κ`).
pub(crate) struct RankOne {
    /// The diagonal, in `i` (and the row).
    pub d: Poly,
    /// The vector of the update.
    pub u: Poly,
    /// Its scalar (per row).
    pub kappa: Poly,
    /// The index within a block, and its length.
    pub i: Ix,
    /// The block's length.
    pub dim: Dim,
    /// The row index and the number of rows, for a batch.
    pub row: Option<(Ix, Dim)>,
}

impl RankOne {
    /// The direction `v` of a kernel over the variable's own indices
    /// (`(row, i)` for a batch), and the output indices.
    pub(crate) fn direction(&self) -> (Poly, Vec<(Ix, Dim)>) {
        let dir = crate::kernel_algebra::DIRECTION;
        match &self.row {
            None => (
                Poly::var(dir, vec![self.i]),
                vec![(self.i, self.dim.clone())],
            ),
            Some((r, rows)) => (
                Poly::var(dir, vec![*r, self.i]),
                vec![(*r, rows.clone()), (self.i, self.dim.clone())],
            ),
        }
    }
}

/// The diagonal-plus-rank-one form of the Hessian `h`, if it has one.
pub(crate) fn rank_one(h: &Tensor) -> Option<RankOne> {
    if !h.value_idx.is_empty() || h.order() != 2 {
        return None;
    }
    let (parts, i, dim, row) = match h.wrt_dims.len() {
        1 => {
            let (i, j) = (h.group_indices(0)[0], h.group_indices(1)[0]);
            (
                split(&h.expanded().terms, i, j),
                i,
                h.wrt_dims[0].clone(),
                None,
            )
        }
        2 => {
            let (block, r1, c1, c2) = row_block(h)?;
            (
                split_rows(&block, c1, c2, Some(r1)),
                c1,
                h.wrt_dims[1].clone(),
                Some((r1, h.wrt_dims[0].clone())),
            )
        }
        _ => return None,
    };
    if parts.other || !parts.gram.is_empty() || parts.outer.is_empty() {
        return None;
    }
    let u = parts.outer[0].1.clone();
    let mut total = Poly::zero();
    for (ck, uk, vk) in &parts.outer {
        if *uk != u || *vk != u {
            return None;
        }
        total = total.add(ck);
    }
    Some(RankOne {
        d: parts.diag,
        u,
        kappa: simplify(&total.neg()),
        i,
        dim,
        row,
    })
}

/// The terms of one row's block of a Hessian with respect to a matrix,
/// when every term has `δ` between the two row indices: (terms without
/// that delta, row, column of the first group, column of the second).
fn row_block(h: &Tensor) -> Option<(Vec<Term>, Ix, Ix, Ix)> {
    let (g1, g2) = (h.group_indices(0), h.group_indices(1));
    let (r1, c1, r2, c2) = (g1[0], g1[1], g2[0], g2[1]);
    let key = (r1.min(r2), r1.max(r2));
    let mut block = Vec::new();
    for t in h.expanded().terms {
        let n = t
            .factors
            .iter()
            .position(|f| matches!(&*f.atom, Atom::Delta(a, b) if (*a, *b) == key))?;
        let mut t = t;
        t.factors.remove(n);
        block.push(t);
    }
    Some((block, r1, c1, c2))
}

/// `t = Σ_k u_k²/d_k` and `γ = κ t` of `H = diag(d) − κ u uᵀ` (summed over
/// the block index `i`), simplified: `γ = 1` means `H` is singular.
pub(crate) fn t_and_gamma(d: &Poly, u: &Poly, kappa: &Poly, i: Ix, dim: &Dim) -> (Poly, Poly) {
    let k = fresh();
    let (uk, dk) = (u.rename(i, k), d.rename(i, k));
    let t = simplify(&Poly::sum_over(k, dim, &uk.mul(&uk).mul(&dk.powf(-1.0))));
    let gamma = simplify(&kappa.mul(&t));
    (t, gamma)
}

/// `S` with `H = SᵀS` for `H = diag(d) − κ u uᵀ`, from `t = Σ u²/d` and
/// `γ = κ t` (a number at most 1): `S_ij = sqrt(d_i) δ_ij − α u_i u_j /
/// sqrt(d_i)` with `α = (1 − √(1 − γ))/t`.
fn factor_s(diag: &Poly, u: &Poly, t: &Poly, gamma: &Poly, i: Ix, j: Ix) -> Option<Poly> {
    let g = gamma.as_constant().filter(|g| *g <= 1.0)?;
    let alpha = simplify(&t.powf(-1.0).scale(1.0 - (1.0 - g).sqrt()));
    let sd = diag.powf(0.5);
    Some(simplify(&sd.mul(&Poly::delta(i, j)).sub(
        &alpha.mul(u).mul(&u.rename(i, j)).mul(&diag.powf(-0.5)),
    )))
}

/// `S` with `H = SᵀS` for a diagonal-plus-rank-one Hessian `h`, over its
/// two indices (for `f_hessian_factor`), when `γ` is a number at most 1;
/// for a batch, one factor per row, over `(row, i, j)`.
pub(crate) fn hessian_factor(h: &Tensor) -> Option<(Poly, Vec<(Ix, Dim)>)> {
    let ro = rank_one(h)?;
    let (i, j) = (ro.i, fresh());
    let (t, gamma) = t_and_gamma(&ro.d, &ro.u, &ro.kappa, i, &ro.dim);
    let s = factor_s(&ro.d, &ro.u, &t, &gamma, i, j)?;
    let mut out = vec![(i, ro.dim.clone()), (j, ro.dim)];
    if let Some(row) = ro.row {
        out.insert(0, row);
    }
    Some((s, out))
}

/// Vectors printed with no named parts (a row weight's factors).
struct NoParts;

impl crate::matform::Namer for NoParts {
    fn atom_name(&mut self, _: &Atom) -> Option<String> {
        None
    }
}

fn gram_report(parts: &Parts, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
    let (x, b, _, rows) = &parts.gram[0];
    let same = parts.gram.iter().all(|g| g.0 == *x && g.3 == *rows);
    let mut weight = Poly::zero();
    for (_, bk, wk, _) in &parts.gram {
        weight = weight.add(&wk.rename(*bk, *b));
    }
    let weight = simplify(&weight);
    let lambda = parts.diag.clone();
    // λ·I: a diagonal part that is one number for every entry.
    let lambda_ok = lambda.free().is_empty() && same;
    let wtext =
        crate::matform::vector_text(&weight, *b, &mut NoParts).unwrap_or_else(|| show(&weight));
    let plus = if lambda.is_empty() {
        String::new()
    } else {
        format!(" + {}·I", show(&lambda))
    };
    r.line(
        "structure",
        &format!("H = {x}ᵀ D {x}{plus}, D = diag({wtext}) (one weight per row of {x})"),
    );
    r.json.insert("structure".into(), "X^T D X".into());
    r.json.insert("D".into(), wtext.clone().into());
    r.line(
        "rank",
        &format!("at most the number of rows of {x} with a nonzero weight; full when λ > 0"),
    );
    let mut row_text =
        |p: &Poly| crate::matform::vector_text(p, *b, &mut NoParts).unwrap_or_else(|| "?".into());
    match sign(&weight, &mut row_text) {
        Sign::Positive { conds, .. } => {
            let lam = if lambda.is_empty() || !lambda_ok {
                String::new()
            } else {
                match sign(&lambda, show) {
                    Sign::Positive { .. } => ", definite (the λ part is positive)".into(),
                    Sign::Unknown => String::new(),
                }
            };
            r.line(
                "definite",
                &format!("positive semidefinite{} (D ≥ 0){lam}", when(&conds)),
            );
            r.json
                .insert("definite".into(), "positive semidefinite".into());
        }
        Sign::Unknown => r.line("definite", "depends on the signs of D's entries"),
    }
    r.line(
        "factor",
        &format!(
            "H = SᵀS with S = sqrt(D) {x}{} where D ≥ 0",
            if lambda.is_empty() {
                ""
            } else {
                " stacked over sqrt(λ)·I"
            }
        ),
    );
    r.line(
        "newton",
        &format!("(H + λI)⁻¹ g: a Cholesky factor of {x}ᵀ D {x} + λI (columns of {x} squared), or Woodbury through the rows' system when there are fewer rows than columns"),
    );
}

/// The sign of a polynomial: positive under the listed conditions, or
/// unknown.
enum Sign {
    /// Nonnegative under `conds` (`s > 0`), and positive where also
    /// `nonzero` holds (the bases of even powers).
    Positive {
        conds: Vec<String>,
        nonzero: Vec<String>,
    },
    Unknown,
}

fn sign(p: &Poly, show: &mut dyn FnMut(&Poly) -> String) -> Sign {
    use crate::compact::Node;
    let node = crate::compact::display(p);
    let mut conds = Vec::new();
    let mut nonzero = Vec::new();
    let factors = match &node {
        Node::Mul(kids) => kids.clone(),
        other => vec![other.clone()],
    };
    for f in &factors {
        // An even power is positive where its base is not zero.
        if let Node::Pow(b, e) = f {
            if e.fract() == 0.0 && (*e as i64) % 2 == 0 {
                nonzero.push(format!("{} ≠ 0", show(&b.to_poly())));
                continue;
            }
        }
        match positive(f) {
            Some(true) => {}
            Some(false) => return Sign::Unknown,
            None => {
                // One factor of unknown sign is a condition (s > 0); two or
                // more could each be negative, so nothing is claimed.
                if !conds.is_empty() {
                    return Sign::Unknown;
                }
                let text = show(&f.to_poly());
                conds.push(format!("{text} > 0"));
            }
        }
    }
    Sign::Positive { conds, nonzero }
}

/// Whether a factor is positive by construction (Some(true)), negative or
/// of changing sign by construction (Some(false)), or unknown (None: a
/// variable or a sum of them, which the report states as a condition).
fn positive(n: &crate::compact::Node) -> Option<bool> {
    use crate::compact::Node;
    match n {
        Node::Num(v) => Some(*v > 0.0),
        Node::Pow(b, _) => positive(b),
        Node::Func(f, _) => fun_positive(*f),
        Node::Atom(a) => match &**a {
            Atom::Func(f, _) => fun_positive(*f),
            Atom::Softmax { .. } | Atom::Dim(_) => Some(true),
            Atom::Var { .. } | Atom::Sum { .. } | Atom::Group(_) => None,
            _ => Some(false),
        },
        // A sum of nonnegative terms, one of them positive.
        Node::Add(kids) if kids.iter().all(|k| nonnegative(k).is_some()) => kids
            .iter()
            .any(|k| nonnegative(k) == Some(true))
            .then_some(true),
        // 1 − σ(u) = σ(−u) > 0.
        Node::Add(kids) => match kids.as_slice() {
            [Node::Num(one), Node::Mul(m)] if *one == 1.0 => match m.as_slice() {
                [Node::Num(c), s] if *c == -1.0 && is_sigmoid(s) => Some(true),
                _ => None,
            },
            _ => None,
        },
        Node::Sum { .. } | Node::Mul(_) => None,
    }
}

/// `Some(strict)` when a term is nonnegative by construction (strictly
/// positive if `strict`): positive factors and even powers.
fn nonnegative(n: &crate::compact::Node) -> Option<bool> {
    use crate::compact::Node;
    match n {
        Node::Pow(_, e) if e.fract() == 0.0 && (*e as i64) % 2 == 0 => Some(false),
        Node::Mul(kids) => {
            let each: Option<Vec<bool>> = kids.iter().map(nonnegative).collect();
            each.map(|e| e.iter().all(|x| *x))
        }
        other => (positive(other) == Some(true)).then_some(true),
    }
}

fn is_sigmoid(n: &crate::compact::Node) -> bool {
    use crate::compact::Node;
    matches!(n, Node::Func(Fun::Sigmoid, _))
        || matches!(n, Node::Atom(a) if matches!(&**a, Atom::Func(Fun::Sigmoid, _)))
}

fn fun_positive(f: Fun) -> Option<bool> {
    match f {
        Fun::Exp | Fun::Sigmoid | Fun::Softplus => Some(true),
        _ => None,
    }
}

fn when(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" when {}", conds.join(" and "))
    }
}

fn positive_when(what: &str, conds: &[String]) -> String {
    format!(
        "{what}{}",
        if conds.is_empty() {
            " everywhere".to_string()
        } else {
            when(conds)
        }
    )
}
