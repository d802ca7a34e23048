//! The constructors of [`Poly`] that keep the normal form (see
//! [`crate::ir`]): sums, products, powers and binders, with distribution,
//! like terms, delta contraction and factoring out of sums done as they go.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;

// ---------------------------------------------------------------------------
// Constructors that keep the normal form.

impl Poly {
    /// The zero polynomial.
    pub fn zero() -> Poly {
        Poly { terms: Vec::new() }
    }

    /// A constant.
    pub fn constant(c: f64) -> Poly {
        if c == 0.0 {
            Poly::zero()
        } else {
            Poly {
                terms: vec![Term {
                    factors: Vec::new(),
                    coef: Real(c),
                }],
            }
        }
    }

    /// One atom to the first power.
    pub fn atom(atom: Arc<Atom>) -> Poly {
        if let Atom::Group(p) = &*atom {
            return p.clone();
        }
        Poly {
            terms: vec![Term {
                factors: vec![Factor {
                    atom,
                    exp: Real(1.0),
                }],
                coef: Real(1.0),
            }],
        }
    }

    /// A variable entry.
    pub fn var(name: &str, idx: Vec<Ix>) -> Poly {
        Poly::atom(Arc::new(Atom::Var {
            name: name.into(),
            idx,
        }))
    }

    /// A dimension as a number.
    pub fn dim(d: &Dim) -> Poly {
        match d {
            Dim::Fixed(n) => Poly::constant(*n as f64),
            Dim::Named(s) => Poly::atom(Arc::new(Atom::Dim(s.clone()))),
        }
    }

    /// `δ(a, b)`; for a bound index the delta is contracted by the enclosing
    /// sum.
    pub fn delta(a: Ix, b: Ix) -> Poly {
        if a == b {
            return Poly::constant(1.0);
        }
        Poly::atom(Arc::new(Atom::Delta(a.min(b), a.max(b))))
    }

    /// Whether this is the zero polynomial.
    pub fn is_zero(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value, if this is a constant.
    pub fn as_constant(&self) -> Option<f64> {
        match self.terms.as_slice() {
            [] => Some(0.0),
            [t] if t.factors.is_empty() => Some(t.coef.0),
            _ => None,
        }
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether there are no terms.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// `coef · Π factors`, normalized (each factor multiplied in, so a
    /// group to the first power opens and deltas contract).
    pub fn product(factors: &[Factor], coef: f64) -> Poly {
        factors.iter().fold(Poly::constant(coef), |acc, f| {
            acc.mul(&Poly::atom(f.atom.clone()).powf(f.exp.0))
        })
    }

    /// Builds a polynomial from arbitrary terms: sorts, merges, drops zeros.
    pub fn from_terms(mut terms: Vec<Term>) -> Poly {
        crate::budget::check();
        // Comparisons of deeply nested atoms can make one sort long: the
        // deadline is checked inside it too.
        terms.sort_by(|a, b| {
            crate::budget::tick();
            a.factors.cmp(&b.factors)
        });
        let mut out: Vec<Term> = Vec::with_capacity(terms.len());
        for t in terms {
            match out.last_mut() {
                Some(last) if last.factors == t.factors => last.coef = Real(last.coef.0 + t.coef.0),
                _ => out.push(t),
            }
        }
        out.retain(|t| t.coef.0 != 0.0);
        Poly { terms: out }
    }

    /// `self + other`.
    pub fn add(&self, other: &Poly) -> Poly {
        if self.is_empty() {
            return other.clone();
        }
        if other.is_empty() {
            return self.clone();
        }
        Poly::from_terms(
            self.terms
                .iter()
                .chain(other.terms.iter())
                .cloned()
                .collect(),
        )
    }

    /// `self * c`.
    pub fn scale(&self, c: f64) -> Poly {
        if c == 0.0 {
            return Poly::zero();
        }
        Poly {
            terms: self
                .terms
                .iter()
                .map(|t| Term {
                    factors: t.factors.clone(),
                    coef: Real(t.coef.0 * c),
                })
                .collect(),
        }
    }

    /// `-self`.
    pub fn neg(&self) -> Poly {
        self.scale(-1.0)
    }

    /// `self - other`.
    pub fn sub(&self, other: &Poly) -> Poly {
        self.add(&other.neg())
    }

    /// `self * other`, distributed.
    pub fn mul(&self, other: &Poly) -> Poly {
        let mut terms = Vec::with_capacity(self.len() * other.len());
        for a in &self.terms {
            for b in &other.terms {
                terms.extend(mul_terms(a, b));
            }
        }
        Poly::from_terms(terms)
    }

    /// `self ^ e` for a numeric exponent.
    pub fn powf(&self, e: f64) -> Poly {
        if e == 1.0 {
            return self.clone();
        }
        if e == 0.0 {
            return Poly::constant(1.0);
        }
        match self.terms.as_slice() {
            [] => {
                if e > 0.0 {
                    Poly::zero()
                } else {
                    // 0 to a negative power: keep it visible rather than invent a value.
                    Poly::atom_pow(Arc::new(Atom::Group(Poly::zero())), e)
                }
            }
            [t] => {
                let c = t.coef.0;
                let integral = e.fract() == 0.0;
                let has_delta = t
                    .factors
                    .iter()
                    .any(|f| matches!(&*f.atom, Atom::Delta(..)));
                // (Π a^k)^e = Π a^(k e) for a positive base; for any real
                // `a` too when k is odd and k e is not an integer, since
                // then both sides are undefined (NaN) for a < 0 alike:
                // sqrt(x)·x⁻¹ is x^(−1/2).
                let positive_base = c > 0.0
                    && t.factors.iter().all(|f| {
                        is_positive(&f.atom)
                            || (f.exp.0.fract() == 0.0
                                && f.exp.0.rem_euclid(2.0) == 1.0
                                && (f.exp.0 * e).fract() != 0.0
                                && !matches!(&*f.atom, Atom::Delta(..)))
                    });
                if (integral || positive_base) && !(has_delta && e < 0.0) {
                    // (c Π a^k)^e = c^e Π a^(k e): exact for integer e, and
                    // for positive bases otherwise. δ^e = δ for e > 0.
                    let factors = t
                        .factors
                        .iter()
                        .map(|f| match &*f.atom {
                            Atom::Delta(..) => f.clone(),
                            _ => Factor {
                                atom: f.atom.clone(),
                                exp: Real(f.exp.0 * e),
                            },
                        })
                        .collect();
                    Poly::from_terms(normalize_term(factors, c.powf(e)))
                } else {
                    Poly::atom_pow(Arc::new(Atom::Group(self.clone())), e)
                }
            }
            _ => {
                if e.fract() == 0.0 && (2.0..=3.0).contains(&e) && self.len() <= 4 {
                    // Small integer powers of short sums are expanded so
                    // that they meet their own products.
                    let mut out = self.clone();
                    for _ in 1..(e as usize) {
                        out = out.mul(self);
                    }
                    out
                } else {
                    Poly::atom_pow(Arc::new(Atom::Group(self.clone())), e)
                }
            }
        }
    }

    fn atom_pow(atom: Arc<Atom>, e: f64) -> Poly {
        Poly {
            terms: vec![Term {
                factors: vec![Factor { atom, exp: Real(e) }],
                coef: Real(1.0),
            }],
        }
    }

    /// `self ^ e` for a polynomial exponent.
    pub fn pow(&self, e: &Poly) -> Poly {
        match e.as_constant() {
            Some(c) => self.powf(c),
            None => Poly::pow_sym(self.clone(), e.clone()),
        }
    }

    /// `base ^ exponent` with a symbolic exponent.
    pub fn pow_sym(base: Poly, exponent: Poly) -> Poly {
        if let Some(c) = exponent.as_constant() {
            return base.powf(c);
        }
        if base.as_constant() == Some(1.0) {
            return Poly::constant(1.0);
        }
        Poly::atom(Arc::new(Atom::Pow(base, exponent)))
    }

    /// An elementwise function of a polynomial, with the identities that
    /// hold for every argument applied on the spot.
    pub fn func(f: Fun, arg: Poly) -> Poly {
        if let Some(c) = arg.as_constant() {
            match f {
                Fun::Exp if c == 0.0 => return Poly::constant(1.0),
                Fun::Log if c == 1.0 => return Poly::zero(),
                Fun::Sin | Fun::Tanh if c == 0.0 => return Poly::zero(),
                Fun::Cos if c == 0.0 => return Poly::constant(1.0),
                _ => {}
            }
        }
        Poly::atom(Arc::new(Atom::Func(f, arg)))
    }

    /// `Σ_k body` over a fresh index `k` of length `dim`.
    pub fn sum_over(k: Ix, dim: &Dim, body: &Poly) -> Poly {
        let mut out = Poly::zero();
        for t in &body.terms {
            out = out.add(&sum_term(k, dim, t));
        }
        out
    }

    /// `Σ_k body` as one sum over the whole of `body`, for a fresh index
    /// `k`. The normal form splits a sum term by term (so like terms meet);
    /// code generation joins sums again so that each takes one pass.
    pub fn sum_whole(k: Ix, dim: &Dim, body: Poly) -> Poly {
        let (ix, body) = close_binder(k, body);
        Poly::atom(Arc::new(Atom::Sum {
            ix,
            dim: dim.clone(),
            body,
        }))
    }

    /// `softmax_k(body)` at `at`, for a fresh index `k`.
    pub fn softmax(k: Ix, dim: &Dim, body: Poly, at: Ix) -> Poly {
        let (ix, body) = close_binder(k, body);
        Poly::atom(Arc::new(Atom::Softmax {
            ix,
            dim: dim.clone(),
            body,
            at,
        }))
    }

    /// `log Σ_k exp(body)`, for a fresh index `k`.
    pub fn lse(k: Ix, dim: &Dim, body: Poly) -> Poly {
        let (ix, body) = close_binder(k, body);
        Poly::atom(Arc::new(Atom::Lse {
            ix,
            dim: dim.clone(),
            body,
        }))
    }
}

/// Whether an atom is positive wherever it is defined.
fn is_positive(a: &Atom) -> bool {
    matches!(
        a,
        Atom::Func(Fun::Exp | Fun::Sigmoid | Fun::Softplus, _)
            | Atom::Softmax { .. }
            | Atom::Dim(_)
    )
}

/// Renames the fresh binder `k` of `body` to its canonical name.
fn close_binder(k: Ix, body: Poly) -> (Ix, Poly) {
    let ix = BOUND + body.height();
    debug_assert!(!body.mentions(ix), "canonical index {ix} free in a body");
    (ix, body.rename(k, ix))
}

/// Multiplies two terms; the result is normalized (it may be zero terms, or
/// several when merging delta blocks renames a compound atom).
fn mul_terms(a: &Term, b: &Term) -> Vec<Term> {
    let mut factors = Vec::with_capacity(a.factors.len() + b.factors.len());
    factors.extend(a.factors.iter().cloned());
    factors.extend(b.factors.iter().cloned());
    normalize_term(factors, a.coef.0 * b.coef.0)
}

/// Normal form of a product: delta equality blocks among free indices
/// (atoms use the block's smallest index), then sorted, merged factors.
fn normalize_term(factors: Vec<Factor>, coef: f64) -> Vec<Term> {
    if coef == 0.0 {
        return Vec::new();
    }
    let deltas: Vec<(Ix, Ix)> = factors
        .iter()
        .filter_map(|f| {
            if let Atom::Delta(a, b) = &*f.atom {
                Some((*a, *b))
            } else {
                None
            }
        })
        .collect();
    if deltas.is_empty() {
        return normalize_plain(factors, coef).into_iter().collect();
    }
    let map = delta_representatives(&deltas);
    let new_deltas: Vec<Factor> = map
        .iter()
        .map(|&(m, r)| Factor {
            atom: Arc::new(Atom::Delta(r, m)),
            exp: Real(1.0),
        })
        .collect();
    let others: Vec<Factor> = factors
        .into_iter()
        .filter(|f| !matches!(&*f.atom, Atom::Delta(..)))
        .collect();
    if !others
        .iter()
        .any(|f| map.iter().any(|(m, _)| f.atom.mentions(*m)))
    {
        let mut all = others;
        all.extend(new_deltas);
        return normalize_plain(all, coef).into_iter().collect();
    }
    // Some atoms name a non-representative member: rename them (which may
    // change their own normal form), then put the deltas back.
    let mut p = Poly::constant(coef);
    for f in others {
        let mut base = Poly::atom(f.atom.clone());
        for &(m, r) in &map {
            base = base.rename(m, r);
        }
        p = p.mul(&base.powf(f.exp.0));
    }
    p.terms
        .into_iter()
        .filter_map(|t| {
            let mut fs = t.factors;
            fs.extend(new_deltas.iter().cloned());
            normalize_plain(fs, t.coef.0)
        })
        .collect()
}

/// The blocks of indices that `deltas` join, as a map from each member
/// to its block's smallest index (members that are their own
/// representative left out). Union-find over the few indices involved.
fn delta_representatives(deltas: &[(Ix, Ix)]) -> Vec<(Ix, Ix)> {
    let members: Vec<Ix> = deltas
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rep: Vec<Ix> = members.clone();
    let pos = |x: Ix| members.binary_search(&x).expect("delta member");
    loop {
        let mut changed = false;
        for &(a, b) in deltas {
            let r = rep[pos(a)].min(rep[pos(b)]);
            for x in [a, b] {
                if rep[pos(x)] != r {
                    rep[pos(x)] = r;
                    changed = true;
                }
            }
        }
        // Propagate through chains until every member points at its block's minimum.
        for i in 0..members.len() {
            let r = rep[pos(rep[i])];
            if r < rep[i] {
                rep[i] = r;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    members
        .iter()
        .zip(&rep)
        .filter(|(m, r)| m != r)
        .map(|(m, r)| (*m, *r))
        .collect()
}

/// Sorts and merges factors that are already delta-consistent.
fn normalize_plain(mut factors: Vec<Factor>, mut coef: f64) -> Option<Term> {
    factors.sort_by(|a, b| atom_cmp(&a.atom, &b.atom));
    let mut out: Vec<Factor> = Vec::with_capacity(factors.len());
    for f in factors {
        match out.last_mut() {
            Some(last) if atom_eq(&last.atom, &f.atom) => {
                if let Atom::Delta(..) = &*f.atom {
                    continue; // δ² = δ
                }
                last.exp = Real(last.exp.0 + f.exp.0);
            }
            _ => out.push(f),
        }
    }
    out.retain(|f| f.exp.0 != 0.0);
    // A delta between two equal indices never survives construction, and a
    // product of a constant-valued atom is folded here.
    let mut kept = Vec::with_capacity(out.len());
    for f in out {
        if let Atom::Group(p) = &*f.atom {
            if let Some(c) = p.as_constant() {
                if c == 0.0 && f.exp.0 > 0.0 {
                    return None;
                }
                if c != 0.0 {
                    coef *= c.powf(f.exp.0);
                    continue;
                }
            }
        }
        kept.push(f);
    }
    if coef == 0.0 {
        None
    } else {
        Some(Term {
            factors: kept,
            coef: Real(coef),
        })
    }
}

/// `Σ_k t` for one term and a fresh `k`.
fn sum_term(k: Ix, dim: &Dim, t: &Term) -> Poly {
    // A delta that joins k to another index contracts the sum.
    for f in &t.factors {
        if let Atom::Delta(a, b) = &*f.atom {
            if *a == k || *b == k {
                let other = if *a == k { *b } else { *a };
                let rest: Vec<Factor> = t
                    .factors
                    .iter()
                    .filter(|g| !std::ptr::eq(*g, f))
                    .cloned()
                    .collect();
                let rest = Term {
                    factors: rest,
                    coef: t.coef,
                };
                return rest.rename(k, other);
            }
        }
    }
    let (inside, outside): (Vec<Factor>, Vec<Factor>) =
        t.factors.iter().cloned().partition(|f| f.atom.mentions(k));
    let outside = Poly::from_terms(normalize_term(outside, t.coef.0));
    if inside.is_empty() {
        return outside.mul(&Poly::dim(dim));
    }
    let body = Poly::from_terms(normalize_term(inside, 1.0));
    let (ix, body) = close_binder(k, body);
    outside.mul(&Poly::atom(Arc::new(Atom::Sum {
        ix,
        dim: dim.clone(),
        body,
    })))
}
