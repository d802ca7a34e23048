//! Softmax and logsumexp identities.

use egg::{rewrite as rw, Applier, Id, PatternAst, Subst, Symbol, Var};

use super::{best, substitute, symbol_of, Graph, Rule};
use crate::lang::{FreeIndices, Math};

/// The rules of this domain.
pub fn rules() -> Vec<Rule> {
    vec![
        // Σ_i softmax(b)_i = 1, when b does not itself depend on i.
        rw!("softmax-sum-to-one"; "(sum ?i ?n (softmax ?k ?n ?b ?i))" => "1"
            if not_mentioned("?b", "?i")),
        // exp(b_i) / Σ_k exp(b_k) = softmax_k(b)_i
        rw!("softmax-from-exp-ratio"; "(* (exp ?x) (^ (sum ?k ?n (exp ?b)) -1))" => { SoftmaxFromRatio }),
        // log softmax_k(b)_i = b_i − logsumexp_k(b): never the log of a
        // rounded probability.
        rw!("softmax-log-of-softmax"; "(log (softmax ?k ?n ?b ?i))" => { LogSoftmax }),
    ]
}

/// Condition: the e-class of `body` has no free occurrence of the index in `ix`.
fn not_mentioned(body: &str, ix: &str) -> impl Fn(&mut Graph, Id, &Subst) -> bool {
    let body: Var = body.parse().unwrap();
    let ix: Var = ix.parse().unwrap();
    move |egraph, _, subst| match symbol_of(egraph, subst[ix]) {
        Some(s) => !egraph[subst[body]].data.contains(&s),
        None => false,
    }
}

fn var(name: &str) -> Var {
    name.parse().unwrap()
}

/// Adds `b` with its bound index `k` replaced by `i`; returns the new e-class.
fn instantiate(egraph: &mut Graph, subst: &Subst, i: Symbol) -> Option<Id> {
    let k = symbol_of(egraph, subst[var("?k")])?;
    let body = best(egraph, subst[var("?b")]);
    Some(egraph.add_expr(&substitute(&body, k, i)))
}

struct SoftmaxFromRatio;

impl Applier<Math, FreeIndices> for SoftmaxFromRatio {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Math>>,
        _: Symbol,
    ) -> Vec<Id> {
        let x = subst[var("?x")];
        // exp(x) must be exp(b) at one of x's free indices.
        let candidates: Vec<Symbol> = egraph[x].data.iter().copied().collect();
        for i in candidates {
            let Some(inst) = instantiate(egraph, subst, i) else {
                continue;
            };
            if egraph.find(inst) == egraph.find(x) {
                let at = egraph.add(Math::Symbol(i));
                let node =
                    Math::Softmax([subst[var("?k")], subst[var("?n")], subst[var("?b")], at]);
                let id = egraph.add(node);
                if egraph.union(eclass, id) {
                    return vec![eclass];
                }
                return vec![];
            }
        }
        vec![]
    }
}

struct LogSoftmax;

impl Applier<Math, FreeIndices> for LogSoftmax {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _: Option<&PatternAst<Math>>,
        _: Symbol,
    ) -> Vec<Id> {
        let Some(i) = symbol_of(egraph, subst[var("?i")]) else {
            return vec![];
        };
        let Some(b_i) = instantiate(egraph, subst, i) else {
            return vec![];
        };
        let lse = egraph.add(Math::Lse([
            subst[var("?k")],
            subst[var("?n")],
            subst[var("?b")],
        ]));
        let minus = egraph.add(Math::Num(crate::lang::Num(crate::ir::Real(-1.0))));
        let neg = egraph.add(Math::Mul(vec![minus, lse].into()));
        let id = egraph.add(Math::Add(vec![b_i, neg].into()));
        if egraph.union(eclass, id) {
            vec![eclass]
        } else {
            vec![]
        }
    }
}
