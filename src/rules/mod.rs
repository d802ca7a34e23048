//! Rewrite rules, one file per domain. Every rule is named with its domain
//! prefix and headed by the identity it encodes. The normal form of `ir.rs`
//! already does associativity, commutativity, distribution, like terms and
//! delta contraction, so the rules here are identities the normal form
//! cannot see, and they never make a term worse.

pub mod assume;
pub mod factor;
pub mod logexp;
pub mod logistic;
pub mod softmax;
pub mod trig;

use egg::{EGraph, Id, RecExpr, Symbol};

use crate::lang::{FreeIndices, Math};

/// The e-graph type of symdiff.
pub type Graph = EGraph<Math, FreeIndices>;
/// A rule of symdiff.
pub type Rule = egg::Rewrite<Math, FreeIndices>;

/// The rules used between orders: identities only.
pub fn identities() -> Vec<Rule> {
    let mut rules = logexp::rules();
    rules.extend(softmax::rules());
    rules
}

/// Copies the expression rooted at `id` out of `expr`, replacing the symbol
/// `from` by `to` (an index substitution; binders inside never use `to`,
/// because bound names are heights and `to` is free or a taller binder).
pub fn substitute(expr: &RecExpr<Math>, from: Symbol, to: Symbol) -> RecExpr<Math> {
    let mut out = RecExpr::default();
    for node in expr.as_ref() {
        let node = match node {
            Math::Symbol(s) if *s == from => Math::Symbol(to),
            other => other.clone(),
        };
        out.add(node);
    }
    out
}

/// The smallest term of an e-class.
pub fn best(egraph: &Graph, id: Id) -> RecExpr<Math> {
    let extractor = egg::Extractor::new(egraph, egg::AstSize);
    extractor.find_best(id).1
}

/// The symbol in an e-class that holds only a symbol leaf.
pub fn symbol_of(egraph: &Graph, id: Id) -> Option<Symbol> {
    egraph[id].nodes.iter().find_map(|n| match n {
        Math::Symbol(s) => Some(*s),
        _ => None,
    })
}

/// Whether an e-class is a number (and which).
pub fn number_of(egraph: &Graph, id: Id) -> Option<f64> {
    egraph[id].nodes.iter().find_map(|n| match n {
        Math::Num(x) => Some(x.0 .0),
        _ => None,
    })
}
