//! The printed form of a polynomial: factored, over a common denominator
//! where that is shorter, chosen by counting operations the way a person
//! (and SymPy's `count_ops`) does.
//!
//! The normal form of [`crate::ir`] is the canonical equality of the index
//! algebra: distributed, every like term collected. It is the wrong thing
//! to print. Here a sum of terms becomes a tree of [`Node`]s through a few
//! exact, local moves, each kept only when it lowers [`Node::ops`]:
//! * the content (the rational gcd of the coefficients and the lowest power
//!   of every atom common to all terms) comes out front;
//! * the atom shared by the most terms is collected (`a·b + a·c + d` →
//!   `a·(b + c) + d`, a multivariate Horner scheme, greedily);
//! * a polynomial in one generator is split into square-free factors, and a
//!   sum of k + 1 terms that is a binomial to the k-th power is written so;
//! * the whole sum is written over its common denominator
//!   ([`crate::ratfun::over_common_denominator`]) with the numerator
//!   factored the same way.
//!
//! The cost is the number of operations in the printed text: one per `+`,
//! `−` (binary or leading a sum), `·`, `/`, `^` and function, and one more
//! for a coefficient that is a fraction (`3/8·x` is a division and a
//! product). Ties go to the factored form.

use std::sync::Arc;

use egg::{Id, RecExpr};

use crate::ir::{atom_eq, Atom, Factor, Poly, Real, Term};
use crate::lang::{add_atom, Math, Num};

/// Sums longer than this are printed flat (factoring is quadratic or worse
/// in the number of terms).
const MAX_FACTOR_TERMS: usize = 160;

/// A printed expression.
#[derive(Clone, Debug)]
pub enum Node {
    /// A number.
    Num(f64),
    /// An atom of the normal form, printed as it is.
    Atom(Arc<Atom>),
    /// A function of an argument in its own printed form.
    Func(crate::ir::Fun, Box<Node>),
    /// `Σ_ix body` with the body in its own printed form.
    Sum {
        /// The bound (canonical) index.
        ix: crate::ir::Ix,
        /// Its range.
        dim: crate::ir::Dim,
        /// The summand.
        body: Box<Node>,
    },
    /// A power with a numeric exponent.
    Pow(Box<Node>, f64),
    /// A product.
    Mul(Vec<Node>),
    /// A sum.
    Add(Vec<Node>),
}

/// `v` as a fraction `p/q` with a small denominator, when it is exactly one.
pub fn as_fraction(v: f64) -> Option<(i64, i64)> {
    if !v.is_finite() || v.abs() > 1e15 {
        return None;
    }
    if v.fract() == 0.0 {
        return Some((v as i64, 1));
    }
    // Continued fraction convergents until one is exact.
    let (mut h0, mut h1, mut k0, mut k1) = (0i64, 1i64, 1i64, 0i64);
    let mut x = v.abs();
    for _ in 0..40 {
        let a = x.floor();
        if a > 1e12 {
            return None;
        }
        let a = a as i64;
        let (h2, k2) = (a.checked_mul(h1)? + h0, a.checked_mul(k1)? + k0);
        if k2 > 100_000 {
            return None;
        }
        if (h2 as f64) / (k2 as f64) == v.abs() {
            return Some((if v < 0.0 { -h2 } else { h2 }, k2));
        }
        (h0, h1, k0, k1) = (h1, h2, k1, k2);
        let frac = x - a as f64;
        if frac == 0.0 {
            return None;
        }
        x = 1.0 / frac;
    }
    None
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// Operations of an exponent written out: a fraction is a division.
fn exponent_ops(e: f64) -> usize {
    match as_fraction(e) {
        Some((_, 1)) => 0,
        Some(_) => 1,
        None => 0,
    }
}

/// Operations of an atom as it prints.
pub fn atom_ops(a: &Atom) -> usize {
    match a {
        Atom::Delta(..) | Atom::Var { .. } | Atom::Dim(_) => 0,
        Atom::Func(_, p) => 1 + poly_ops(p),
        Atom::Pow(b, e) => 1 + poly_ops(b) + poly_ops(e),
        Atom::Group(p) => poly_ops(p),
        Atom::Sum { body, .. } => 1 + poly_ops(body),
        Atom::Softmax { .. } | Atom::Lse { .. } => 1,
    }
}

/// Operations of a polynomial printed as a flat sum of terms.
pub fn poly_ops(p: &Poly) -> usize {
    flat(p).ops()
}

impl Node {
    /// The number of operations in the printed form.
    pub fn ops(&self) -> usize {
        match self {
            Node::Num(v) => match as_fraction(*v) {
                Some((p, q)) => usize::from(p < 0) + usize::from(q != 1),
                None => usize::from(*v < 0.0),
            },
            Node::Atom(a) => atom_ops(a),
            Node::Sum { body, .. } => 1 + body.ops(),
            Node::Func(_, arg) => 1 + arg.ops(),
            Node::Pow(b, e) => {
                let m = e.abs();
                let own = if m == 1.0 { 0 } else { 1 + exponent_ops(m) };
                // A negative power is a division, counted by the product
                // around it or here when it stands alone.
                own + usize::from(*e < 0.0) + b.ops()
            }
            Node::Mul(kids) => {
                let mut coef = 1.0;
                let (mut num, mut den) = (0usize, 0usize);
                let mut inner = 0;
                for k in kids {
                    match k {
                        Node::Num(v) => coef *= v,
                        Node::Pow(b, e) if *e < 0.0 => {
                            den += 1;
                            inner += Node::Pow(b.clone(), -e).ops();
                        }
                        other => {
                            num += 1;
                            inner += other.ops();
                        }
                    }
                }
                let mut ops = usize::from(coef < 0.0);
                match as_fraction(coef.abs()) {
                    Some((p, q)) => {
                        if p != 1 {
                            num += 1;
                        }
                        if q != 1 {
                            den += 1;
                        }
                    }
                    None => num += 1,
                }
                if den > 0 {
                    ops += 1 + den - 1;
                }
                ops + num.saturating_sub(1) + inner
            }
            Node::Add(kids) => {
                let negs = kids.iter().filter(|k| k.is_negative()).count();
                let own = kids.len() - 1 + usize::from(negs == kids.len() && negs > 0);
                own + kids.iter().map(|k| k.negated_ops()).sum::<usize>()
            }
        }
    }

    /// Whether the printed form starts with a minus sign.
    fn is_negative(&self) -> bool {
        match self {
            Node::Num(v) => *v < 0.0,
            Node::Mul(kids) => {
                kids.iter()
                    .filter_map(|k| match k {
                        Node::Num(v) => Some(*v),
                        _ => None,
                    })
                    .product::<f64>()
                    < 0.0
            }
            _ => false,
        }
    }

    /// Operations of the term without its leading sign (a sum counts the
    /// sign as its `−`).
    fn negated_ops(&self) -> usize {
        if self.is_negative() {
            self.ops() - 1
        } else {
            self.ops()
        }
    }

    /// The node back in normal form (for checking that printing changed
    /// nothing but the form).
    pub fn to_poly(&self) -> Poly {
        match self {
            Node::Num(v) => Poly::constant(*v),
            Node::Atom(a) => Poly::atom(a.clone()),
            Node::Func(f, arg) => Poly::func(*f, arg.to_poly()),
            Node::Sum { ix, dim, body } => {
                let k = crate::ir::fresh();
                Poly::sum_whole(k, dim, body.to_poly().rename(*ix, k))
            }
            Node::Pow(b, e) => {
                let b = b.to_poly();
                if b.len() > 1 && *e < 0.0 {
                    // Kept whole: the normal form expands small positive
                    // powers of sums only.
                    Poly {
                        terms: vec![Term {
                            factors: vec![Factor {
                                atom: Arc::new(Atom::Group(b)),
                                exp: Real(*e),
                            }],
                            coef: Real(1.0),
                        }],
                    }
                } else {
                    b.powf(*e)
                }
            }
            Node::Mul(kids) => kids
                .iter()
                .fold(Poly::constant(1.0), |acc, k| acc.mul(&k.to_poly())),
            Node::Add(kids) => kids
                .iter()
                .fold(Poly::zero(), |acc, k| acc.add(&k.to_poly())),
        }
    }

    /// Adds the node to an expression for the printer.
    pub fn add_to(&self, out: &mut RecExpr<Math>) -> Id {
        match self {
            Node::Num(v) => out.add(Math::Num(Num(Real(*v)))),
            Node::Atom(a) => add_atom(a, out),
            Node::Func(f, arg) => {
                let a = arg.add_to(out);
                out.add(crate::lang::func_node(*f, a))
            }
            Node::Sum { ix, dim, body } => {
                let k = out.add(Math::Symbol(crate::lang::index_symbol(*ix)));
                let d = crate::lang::dim_node(dim, out);
                let b = body.add_to(out);
                out.add(Math::Sum([k, d, b]))
            }
            Node::Pow(b, e) => {
                let b = b.add_to(out);
                if *e == 1.0 {
                    return b;
                }
                let e = out.add(Math::Num(Num(Real(*e))));
                out.add(Math::Pow([b, e]))
            }
            Node::Mul(kids) => {
                let ids: Vec<Id> = kids.iter().map(|k| k.add_to(out)).collect();
                out.add(Math::Mul(ids.into()))
            }
            Node::Add(kids) => {
                let ids: Vec<Id> = kids.iter().map(|k| k.add_to(out)).collect();
                out.add(Math::Add(ids.into()))
            }
        }
    }
}

fn factor_node(f: &Factor) -> Node {
    // A sum's body gets its own printed form (`Σ_b X_bi·(…)`).
    if let Atom::Sum { ix, dim, body } = &*f.atom {
        if f.exp.0 == 1.0 && body.len() > 1 {
            return Node::Sum {
                ix: *ix,
                dim: dim.clone(),
                body: Box::new(display(body)),
            };
        }
    }
    let a = match &*f.atom {
        // A function's argument too (`σ((1 − 2 y_b)·(Σ_a X_ba w_a))`).
        Atom::Func(fun, arg) if arg.len() > 1 => Node::Func(*fun, Box::new(display(arg))),
        _ => Node::Atom(f.atom.clone()),
    };
    if f.exp.0 == 1.0 {
        a
    } else {
        Node::Pow(Box::new(a), f.exp.0)
    }
}

/// One term as a printed product (its sums' bodies factored).
pub fn term_node(t: &Term) -> Node {
    if t.factors.is_empty() {
        return Node::Num(t.coef.0);
    }
    let mut kids = Vec::with_capacity(t.factors.len() + 1);
    if t.coef.0 != 1.0 {
        kids.push(Node::Num(t.coef.0));
    }
    kids.extend(t.factors.iter().map(factor_node));
    if kids.len() == 1 {
        kids.pop().unwrap()
    } else {
        Node::Mul(kids)
    }
}

/// The flat sum of terms, positive terms first.
fn flat(p: &Poly) -> Node {
    sum_node(p.terms.iter().map(term_node).collect())
}

fn sum_node(mut kids: Vec<Node>) -> Node {
    match kids.len() {
        0 => Node::Num(0.0),
        1 => kids.pop().unwrap(),
        _ => {
            let mut flat = Vec::with_capacity(kids.len());
            for k in kids {
                match k {
                    Node::Add(inner) => flat.extend(inner),
                    other => flat.push(other),
                }
            }
            crate::render::lead_with(&mut flat, |k| !k.is_negative());
            Node::Add(flat)
        }
    }
}

fn mul_node(mut kids: Vec<Node>) -> Node {
    let mut coef = 1.0;
    let mut rest = Vec::with_capacity(kids.len());
    for k in kids.drain(..) {
        match k {
            Node::Num(v) => coef *= v,
            Node::Mul(inner) => {
                for i in inner {
                    match i {
                        Node::Num(v) => coef *= v,
                        other => rest.push(other),
                    }
                }
            }
            other => rest.push(other),
        }
    }
    if coef == 0.0 {
        return Node::Num(0.0);
    }
    if coef != 1.0 || rest.is_empty() {
        rest.insert(0, Node::Num(coef));
    }
    if rest.len() == 1 {
        rest.pop().unwrap()
    } else {
        Node::Mul(rest)
    }
}

/// The best printed form of `p`.
pub fn display(p: &Poly) -> Node {
    let mut best = flat(p);
    if p.len() > MAX_FACTOR_TERMS {
        return best;
    }
    let mut consider = |n: Node| {
        if n.ops() <= best.ops() {
            best = n;
        }
    };
    consider(factor_sum(&p.terms, 0));
    for q in [p.clone(), crate::ratfun::merge_exps(p)] {
        if let Some(frac) = crate::ratfun::over_common_denominator(&q) {
            if frac.numerator.len() <= MAX_FACTOR_TERMS {
                let num = factor_sum(&frac.numerator.terms, 0);
                let mut kids = vec![num];
                for (base, m) in &frac.denominators {
                    kids.push(Node::Pow(
                        Box::new(factor_sum(&base.terms, 1)),
                        -(*m as f64),
                    ));
                }
                consider(mul_node(kids));
            }
        }
    }
    best
}

/// The content of a sum: a number and a monomial that divide every term
/// (the lowest power of each atom, negative powers included), and the
/// terms divided by it. `None` when it is 1.
fn content(terms: &[Term]) -> Option<(Term, Vec<Term>)> {
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
    // Numeric content: the gcd of the numerators over the lcm of the
    // denominators when every coefficient is a fraction; the sign of the
    // majority.
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

/// Every term divided by the monomial `d`, renormalised (a group left
/// to the first power is a sum again, and its terms meet the others').
fn divide_terms(terms: &[Term], d: &Term) -> Vec<Term> {
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
fn factor_sum(terms: &[Term], depth: usize) -> Node {
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
        let (with, without): (Vec<Term>, Vec<Term>) = terms.iter().cloned().partition(|t| {
            t.factors
                .iter()
                .any(|f| atom_eq(&f.atom, &atom) && (f.exp.0 > 0.0) == sign)
        });
        let low = with
            .iter()
            .map(|t| {
                t.factors
                    .iter()
                    .find(|f| atom_eq(&f.atom, &atom))
                    .map(|f| f.exp.0)
                    .unwrap()
            })
            .fold(
                if sign {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                },
                |a, b| {
                    if sign {
                        a.min(b)
                    } else {
                        a.max(b)
                    }
                },
            );
        let divided = divide_terms(
            &with,
            &Term {
                factors: vec![Factor {
                    atom: atom.clone(),
                    exp: Real(low),
                }],
                coef: Real(1.0),
            },
        );
        let collected = mul_node(vec![
            factor_node(&Factor {
                atom: atom.clone(),
                exp: Real(low),
            }),
            factor_sum(&divided, depth + 1),
        ]);
        let rest = if without.is_empty() {
            None
        } else {
            Some(factor_sum(&without, depth + 1))
        };
        let node = match rest {
            Some(r) => sum_node(vec![collected, r]),
            None => collected,
        };
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

/// Factors that derivatives of the functions in `terms` carry, worth a
/// trial division: `1 − tanh(u)²` (from `tanh′ = 1 − tanh²`) and
/// `1 − σ(u)` (from `σ′ = σ·(1 − σ)`).
fn derivative_factors(terms: &[Term]) -> Vec<Poly> {
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
fn binomial_in_sum(terms: &[Term], depth: usize) -> Option<Node> {
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
fn shared_atoms(terms: &[Term]) -> Vec<(Arc<Atom>, bool)> {
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
fn square_free_form(terms: &[Term]) -> Option<Node> {
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
fn binomial_power(terms: &[Term]) -> Option<Node> {
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

fn kth_root(t: &Term, k: f64) -> Option<Term> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_recovered_exactly() {
        assert_eq!(as_fraction(0.375), Some((3, 8)));
        assert_eq!(as_fraction(-1.0 / 3.0), Some((-1, 3)));
        assert_eq!(as_fraction(0.7978845608), None);
        assert_eq!(as_fraction(4.0), Some((4, 1)));
    }

    #[test]
    fn counts_like_count_ops() {
        let x = Poly::var("x", vec![]);
        // 3/8·x: a division and a product.
        assert_eq!(poly_ops(&x.scale(0.375)), 2);
        // x − 1: one subtraction.
        assert_eq!(poly_ops(&x.sub(&Poly::constant(1.0))), 1);
        // −x − 1: a negation and a subtraction.
        assert_eq!(poly_ops(&x.neg().sub(&Poly::constant(1.0))), 2);
        // 1/x²: a division and a power.
        assert_eq!(poly_ops(&x.powf(-2.0)), 2);
    }
}
