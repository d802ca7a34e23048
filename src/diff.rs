//! Differentiation of the index IR: one set of general rules (sum, product,
//! power and chain rules, and the derivative of each atom), applied once per
//! order. Nothing here knows about any particular expression.
//!
//! `∂/∂w[J]` of an atom, for the new free indices `J`:
//! * `∂ w[I] = Π δ(I_r, J_r)`, other variables 0;
//! * `∂ f(u) = f'(u) ∂u`; `∂ a^e = e a^(e-1) ∂a`; `∂ a^b = a^b (∂b log a + b ∂a / a)`;
//! * `∂ Σ_k b = Σ_k ∂b`;
//! * `∂ p_i = p_i (∂b_i − Σ_m p_m ∂b_m)` for `p = softmax_k(b)`,
//!   which for `b = z` is `p_i (δ_ij − p_j)`;
//! * `∂ logsumexp_k(b) = Σ_m p_m ∂b_m`.

use crate::diag::{Error, Result};
use crate::ir::{fresh, Atom, Fun, Ix, Poly, Term};
use crate::lower::fun_derivative;

/// Largest number of terms one derivative may produce before it is
/// refused (the bound that keeps absurd orders from running away).
pub const MAX_TERMS: usize = 2_000_000;

/// Differentiates `p` with respect to variable `wrt` at the new indices `j`.
pub fn diff(p: &Poly, wrt: &str, j: &[Ix]) -> Result<Poly> {
    let mut budget = Budget { left: MAX_TERMS };
    diff_poly(p, wrt, j, &mut budget)
}

struct Budget {
    left: usize,
}

impl Budget {
    fn spend(&mut self, n: usize) -> Result<()> {
        if n > self.left {
            return Err(Error::new(format!(
                "the derivative grows past {MAX_TERMS} terms; this order is beyond what symdiff will expand"
            )));
        }
        self.left -= n;
        Ok(())
    }
}

fn diff_poly(p: &Poly, wrt: &str, j: &[Ix], budget: &mut Budget) -> Result<Poly> {
    let mut terms = Vec::new();
    for t in &p.terms {
        let d = diff_term(t, wrt, j, budget)?;
        budget.spend(d.len())?;
        terms.extend(d.terms);
    }
    Ok(Poly::from_terms(terms))
}

/// Product rule over the factors of one term.
fn diff_term(t: &Term, wrt: &str, j: &[Ix], budget: &mut Budget) -> Result<Poly> {
    let mut out = Poly::zero();
    for (n, f) in t.factors.iter().enumerate() {
        if !f.atom.uses_var(wrt) {
            continue;
        }
        let d_atom = diff_atom(&f.atom, wrt, j, budget)?;
        if d_atom.is_zero() {
            continue;
        }
        let e = f.exp.0;
        // ∂(a^e) = e a^(e-1) ∂a
        let base = Poly::atom(f.atom.clone());
        let mut prod = base.powf(e - 1.0).mul(&d_atom).scale(e * t.coef.0);
        for (m, g) in t.factors.iter().enumerate() {
            if m != n {
                prod = prod.mul(&Poly::atom(g.atom.clone()).powf(g.exp.0));
            }
        }
        budget.spend(prod.len())?;
        out = out.add(&prod);
    }
    Ok(out)
}

fn diff_atom(a: &Atom, wrt: &str, j: &[Ix], budget: &mut Budget) -> Result<Poly> {
    Ok(match a {
        Atom::Var { name, idx } => {
            if &**name != wrt {
                return Ok(Poly::zero());
            }
            idx.iter()
                .zip(j)
                .fold(Poly::constant(1.0), |acc, (&i, &jj)| {
                    acc.mul(&Poly::delta(i, jj))
                })
        }
        Atom::Delta(..) | Atom::Dim(_) => Poly::zero(),
        Atom::Func(f, u) => {
            let du = diff_poly(u, wrt, j, budget)?;
            if du.is_zero() {
                return Ok(du);
            }
            fun_derivative(*f, u).mul(&du)
        }
        Atom::Group(p) => diff_poly(p, wrt, j, budget)?,
        Atom::Pow(b, e) => {
            // ∂ b^e = b^e (∂e log b + e ∂b / b)
            let db = diff_poly(b, wrt, j, budget)?;
            let de = diff_poly(e, wrt, j, budget)?;
            let itself = Poly::pow_sym(b.clone(), e.clone());
            let log_b = Poly::func(Fun::Log, b.clone());
            itself.mul(&de.mul(&log_b).add(&e.mul(&db).mul(&b.powf(-1.0))))
        }
        Atom::Sum { ix, dim, body } => {
            let k = fresh();
            let d = diff_poly(&body.rename(*ix, k), wrt, j, budget)?;
            Poly::sum_over(k, dim, &d)
        }
        Atom::Softmax { ix, dim, body, at } => {
            // p_at (∂b_at − Σ_m p_m ∂b_m)
            let k = fresh();
            let open = body.rename(*ix, k);
            let d_at = diff_poly(&open.rename(k, *at), wrt, j, budget)?;
            let m = fresh();
            let d_m = diff_poly(&open.rename(k, m), wrt, j, budget)?;
            let k2 = fresh();
            let p_m = Poly::softmax(k2, dim, open.rename(k, k2), m);
            let mean = Poly::sum_over(m, dim, &p_m.mul(&d_m));
            Poly::atom(std::sync::Arc::new(a.clone())).mul(&d_at.sub(&mean))
        }
        Atom::Lse { ix, dim, body } => {
            // Σ_m p_m ∂b_m
            let k = fresh();
            let open = body.rename(*ix, k);
            let m = fresh();
            let d_m = diff_poly(&open.rename(k, m), wrt, j, budget)?;
            let k2 = fresh();
            let p_m = Poly::softmax(k2, dim, open.rename(k, k2), m);
            Poly::sum_over(m, dim, &p_m.mul(&d_m))
        }
    })
}

/// An upper bound on the number of terms `diff` makes from `p` before
/// like terms merge: the product rule gives one term per factor that
/// depends on `wrt`, times the terms of that factor's derivative
/// (counted the same way, once per shared atom). A softmax's derivative
/// `p·(∂b_at − Σ p ∂b)` has twice its body's.
pub fn predicted_terms(p: &Poly, wrt: &str) -> f64 {
    let mut memo: std::collections::HashMap<*const Atom, f64> = std::collections::HashMap::new();
    poly_terms(p, wrt, &mut memo)
}

fn poly_terms(p: &Poly, wrt: &str, memo: &mut std::collections::HashMap<*const Atom, f64>) -> f64 {
    p.terms
        .iter()
        .flat_map(|t| &t.factors)
        .map(|f| atom_terms(&f.atom, wrt, memo))
        .sum()
}

fn atom_terms(
    a: &std::sync::Arc<Atom>,
    wrt: &str,
    memo: &mut std::collections::HashMap<*const Atom, f64>,
) -> f64 {
    let key = std::sync::Arc::as_ptr(a);
    if let Some(&n) = memo.get(&key) {
        return n;
    }
    let n = if !a.uses_var(wrt) {
        0.0
    } else {
        match &**a {
            Atom::Var { .. } => 1.0,
            Atom::Delta(..) | Atom::Dim(_) => 0.0,
            Atom::Func(_, b) => 2.0 * poly_terms(b, wrt, memo),
            Atom::Group(b) | Atom::Sum { body: b, .. } | Atom::Lse { body: b, .. } => {
                poly_terms(b, wrt, memo)
            }
            Atom::Softmax { body, .. } => 2.0 * poly_terms(body, wrt, memo),
            Atom::Pow(x, y) => poly_terms(x, wrt, memo) + poly_terms(y, wrt, memo),
        }
    };
    memo.insert(key, n);
    n
}
