//! The factoring moves of [`super`]: content, collection of a shared
//! atom, square-free and binomial forms.

use std::sync::Arc;

use super::*;

/// The content of a sum: a number and a monomial that divide every term
/// (the lowest power of each atom, negative powers included), and the
/// terms divided by it. `None` when it is 1.
pub(super) fn content(terms: &[Term]) -> Option<(Term, Vec<Term>)> {
    let common = common_monomial(terms)?;
    let c = numeric_content(terms);
    if c == 1.0 && common.is_empty() {
        return None;
    }
    let divisor = Term {
        factors: common.clone(),
        coef: Real(c),
    };
    let rest = divide_terms(terms, &divisor);
    Some((
        Term {
            factors: common,
            coef: Real(c),
        },
        rest,
    ))
}

/// The monomial that divides every term: the lowest power of each atom
/// over all terms (0 where it is absent, so negative powers count
/// wherever they appear). None for no terms.
fn common_monomial(terms: &[Term]) -> Option<Vec<Factor>> {
    let first = terms.first()?;
    // Lowest exponent of each atom over all terms (0 where it is absent).
    let mut common: Vec<Factor> = Vec::new();
    for f in &first.factors {
        let mut low = f.exp.0;
        let mut everywhere = true;
        for t in &terms[1..] {
            match t.factors.iter().find(|g| atom_eq(&g.atom, &f.atom)) {
                Some(g) => low = low.min(g.exp.0),
                None => {
                    everywhere = false;
                    break;
                }
            }
        }
        if everywhere {
            common.push(Factor {
                atom: f.atom.clone(),
                exp: Real(low),
            });
        } else if f.exp.0 < 0.0 {
            // An atom absent elsewhere has exponent 0 there.
            common.push(Factor {
                atom: f.atom.clone(),
                exp: Real(f.exp.0.min(0.0)),
            });
        }
    }
    // Negative powers present in some later term but not in the first.
    for t in &terms[1..] {
        for g in &t.factors {
            if g.exp.0 < 0.0 && !common.iter().any(|c| atom_eq(&c.atom, &g.atom)) {
                common.push(Factor {
                    atom: g.atom.clone(),
                    exp: Real(0.0),
                });
            }
        }
    }
    for c in common.iter_mut() {
        for t in terms {
            let e = t
                .factors
                .iter()
                .find(|g| atom_eq(&g.atom, &c.atom))
                .map_or(0.0, |g| g.exp.0);
            c.exp = Real(c.exp.0.min(e));
        }
    }
    common.retain(|c| c.exp.0 != 0.0);
    Some(common)
}

/// The numeric content: the gcd of the numerators over the lcm of the
/// denominators when every coefficient is a fraction (else the common
/// magnitude, or 1), with the sign of the majority of the terms.
fn numeric_content(terms: &[Term]) -> f64 {
    let fr: Option<Vec<(i64, i64)>> = terms.iter().map(|t| as_fraction(t.coef.0)).collect();
    let mut c = match fr {
        Some(fr) => {
            let g = fr.iter().fold(0, |g, (p, _)| gcd(g, *p));
            let l = fr
                .iter()
                .try_fold(1i64, |l, (_, q)| l.checked_mul(*q).map(|m| m / gcd(l, *q)));
            match (g, l) {
                (g, Some(l)) if g != 0 => g as f64 / l as f64,
                _ => 1.0,
            }
        }
        None => {
            let a = terms[0].coef.0.abs();
            if terms.iter().all(|t| t.coef.0.abs() == a) {
                a
            } else {
                1.0
            }
        }
    };
    let negatives = terms.iter().filter(|t| t.coef.0 < 0.0).count();
    if 2 * negatives > terms.len() {
        c = -c;
    }
    c
}

/// Every term divided by the monomial `d`, renormalised (a group left
/// to the first power is a sum again, and its terms meet the others').
pub(super) fn divide_terms(terms: &[Term], d: &Term) -> Vec<Term> {
    let mut out = Vec::with_capacity(terms.len());
    for t in terms {
        let mut p = Poly::constant(t.coef.0 / d.coef.0);
        for f in &t.factors {
            let e = f.exp.0
                - d.factors
                    .iter()
                    .find(|g| atom_eq(&g.atom, &f.atom))
                    .map_or(0.0, |g| g.exp.0);
            if e != 0.0 {
                p = p.mul(&Poly::atom(f.atom.clone()).powf(e));
            }
        }
        for g in &d.factors {
            if !t.factors.iter().any(|f| atom_eq(&f.atom, &g.atom)) {
                p = p.mul(&Poly::atom(g.atom.clone()).powf(-g.exp.0));
            }
        }
        out.extend(p.terms);
    }
    Poly::from_terms(out).terms
}

/// The cheapest factored form of a sum of terms found greedily.
pub(super) fn factor_sum(terms: &[Term], depth: usize) -> Node {
    let flat_node = sum_node(terms.iter().map(term_node).collect());
    if terms.len() <= 1 || terms.len() > MAX_FACTOR_TERMS || depth > 12 {
        return flat_node;
    }
    crate::budget::check();
    let mut best = flat_node;
    let consider = |n: Node, best: &mut Node| {
        if n.ops() <= best.ops() {
            *best = n;
        }
    };
    if let Some((c, rest)) = content(terms) {
        let inner = factor_sum(&rest, depth + 1);
        let mut kids = vec![term_node(&c)];
        kids.push(inner);
        consider(mul_node(kids), &mut best);
        // Content out, nothing else: the inner sum is already its best.
        return best;
    }
    if let Some(n) = square_free_form(terms) {
        consider(n, &mut best);
    }
    if let Some(n) = binomial_power(terms) {
        consider(n, &mut best);
    }
    if let Some(n) = binomial_in_sum(terms, depth) {
        consider(n, &mut best);
    }
    for (atom, sign) in shared_atoms(terms)
        .into_iter()
        .take(if depth < 2 { 2 } else { 1 })
    {
        let node = collect_atom(terms, &atom, sign, depth);
        consider(node, &mut best);
    }
    // Last, so that on a tie a product of factors wins over a Horner form.
    for d in derivative_factors(terms) {
        let p = Poly {
            terms: terms.to_vec(),
        };
        if let Some(q) = crate::ratfun::divide(&p, &d) {
            if q.len() < terms.len() {
                let node = mul_node(vec![flat(&d), factor_sum(&q.terms, depth + 1)]);
                consider(node, &mut best);
            }
        }
    }
    best
}

/// `terms` with `atom` collected: the terms that carry it (to a positive
/// power when `sign`, else a negative one) as `atom^low·(…)`, `low` their
/// lowest (or highest) power, plus the others, each part factored again.
fn collect_atom(terms: &[Term], atom: &Arc<Atom>, sign: bool, depth: usize) -> Node {
    let (with, without): (Vec<Term>, Vec<Term>) = terms.iter().cloned().partition(|t| {
        t.factors
            .iter()
            .any(|f| atom_eq(&f.atom, atom) && (f.exp.0 > 0.0) == sign)
    });
    let powers = with.iter().map(|t| {
        t.factors
            .iter()
            .find(|f| atom_eq(&f.atom, atom))
            .map(|f| f.exp.0)
            .unwrap()
    });
    let low = if sign {
        powers.fold(f64::INFINITY, f64::min)
    } else {
        powers.fold(f64::NEG_INFINITY, f64::max)
    };
    let factor = Factor {
        atom: atom.clone(),
        exp: Real(low),
    };
    let divided = divide_terms(
        &with,
        &Term {
            factors: vec![factor.clone()],
            coef: Real(1.0),
        },
    );
    let collected = mul_node(vec![factor_node(&factor), factor_sum(&divided, depth + 1)]);
    if without.is_empty() {
        collected
    } else {
        sum_node(vec![collected, factor_sum(&without, depth + 1)])
    }
}

/// Factors that derivatives of the functions in `terms` carry, worth a
/// trial division: `1 − tanh(u)²` (from `tanh′ = 1 − tanh²`) and
/// `1 − σ(u)` (from `σ′ = σ·(1 − σ)`).
pub(super) fn derivative_factors(terms: &[Term]) -> Vec<Poly> {
    let mut out: Vec<Poly> = Vec::new();
    for t in terms {
        for f in &t.factors {
            let d = match &*f.atom {
                Atom::Func(crate::ir::Fun::Tanh, _) => {
                    let a = Poly::atom(f.atom.clone());
                    Poly::constant(1.0).sub(&a.mul(&a))
                }
                Atom::Func(crate::ir::Fun::Sigmoid, _) => {
                    Poly::constant(1.0).sub(&Poly::atom(f.atom.clone()))
                }
                _ => continue,
            };
            if !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// Three terms of a longer sum that are `c·(a ± b)²`, written so, with
/// the rest beside them (`s² − mu² + 2·mu·x − x²` → `s² − (mu − x)²`).
pub(super) fn binomial_in_sum(terms: &[Term], depth: usize) -> Option<Node> {
    if terms.len() < 4 || terms.len() > 24 {
        return None;
    }
    let squares: Vec<(usize, Term)> = terms
        .iter()
        .enumerate()
        .filter_map(|(n, t)| {
            // c·a² with a the square root of the monomial, c = ±coef.
            let f = t
                .factors
                .iter()
                .map(|f| {
                    let e = f.exp.0 / 2.0;
                    (e.fract() == 0.0).then(|| Factor {
                        atom: f.atom.clone(),
                        exp: Real(e),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            (!f.is_empty()).then_some((
                n,
                Term {
                    factors: f,
                    coef: t.coef,
                },
            ))
        })
        .collect();
    let all = Poly {
        terms: terms.to_vec(),
    };
    for (x, (_, a)) in squares.iter().enumerate() {
        for (_, b) in &squares[x + 1..] {
            // c (a ± b)² = c a² ± 2 c a b + c b²: both squares with the same c.
            let c = a.coef.0;
            if b.coef.0 != c {
                continue;
            }
            for sign in [1.0, -1.0] {
                let ua = Term {
                    factors: a.factors.clone(),
                    coef: Real(1.0),
                };
                let ub = Term {
                    factors: b.factors.clone(),
                    coef: Real(sign),
                };
                let base = Poly::from_terms(vec![ua, ub]);
                if base.len() != 2 {
                    continue;
                }
                let square = base.mul(&base).scale(c);
                if square.len() != 3 {
                    continue;
                }
                let rest = crate::ratfun::chop(all.sub(&square));
                if rest.len() + 3 != terms.len() {
                    continue; // the middle term is not there as it is
                }
                let sq = mul_node(vec![Node::Num(c), Node::Pow(Box::new(flat(&base)), 2.0)]);
                return Some(sum_node(vec![sq, factor_sum(&rest.terms, depth + 1)]));
            }
        }
    }
    None
}

/// Atoms that appear (with positive, or with negative, exponent) in at
/// least two terms but not all, most frequent first.
pub(super) fn shared_atoms(terms: &[Term]) -> Vec<(Arc<Atom>, bool)> {
    let mut counts: Vec<(Arc<Atom>, bool, usize)> = Vec::new();
    for t in terms {
        for f in &t.factors {
            let sign = f.exp.0 > 0.0;
            match counts
                .iter_mut()
                .find(|(a, s, _)| *s == sign && atom_eq(a, &f.atom))
            {
                Some(c) => c.2 += 1,
                None => counts.push((f.atom.clone(), sign, 1)),
            }
        }
    }
    counts.retain(|(_, _, n)| *n >= 2 && *n < terms.len());
    counts.sort_by_key(|c| std::cmp::Reverse(c.2));
    counts.into_iter().map(|(a, s, _)| (a, s)).collect()
}

/// A polynomial in one generator with a repeated factor, as the product of
/// its square-free factors (`3 + 6x + 3x²` → `3·(1 + x)²`).
pub(super) fn square_free_form(terms: &[Term]) -> Option<Node> {
    let p = Poly {
        terms: terms.to_vec(),
    };
    let (scale, factors) = crate::ratfun::normalise_base(&p)?;
    if !factors.iter().any(|(_, m)| *m > 1) {
        return None;
    }
    let mut kids: Vec<Node> = scale.terms.first().map(term_node).into_iter().collect();
    if scale.len() > 1 {
        return None;
    }
    for (b, m) in &factors {
        kids.push(Node::Pow(Box::new(flat(b)), *m as f64));
    }
    Some(mul_node(kids))
}

/// A sum of k + 1 terms that is `(a + b)^k` for two of its terms' k-th
/// roots `a`, `b`.
pub(super) fn binomial_power(terms: &[Term]) -> Option<Node> {
    let k = terms.len() - 1;
    if !(2..=6).contains(&k) {
        return None;
    }
    let roots: Vec<Term> = terms.iter().filter_map(|t| kth_root(t, k as f64)).collect();
    if roots.len() < 2 || roots.len() > 6 {
        return None;
    }
    let p = Poly {
        terms: terms.to_vec(),
    };
    for (x, a) in roots.iter().enumerate() {
        for b in &roots[x + 1..] {
            for sb in [1.0, -1.0] {
                let b = Term {
                    factors: b.factors.clone(),
                    coef: Real(b.coef.0 * sb),
                };
                let base = Poly::from_terms(vec![a.clone(), b]);
                if base.powf(k as f64) == p
                    || (base.len() == 2 && {
                        let mut q = base.clone();
                        for _ in 1..k {
                            q = q.mul(&base);
                        }
                        crate::ratfun::chop(q.sub(&p)).is_empty()
                    })
                {
                    return Some(Node::Pow(Box::new(factor_sum(&base.terms, 8)), k as f64));
                }
            }
        }
    }
    None
}

pub(super) fn kth_root(t: &Term, k: f64) -> Option<Term> {
    let c = t.coef.0;
    if c < 0.0 && k % 2.0 == 0.0 {
        return None;
    }
    let r = c.abs().powf(1.0 / k).copysign(c);
    if (r.round() - r).abs() > 1e-12 || r.round().powf(k) != c {
        return None;
    }
    let factors = t
        .factors
        .iter()
        .map(|f| {
            let e = f.exp.0 / k;
            (e.fract() == 0.0).then(|| Factor {
                atom: f.atom.clone(),
                exp: Real(e),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Term {
        factors,
        coef: Real(r.round()),
    })
}
