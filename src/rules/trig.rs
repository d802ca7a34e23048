//! Trigonometric identities over pairs of terms of a sum.
//!
//! These act on the normal form directly rather than in the e-graph: each
//! one joins two terms of an n-ary sum that differ only in a `sin²`/`cos²`
//! factor, which fixed-arity patterns cannot pick out of a longer sum.
//! [`rewrite`] applies them everywhere and keeps the result only when it
//! prints shorter.
//!
//! * `trig-pythagoras`: `c·R·cos(u)² + c·R·sin(u)² = c·R`
//! * `trig-double-angle-cos`: `c·R·cos(u)² − c·R·sin(u)² = c·R·cos(2u)`
//! * `trig-double-angle-sin`: `c·R·sin(u)·cos(u) = c/2·R·sin(2u)`

use std::sync::Arc;

use crate::ir::{atom_eq, Atom, Factor, Fun, Poly, Real, Term};

/// `p` with the identities above applied, when that is shorter.
pub fn rewrite(p: &Poly) -> Poly {
    let has_trig = p.terms.iter().any(|t| {
        t.factors
            .iter()
            .any(|f| matches!(&*f.atom, Atom::Func(Fun::Sin | Fun::Cos, _)))
    });
    if !has_trig || p.len() > crate::ratfun::MAX_TERMS {
        return p.clone();
    }
    let q = apply(p);
    if crate::compact::poly_ops(&q) < crate::compact::poly_ops(p) {
        q
    } else {
        p.clone()
    }
}

fn apply(p: &Poly) -> Poly {
    let terms = &p.terms;
    let mut used = vec![false; terms.len()];
    let mut out: Vec<Term> = Vec::with_capacity(terms.len());
    // Pairs first: cos(u)² next to ±sin(u)² with the same other factors.
    for (i, t) in terms.iter().enumerate() {
        let Some((u, rest)) = split_square(t, Fun::Cos) else {
            continue;
        };
        let sin2 = with_factor(&rest, Fun::Sin, &u, 2.0);
        let c = t.coef.0;
        let partner = (0..terms.len()).find(|&j| {
            j != i
                && !used[j]
                && terms[j].factors == sin2
                && (terms[j].coef.0 == c || terms[j].coef.0 == -c)
        });
        let Some(j) = partner else { continue };
        used[i] = true;
        used[j] = true;
        let mut joined = Poly::constant(c);
        for f in &rest {
            joined = joined.mul(&Poly::atom(f.atom.clone()).powf(f.exp.0));
        }
        if terms[j].coef.0 == -c {
            joined = joined.mul(&Poly::func(Fun::Cos, u.scale(2.0)));
        }
        out.extend(joined.terms);
    }
    for (i, t) in terms.iter().enumerate() {
        if used[i] {
            continue;
        }
        // sin(u)·cos(u)
        let pair = t.factors.iter().find_map(|f| match &*f.atom {
            Atom::Func(Fun::Sin, u) if f.exp.0 == 1.0 => t
                .factors
                .iter()
                .any(|g| g.exp.0 == 1.0 && matches!(&*g.atom, Atom::Func(Fun::Cos, v) if v == u))
                .then(|| u.clone()),
            _ => None,
        });
        match pair {
            Some(u) => {
                let mut joined = Poly::constant(t.coef.0 / 2.0);
                for f in &t.factors {
                    let trig_of_u = f.exp.0 == 1.0
                        && matches!(&*f.atom, Atom::Func(Fun::Sin | Fun::Cos, v) if *v == u);
                    if !trig_of_u {
                        joined = joined.mul(&Poly::atom(f.atom.clone()).powf(f.exp.0));
                    }
                }
                out.extend(joined.mul(&Poly::func(Fun::Sin, u.scale(2.0))).terms);
            }
            None => out.push(t.clone()),
        }
    }
    Poly::from_terms(out)
}

/// `t = R · f(u)²`: `u` and the factors `R`.
fn split_square(t: &Term, fun: Fun) -> Option<(Poly, Vec<Factor>)> {
    let (n, u) = t
        .factors
        .iter()
        .enumerate()
        .find_map(|(n, f)| match &*f.atom {
            Atom::Func(g, u) if *g == fun && f.exp.0 == 2.0 => Some((n, u.clone())),
            _ => None,
        })?;
    let mut rest = t.factors.clone();
    rest.remove(n);
    Some((u, rest))
}

/// The sorted factors `rest · fun(u)^e`.
fn with_factor(rest: &[Factor], fun: Fun, u: &Poly, e: f64) -> Vec<Factor> {
    let atom = Arc::new(Atom::Func(fun, u.clone()));
    let mut fs: Vec<Factor> = rest.to_vec();
    if fs.iter().any(|f| atom_eq(&f.atom, &atom)) {
        return Vec::new();
    }
    fs.push(Factor { atom, exp: Real(e) });
    fs.sort();
    fs
}
