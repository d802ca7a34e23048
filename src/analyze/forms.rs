//! The structures a Hessian is read into for solvers and kernels:
//! diagonal plus rank one (`RankOne`, also per batch row), diagonal plus
//! low rank (`LowRank`, for Woodbury), and the factor `S` with `H = SᵀS`.

use super::{simplify, split, split_rows};
use crate::ir::{fresh, Atom, Dim, Ix, Poly, Term};
use crate::sym::Tensor;

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
pub(super) fn row_block(h: &Tensor) -> Option<(Vec<Term>, Ix, Ix, Ix)> {
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
pub(super) fn factor_s(
    diag: &Poly,
    u: &Poly,
    t: &Poly,
    gamma: &Poly,
    i: Ix,
    j: Ix,
) -> Option<Poly> {
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
