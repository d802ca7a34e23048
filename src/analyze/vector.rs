//! The report for a vector variable's Hessian (and each block of a batch):
//! zero, constant, diagonal, rank one, diagonal plus rank one (γ, rank,
//! null space, definiteness, factor, Newton step), diagonal plus low rank,
//! or `Xᵀ D X`.

use super::check::{check_factor, size};
use super::forms::{factor_s, row_block, t_and_gamma};
use super::sign::{positive_when, sign, when, Sign};
use super::{simplify, split, split_rows, Parts, Report};
use crate::derive::Derivation;
use crate::ir::{Atom, Dim, Ix, Poly};
use crate::sym::Tensor;

pub(super) fn vector(
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
pub(super) fn rows(
    d: &Derivation,
    h: &Tensor,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) -> bool {
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
pub(super) fn rank_structure(
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
        diagonal(&diag, r, show);
        return;
    }
    if asymmetric || rank_one.len() != 1 {
        low_rank_lines(&parts, &diag, asymmetric, rank_one.len(), r, show);
        return;
    }
    // H = D − κ u uᵀ.
    let (c, u) = rank_one.pop().expect("one term");
    if diag.is_empty() {
        pure_rank_one(&simplify(&c), &u, &dim, row.as_ref(), r, show);
        return;
    }
    diagonal_plus_rank_one(d, h, &diag, &c, &u, (i, j), &dim, row, r, show);
}

/// `H = diag(d) + Σ c·u vᵀ` with more than one outer product (or an
/// asymmetric one; `symmetric` distinct vectors otherwise): its rank and
/// the Woodbury step.
fn low_rank_lines(
    parts: &Parts,
    diag: &Poly,
    asymmetric: bool,
    symmetric: usize,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
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
        symmetric
    };
    let d_text = show(diag);
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
}

/// `H = diag(d)`: definite where `d` is, and the Newton step entry by
/// entry.
fn diagonal(diag: &Poly, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
    r.line(
        "structure",
        &format!("diagonal: H = diag(d) with d_i = {}", show(diag)),
    );
    r.json.insert("structure".into(), "diagonal".into());
    r.json.insert("d".into(), show(diag).into());
    match sign(diag, show) {
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
}

/// `H = diag(d) − κ u uᵀ` (`c = −κ`): γ, rank, null space, definiteness,
/// the factor `S` (checked numerically) and the Sherman–Morrison step.
#[allow(clippy::too_many_arguments)]
fn diagonal_plus_rank_one(
    d: &Derivation,
    h: &Tensor,
    diag: &Poly,
    c: &Poly,
    u: &Poly,
    (i, j): (Ix, Ix),
    dim: &Dim,
    row: Option<(Ix, Dim)>,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let (diag, u, dim) = (diag.clone(), u.clone(), dim.clone());
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
        Some(1.0) => singular(d, &null, &d_sign, &row, &n, r, show),
        Some(g) if g < 1.0 => {
            r.line("rank", &format!("{n} (γ = {g} < 1)"));
            if let Sign::Positive { .. } = &d_sign {
                let all = d_sign.positive_when(&[]);
                r.line("definite", &positive_when("positive definite", &all));
            }
        }
        _ => {
            r.line("rank", &format!("{n} where γ ≠ 1, {n} − 1 where γ = 1"));
        }
    }
    // S with H = SᵀS: S_ij = sqrt(d_i) δ_ij − α u_i u_j / sqrt(d_i).
    if let Some(s) = factor_s(&diag, &u, &t, &gamma, i, j) {
        factor_lines(d, h, &s, (i, j), row.is_some(), &n, r, show);
    }
    r.line(
        "newton",
        "(H + λI)⁻¹ g in O(n) by Sherman–Morrison: x = g/(d + λ) + κ (uᵀ(g/(d + λ))) / (1 − κ uᵀ(u/(d + λ))) · u/(d + λ)",
    );
}

/// The lines for `γ = 1`: the rank, the null space (the all-ones
/// vector of a shift-invariant `f`), semidefiniteness, how to make `H`
/// invertible.
#[allow(clippy::too_many_arguments)]
fn singular(
    d: &Derivation,
    null: &Poly,
    d_sign: &Sign,
    row: &Option<(Ix, Dim)>,
    n: &str,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let conds = d_sign.positive_when(&["d_i ≠ 0"]);
    let (rank, json_rank) = match row {
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
        format!("spanned by D⁻¹u, entries {}", show(null))
    };
    r.line("null space", &null_text);
    r.json.insert("null_space".into(), null_text.clone().into());
    if let Sign::Positive { conds, .. } = d_sign {
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

/// The factor `S` with `H = SᵀS` (per row block for a batch), checked
/// numerically where the point can be built.
#[allow(clippy::too_many_arguments)]
fn factor_lines(
    d: &Derivation,
    h: &Tensor,
    s: &Poly,
    (i, j): (Ix, Ix),
    per_row: bool,
    n: &str,
    r: &mut Report,
    show: &mut dyn FnMut(&Poly) -> String,
) {
    let check = if per_row {
        None
    } else {
        check_factor(d, h, s, i, j)
    };
    let label = if per_row {
        "each block is SᵀS with S ="
    } else {
        "H = SᵀS with S_ij ="
    };
    r.line("factor", &format!("{label} {}", show(s)));
    match check {
        Some(err) => r.more(&format!(
            "(checked at a random point with {n} = 5: largest difference {})",
            size(err)
        )),
        None if per_row => r.more("(per row block)"),
        None => r.more("(not checked numerically: the point could not be built)"),
    }
    r.json.insert("factor_S".into(), show(s).into());
    r.json.insert(
        "factor_checked_error".into(),
        check.map_or(serde_json::Value::Null, Into::into),
    );
}

/// A Hessian free of the variable: `f` is quadratic, one Newton step is
/// exact, and the one matrix is factored once.
pub(super) fn constant(d: &Derivation, r: &mut Report) {
    let matrix = d
        .at_order(2)
        .matrix_form(crate::simplify::Limits::default());
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
pub(super) fn pure_rank_one(
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

/// Vectors printed with no named parts (a row weight's factors).
pub(super) struct NoParts;

impl crate::matform::Namer for NoParts {
    fn atom_name(&mut self, _: &Atom) -> Option<String> {
        None
    }
}

pub(super) fn gram_report(parts: &Parts, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
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
