//! The index-notation IR and its normal form.
//!
//! A [`Poly`] is a sum of [`Term`]s; a term is a coefficient times a sorted
//! product of [`Factor`]s, each an [`Atom`] raised to a numeric power.
//! Indices are integers: free indices are small, bound indices of a sum (or
//! softmax / logsumexp) are named canonically by the *height* of their binder
//! (`BOUND + 1 + the highest binder inside its body`), so alpha-equivalent
//! terms are equal as data and meet when like terms are collected.
//!
//! The normal form, kept by every constructor here:
//! * products are distributed over sums, like factors merged, like terms
//!   collected, zero terms dropped;
//! * Kronecker deltas are contracted wherever one side is bound, and between
//!   free indices they name equality blocks: all atoms use the smallest index
//!   of a block, and the block is kept as `δ(rep, member)` factors;
//! * sums are split over terms, and factors that do not depend on the bound
//!   index are pulled out.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::Arc;

/// An index name.
pub type Ix = u32;

/// First canonical bound index: bound indices are `BOUND + height`.
pub const BOUND: Ix = 1 << 20;
/// First fresh index: temporaries made while building a binder.
pub const FRESH: Ix = 1 << 24;

static NEXT_FRESH: AtomicU32 = AtomicU32::new(FRESH);

/// A new index that occurs nowhere else.
pub fn fresh() -> Ix {
    NEXT_FRESH.fetch_add(1, AtomicOrdering::Relaxed)
}

/// Whether an index is a canonical bound index.
pub fn is_bound(ix: Ix) -> bool {
    (BOUND..FRESH).contains(&ix)
}

/// A length: symbolic (`n`) or fixed (`3`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    /// A fixed length.
    Fixed(usize),
    /// A symbolic length.
    Named(Arc<str>),
}

impl Dim {
    /// The length, when it is fixed or `lengths` gives it.
    pub fn length_in(&self, lengths: &std::collections::HashMap<String, usize>) -> Option<usize> {
        match self {
            Dim::Fixed(k) => Some(*k),
            Dim::Named(n) => lengths.get(&**n).copied(),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Named(s) => f.write_str(s),
        }
    }
}

/// An `f64` with total equality, order and hashing, so it can sit in keys.
#[derive(Clone, Copy, Debug)]
pub struct Real(pub f64);

impl Real {
    fn bits(self) -> u64 {
        // +0 and -0 are one number here.
        if self.0 == 0.0 {
            0
        } else {
            self.0.to_bits()
        }
    }
}
impl PartialEq for Real {
    fn eq(&self, other: &Self) -> bool {
        self.bits() == other.bits()
    }
}
impl Eq for Real {}
impl PartialOrd for Real {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Real {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl Hash for Real {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bits().hash(state)
    }
}

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fun {
    /// `exp`
    Exp,
    /// natural `log`
    Log,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tanh`
    Tanh,
    /// `sigmoid(x) = 1 / (1 + exp(-x))`
    Sigmoid,
    /// `softplus(x) = log(1 + exp(x))`
    Softplus,
}

impl Fun {
    /// The function's name in the language.
    pub fn name(self) -> &'static str {
        match self {
            Fun::Exp => "exp",
            Fun::Log => "log",
            Fun::Sin => "sin",
            Fun::Cos => "cos",
            Fun::Tanh => "tanh",
            Fun::Sigmoid => "sigmoid",
            Fun::Softplus => "softplus",
        }
    }

    /// Looks a function up by name.
    pub fn from_name(name: &str) -> Option<Fun> {
        Some(match name {
            "exp" => Fun::Exp,
            "log" => Fun::Log,
            "sin" => Fun::Sin,
            "cos" => Fun::Cos,
            "tanh" => Fun::Tanh,
            "sigmoid" => Fun::Sigmoid,
            "softplus" => Fun::Softplus,
            _ => return None,
        })
    }

    /// The numeric function.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Fun::Exp => x.exp(),
            Fun::Log => x.ln(),
            Fun::Sin => x.sin(),
            Fun::Cos => x.cos(),
            Fun::Tanh => x.tanh(),
            Fun::Sigmoid => {
                // Stable on both sides: never exp of a large positive number.
                if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (1.0 + e)
                }
            }
            Fun::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        }
    }
}

/// An indivisible factor of a term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// Kronecker delta between two free indices, smaller first.
    Delta(Ix, Ix),
    /// An entry of an input variable.
    Var {
        /// The variable.
        name: Arc<str>,
        /// One index per axis.
        idx: Vec<Ix>,
    },
    /// A symbolic dimension used as a number.
    Dim(Arc<str>),
    /// An elementwise function of an expression.
    Func(Fun, Poly),
    /// `base ^ exponent` with a non-constant exponent.
    Pow(Poly, Poly),
    /// A sum of several terms, kept whole because it is raised to a power
    /// other than one.
    Group(Poly),
    /// `Σ_ix body`.
    Sum {
        /// The bound index.
        ix: Ix,
        /// Its range.
        dim: Dim,
        /// The summand.
        body: Poly,
    },
    /// `softmax` over `ix` of `body`, at position `at`:
    /// `exp(body[ix:=at]) / Σ_ix exp(body)`.
    Softmax {
        /// The bound index.
        ix: Ix,
        /// Its range.
        dim: Dim,
        /// The logits, over `ix`.
        body: Poly,
        /// The entry taken (a free index).
        at: Ix,
    },
    /// `log Σ_ix exp(body)`.
    Lse {
        /// The bound index.
        ix: Ix,
        /// Its range.
        dim: Dim,
        /// The exponent, over `ix`.
        body: Poly,
    },
}

/// An atom to a numeric power.
#[derive(Clone, Debug)]
pub struct Factor {
    /// The base.
    pub atom: Arc<Atom>,
    /// The exponent (never zero in normal form).
    pub exp: Real,
}

/// Structural order of atoms, answering at once for two handles to one
/// allocation. Derivatives share their subexpressions through `Arc`, so
/// this cuts the comparison of deeply nested atoms (a softmax of a softmax
/// of …) from the depth of the tree to one pointer test wherever they
/// share, which is most places.
pub fn atom_cmp(a: &Arc<Atom>, b: &Arc<Atom>) -> Ordering {
    if Arc::ptr_eq(a, b) {
        Ordering::Equal
    } else {
        (**a).cmp(&**b)
    }
}

/// Structural equality of atoms with the same shortcut as [`atom_cmp`].
pub fn atom_eq(a: &Arc<Atom>, b: &Arc<Atom>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

impl PartialEq for Factor {
    fn eq(&self, other: &Self) -> bool {
        self.exp == other.exp && atom_eq(&self.atom, &other.atom)
    }
}

impl Eq for Factor {}

impl Hash for Factor {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.atom.hash(state);
        self.exp.hash(state);
    }
}

impl PartialOrd for Factor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Factor {
    fn cmp(&self, other: &Self) -> Ordering {
        atom_cmp(&self.atom, &other.atom).then_with(|| self.exp.cmp(&other.exp))
    }
}

/// A coefficient times a product of factors.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    /// The factors, sorted, each atom at most once.
    pub factors: Vec<Factor>,
    /// The numeric coefficient.
    pub coef: Real,
}

/// A sum of terms in normal form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Poly {
    /// Sorted, distinct monomials, no zero coefficients.
    pub terms: Vec<Term>,
}

// ---------------------------------------------------------------------------
// Index bookkeeping.

impl Atom {
    /// The height of this atom's binders: 0 for none, else 1 + the highest
    /// binder inside.
    pub fn height(&self) -> u32 {
        match self {
            Atom::Sum { ix, .. } | Atom::Softmax { ix, .. } | Atom::Lse { ix, .. } => {
                ix - BOUND + 1
            }
            Atom::Func(_, p) | Atom::Group(p) => p.height(),
            Atom::Pow(a, b) => a.height().max(b.height()),
            _ => 0,
        }
    }

    /// Collects the indices that occur free in this atom.
    pub fn free_into(&self, out: &mut BTreeSet<Ix>) {
        match self {
            Atom::Delta(a, b) => {
                out.insert(*a);
                out.insert(*b);
            }
            Atom::Var { idx, .. } => out.extend(idx.iter().copied()),
            Atom::Dim(_) => {}
            Atom::Func(_, p) | Atom::Group(p) => p.free_into(out),
            Atom::Pow(a, b) => {
                a.free_into(out);
                b.free_into(out);
            }
            Atom::Sum { ix, body, .. } | Atom::Lse { ix, body, .. } => {
                let mut inner = BTreeSet::new();
                body.free_into(&mut inner);
                inner.remove(ix);
                out.extend(inner);
            }
            Atom::Softmax { ix, body, at, .. } => {
                let mut inner = BTreeSet::new();
                body.free_into(&mut inner);
                inner.remove(ix);
                out.extend(inner);
                out.insert(*at);
            }
        }
    }

    /// The free indices of this atom.
    pub fn free(&self) -> BTreeSet<Ix> {
        let mut s = BTreeSet::new();
        self.free_into(&mut s);
        s
    }

    /// Whether index `ix` occurs free here.
    pub fn mentions(&self, ix: Ix) -> bool {
        match self {
            Atom::Delta(a, b) => *a == ix || *b == ix,
            Atom::Var { idx, .. } => idx.contains(&ix),
            Atom::Dim(_) => false,
            Atom::Func(_, p) | Atom::Group(p) => p.mentions(ix),
            Atom::Pow(a, b) => a.mentions(ix) || b.mentions(ix),
            Atom::Sum { ix: k, body, .. } | Atom::Lse { ix: k, body, .. } => {
                *k != ix && body.mentions(ix)
            }
            Atom::Softmax {
                ix: k, body, at, ..
            } => *at == ix || (*k != ix && body.mentions(ix)),
        }
    }

    /// Whether the variable `name` occurs here.
    pub fn uses_var(&self, name: &str) -> bool {
        match self {
            Atom::Var { name: n, .. } => &**n == name,
            Atom::Delta(..) | Atom::Dim(_) => false,
            Atom::Func(_, p) | Atom::Group(p) => p.uses_var(name),
            Atom::Pow(a, b) => a.uses_var(name) || b.uses_var(name),
            Atom::Sum { body, .. } | Atom::Lse { body, .. } | Atom::Softmax { body, .. } => {
                body.uses_var(name)
            }
        }
    }

    /// Renames free index `from` to `to`. `to` must not be bound inside
    /// (free and fresh indices never are). The result is in normal form.
    pub fn rename(&self, from: Ix, to: Ix) -> Poly {
        if !self.mentions(from) {
            return Poly::atom(Arc::new(self.clone()));
        }
        let r = |p: &Poly| p.rename(from, to);
        match self {
            Atom::Delta(a, b) => {
                let f = |x: Ix| if x == from { to } else { x };
                Poly::delta(f(*a), f(*b))
            }
            Atom::Var { name, idx } => Poly::atom(Arc::new(Atom::Var {
                name: name.clone(),
                idx: idx
                    .iter()
                    .map(|&x| if x == from { to } else { x })
                    .collect(),
            })),
            Atom::Dim(_) => unreachable!("dimensions mention no index"),
            Atom::Func(f, p) => Poly::func(*f, r(p)),
            Atom::Group(p) => r(p),
            Atom::Pow(a, b) => Poly::pow_sym(r(a), r(b)),
            Atom::Sum { ix, dim, body } => {
                let k = fresh();
                Poly::sum_over(k, dim, &body.rename(*ix, k).rename(from, to))
            }
            // A free index renamed to anything but the binder's own index
            // cannot be captured, and leaves the binder's height (so its
            // canonical name) as it is: rename inside and keep the binder.
            // (Reopening it with a fresh index and closing it again renames
            // the body twice per level, which is exponential in the nesting
            // of softmax inside softmax.)
            Atom::Lse { ix, dim, body } if to != *ix => Poly::atom(Arc::new(Atom::Lse {
                ix: *ix,
                dim: dim.clone(),
                body: body.rename(from, to),
            })),
            Atom::Softmax { ix, dim, body, at } if to != *ix => {
                Poly::atom(Arc::new(Atom::Softmax {
                    ix: *ix,
                    dim: dim.clone(),
                    body: body.rename(from, to),
                    at: if *at == from { to } else { *at },
                }))
            }
            Atom::Lse { ix, dim, body } => {
                let k = fresh();
                Poly::lse(k, dim, body.rename(*ix, k).rename(from, to))
            }
            Atom::Softmax { ix, dim, body, at } => {
                let k = fresh();
                let at = if *at == from { to } else { *at };
                Poly::softmax(k, dim, body.rename(*ix, k).rename(from, to), at)
            }
        }
    }
}

impl Poly {
    /// The highest binder height inside.
    pub fn height(&self) -> u32 {
        self.terms
            .iter()
            .flat_map(|t| t.factors.iter())
            .map(|f| f.atom.height())
            .max()
            .unwrap_or(0)
    }

    /// Collects free indices.
    pub fn free_into(&self, out: &mut BTreeSet<Ix>) {
        for t in &self.terms {
            for f in &t.factors {
                f.atom.free_into(out);
            }
        }
    }

    /// The free indices.
    pub fn free(&self) -> BTreeSet<Ix> {
        let mut s = BTreeSet::new();
        self.free_into(&mut s);
        s
    }

    /// Whether index `ix` occurs free.
    pub fn mentions(&self, ix: Ix) -> bool {
        self.terms.iter().any(|t| t.mentions(ix))
    }

    /// Whether variable `name` occurs.
    pub fn uses_var(&self, name: &str) -> bool {
        self.terms
            .iter()
            .any(|t| t.factors.iter().any(|f| f.atom.uses_var(name)))
    }

    /// Renames a free index.
    pub fn rename(&self, from: Ix, to: Ix) -> Poly {
        if from == to || !self.mentions(from) {
            return self.clone();
        }
        // One merge at the end (adding term by term re-sorts each time).
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            terms.extend(t.rename(from, to).terms);
        }
        Poly::from_terms(terms)
    }

    /// Reads variable `from` as variable `to` everywhere.
    pub fn rename_var(&self, from: &str, to: &str) -> Poly {
        if !self.uses_var(from) {
            return self.clone();
        }
        let mut terms = Vec::with_capacity(self.terms.len());
        for t in &self.terms {
            let mut out = Poly::constant(t.coef.0);
            for f in &t.factors {
                out = out.mul(&f.atom.rename_var(from, to).powf(f.exp.0));
            }
            terms.extend(out.terms);
        }
        Poly::from_terms(terms)
    }
}

impl Atom {
    /// The atom with variable `from` read as `to`, renormalized.
    pub fn rename_var(&self, from: &str, to: &str) -> Poly {
        if !self.uses_var(from) {
            return Poly::atom(Arc::new(self.clone()));
        }
        let r = |p: &Poly| p.rename_var(from, to);
        match self {
            Atom::Var { name, idx } => {
                Poly::var(if &**name == from { to } else { name }, idx.clone())
            }
            Atom::Delta(..) | Atom::Dim(_) => Poly::atom(Arc::new(self.clone())),
            Atom::Func(f, p) => Poly::func(*f, r(p)),
            Atom::Group(p) => r(p),
            Atom::Pow(a, b) => Poly::pow_sym(r(a), r(b)),
            Atom::Sum { ix, dim, body } => {
                let k = fresh();
                Poly::sum_over(k, dim, &body.rename(*ix, k).rename_var(from, to))
            }
            Atom::Lse { ix, dim, body } => {
                let k = fresh();
                Poly::lse(k, dim, body.rename(*ix, k).rename_var(from, to))
            }
            Atom::Softmax { ix, dim, body, at } => {
                let k = fresh();
                Poly::softmax(k, dim, body.rename(*ix, k).rename_var(from, to), *at)
            }
        }
    }
}

impl Term {
    /// Whether index `ix` occurs free.
    pub fn mentions(&self, ix: Ix) -> bool {
        self.factors.iter().any(|f| f.atom.mentions(ix))
    }

    /// Renames a free index (the result may merge factors or contract deltas).
    pub fn rename(&self, from: Ix, to: Ix) -> Poly {
        if !self.mentions(from) {
            return Poly {
                terms: vec![self.clone()],
            };
        }
        let mut out = Poly::constant(self.coef.0);
        for f in &self.factors {
            let base = if f.atom.mentions(from) {
                f.atom.rename(from, to)
            } else {
                Poly::atom(f.atom.clone())
            };
            out = out.mul(&base.powf(f.exp.0));
        }
        out
    }
}

mod normal;

impl fmt::Display for Poly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::render::debug_poly(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n() -> Dim {
        Dim::Named("n".into())
    }

    #[test]
    fn alpha_equivalent_sums_are_equal() {
        let (a, b) = (fresh(), fresh());
        let s1 = Poly::sum_over(
            a,
            &n(),
            &Poly::var("z", vec![a]).mul(&Poly::var("q", vec![a])),
        );
        let s2 = Poly::sum_over(
            b,
            &n(),
            &Poly::var("q", vec![b]).mul(&Poly::var("z", vec![b])),
        );
        assert_eq!(s1, s2);
        assert_eq!(s1.add(&s2.neg()), Poly::zero());
    }

    #[test]
    fn delta_contracts_under_a_sum() {
        let k = fresh();
        let body = Poly::var("z", vec![k]).mul(&Poly::delta(k, 0));
        assert_eq!(Poly::sum_over(k, &n(), &body), Poly::var("z", vec![0]));
        let k = fresh();
        assert_eq!(Poly::sum_over(k, &n(), &Poly::delta(k, k)), Poly::dim(&n()));
    }

    #[test]
    fn deltas_between_free_indices_pick_the_smallest_representative() {
        let p = Poly::var("p", vec![1]).mul(&Poly::delta(0, 1));
        assert_eq!(p, Poly::var("p", vec![0]).mul(&Poly::delta(0, 1)));
        let q = Poly::delta(0, 2).mul(&Poly::delta(1, 2));
        assert_eq!(q, Poly::delta(0, 1).mul(&Poly::delta(0, 2)));
    }

    #[test]
    fn powers_merge_and_cancel() {
        let x = Poly::var("x", vec![]);
        assert_eq!(x.mul(&x.powf(-1.0)), Poly::constant(1.0));
        let e = Poly::func(Fun::Exp, x.clone());
        assert_eq!(e.mul(&e.powf(-1.0)), Poly::constant(1.0));
    }
}
