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
        // c · exp(b_i) / Σ_k exp(b_k) = c · softmax_k(b)_i, in a product of
        // any number of factors (egg patterns have fixed arity, so the
        // searcher looks for the two factors among all of a product's).
        egg::Rewrite::new(
            "softmax-from-exp-ratio",
            ExpRatioInProduct,
            SoftmaxFromRatio,
        )
        .expect("a valid rule"),
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

/// Finds, in a product with any number of factors, a factor `exp(x)` and a
/// factor `(Σ_k exp(b))^-1`; binds `?x ?k ?n ?b` and the two factors' e-classes
/// (`?e`, `?r`) for the applier, which keeps the other factors.
struct ExpRatioInProduct;

impl egg::Searcher<Math, FreeIndices> for ExpRatioInProduct {
    fn search_eclass_with_limit(
        &self,
        egraph: &Graph,
        eclass: Id,
        limit: usize,
    ) -> Option<egg::SearchMatches<'_, Math>> {
        let exp_arg = |id: Id| {
            egraph[id].nodes.iter().find_map(|n| match n {
                Math::Exp([x]) => Some(*x),
                _ => None,
            })
        };
        let recip_sum_of_exp = |id: Id| {
            egraph[id].nodes.iter().find_map(|n| {
                let Math::Pow([base, e]) = n else { return None };
                if super::number_of(egraph, *e) != Some(-1.0) {
                    return None;
                }
                egraph[*base].nodes.iter().find_map(|m| match m {
                    Math::Sum([k, n, body]) => exp_arg(*body).map(|b| (*k, *n, b)),
                    _ => None,
                })
            })
        };
        let mut substs = Vec::new();
        for node in &egraph[eclass].nodes {
            let Math::Mul(kids) = node else { continue };
            for &e in kids.iter() {
                let Some(x) = exp_arg(e) else { continue };
                for &r in kids.iter() {
                    let Some((k, n, b)) = recip_sum_of_exp(r) else {
                        continue;
                    };
                    let mut subst = Subst::default();
                    for (name, id) in [
                        ("?x", x),
                        ("?k", k),
                        ("?n", n),
                        ("?b", b),
                        ("?e", e),
                        ("?r", r),
                    ] {
                        subst.insert(var(name), id);
                    }
                    substs.push(subst);
                    if substs.len() >= limit {
                        break;
                    }
                }
            }
        }
        (!substs.is_empty()).then_some(egg::SearchMatches {
            eclass,
            substs,
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        ["?x", "?k", "?n", "?b", "?e", "?r"]
            .iter()
            .map(|v| var(v))
            .collect()
    }
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
                let softmax = egraph.add(node);
                // The product's other factors stay: c · exp · r⁻¹ = c · p.
                let (e, r) = (egraph.find(subst[var("?e")]), egraph.find(subst[var("?r")]));
                let products: Vec<Box<[Id]>> = egraph[eclass]
                    .nodes
                    .iter()
                    .filter_map(|n| match n {
                        Math::Mul(kids) => Some(kids.clone()),
                        _ => None,
                    })
                    .collect();
                let mut changed = vec![];
                for kids in products {
                    let mut rest: Vec<Id> = kids.iter().map(|k| egraph.find(*k)).collect();
                    let Some(pe) = rest.iter().position(|k| *k == e) else {
                        continue;
                    };
                    rest.remove(pe);
                    let Some(pr) = rest.iter().position(|k| *k == r) else {
                        continue;
                    };
                    rest.remove(pr);
                    rest.push(softmax);
                    let id = if rest.len() == 1 {
                        rest[0]
                    } else {
                        egraph.add(Math::Mul(rest.into()))
                    };
                    if egraph.union(eclass, id) {
                        changed.push(eclass);
                    }
                }
                return changed;
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
