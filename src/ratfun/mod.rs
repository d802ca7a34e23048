//! Rational functions over the atoms of the normal form: common
//! denominators, exact cancellation and square-free denominators.
//!
//! The normal form of [`crate::ir`] distributes every product, so the
//! derivative of a quotient comes out as many terms over several powers of
//! the same denominators, and nothing there notices that they cancel:
//! `∂/∂x log(1 − σ(x))` is `−σ(x) + σ(x)²` over `1 − σ(x)`, which is
//! `−σ(x)`. Here every atom (a variable entry, `σ(x)`, `exp(x)`, a sum, …)
//! is an opaque generator and a polynomial [`Poly`] is what it looks like:
//! a polynomial in them. [`cancel`] puts the terms over one denominator,
//! divides out of the numerator every denominator factor that divides it
//! exactly, and gives the result back in normal form when it is smaller.
//!
//! Two normalisations make equal denominators meet:
//! * `exp(c·u)` for an integer `c` is read as `exp(u)^c`, so `exp(−x)` and
//!   `exp(x)` are powers of one generator;
//! * a denominator is cleared of negative powers, scaled so its first
//!   term has coefficient 1, and split into square-free factors when it is
//!   a polynomial in one generator (`1 + 2x + x² = (1 + x)²`, Yun's
//!   algorithm).
//!
//! Coefficients are `f64`: the inputs' integers and fractions are exact in
//! it as long as they stay small, and every test for zero is relative to
//! the largest coefficient involved ([`chop`]), so rounding in a division
//! of `1/3`s is not mistaken for a remainder. All work is bounded by
//! [`MAX_TERMS`]; beyond it the input is returned unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::ir::{atom_eq, Atom, Factor, Fun, Poly, Real, Term};

/// Largest polynomial (in terms) this module works on or builds.
pub const MAX_TERMS: usize = 600;

/// Relative size below which a coefficient left by a division is rounding.
const EPS: f64 = 1e-11;

/// `p` over a common denominator with every exact factor cancelled, when
/// that is smaller (by [`crate::compact::poly_ops`]); `p` otherwise.
pub fn cancel(p: &Poly) -> Poly {
    match try_cancel(p) {
        Some(q) if crate::compact::poly_ops(&q) < crate::compact::poly_ops(p) => q,
        _ => p.clone(),
    }
}

/// The cancelled form, or `None` when there is nothing to cancel or the
/// work would exceed the bound.
pub fn try_cancel(p: &Poly) -> Option<Poly> {
    let p = merge_exps(p);
    let q = over_common_denominator(&p)?;
    let mut num = q.numerator;
    let mut dens = q.denominators;
    for (base, m) in dens.iter_mut() {
        while *m > 0 {
            crate::budget::check();
            match divide(&num, base) {
                Some(quot) => {
                    num = quot;
                    *m -= 1;
                }
                None => break,
            }
        }
    }
    let logistic = logistic_form(&num, &dens);
    let mut out = num;
    for (base, m) in &dens {
        if *m > 0 {
            out = out.mul(&group_power(base, -(*m as f64)));
        }
        if out.len() > MAX_TERMS {
            return None;
        }
    }
    match logistic {
        Some(l) if crate::compact::poly_ops(&l) <= crate::compact::poly_ops(&out) => Some(l),
        _ => Some(out),
    }
}

/// A rational function of `E = exp(u)` over a power of `1 + E` or of
/// `1 + E²`, rewritten in `σ(u)` or `tanh(u)`: the identities
/// * `sigmoid-from-exp`: `E/(1 + E) = σ(u)` and `1/(1 + E) = 1 − σ(u)`,
///   so `N(E)/(1 + E)^m = Σ_d c_d σ^d (1 − σ)^(m−d)`;
/// * `tanh-from-exp`: `E²/(1 + E²) = (1 + tanh u)/2` and
///   `1/(1 + E²) = (1 − tanh u)/2`, so
///   `N(E²)/(1 + E²)^m = Σ_d c_d (1 + t)^d (1 − t)^(m−d) / 2^m`.
///
/// `None` unless the numerator's degree allows it (no power of `E` above
/// the denominator's) and `E` occurs nowhere else.
fn logistic_form(num: &Poly, dens: &[(Poly, u32)]) -> Option<Poly> {
    let live: Vec<&(Poly, u32)> = dens.iter().filter(|(_, m)| *m > 0).collect();
    let [(base, m)] = live.as_slice() else {
        return None;
    };
    let m = *m as i64;
    let (e_atom, step) = match univariate(base) {
        Some((v, c)) if matches!(&*v, Atom::Func(Fun::Exp, _)) => match c.as_slice() {
            [a, b] if *a == 1.0 && *b == 1.0 => (v, 1),
            [a, z, b] if *a == 1.0 && *z == 0.0 && *b == 1.0 => (v, 2),
            _ => return None,
        },
        _ => return None,
    };
    let Atom::Func(Fun::Exp, u) = &*e_atom else {
        return None;
    };
    let coeffs = by_degree(num, &e_atom)?;
    if coeffs.values().any(|c| {
        c.terms
            .iter()
            .any(|t| t.factors.iter().any(|f| f.atom.uses_atom(&e_atom)))
    }) {
        return None;
    }
    let one = Poly::constant(1.0);
    let mut out = Poly::zero();
    for (&d, c) in &coeffs {
        if d < 0 || d % step != 0 || d / step > m {
            return None;
        }
        let d = d / step;
        let term = if step == 1 {
            let s = Poly::func(Fun::Sigmoid, u.clone());
            s.powf(d as f64).mul(&one.sub(&s).powf((m - d) as f64))
        } else {
            let t = Poly::func(Fun::Tanh, u.clone());
            one.add(&t)
                .powf(d as f64)
                .mul(&one.sub(&t).powf((m - d) as f64))
                .scale(0.5f64.powi(m as i32))
        };
        out = out.add(&c.mul(&term));
        if out.len() > MAX_TERMS {
            return None;
        }
    }
    Some(chop(out))
}

impl Atom {
    /// Whether the atom `v` occurs in this one (as itself or inside).
    pub fn uses_atom(&self, v: &Arc<Atom>) -> bool {
        let inside = |p: &Poly| {
            p.terms
                .iter()
                .any(|t| t.factors.iter().any(|f| f.atom.uses_atom(v)))
        };
        if *self == **v {
            return true;
        }
        match self {
            Atom::Func(_, p) | Atom::Group(p) => inside(p),
            Atom::Pow(a, b) => inside(a) || inside(b),
            Atom::Sum { body, .. } | Atom::Lse { body, .. } | Atom::Softmax { body, .. } => {
                inside(body)
            }
            Atom::Delta(..) | Atom::Var { .. } | Atom::Dim(_) => false,
        }
    }
}

/// A sum as one fraction: `numerator · Π base^(−m)`.
pub struct Fraction {
    /// The numerator, in normal form (it has no multi-term denominators).
    pub numerator: Poly,
    /// Square-free denominator factors and their multiplicities.
    pub denominators: Vec<(Poly, u32)>,
}

/// Puts `p` over the least common multiple of its multi-term
/// denominators (each split into normalised square-free factors). `None`
/// when `p` has no such denominator or the numerator would be too large.
pub fn over_common_denominator(p: &Poly) -> Option<Fraction> {
    if p.len() > MAX_TERMS {
        return None;
    }
    // Each term as (rest, [(base index, multiplicity)]).
    let mut bases: Vec<Poly> = Vec::new();
    let split: Vec<(Poly, Vec<(usize, u32)>)> = p
        .terms
        .iter()
        .map(|t| split_term(t, &mut bases))
        .collect::<Option<_>>()?;
    if bases.is_empty() {
        return None;
    }
    let mult: Vec<u32> = (0..bases.len())
        .map(|b| {
            split
                .iter()
                .flat_map(|(_, d)| d.iter())
                .filter(|(n, _)| *n == b)
                .map(|(_, m)| *m)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut terms = Vec::new();
    for (rest, dens) in split {
        terms.extend(over_lcm(rest, &dens, &bases, &mult)?.terms);
        if terms.len() > 4 * MAX_TERMS {
            return None;
        }
    }
    let numerator = chop(Poly::from_terms(terms));
    if numerator.len() > MAX_TERMS {
        return None;
    }
    Some(Fraction {
        numerator,
        denominators: bases.into_iter().zip(mult).collect(),
    })
}

/// A term as the product of the rest and its multi-term denominators:
/// each denominator's normalised square-free factors, as indices into
/// `bases` (new ones appended) with their multiplicities.
fn split_term(t: &Term, bases: &mut Vec<Poly>) -> Option<(Poly, Vec<(usize, u32)>)> {
    let mut rest = Poly::constant(t.coef.0);
    let mut dens: Vec<(usize, u32)> = Vec::new();
    for f in &t.factors {
        let e = f.exp.0;
        match &*f.atom {
            Atom::Group(b) if e < 0.0 && e.fract() == 0.0 && e >= -64.0 => {
                let (scale, factors) = normalise_base(b)?;
                rest = rest.mul(&scale.powf(e));
                for (g, k) in factors {
                    let at = match bases.iter().position(|x| *x == g) {
                        Some(n) => n,
                        None => {
                            bases.push(g);
                            bases.len() - 1
                        }
                    };
                    let mult = k * (-e) as u32;
                    match dens.iter_mut().find(|(n, _)| *n == at) {
                        Some(d) => d.1 += mult,
                        None => dens.push((at, mult)),
                    }
                }
            }
            _ => rest = rest.mul(&Poly::atom(f.atom.clone()).powf(e)),
        }
    }
    Some((rest, dens))
}

/// The numerator of one split term over the common denominator: its rest
/// times each base it lacks (`mult[b]` minus its own multiplicity).
/// `None` when it grows past `MAX_TERMS`.
fn over_lcm(rest: Poly, dens: &[(usize, u32)], bases: &[Poly], mult: &[u32]) -> Option<Poly> {
    let mut t = rest;
    for (b, base) in bases.iter().enumerate() {
        let have = dens
            .iter()
            .find(|(n, _)| *n == b)
            .map(|(_, m)| *m)
            .unwrap_or(0);
        for _ in have..mult[b] {
            t = t.mul(base);
            if t.len() > MAX_TERMS {
                return None;
            }
        }
    }
    Some(t)
}

/// `base ^ e` for a multi-term base: kept whole as a group (the normal
/// form would expand small positive powers; here `e` is negative).
fn group_power(base: &Poly, e: f64) -> Poly {
    if base.len() == 1 {
        return base.powf(e);
    }
    Poly {
        terms: vec![Term {
            factors: vec![Factor {
                atom: Arc::new(Atom::Group(base.clone())),
                exp: Real(e),
            }],
            coef: Real(1.0),
        }],
    }
}

/// Drops coefficients that are rounding next to the largest one.
pub fn chop(p: Poly) -> Poly {
    let big = p.terms.iter().map(|t| t.coef.0.abs()).fold(0.0, f64::max);
    if p.terms.iter().all(|t| t.coef.0.abs() > EPS * big) {
        return p;
    }
    Poly {
        terms: p
            .terms
            .into_iter()
            .filter(|t| t.coef.0.abs() > EPS * big)
            .collect(),
    }
}

/// Reads every `exp(c·u)` with an integer `c ≠ 1` as `exp(u)^c`, in the
/// terms and inside denominators, so that `exp(x)` and `exp(−x)` are
/// powers of one generator.
pub fn merge_exps(p: &Poly) -> Poly {
    if !p
        .terms
        .iter()
        .any(|t| t.factors.iter().any(|f| needs_exp_merge(&f.atom)))
    {
        return p.clone();
    }
    let mut terms = Vec::with_capacity(p.len());
    for t in &p.terms {
        let mut out = Poly::constant(t.coef.0);
        for f in &t.factors {
            let base = match &*f.atom {
                Atom::Func(Fun::Exp, arg) => match exp_split(arg) {
                    Some((c, u)) => Poly::func(Fun::Exp, u).powf(c),
                    None => Poly::atom(f.atom.clone()),
                },
                Atom::Group(b) => {
                    let m = merge_exps(b);
                    if m.len() == 1 {
                        m
                    } else {
                        group_power(&m, 1.0)
                    }
                }
                _ => Poly::atom(f.atom.clone()),
            };
            out = out.mul(&base.powf(f.exp.0));
        }
        terms.extend(out.terms);
    }
    Poly::from_terms(terms)
}

fn needs_exp_merge(a: &Atom) -> bool {
    match a {
        Atom::Func(Fun::Exp, arg) => exp_split(arg).is_some(),
        Atom::Group(b) => b
            .terms
            .iter()
            .any(|t| t.factors.iter().any(|f| needs_exp_merge(&f.atom))),
        _ => false,
    }
}

/// `arg = c·u` with `c` an integer other than 1 (the coefficient of the
/// first term), when every coefficient of `u` is then an integer too.
fn exp_split(arg: &Poly) -> Option<(f64, Poly)> {
    let c = arg.terms.first()?.coef.0;
    if c == 1.0 || c.fract() != 0.0 || c.abs() > 64.0 {
        return None;
    }
    if arg.terms.iter().any(|t| t.factors.is_empty()) {
        return None; // exp(x + 1) is left alone
    }
    let u = arg.scale(1.0 / c);
    if u.terms.iter().all(|t| t.coef.0.fract() == 0.0) {
        Some((c, u))
    } else {
        None
    }
}

/// Splits a multi-term denominator base into `scale · Π g^k`: negative
/// powers cleared into `scale`, the first coefficient made 1, and, for a
/// polynomial in one generator, square-free factors. `None` when the base
/// is too large to work on.
pub fn normalise_base(b: &Poly) -> Option<(Poly, Vec<(Poly, u32)>)> {
    if b.len() > MAX_TERMS {
        return None;
    }
    // Clear negative exponents: b = m⁻¹ · b' with b' free of them.
    let mut clear: Vec<(Arc<Atom>, f64)> = Vec::new();
    for t in &b.terms {
        for f in &t.factors {
            if f.exp.0 < 0.0 {
                match clear.iter_mut().find(|(a, _)| atom_eq(a, &f.atom)) {
                    Some(c) => c.1 = c.1.max(-f.exp.0),
                    None => clear.push((f.atom.clone(), -f.exp.0)),
                }
            }
        }
    }
    let mut monomial = Poly::constant(1.0);
    for (a, e) in &clear {
        monomial = monomial.mul(&Poly::atom(a.clone()).powf(*e));
    }
    let cleared = if clear.is_empty() {
        b.clone()
    } else {
        b.mul(&monomial)
    };
    let first = cleared.terms.first()?.coef.0;
    let monic = cleared.scale(1.0 / first);
    let scale = monomial.powf(-1.0).scale(first);
    let factors = match univariate(&monic) {
        Some((v, coeffs)) if coeffs.len() > 2 => square_free(&coeffs)
            .into_iter()
            .map(|(c, k)| (from_univariate(&v, &c), k))
            .collect(),
        _ => vec![(monic, 1)],
    };
    // A factor that is one term (a power of the generator) belongs to the
    // scale, not to the multi-term denominators.
    let mut scale = scale;
    let mut multi = Vec::new();
    for (g, k) in factors {
        if g.len() <= 1 {
            scale = scale.mul(&g.powf(k as f64));
        } else {
            multi.push((g, k));
        }
    }
    Some((scale, multi))
}

/// `p` as a polynomial in its only generator: (generator, coefficients by
/// degree). `None` for several generators or non-integer exponents.
fn univariate(p: &Poly) -> Option<(Arc<Atom>, Vec<f64>)> {
    let mut v: Option<Arc<Atom>> = None;
    let mut coeffs: Vec<f64> = Vec::new();
    for t in &p.terms {
        let deg = match t.factors.as_slice() {
            [] => 0usize,
            [f] => {
                match &v {
                    Some(a) if !atom_eq(a, &f.atom) => return None,
                    Some(_) => {}
                    None => v = Some(f.atom.clone()),
                }
                let e = f.exp.0;
                if e < 1.0 || e.fract() != 0.0 || e > 64.0 {
                    return None;
                }
                e as usize
            }
            _ => return None,
        };
        if coeffs.len() <= deg {
            coeffs.resize(deg + 1, 0.0);
        }
        coeffs[deg] += t.coef.0;
    }
    Some((v?, coeffs))
}

fn from_univariate(v: &Arc<Atom>, c: &[f64]) -> Poly {
    let mut terms = Vec::new();
    for (d, &x) in c.iter().enumerate() {
        if x != 0.0 {
            terms.extend(Poly::atom(v.clone()).powf(d as f64).scale(x).terms);
        }
    }
    let p = Poly::from_terms(terms);
    // First coefficient 1, as every normalised base.
    match p.terms.first().map(|t| t.coef.0) {
        Some(c) if c != 1.0 && p.len() > 1 => p.scale(1.0 / c),
        _ => p,
    }
}

mod univariate;
use univariate::*;

// ---------------------------------------------------------------------------
// Exact division of multivariate polynomials by a denominator factor.

/// `n / g` when `g` divides `n` exactly, by long division in a generator
/// of `g` whose leading coefficient is a number. Negative powers of that
/// generator in `n` are allowed (Laurent division); fractional ones are not.
pub fn divide(n: &Poly, g: &Poly) -> Option<Poly> {
    if n.is_empty() {
        return Some(Poly::zero());
    }
    let (v, gc) = main_generator(g)?;
    let dg = *gc.keys().next_back()?;
    let lead = gc[&dg].as_constant()?;
    let mut r = by_degree(n, &v)?;
    let lo = *r.keys().next()?;
    let big = n.terms.iter().map(|t| t.coef.0.abs()).fold(0.0, f64::max);
    let mut quotient: Vec<Term> = Vec::new();
    let mut steps = 0usize;
    while let Some((&d, lc)) = r.iter().next_back() {
        if d - lo < dg {
            break;
        }
        steps += 1;
        if steps > MAX_TERMS {
            return None;
        }
        let c = lc.scale(1.0 / lead);
        let shift = d - dg;
        quotient.extend(c.mul(&power(&v, shift)).terms);
        for (&k, gk) in &gc {
            let slot = r.entry(k + shift).or_default();
            let updated = chop_abs(slot.sub(&c.mul(gk)), big);
            *slot = updated;
            if slot.len() > MAX_TERMS {
                return None;
            }
        }
        r.retain(|_, p| !p.is_empty());
    }
    if !r.is_empty() {
        return None;
    }
    Some(chop(Poly::from_terms(quotient)))
}

fn chop_abs(p: Poly, big: f64) -> Poly {
    Poly {
        terms: p
            .terms
            .into_iter()
            .filter(|t| t.coef.0.abs() > EPS * big)
            .collect(),
    }
}

fn power(v: &Arc<Atom>, d: i64) -> Poly {
    Poly::atom(v.clone()).powf(d as f64)
}

/// A generator of `g` in which `g`'s leading coefficient is a number, and
/// `g`'s coefficients by degree in it.
fn main_generator(g: &Poly) -> Option<(Arc<Atom>, BTreeMap<i64, Poly>)> {
    let mut seen: Vec<Arc<Atom>> = Vec::new();
    for t in &g.terms {
        for f in &t.factors {
            if !seen.iter().any(|a| atom_eq(a, &f.atom)) {
                seen.push(f.atom.clone());
            }
        }
    }
    for v in seen {
        let Some(coeffs) = by_degree(g, &v) else {
            continue;
        };
        let (&top, lc) = coeffs.iter().next_back()?;
        if top > 0 && lc.as_constant().is_some() && *coeffs.keys().next()? >= 0 {
            return Some((v, coeffs));
        }
    }
    None
}

/// `p` grouped by the integer degree of generator `v` in each term.
fn by_degree(p: &Poly, v: &Arc<Atom>) -> Option<BTreeMap<i64, Poly>> {
    let mut out: BTreeMap<i64, Vec<Term>> = BTreeMap::new();
    for t in &p.terms {
        let mut deg = 0i64;
        let mut rest = Vec::with_capacity(t.factors.len());
        for f in &t.factors {
            if atom_eq(&f.atom, v) {
                if f.exp.0.fract() != 0.0 || f.exp.0.abs() > 1024.0 {
                    return None;
                }
                deg = f.exp.0 as i64;
            } else {
                // `v` inside another generator (x in exp(x)) is fine: an
                // identity between polynomials in independent symbols
                // holds whatever they stand for.
                rest.push(f.clone());
            }
        }
        out.entry(deg).or_default().push(Term {
            factors: rest,
            coef: t.coef,
        });
    }
    Some(
        out.into_iter()
            .map(|(d, ts)| (d, Poly::from_terms(ts)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x() -> Poly {
        Poly::var("x", vec![])
    }

    #[test]
    fn square_free_finds_a_repeated_root() {
        // 1 + 2x + x² = (1 + x)²
        let f = square_free(&[1.0, 2.0, 1.0]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].1, 2);
        assert_eq!(trim(f[0].0.clone()), vec![1.0, 1.0]);
    }

    #[test]
    fn division_is_exact_or_refused() {
        let one_plus_x = Poly::constant(1.0).add(&x());
        let sq = one_plus_x.mul(&one_plus_x);
        assert_eq!(divide(&sq, &one_plus_x), Some(one_plus_x.clone()));
        assert_eq!(divide(&sq.add(&Poly::constant(1.0)), &one_plus_x), None);
    }

    #[test]
    fn a_quotient_cancels() {
        // (x² − 1)/(x − 1) = x + 1
        let num = x().mul(&x()).sub(&Poly::constant(1.0));
        let den = x().sub(&Poly::constant(1.0));
        let q = num.mul(&group_power(&den, -1.0));
        assert_eq!(cancel(&q), x().add(&Poly::constant(1.0)));
    }
}
