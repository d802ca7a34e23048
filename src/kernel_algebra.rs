//! Kernel algebra on the index IR, before any loop exists: contractions
//! with a direction (`H v`, `D^k f[v, …, v]`), centring of directions, the
//! value at shifted logits. Each takes and returns [`Poly`]s or tensors, so
//! the normal form makes them O(n) and O(k·n) by construction.

use crate::codegen::loops::Body;
use crate::codegen::*;
use crate::derive::Derivation;
use crate::diag::Result;
use std::sync::Arc;

use crate::ir::{fresh, Atom, Dim, Ix, Poly};
use crate::sym::Tensor;

/// Direction variable in the IR (a name no program can use).
pub(crate) const DIRECTION: &str = "·v";

/// The centred direction `v − c`.
pub(crate) const CENTRED: &str = "·w";
/// The damping `λ` of a Newton step.
pub(crate) const LAMBDA: &str = "·λ";

/// The IR name of the variable read less its maximum (see
/// [`value_at_shifted_logits`]).
pub(crate) const SHIFTED: &str = "·z";

/// `t` contracted with the direction in the derivative groups `from..`.
pub(crate) fn contract(p: &Poly, t: &Tensor, from: usize, dir: &str) -> Poly {
    contract_with(p, t, from, |idx| Poly::var(dir, idx))
}

/// `t` contracted in the groups `from..` with the vector `with(indices)`.
pub(crate) fn contract_with(
    p: &Poly,
    t: &Tensor,
    from: usize,
    with: impl Fn(Vec<Ix>) -> Poly,
) -> Poly {
    let mut p = p.clone();
    for g in &t.groups[from..] {
        let fresh_ids: Vec<Ix> = g.iter().map(|_| fresh()).collect();
        for (&old, &new) in g.iter().zip(&fresh_ids) {
            p = p.rename(old, new);
        }
        p = p.mul(&with(fresh_ids.clone()));
        for (&k, d) in fresh_ids.iter().zip(&t.wrt_dims).rev() {
            p = sum_inside_out(&Poly::sum_over(k, d, &p));
        }
    }
    p
}

/// Every term of `p` of the shape `Σ_j v_j Σ_b P(b, j)` turned inside
/// out: `Σ_b P'(b) · Σ_j v_j P_j(b, j)`, where `P_j` are the factors of
/// `P` that read `j` and `P'` the rest. A contraction of a Hessian that is
/// itself a sum over rows (`Σ_b X_bi X_bj s_b`, logistic regression, any
/// `Xᵀ D X`) is then a sum over rows of `X_bi s_b (Σ_j X_bj v_j)`: O(m·d)
/// in one pass over `X`, where the order the contraction builds,
/// `Σ_j v_j (Σ_b X_bi X_bj s_b)`, reads every entry of the Hessian: a d×d
/// temporary and O(m·d²). Terms of other shapes are kept as they are.
fn sum_inside_out(p: &Poly) -> Poly {
    let mut out = Poly::zero();
    for t in &p.terms {
        out = out.add(&sum_term_inside_out(t).unwrap_or_else(|| Poly {
            terms: vec![t.clone()],
        }));
    }
    out
}

/// [`sum_inside_out`] of one term, `None` when it has no such sum.
fn sum_term_inside_out(t: &crate::ir::Term) -> Option<Poly> {
    use crate::ir::{Factor, Term};
    let single_sum = |f: &Factor| -> Option<(Ix, Dim, Term)> {
        match &*f.atom {
            Atom::Sum { ix, dim, body } if f.exp.0 == 1.0 && body.terms.len() == 1 => {
                let k = fresh();
                let [opened] = &body.rename(*ix, k).terms[..] else {
                    return None;
                };
                Some((k, dim.clone(), opened.clone()))
            }
            _ => None,
        }
    };
    for (at, outer_factor) in t.factors.iter().enumerate() {
        let Some((j, dim_j, outer)) = single_sum(outer_factor) else {
            continue;
        };
        let inner_at = outer.factors.iter().position(|f| single_sum(f).is_some())?;
        let (b, dim_b, inner) = single_sum(&outer.factors[inner_at])?;
        let (with_j, without_j): (Vec<Factor>, Vec<Factor>) =
            inner.factors.iter().cloned().partition(|f| f.atom.mentions(j));
        if with_j.is_empty() || without_j.is_empty() {
            continue;
        }
        let mut along_j: Vec<Factor> = outer.factors.clone();
        along_j.remove(inner_at);
        along_j.extend(with_j);
        let sum_j = Poly::sum_over(j, &dim_j, &Poly::product(&along_j, outer.coef.0 * inner.coef.0));
        let sum_b = Poly::sum_over(b, &dim_b, &Poly::product(&without_j, 1.0).mul(&sum_j));
        let mut others = t.factors.clone();
        others.remove(at);
        return Some(Poly::product(&others, t.coef.0).mul(&sum_b));
    }
    None
}

/// `Σ_j H_ij v_j`.
pub(crate) fn hvp(t: &Tensor) -> Result<(Poly, Vec<(Ix, Dim)>)> {
    let p = contract(&t.expanded(), t, 1, DIRECTION);
    let mut out = out_indices(t);
    out.truncate(t.value_idx.len() + t.wrt_dims.len());
    Ok((p, out))
}

/// `D^k f[v, …, v]`: each symmetry class contracted once and weighted by
/// its orbit (every member contracts to the same number). With a `centre`
/// (see [`centring`]), the direction is first centred there, which keeps
/// the moments small and the cumulants free of cancellation.
pub(crate) fn directional(
    b: &mut Body,
    d: &Derivation,
    k: usize,
    centre: Option<&Poly>,
) -> Result<(Poly, Vec<(Ix, Dim)>)> {
    let t = &d.orders[k];
    let dir = if centre.is_some() { CENTRED } else { DIRECTION };
    let p = if t.symmetric {
        let mut acc = Poly::zero();
        for c in &t.classes {
            let term = Poly {
                terms: vec![c.term.clone()],
            };
            acc = acc.add(&contract(&term, t, 0, dir).scale(c.orbit(k)));
        }
        acc
    } else {
        contract(&t.expanded(), t, 0, dir)
    };
    if let Some(c) = centre {
        let minus = b.scalar(c);
        let v_input = d.typed.vars.len();
        b.shift(CENTRED, v_input, minus);
    }
    let out = out_indices(t)[..t.value_idx.len()].to_vec();
    Ok((p, out))
}

/// Whether `p` reads variable `var` other than through a softmax or a
/// logsumexp (which shift their arguments themselves): `q·z` in xent,
/// `z_i` in log_softmax. Only then can a common offset of `var` cancel in
/// floating point.
pub(crate) fn reads_outside_normalizers(p: &Poly, var: &str) -> bool {
    p.terms
        .iter()
        .flat_map(|t| &t.factors)
        .any(|f| match &*f.atom {
            Atom::Var { name, .. } => &**name == var,
            Atom::Softmax { .. } | Atom::Lse { .. } | Atom::Delta(..) | Atom::Dim(_) => false,
            Atom::Func(_, q) | Atom::Group(q) | Atom::Sum { body: q, .. } => {
                reads_outside_normalizers(q, var)
            }
            Atom::Pow(a, b) => {
                reads_outside_normalizers(a, var) || reads_outside_normalizers(b, var)
            }
        })
}

/// The value of a shift-invariant `f`, computed at `z − max(z)`: the
/// logits' common offset cancels symbolically instead of in floating
/// point. (`s·logsumexp(z) − q·z` at z = 1e300·1 is `s·ln n`; evaluated
/// as written both terms are 1e300·s and their difference 0.) Costs one
/// pass over `z` for its maximum.
pub(crate) fn value_at_shifted_logits(b: &mut Body, d: &Derivation) -> Result<Lowered> {
    let t = &d.orders[0];
    let input = d
        .typed
        .vars
        .iter()
        .position(|(n, _)| *n == d.wrt)
        .expect("the variable is an input");
    let max = b.max_of(&d.wrt, &t.wrt_dims[0]);
    b.shift(SHIFTED, input, max);
    Ok(Lowered::Poly(
        t.expanded().rename_var(&d.wrt, SHIFTED),
        out_indices(t),
    ))
}

/// The diagonal `H_ii` of the Hessian `t` of a scalar function of a vector
/// (or of a matrix, entry by entry): the second group of derivative
/// indices renamed to the first (`δ_ii = 1`).
pub(crate) fn hessian_diagonal(t: &Tensor) -> (Poly, Vec<(Ix, Dim)>) {
    let (g0, g1) = (t.group_indices(0), t.group_indices(1));
    let mut diag = t.expanded();
    for (a, b) in g0.iter().zip(&g1) {
        diag = diag.rename(*b, *a);
    }
    (
        diag,
        g0.into_iter().zip(t.wrt_dims.iter().cloned()).collect(),
    )
}

/// The least-norm solution of `H x = v` for a singular
/// `H = diag(d) − κ u uᵀ` (`γ = κ Σ u²/d = 1`, as for xent): with
/// `x₀ = v/d` and the null vector `w = u/d`, `x = x₀ − (Σ w x₀ / Σ w²)·w`.
/// When `v` is orthogonal to `w` (a gradient of a shift-invariant loss:
/// `Σ v = 0` for xent), `H x = v` and `x` is orthogonal to the null space:
/// `x = H⁺ v`.
/// `None` unless `γ` simplifies to 1.
pub(crate) fn newton_least_norm(t: &Tensor) -> Option<(Poly, Vec<(Ix, Dim)>)> {
    let ro = crate::analyze::rank_one(t)?;
    let (v, out) = ro.direction();
    let (d, u, kappa, i, dim) = (ro.d, ro.u, ro.kappa, ro.i, ro.dim);
    let (_, gamma) = crate::analyze::t_and_gamma(&d, &u, &kappa, i, &dim);
    if gamma.as_constant() != Some(1.0) {
        return None;
    }
    let k = fresh();
    let inv_d = d.powf(-1.0);
    let x0 = v.mul(&inv_d);
    let w = crate::analyze::simplify(&u.mul(&inv_d));
    let (x0k, wk) = (x0.rename(i, k), w.rename(i, k));
    let wx = Poly::sum_over(k, &dim, &wk.mul(&x0k));
    let k2 = fresh();
    let ww = Poly::sum_over(k2, &dim, &w.rename(i, k2).mul(&w.rename(i, k2)));
    let x = x0.sub(&wx.mul(&ww.powf(-1.0)).mul(&w));
    Some((x, out))
}

/// `x = (H + λI)⁻¹ v` for a Hessian `H = diag(d) − κ u uᵀ` (see
/// [`crate::analyze`]), by Sherman–Morrison with `a = 1/(d + λ)`:
/// `x = a∘v + κ (Σ u a v)/(1 − κ Σ u² a) · a∘u`. O(n); `None` when the
/// Hessian has no such structure.
pub(crate) fn newton_step(t: &Tensor) -> Option<(Poly, Vec<(Ix, Dim)>)> {
    let ro = crate::analyze::rank_one(t)?;
    let (v, out) = ro.direction();
    let (d, u, kappa, i, dim) = (ro.d, ro.u, ro.kappa, ro.i, ro.dim);
    let a = d.add(&Poly::var(LAMBDA, vec![])).powf(-1.0);
    let k = fresh();
    let (ak, uk, vk) = (a.rename(i, k), u.rename(i, k), v.rename(i, k));
    let uav = Poly::sum_over(k, &dim, &uk.mul(&ak).mul(&vk));
    let uau = Poly::sum_over(k, &dim, &uk.mul(&uk).mul(&ak));
    let den = Poly::constant(1.0).sub(&kappa.mul(&uau)).powf(-1.0);
    let x = a.mul(&v).add(&kappa.mul(&uav).mul(&den).mul(&a).mul(&u));
    Some((x, out))
}

/// `x = (H + λI)⁻¹ v` for `H = diag(d) + L C Rᵀ` with at most two
/// distinct vectors a side (softmax·q: `p` and `q∘p`), by the Woodbury
/// identity in the form that needs no `C⁻¹`: with `a = 1/(d + λ)`,
/// `x = a∘v − a∘(L C B⁻¹ y)`, `y = Rᵀ(a∘v)`, `B = I + Rᵀ diag(a) L C`
/// (at most 2×2, inverted by its adjugate). O(n).
pub(crate) fn woodbury_step(t: &Tensor) -> Option<(Poly, Vec<(Ix, Dim)>)> {
    let lr = crate::analyze::low_rank(t, 2)?;
    let (i, dim) = (lr.i, lr.dim.clone());
    let v = Poly::var(DIRECTION, vec![i]);
    let out = vec![(i, dim.clone())];
    let a = lr.d.add(&Poly::var(LAMBDA, vec![])).powf(-1.0);
    // Σ_k f_k g_k over a fresh index.
    let dot = |f: &Poly, g: &Poly| {
        let k = fresh();
        Poly::sum_over(k, &dim, &f.rename(i, k).mul(&g.rename(i, k)))
    };
    let av = a.mul(&v);
    let (nl, nr) = (lr.left.len(), lr.right.len());
    let y: Vec<Poly> = lr.right.iter().map(|r| dot(r, &av)).collect();
    // P = Rᵀ diag(a) L (nr × nl), then B = I + P C (nr × nr).
    let p: Vec<Vec<Poly>> = lr
        .right
        .iter()
        .map(|r| lr.left.iter().map(|l| dot(r, &a.mul(l))).collect())
        .collect();
    let b: Vec<Vec<Poly>> = (0..nr)
        .map(|m| {
            (0..nr)
                .map(|n| {
                    let pc =
                        (0..nl).fold(Poly::zero(), |acc, l| acc.add(&p[m][l].mul(&lr.c[l][n])));
                    if m == n {
                        pc.add(&Poly::constant(1.0))
                    } else {
                        pc
                    }
                })
                .collect()
        })
        .collect();
    // z = B⁻¹ y.
    let z: Vec<Poly> = match nr {
        1 => vec![y[0].mul(&b[0][0].powf(-1.0))],
        2 => {
            let det = b[0][0].mul(&b[1][1]).sub(&b[0][1].mul(&b[1][0])).powf(-1.0);
            vec![
                b[1][1].mul(&y[0]).sub(&b[0][1].mul(&y[1])).mul(&det),
                b[0][0].mul(&y[1]).sub(&b[1][0].mul(&y[0])).mul(&det),
            ]
        }
        _ => return None,
    };
    // x = a∘v − a∘Σ_l L_l (C z)_l.
    let mut correction = Poly::zero();
    for (l, left) in lr.left.iter().enumerate() {
        let w = (0..nr).fold(Poly::zero(), |acc, n| acc.add(&lr.c[l][n].mul(&z[n])));
        correction = correction.add(&left.mul(&w));
    }
    Some((av.sub(&a.mul(&correction)), out))
}

/// `Σ_b p_b v_b` for the softmax `p` of the variable, when `f` does not
/// change along `1` (its Hessian times `1` simplifies to zero).
pub(crate) fn centring(d: &Derivation) -> Option<Poly> {
    let t2 = d.orders.get(2)?;
    if t2.wrt_dims.len() != 1 {
        return None;
    }
    let ones = contract_with(&t2.expanded(), t2, 1, |_| Poly::constant(1.0));
    let (h1, _) = crate::simplify::simplify_poly(
        &ones,
        &crate::rules::identities(),
        crate::simplify::Limits::default(),
        "centring check",
    );
    if !h1.is_zero() {
        return None;
    }
    let wrt_dim = &t2.wrt_dims[0];
    let p = find_softmax(&d.orders[1].expanded(), &d.wrt, wrt_dim)?;
    let Atom::Softmax { at, .. } = &p else {
        unreachable!()
    };
    let k = fresh();
    let pk = crate::ir::Poly::atom(std::sync::Arc::new(p.clone())).rename(*at, k);
    Some(Poly::sum_over(
        k,
        wrt_dim,
        &pk.mul(&Poly::var(DIRECTION, vec![k])),
    ))
}

/// A vector softmax over `dim` of an expression of `wrt`.
pub(crate) fn find_softmax(p: &Poly, wrt: &str, dim: &Dim) -> Option<Atom> {
    for t in &p.terms {
        for f in &t.factors {
            if let Atom::Softmax {
                dim: d, body, at, ..
            } = &*f.atom
            {
                if d == dim
                    && body.uses_var(wrt)
                    && f.atom.free().len() == 1
                    && f.atom.free().contains(at)
                {
                    return Some((*f.atom).clone());
                }
            }
        }
    }
    None
}

/// Joins the sums of `p` that differ only in their summands,
/// `c₁·R·Σ_r a + c₂·R·Σ_r b = R·Σ_r (c₁a + c₂b)`, so the kernel makes one
/// pass over `r` instead of two (the backward pass of a linear layer,
/// `Σ_r x_ra (s_r p_rc − y_rc)`, is one sum of two terms in the normal form).
pub fn merge_sums(p: &Poly) -> Poly {
    // Terms with exactly one sum factor, keyed by the other factors and
    // the sum's length; each term remembers its group.
    type Member = (f64, Ix, Poly);
    let mut groups: Vec<(Vec<crate::ir::Factor>, Dim, Vec<Member>)> = Vec::new();
    let mut group_of: Vec<Option<usize>> = Vec::new();
    for t in &p.terms {
        let sums: Vec<usize> = (0..t.factors.len())
            .filter(|&k| {
                matches!(&*t.factors[k].atom, Atom::Sum { .. }) && t.factors[k].exp.0 == 1.0
            })
            .collect();
        let [k] = sums[..] else {
            group_of.push(None);
            continue;
        };
        let Atom::Sum { ix, dim, body } = &*t.factors[k].atom else {
            unreachable!()
        };
        let mut others = t.factors.clone();
        others.remove(k);
        let entry = (t.coef.0, *ix, body.clone());
        let axes = summed_axes(body, *ix);
        let fits = |members: &[Member]| {
            members.iter().all(|(_, mix, mbody)| {
                let theirs = summed_axes(mbody, *mix);
                axes.iter().all(|(name, at)| {
                    theirs.iter().all(|(other, their_at)| other != name || their_at == at)
                })
            })
        };
        match groups
            .iter()
            .position(|(o, d, members)| *o == others && d == dim && fits(members))
        {
            Some(g) => {
                groups[g].2.push(entry);
                group_of.push(Some(g));
            }
            None => {
                groups.push((others, dim.clone(), vec![entry]));
                group_of.push(Some(groups.len() - 1));
            }
        }
    }
    // In the original order: a joined sum where its first member was.
    let mut out = Poly::zero();
    let mut emitted = vec![false; groups.len()];
    for (t, g) in p.terms.iter().zip(group_of) {
        let Some(g) = g.filter(|&g| groups[g].2.len() > 1) else {
            out.terms.push(t.clone());
            continue;
        };
        if std::mem::replace(&mut emitted[g], true) {
            continue;
        }
        let (others, dim, members) = &groups[g];
        // A coefficient all members share stays outside.
        let common = members[0].0;
        let common = if members.iter().all(|m| m.0 == common) {
            common
        } else {
            1.0
        };
        let k = crate::ir::fresh();
        let mut body = Poly::zero();
        for (c, ix, b) in members {
            body.terms.extend(b.rename(*ix, k).scale(c / common).terms);
        }
        let term = factor_summand(Poly::sum_whole(k, dim, body)).scale(common);
        out.terms
            .extend(term.mul(&Poly::product(others, 1.0)).terms);
    }
    out
}

/// The variables `body` reads at the summed index `ix`, with the axis it
/// indexes (`A_ij` summed over `j`: `(A, 1)`). Sums that read one
/// variable along different axes (`Σ_j x_j A_ij` and `Σ_j x_j A_ji`, the
/// gradient of `xᵀAx`) are not joined by [`merge_sums`]: the first walks
/// rows of `A` as dot products, the second wants the summed index outside
/// (`A`'s rows added into the result), and one pass serves only one.
fn summed_axes(body: &Poly, ix: Ix) -> Vec<(Arc<str>, usize)> {
    fn walk(p: &Poly, ix: Ix, out: &mut Vec<(Arc<str>, usize)>) {
        for f in p.terms.iter().flat_map(|t| &t.factors) {
            match &*f.atom {
                Atom::Var { name, idx } => {
                    for (at, _) in idx.iter().enumerate().filter(|(_, &i)| i == ix) {
                        if idx.len() > 1 && !out.contains(&(name.clone(), at)) {
                            out.push((name.clone(), at));
                        }
                    }
                }
                Atom::Func(_, q) | Atom::Group(q) => walk(q, ix, out),
                Atom::Sum { body, .. } | Atom::Softmax { body, .. } | Atom::Lse { body, .. } => {
                    walk(body, ix, out)
                }
                Atom::Pow(a, b) => {
                    walk(a, ix, out);
                    walk(b, ix, out);
                }
                Atom::Delta(..) | Atom::Dim(_) => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(body, ix, &mut out);
    out
}

/// `Σ_r (x·a + x·b)` as `Σ_r x·(a + b)`: the factors every summand shares
/// come out in front of a group, so the group (free of the innermost
/// index, say) is computed once per row rather than once per entry.
/// Built by hand because the normal form multiplies groups out.
pub(crate) fn factor_summand(sum: Poly) -> Poly {
    let [t] = &sum.terms[..] else {
        return sum;
    };
    let Atom::Sum { ix, dim, body } = &*t.factors[0].atom else {
        return sum;
    };
    if body.terms.len() < 2 {
        return sum;
    }
    let common: Vec<crate::ir::Factor> = body.terms[0]
        .factors
        .iter()
        .filter(|f| body.terms[1..].iter().all(|u| u.factors.contains(f)))
        .cloned()
        .collect();
    if common.is_empty() {
        return sum;
    }
    let rest = Poly {
        terms: body
            .terms
            .iter()
            .map(|u| crate::ir::Term {
                factors: u
                    .factors
                    .iter()
                    .filter(|f| !common.contains(f))
                    .cloned()
                    .collect(),
                coef: u.coef,
            })
            .collect(),
    };
    let mut factors = common;
    factors.push(crate::ir::Factor {
        atom: Arc::new(Atom::Group(rest)),
        exp: crate::ir::Real(1.0),
    });
    let body = Poly {
        terms: vec![crate::ir::Term {
            factors,
            coef: crate::ir::Real(1.0),
        }],
    };
    let mut t = t.clone();
    t.factors[0].atom = Arc::new(Atom::Sum {
        ix: *ix,
        dim: dim.clone(),
        body,
    });
    Poly { terms: vec![t] }
}
