//! The e-graph language of the index IR, and conversion both ways.
//!
//! Sums and products are n-ary (children sorted), so the e-graph never has
//! to discover associativity or commutativity: the normal form in `ir.rs`
//! already did. Indices are symbols `$i3` (free) and `$b1` (bound, by
//! height); dimensions are `%n` or a number.

use std::collections::BTreeSet;

use egg::{define_language, Analysis, DidMerge, EGraph, Id, Language, RecExpr, Symbol};

use crate::ir::{fresh, is_bound, Atom, Dim, Fun, Ix, Poly, Real, BOUND};

/// A number leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Num(pub Real);

impl std::str::FromStr for Num {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        s.parse::<f64>().map(|v| Num(Real(v))).map_err(|_| ())
    }
}

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0 .0)
    }
}

define_language! {
    /// Terms of the IR as e-graph nodes. (Each variant is named by its
    /// operator string; the macro takes no per-variant docs.)
    #[allow(missing_docs)]
    pub enum Math {
        "+" = Add(Box<[Id]>),
        "*" = Mul(Box<[Id]>),
        "^" = Pow([Id; 2]),
        "exp" = Exp([Id; 1]),
        "log" = Log([Id; 1]),
        "sin" = Sin([Id; 1]),
        "cos" = Cos([Id; 1]),
        "tanh" = Tanh([Id; 1]),
        "sigmoid" = Sigmoid([Id; 1]),
        "softplus" = Softplus([Id; 1]),
        "var" = Var(Box<[Id]>),
        "delta" = Delta([Id; 2]),
        "dim" = Dim([Id; 1]),
        "sum" = Sum([Id; 3]),
        "softmax" = Softmax([Id; 4]),
        "lse" = Lse([Id; 3]),
        // Display only: the sum of the N distinct index permutations of a term.
        "sym" = Sym([Id; 2]),
        Num(Num),
        Symbol(Symbol),
    }
}

/// The symbol of an index.
pub fn index_symbol(ix: Ix) -> Symbol {
    if is_bound(ix) {
        Symbol::from(format!("$b{}", ix - BOUND))
    } else {
        Symbol::from(format!("$i{ix}"))
    }
}

/// The index a symbol names, if it names one.
pub fn symbol_index(s: Symbol) -> Option<Ix> {
    let s = s.as_str();
    if let Some(h) = s.strip_prefix("$b") {
        h.parse::<Ix>().ok().map(|h| BOUND + h)
    } else if let Some(i) = s.strip_prefix("$i") {
        i.parse().ok()
    } else {
        None
    }
}

/// Free index symbols of each e-class.
#[derive(Default, Clone)]
pub struct FreeIndices;

impl Analysis<Math> for FreeIndices {
    type Data = BTreeSet<Symbol>;

    fn make(egraph: &mut EGraph<Math, Self>, enode: &Math, _id: Id) -> Self::Data {
        let child = |i: &Id| egraph[*i].data.clone();
        match enode {
            Math::Symbol(s) => symbol_index(*s)
                .map(|_| BTreeSet::from([*s]))
                .unwrap_or_default(),
            Math::Num(_) | Math::Dim(_) => BTreeSet::new(),
            Math::Sum([k, _, b]) | Math::Lse([k, _, b]) => {
                let mut s = child(b);
                for x in child(k) {
                    s.remove(&x);
                }
                s
            }
            Math::Softmax([k, _, b, at]) => {
                let mut s = child(b);
                for x in child(k) {
                    s.remove(&x);
                }
                s.extend(child(at));
                s
            }
            Math::Sym([_, t]) => child(t),
            other => other.children().iter().flat_map(child).collect(),
        }
    }

    fn merge(&mut self, a: &mut Self::Data, b: Self::Data) -> DidMerge {
        // Equal terms may differ in indices they only seem to depend on
        // (a factor that cancels); the smaller set is the true one.
        let before = a.len();
        let inter: BTreeSet<Symbol> = a.intersection(&b).copied().collect();
        let changed_a = inter.len() != before;
        let changed_b = inter.len() != b.len();
        *a = inter;
        DidMerge(changed_a, changed_b)
    }
}

/// Adds a polynomial to an expression; returns its root.
pub fn add_poly(p: &Poly, out: &mut RecExpr<Math>) -> Id {
    let terms: Vec<Id> = p
        .terms
        .iter()
        .map(|t| add_term(&t.factors, t.coef.0, out))
        .collect();
    match terms.len() {
        0 => out.add(Math::Num(Num(Real(0.0)))),
        1 => terms[0],
        _ => out.add(Math::Add(terms.into())),
    }
}

/// Adds one product.
pub fn add_term(factors: &[crate::ir::Factor], coef: f64, out: &mut RecExpr<Math>) -> Id {
    let mut kids = Vec::new();
    if coef != 1.0 || factors.is_empty() {
        kids.push(out.add(Math::Num(Num(Real(coef)))));
    }
    for f in factors {
        let a = add_atom(&f.atom, out);
        kids.push(if f.exp.0 == 1.0 {
            a
        } else {
            let e = out.add(Math::Num(Num(f.exp)));
            out.add(Math::Pow([a, e]))
        });
    }
    if kids.len() == 1 {
        kids[0]
    } else {
        out.add(Math::Mul(kids.into()))
    }
}

/// The node of function `f` applied to `u`.
pub fn func_node(f: Fun, u: Id) -> Math {
    match f {
        Fun::Exp => Math::Exp([u]),
        Fun::Log => Math::Log([u]),
        Fun::Sin => Math::Sin([u]),
        Fun::Cos => Math::Cos([u]),
        Fun::Tanh => Math::Tanh([u]),
        Fun::Sigmoid => Math::Sigmoid([u]),
        Fun::Softplus => Math::Softplus([u]),
    }
}

/// Adds a dimension (a number or `%n`).
pub fn dim_node(d: &Dim, out: &mut RecExpr<Math>) -> Id {
    match d {
        Dim::Fixed(n) => out.add(Math::Num(Num(Real(*n as f64)))),
        Dim::Named(s) => out.add(Math::Symbol(Symbol::from(format!("%{s}")))),
    }
}

/// Adds one atom.
pub fn add_atom(a: &Atom, out: &mut RecExpr<Math>) -> Id {
    let ix = |i: Ix, out: &mut RecExpr<Math>| out.add(Math::Symbol(index_symbol(i)));
    match a {
        Atom::Delta(x, y) => {
            let (x, y) = (ix(*x, out), ix(*y, out));
            out.add(Math::Delta([x, y]))
        }
        Atom::Var { name, idx } => {
            let mut kids = vec![out.add(Math::Symbol(Symbol::from(&**name)))];
            kids.extend(idx.iter().map(|i| ix(*i, out)));
            out.add(Math::Var(kids.into()))
        }
        Atom::Dim(s) => {
            let d = out.add(Math::Symbol(Symbol::from(format!("%{s}"))));
            out.add(Math::Dim([d]))
        }
        Atom::Func(f, u) => {
            let u = add_poly(u, out);
            out.add(func_node(*f, u))
        }
        Atom::Pow(b, e) => {
            let (b, e) = (add_poly(b, out), add_poly(e, out));
            out.add(Math::Pow([b, e]))
        }
        Atom::Group(p) => add_poly(p, out),
        Atom::Sum { ix: k, dim, body } => {
            let (k, d, b) = (ix(*k, out), dim_node(dim, out), add_poly(body, out));
            out.add(Math::Sum([k, d, b]))
        }
        Atom::Lse { ix: k, dim, body } => {
            let (k, d, b) = (ix(*k, out), dim_node(dim, out), add_poly(body, out));
            out.add(Math::Lse([k, d, b]))
        }
        Atom::Softmax {
            ix: k,
            dim,
            body,
            at,
        } => {
            let (k, d, b, at) = (
                ix(*k, out),
                dim_node(dim, out),
                add_poly(body, out),
                ix(*at, out),
            );
            out.add(Math::Softmax([k, d, b, at]))
        }
    }
}

/// A polynomial as a standalone expression.
pub fn to_rec(p: &Poly) -> RecExpr<Math> {
    let mut r = RecExpr::default();
    add_poly(p, &mut r);
    r
}

/// Converts an extracted expression back into the normal form.
pub fn from_rec(r: &RecExpr<Math>) -> Option<Poly> {
    let root = Id::from(r.len() - 1);
    let mut scope: Vec<(Symbol, Ix)> = Vec::new();
    node_poly(r, root, &mut scope)
}

fn index_of(r: &RecExpr<Math>, id: Id, scope: &[(Symbol, Ix)]) -> Option<Ix> {
    match &r[id] {
        Math::Symbol(s) => scope
            .iter()
            .rev()
            .find(|(x, _)| x == s)
            .map(|(_, i)| *i)
            .or_else(|| symbol_index(*s)),
        _ => None,
    }
}

fn dim_of(r: &RecExpr<Math>, id: Id) -> Option<Dim> {
    match &r[id] {
        Math::Num(n) => Some(Dim::Fixed(n.0 .0 as usize)),
        Math::Symbol(s) => s.as_str().strip_prefix('%').map(|d| Dim::Named(d.into())),
        _ => None,
    }
}

fn node_poly(r: &RecExpr<Math>, id: Id, scope: &mut Vec<(Symbol, Ix)>) -> Option<Poly> {
    let fun = |f: Fun, u: &Id, scope: &mut Vec<(Symbol, Ix)>| {
        Some(Poly::func(f, node_poly(r, *u, scope)?))
    };
    // Opens a binder: its symbol maps to a fresh index while the body is read.
    let open = |k: &Id| -> Option<(Symbol, Ix)> {
        match &r[*k] {
            Math::Symbol(s) => Some((*s, fresh())),
            _ => None,
        }
    };
    Some(match &r[id] {
        Math::Num(n) => Poly::constant(n.0 .0),
        Math::Add(kids) => {
            // One merge at the end: adding summands one by one re-sorts the
            // growing sum each time, quadratic in its length.
            let mut terms = Vec::new();
            for k in kids.iter() {
                terms.extend(node_poly(r, *k, scope)?.terms);
            }
            Poly::from_terms(terms)
        }
        Math::Mul(kids) => {
            let mut p = Poly::constant(1.0);
            for k in kids.iter() {
                p = p.mul(&node_poly(r, *k, scope)?);
            }
            p
        }
        Math::Pow([b, e]) => node_poly(r, *b, scope)?.pow(&node_poly(r, *e, scope)?),
        Math::Exp([u]) => fun(Fun::Exp, u, scope)?,
        Math::Log([u]) => fun(Fun::Log, u, scope)?,
        Math::Sin([u]) => fun(Fun::Sin, u, scope)?,
        Math::Cos([u]) => fun(Fun::Cos, u, scope)?,
        Math::Tanh([u]) => fun(Fun::Tanh, u, scope)?,
        Math::Sigmoid([u]) => fun(Fun::Sigmoid, u, scope)?,
        Math::Softplus([u]) => fun(Fun::Softplus, u, scope)?,
        Math::Var(kids) => {
            let name = match &r[kids[0]] {
                Math::Symbol(s) => s.as_str().to_string(),
                _ => return None,
            };
            let idx = kids[1..]
                .iter()
                .map(|k| index_of(r, *k, scope))
                .collect::<Option<Vec<_>>>()?;
            Poly::var(&name, idx)
        }
        Math::Delta([a, b]) => Poly::delta(index_of(r, *a, scope)?, index_of(r, *b, scope)?),
        Math::Dim([d]) => Poly::dim(&dim_of(r, *d)?),
        Math::Sum([k, d, b]) => {
            let (s, fk) = open(k)?;
            scope.push((s, fk));
            let body = node_poly(r, *b, scope);
            scope.pop();
            Poly::sum_over(fk, &dim_of(r, *d)?, &body?)
        }
        Math::Lse([k, d, b]) => {
            let (s, fk) = open(k)?;
            scope.push((s, fk));
            let body = node_poly(r, *b, scope);
            scope.pop();
            Poly::lse(fk, &dim_of(r, *d)?, body?)
        }
        Math::Softmax([k, d, b, at]) => {
            let at = index_of(r, *at, scope)?;
            let (s, fk) = open(k)?;
            scope.push((s, fk));
            let body = node_poly(r, *b, scope);
            scope.pop();
            Poly::softmax(fk, &dim_of(r, *d)?, body?, at)
        }
        Math::Sym(_) | Math::Symbol(_) => return None,
    })
}

/// Free index symbols of the subexpression at `id`.
pub fn free_symbols(r: &RecExpr<Math>, id: Id) -> BTreeSet<Symbol> {
    match &r[id] {
        Math::Symbol(s) => symbol_index(*s)
            .map(|_| BTreeSet::from([*s]))
            .unwrap_or_default(),
        Math::Num(_) | Math::Dim(_) => BTreeSet::new(),
        Math::Sum([k, _, b]) | Math::Lse([k, _, b]) => {
            let mut s = free_symbols(r, *b);
            for x in free_symbols(r, *k) {
                s.remove(&x);
            }
            s
        }
        Math::Softmax([k, _, b, at]) => {
            let mut s = free_symbols(r, *b);
            for x in free_symbols(r, *k) {
                s.remove(&x);
            }
            s.extend(free_symbols(r, *at));
            s
        }
        Math::Sym([_, t]) => free_symbols(r, *t),
        other => other
            .children()
            .iter()
            .flat_map(|c| free_symbols(r, *c))
            .collect(),
    }
}
