//! Identities of the logistic functions, on the normal form.
//!
//! Like [`super::trig`], these join terms of a sum (`σ(x) + σ(−x)` is one,
//! but only as a whole), so they act on [`Poly`] directly; [`rewrite`]
//! applies them everywhere and keeps the result when it prints no longer.
//!
//! * `logistic-sigmoid-of-negative`: `σ(−u) = 1 − σ(u)`
//! * `logistic-softplus-of-negative`: `softplus(−u) = softplus(u) − u`
//!   (so `softplus(x) − softplus(−x) = x`)
//!
//! A negative argument is one whose first term has a negative coefficient;
//! the identities then write every function of `±u` in terms of one of
//! them, so that they meet.

use crate::ir::{Atom, Fun, Poly};

/// `p` with sigmoids and softpluses of negated arguments rewritten, when
/// that prints no longer.
pub fn rewrite(p: &Poly) -> Poly {
    let has_negated = p.terms.iter().any(|t| {
        t.factors.iter().any(|f| match &*f.atom {
            Atom::Func(Fun::Sigmoid | Fun::Softplus, u) => negated(u),
            _ => false,
        })
    });
    if !has_negated || p.len() > crate::ratfun::MAX_TERMS {
        return p.clone();
    }
    let mut terms = Vec::with_capacity(p.len());
    for t in &p.terms {
        let mut out = Poly::constant(t.coef.0);
        for f in &t.factors {
            let base = match &*f.atom {
                Atom::Func(Fun::Sigmoid, u) if negated(u) => {
                    Poly::constant(1.0).sub(&Poly::func(Fun::Sigmoid, u.neg()))
                }
                Atom::Func(Fun::Softplus, u) if negated(u) => {
                    Poly::func(Fun::Softplus, u.neg()).add(u)
                }
                _ => Poly::atom(f.atom.clone()),
            };
            out = out.mul(&base.powf(f.exp.0));
            if out.len() > crate::ratfun::MAX_TERMS {
                return p.clone();
            }
        }
        terms.extend(out.terms);
    }
    let q = Poly::from_terms(terms);
    if crate::compact::poly_ops(&q) <= crate::compact::poly_ops(p) {
        q
    } else {
        p.clone()
    }
}

fn negated(u: &Poly) -> bool {
    u.terms.first().is_some_and(|t| t.coef.0 < 0.0)
}
