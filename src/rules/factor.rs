//! Factoring for display: pulls factors without free indices (such as
//! `s = sum(q)` or `1/m`) out of a sum whose every term has them:
//! `s·a + s·b = s·(a + b)`. Factors with indices stay inside, because a
//! symmetrized term permutes its indices.

use egg::{Applier, Id, PatternAst, SearchMatches, Searcher, Subst, Symbol, Var};

use super::{Graph, Rule};
use crate::lang::{FreeIndices, Math};

/// The rules of this domain.
pub fn rules() -> Vec<Rule> {
    vec![egg::Rewrite::new("factor-common-scalar", EverySum, FactorCommon).unwrap()]
}

/// Matches every e-class that holds an n-ary sum.
struct EverySum;

impl Searcher<Math, FreeIndices> for EverySum {
    fn search_eclass_with_limit(
        &self,
        egraph: &Graph,
        eclass: Id,
        limit: usize,
    ) -> Option<SearchMatches<'_, Math>> {
        let has_sum = egraph[eclass]
            .nodes
            .iter()
            .any(|n| matches!(n, Math::Add(_)));
        (has_sum && limit > 0).then(|| SearchMatches {
            eclass,
            substs: vec![Subst::default()],
            ast: None,
        })
    }

    fn vars(&self) -> Vec<Var> {
        vec![]
    }
}

struct FactorCommon;

/// The factors of an e-class: the children of its product node, or itself.
fn factors_of(egraph: &Graph, id: Id) -> Vec<Id> {
    egraph[id]
        .nodes
        .iter()
        .find_map(|n| match n {
            Math::Mul(kids) => Some(kids.iter().map(|k| egraph.find(*k)).collect()),
            _ => None,
        })
        .unwrap_or_else(|| vec![egraph.find(id)])
}

impl Applier<Math, FreeIndices> for FactorCommon {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        _: &Subst,
        _: Option<&PatternAst<Math>>,
        _: Symbol,
    ) -> Vec<Id> {
        let sums: Vec<Box<[Id]>> = egraph[eclass]
            .nodes
            .iter()
            .filter_map(|n| {
                if let Math::Add(k) = n {
                    Some(k.clone())
                } else {
                    None
                }
            })
            .collect();
        let mut changed = vec![];
        for kids in sums {
            let terms: Vec<Vec<Id>> = kids.iter().map(|k| factors_of(egraph, *k)).collect();
            let common: Vec<Id> = terms[0]
                .iter()
                .copied()
                .filter(|f| {
                    egraph[*f].data.is_empty()
                        && !egraph[*f].nodes.iter().any(|n| matches!(n, Math::Num(_)))
                        && terms.iter().all(|t| t.contains(f))
                })
                .collect();
            if common.is_empty() {
                continue;
            }
            let mut rest_terms = Vec::new();
            for t in &terms {
                let mut rest: Vec<Id> = t.clone();
                for c in &common {
                    if let Some(p) = rest.iter().position(|x| x == c) {
                        rest.remove(p);
                    }
                }
                rest_terms.push(match rest.len() {
                    0 => egraph.add(Math::Num(crate::lang::Num(crate::ir::Real(1.0)))),
                    1 => rest[0],
                    _ => egraph.add(Math::Mul(rest.into())),
                });
            }
            let inner = egraph.add(Math::Add(rest_terms.into()));
            let mut outer = common.clone();
            outer.push(inner);
            let id = egraph.add(Math::Mul(outer.into()));
            if egraph.union(eclass, id) {
                changed.push(eclass);
            }
        }
        changed
    }
}
