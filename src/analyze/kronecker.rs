//! The Hessian of a layer's weight matrix: `f = g(X W)` with a loss `g`
//! per row of `X W` (the linear classifier `xent(X @ W + b, Y)/m`).
//!
//! Its index form is `H_(ij),(ln) = Σ_c X_ci X_cl B^c_jn`: the rows of the
//! data `X` times one k×k block `B^c` per row (the loss's Hessian in that
//! row's logits), that is `H = Σ_c (x_c x_cᵀ) ⊗ B^c`, or `(X ⊗ I)ᵀ
//! blockdiag(B^c) (X ⊗ I)`. What a solver needs follows from the blocks:
//!
//! * `vec(V)ᵀ H vec(V) = Σ_c y_cᵀ B^c y_c` with `y_c = Vᵀ x_c`, so `H` is
//!   positive semidefinite wherever every block is;
//! * when every block has the same null vector `1` (softmax is
//!   shift-invariant in each row), `H (u 1ᵀ) = 0` for every `u`: adding a
//!   constant to every class's weight for one feature shifts each row's
//!   logits by a constant. If `X` has full column rank these are the only
//!   null directions, so the rank is `d·(k − 1)`;
//! * `B^c = S_cᵀ S_c` gives `H = SᵀS` with `S_(c a),(i j) = X_ci S^c_aj`.
//!
//! The factorization and the null space are checked numerically.

use super::check::{largest_difference, random_point, rename_both};
use super::{factor_s, gram, sign, simplify, split_rows, t_and_gamma, when, Report, Sign};
use crate::derive::Derivation;
use crate::ir::{fresh, Atom, Dim, Factor, Ix, Poly, Term};
use crate::render::Names;
use crate::sym::Tensor;

/// The blocks of `H = Σ_c (x_c x_cᵀ) ⊗ B^c`.
struct Blocks {
    /// The data matrix `X`.
    x: String,
    /// The row index `c` and its range.
    row: Ix,
    rows: Dim,
    /// `B^c_jn`, over the row and the second index of each group.
    block: Vec<Term>,
}

/// Reports the structure when the Hessian with respect to a matrix is a sum
/// over data rows of Kronecker products; false when it is not one.
pub(super) fn kronecker(d: &Derivation, h: &Tensor, r: &mut Report, names: &mut Names) -> bool {
    let Some(b) = blocks(h) else {
        return false;
    };
    let (g1, g2) = (h.group_indices(0), h.group_indices(1));
    let (i, j, l, n) = (g1[0], g1[1], g2[0], g2[1]);
    let parts = split_rows(&b.block, j, n, Some(b.row));
    if parts.other || !parts.gram.is_empty() {
        return false;
    }
    // The data row and a block's own row get names of their own.
    let c_name = names.add_free(b.row, &["c", "r"]);
    let a = fresh();
    let (names_i, names_j, names_n) = (names.name_of(i), names.name_of(j), names.name_of(n));
    let show = &mut |p: &Poly| super::show_poly(p, names);
    let (feat, cls) = (h.wrt_dims[0].to_string(), h.wrt_dims[1].to_string());
    let x = &b.x;
    r.line(
        "structure",
        &format!(
            "H = Σ_{c} (x_{c} x_{c}ᵀ) ⊗ B^{c}: the rows x_{c} of {x} (the data) times one {cls}×{cls} block per row", c = c_name
        ),
    );
    r.more(&format!(
        "(= ({x} ⊗ I)ᵀ blockdiag(B^{c}) ({x} ⊗ I); B^{c} is the loss's Hessian in row {c}'s {cls} outputs)", c = c_name
    ));
    r.json.insert("structure".into(), "kronecker rows".into());
    r.json.insert("X".into(), x.clone().into());
    // The blocks: diagonal, or diagonal plus one symmetric outer product.
    let (diag, rank_one) = match parts.outer.as_slice() {
        [] => (parts.diag.clone(), None),
        [(c, u, v)] if u == v => (parts.diag.clone(), Some((simplify(&c.neg()), u.clone()))),
        _ => {
            r.more("each block: diagonal plus a low-rank part (see `derive --order 2`)");
            return true;
        }
    };
    let k = Kron {
        d,
        h,
        b: &b,
        c_name,
        feat,
        cls,
        ix: [i, j, l, n],
        shown: [names_i, names_j, names_n],
        a,
    };
    match rank_one {
        None => k.diagonal_blocks(&diag, r, show),
        Some((kappa, u)) => k.rank_one_blocks(&diag, &kappa, &u, r, show),
    }
    true
}

/// What the lines about a Kronecker-rows Hessian share.
struct Kron<'a> {
    d: &'a Derivation,
    h: &'a Tensor,
    b: &'a Blocks,
    /// The data row's name.
    c_name: String,
    /// The lengths of the two axes of the weight matrix, as text.
    feat: String,
    cls: String,
    /// The Hessian's indices `(i j),(l n)`, the names shown for `i`, `j`,
    /// `n`, and a fresh index for the factor's row.
    ix: [Ix; 4],
    shown: [String; 3],
    a: Ix,
}

impl Kron<'_> {
    /// Blocks diagonal plus rank one, `B^c = diag(d) − κ u uᵀ`: γ, the
    /// rank and (when every block has the null vector 1) the null space,
    /// definiteness, the factor `S`, and how to take Newton steps.
    fn rank_one_blocks(
        &self,
        diag: &Poly,
        kappa: &Poly,
        u: &Poly,
        r: &mut Report,
        show: &mut dyn FnMut(&Poly) -> String,
    ) {
        let [_, j, _, n] = self.ix;
        r.more(&format!(
            "each block diagonal plus rank one: B^{} = diag(d) − κ u uᵀ, d = {}, u = {}, κ = {}",
            self.c_name,
            show(diag),
            show(u),
            show(kappa)
        ));
        r.json
            .insert("block".into(), "diagonal plus rank one".into());
        let (t, gamma) = t_and_gamma(diag, u, kappa, j, &self.h.wrt_dims[1]);
        r.line(
            "γ",
            &format!("κ·Σ_j u_j²/d_j = {} in every block", show(&gamma)),
        );
        let d_sign = sign(diag, show);
        // Each block's null vector D⁻¹u; the same direction in every row when
        // it depends on the row alone (a multiple of 1).
        let null = simplify(&u.mul(&diag.powf(-1.0)));
        let shared_null =
            gamma.as_constant() == Some(1.0) && null.free().iter().all(|x| *x == self.b.row);
        if shared_null {
            self.shared_null_lines(&d_sign, r);
        } else {
            r.line(
                "rank",
                &format!("at most {f}·{c}; {f}·{c} when {x} has full column rank and every block is invertible", f = self.feat, c = self.cls, x = self.b.x),
            );
        }
        if let Sign::Positive { conds, .. } = &d_sign {
            if gamma.as_constant().is_some_and(|g| g <= 1.0) {
                r.line(
                    "definite",
                    &format!(
                        "positive semidefinite{} (every block is){}",
                        when(conds),
                        if shared_null {
                            ", never positive definite"
                        } else {
                            ""
                        }
                    ),
                );
                r.json
                    .insert("definite".into(), "positive semidefinite".into());
            }
        }
        if shared_null {
            r.line(
                "invertible",
                &format!("add λ > 0 (H + λI is positive definite), or fix one column of {} (one class's weights at 0)", self.d.wrt),
            );
        }
        // S_(c a),(i j) = X_ci · S^c_aj.
        if let Some(sc) = factor_s(diag, u, &t, &gamma, j, n) {
            self.factor_lines(&sc, r, show);
        }
        r.line(
            "newton",
            &format!(
                "(H + λI)⁻¹ g: no O({f}·{c}) formula (the rows couple the blocks); H·v costs O(m·{f}·{c}) (`codegen` f_hvp), so conjugate gradients on H + λI, or per-row Newton steps on the outputs {x}{w} (O({c}) each by Sherman–Morrison) as gradient boosting does",
                f = self.feat,
                c = self.cls,
                x = self.b.x,
                w = self.d.wrt
            ),
        );
    }

    /// Diagonal blocks: column `j` of `W` meets only column `j`, `k`
    /// systems `Xᵀ diag(d_·j) X`.
    fn diagonal_blocks(&self, diag: &Poly, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
        let (feat, cls, x) = (&self.feat, &self.cls, &self.b.x);
        r.more(&format!(
            "each block diagonal: B^{} = diag(d), d = {}",
            self.c_name,
            show(diag)
        ));
        r.json.insert("block".into(), "diagonal".into());
        r.line(
            "rank",
            &format!("{feat}·{cls} when {x} has full column rank and every d ≠ 0"),
        );
        match sign(diag, show) {
            Sign::Positive { conds, .. } => {
                r.line(
                    "definite",
                    &format!("positive semidefinite{}", when(&conds)),
                );
                r.json
                    .insert("definite".into(), "positive semidefinite".into());
            }
            Sign::Unknown => r.line("definite", "depends on the signs of d"),
        }
        r.line(
            "newton",
            &format!("the {cls} columns of {} decouple: one {feat}×{feat} system {x}ᵀ diag(d_·j) {x} + λI per column", self.d.wrt),
        );
    }

    /// Every block has the null vector `1`: the rank, and the null space
    /// `u·1ᵀ`, checked numerically.
    fn shared_null_lines(&self, d_sign: &Sign, r: &mut Report) {
        let [i, j, l, n] = self.ix;
        let (d, feat, cls, x) = (self.d, &self.feat, &self.cls, &self.b.x);
        let conds = d_sign.positive_when(&["d_j ≠ 0"]);
        r.line(
            "rank",
            &format!(
                "{feat}·({cls} − 1) when {x} has rank {feat} (full column rank){}; at most {feat}·({cls} − 1) always",
                if conds.is_empty() { String::new() } else { format!(" and {}", conds.join(" and ")) }
            ),
        );
        r.json
            .insert("rank".into(), format!("{feat}*({cls} - 1)").into());
        let null_err = check_null(d, self.h, i, j, l, n);
        r.line(
            "null space",
            &format!(
                "the matrices u·1ᵀ, u any {feat}-vector (each row of {} shifted by its own constant): {x}({} + u1ᵀ) = {x}{} + ({x}u)1ᵀ shifts every row's outputs by a constant, which {} cannot see",
                d.wrt, d.wrt, d.wrt,
                if d.shift_invariant() { "softmax" } else { "each block" }
            ),
        );
        r.json.insert(
            "null_space".into(),
            format!("u 1^T for every u (dimension {feat})").into(),
        );
        r.json.insert(
            "null_checked_error".into(),
            null_err.map_or(serde_json::Value::Null, Into::into),
        );
        if let Some(err) = null_err {
            r.more(&format!(
                "(checked at a random point with every length 5: largest |H·(e_l 1ᵀ)| {})",
                super::check::size(err)
            ));
        }
    }

    /// `H = SᵀS` with `S_(c a),(i j) = X_ci S^c_aj`, checked numerically.
    fn factor_lines(&self, sc: &Poly, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
        let (b, x, a) = (self.b, &self.b.x, self.a);
        let [i, j, l, n] = self.ix;
        let [names_i, names_j, names_n] = &self.shown;
        let xci = Poly::var(x, vec![b.row, i]);
        let s_full = xci.mul(&rename_both(sc, j, n, a, j));
        let err = check_factor(self.d, self.h, &s_full, b, a, [i, j, l, n]);
        r.line(
            "factor",
            &format!(
                "H = SᵀS with S_({c} {j}),({i} {n}) = {x}_{c}{i}·S^{c}_{j}{n}, S^{c}_{j}{n} = {}",
                show(sc),
                c = self.c_name,
                i = names_i,
                j = names_j,
                n = names_n
            ),
        );
        if let Some(err) = err {
            r.more(&format!(
                "(checked at a random point with every length 5: largest difference {})",
                super::check::size(err)
            ));
        }
        r.json.insert("factor_S".into(), show(sc).into());
        r.json.insert(
            "factor_checked_error".into(),
            err.map_or(serde_json::Value::Null, Into::into),
        );
    }
}

/// `Σ_c X_ci X_cl B^c_jn` read off the terms: every term is one sum over a
/// row `c` of the same matrix with `X_ci X_cl` in each summand, times
/// factors free of `i` and `l`.
fn blocks(h: &Tensor) -> Option<Blocks> {
    if h.wrt_dims.len() != 2 {
        return None;
    }
    let (g1, g2) = (h.group_indices(0), h.group_indices(1));
    let (i, j, l, n) = (g1[0], g1[1], g2[0], g2[1]);
    let row = fresh();
    let mut found: Option<(String, Dim)> = None;
    let mut block = Vec::new();
    for t in crate::matform::merge_row_sums(&h.expanded().terms) {
        let mut outside: Vec<Factor> = Vec::new();
        let mut inside = None;
        for f in &t.factors {
            let hit = if inside.is_none() && f.exp.0 == 1.0 {
                gram(&f.atom, i, l, &[j, n])
            } else {
                None
            };
            match hit {
                Some(g) => inside = Some(g),
                None => outside.push(f.clone()),
            }
        }
        let (x, c, w, dim) = inside?;
        if outside
            .iter()
            .any(|f| f.atom.free().iter().any(|v| *v == i || *v == l))
        {
            return None;
        }
        match &found {
            Some((x0, d0)) if *x0 != x || *d0 != dim => return None,
            Some(_) => {}
            None => found = Some((x, dim)),
        }
        let scale = Poly::from_terms(vec![Term {
            factors: outside,
            coef: t.coef,
        }]);
        block.extend(w.rename(c, row).mul(&scale).terms);
    }
    let (x, rows) = found?;
    // The block must not mention the data's own columns.
    if block.iter().any(|t| {
        t.factors
            .iter()
            .any(|f| matches!(&*f.atom, Atom::Var { .. }) && f.atom.free().contains(&i))
    }) {
        return None;
    }
    Some(Blocks {
        x,
        row,
        rows,
        block,
    })
}

/// Largest |H − SᵀS| with `S_(c a),(i j)` given over the blocks' row `c`,
/// the block row `a` and the Hessian's first group `(i, j)`.
fn check_factor(
    d: &Derivation,
    h: &Tensor,
    s: &Poly,
    b: &Blocks,
    a: Ix,
    [i, j, l, n]: [Ix; 4],
) -> Option<f64> {
    // The copy of S in the second group's indices.
    let s2 = rename_both(s, i, j, l, n);
    let body = s.mul(&s2);
    let sts = Poly::sum_over(b.row, &b.rows, &Poly::sum_over(a, &h.wrt_dims[1], &body));
    let dims = vec![
        h.wrt_dims[0].clone(),
        h.wrt_dims[1].clone(),
        h.wrt_dims[0].clone(),
        h.wrt_dims[1].clone(),
    ];
    largest_difference(d, h, sts, vec![i, j, l, n], dims)
}

/// Largest |Σ_n H_(ij),(ln)| over all `i, j, l`: `H (e_l 1ᵀ) = 0` for every
/// `l`, so the whole of `{u 1ᵀ}` is null.
fn check_null(d: &Derivation, h: &Tensor, i: Ix, j: Ix, l: Ix, n: Ix) -> Option<f64> {
    let point = random_point(d)?;
    let p = Poly::sum_over(n, &h.wrt_dims[1], &h.expanded());
    let dims = vec![
        h.wrt_dims[0].clone(),
        h.wrt_dims[1].clone(),
        h.wrt_dims[0].clone(),
    ];
    let t = Tensor::new(p, vec![i, j, l], dims, h.wrt_dims.clone());
    let got = crate::eval::evaluate(&t, &point).ok()?;
    Some(got.iter().map(|x| x.abs()).fold(0.0, f64::max))
}
