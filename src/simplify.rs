//! Equality saturation: runs the rules on an expression with node, iteration
//! and time limits, extracts the cheapest form, and reports what happened.

use std::time::{Duration, Instant};

use egg::{CostFunction, Id, Language, RecExpr, Runner, StopReason};

use crate::ir::Poly;
use crate::lang::{from_rec, to_rec, FreeIndices, Math};
use crate::rules::Rule;

/// Bounds on one saturation run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most e-nodes.
    pub nodes: usize,
    /// Most iterations.
    pub iterations: usize,
    /// Most wall time.
    pub time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nodes: 50_000,
            iterations: 16,
            time: Duration::from_secs(2),
        }
    }
}

/// What one run did.
#[derive(Clone, Debug)]
pub struct RunStats {
    /// Which pass ("order 2 identities", "display").
    pub pass: String,
    /// E-nodes at the end.
    pub nodes: usize,
    /// E-classes at the end.
    pub classes: usize,
    /// Iterations run.
    pub iterations: usize,
    /// Wall time.
    pub time: Duration,
    /// Why it stopped.
    pub stop: String,
    /// Whether a limit (not saturation) stopped it.
    pub hit_limit: bool,
    /// Rules that changed the e-graph, with how often.
    pub applied: Vec<(String, usize)>,
}

/// Readability cost: size, with products and sums of many children a bit
/// dearer than a factored form.
pub struct Readable;

impl CostFunction<Math> for Readable {
    type Cost = usize;
    fn cost<C: FnMut(Id) -> usize>(&mut self, enode: &Math, mut costs: C) -> usize {
        let own = match enode {
            Math::Softmax(_) | Math::Lse(_) => 1,
            _ => 1,
        };
        enode.fold(own, |acc, id| acc.saturating_add(costs(id)))
    }
}

/// Runs `rules` on `expr`; returns the best form and the stats.
pub fn saturate(
    expr: &RecExpr<Math>,
    rules: &[Rule],
    limits: Limits,
    pass: &str,
) -> (RecExpr<Math>, RunStats) {
    let start = Instant::now();
    let runner: Runner<Math, FreeIndices> = Runner::default()
        .with_node_limit(limits.nodes)
        .with_iter_limit(limits.iterations)
        .with_time_limit(match crate::budget::remaining() {
            Some(left) => limits.time.min(left),
            None => limits.time,
        })
        .with_expr(expr)
        .run(rules);
    let root = runner.roots[0];
    let extractor = egg::Extractor::new(&runner.egraph, Readable);
    let (_, best) = extractor.find_best(root);
    let mut applied: Vec<(String, usize)> = Vec::new();
    for it in &runner.iterations {
        for (name, n) in &it.applied {
            match applied.iter_mut().find(|(x, _)| x == name.as_str()) {
                Some(e) => e.1 += n,
                None => applied.push((name.to_string(), *n)),
            }
        }
    }
    applied.sort();
    let (stop, hit_limit) = match &runner.stop_reason {
        Some(StopReason::Saturated) | None => ("saturated".to_string(), false),
        Some(StopReason::IterationLimit(n)) => (format!("iteration limit ({n})"), true),
        Some(StopReason::NodeLimit(n)) => (format!("node limit ({n})"), true),
        Some(StopReason::TimeLimit(t)) => (format!("time limit ({t:.1} s)"), true),
        Some(StopReason::Other(s)) => (s.clone(), true),
    };
    let stats = RunStats {
        pass: pass.to_string(),
        nodes: runner.egraph.total_size(),
        classes: runner.egraph.number_of_classes(),
        iterations: runner.iterations.len(),
        time: start.elapsed(),
        stop,
        hit_limit,
        applied,
    };
    (best, stats)
}

/// Simplifies a polynomial with identity rules and returns it in normal form.
pub fn simplify_poly(p: &Poly, rules: &[Rule], limits: Limits, pass: &str) -> (Poly, RunStats) {
    let (best, stats) = saturate(&to_rec(p), rules, limits, pass);
    // Conversion back can only fail on display-only nodes, which these
    // rules never make; keep the input if it does.
    (from_rec(&best).unwrap_or_else(|| p.clone()), stats)
}

/// The passes after saturation that combine several terms of a sum, which
/// the e-graph's fixed-arity patterns do not see: cancellation over a
/// common denominator ([`crate::ratfun::cancel`]), the logistic sign
/// identities ([`crate::rules::logistic`]) and the trigonometric pair
/// identities ([`crate::rules::trig`]). Each keeps its result only when
/// it prints no longer.
pub fn combine_terms(p: &Poly) -> Poly {
    let p = crate::rules::logistic::rewrite(p);
    crate::rules::trig::rewrite(&crate::ratfun::cancel(&p))
}
