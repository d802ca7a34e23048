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

mod factor;
use factor::*;

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
