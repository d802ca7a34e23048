//! The pipeline: text → program → shapes → index IR → k derivatives, each
//! simplified before the next → a [`Derivation`] that the back ends read.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::diag::{Error, Result};
use crate::ir::Ix;
use crate::lang::Math;
use crate::render::{json_tree, matrix_form, Names, Printer, Syntax};
use crate::rules::{self, assume::Fact};
use crate::shape::{Shape, Typed};
use crate::simplify::{saturate, simplify_poly, Limits, RunStats};
use crate::sym::Tensor;

/// What to derive.
#[derive(Clone, Debug)]
pub struct Request {
    /// The program text.
    pub expr: String,
    /// Derivative order (0 is the value).
    pub order: usize,
    /// Variable to differentiate with respect to (default: the first).
    pub wrt: Option<String>,
    /// Facts that may be used to simplify.
    pub assume: Vec<Fact>,
    /// E-graph limits per run.
    pub limits: Limits,
    /// Wall-time budget for the whole derivation.
    pub deadline: Duration,
    /// Shapes for undeclared variables that the expression leaves open
    /// (an undeclared variable used only elementwise); `eval` takes them from
    /// the data.
    pub shapes: Vec<(String, Shape)>,
}

impl Request {
    /// A request with default limits.
    pub fn new(expr: &str, order: usize) -> Request {
        Request {
            expr: expr.to_string(),
            order,
            wrt: None,
            assume: Vec::new(),
            limits: Limits::default(),
            deadline: crate::budget::DEFAULT_DEADLINE,
            shapes: Vec::new(),
        }
    }
}

/// A simplified derivative and what it took to get it.
pub struct Derivation {
    /// The checked program.
    pub(crate) typed: Typed,
    /// The variable.
    pub wrt: String,
    /// The derivative tensor.
    pub(crate) tensor: Tensor,
    /// The tensors of every order from 0 up to the requested one (the last
    /// is `tensor`); code generation emits a function for each.
    pub(crate) orders: Vec<Tensor>,
    /// One entry per e-graph run.
    pub stats: Vec<RunStats>,
    /// Facts whose rules fired.
    pub used_facts: Vec<String>,
    /// Facts given that no rule applied (they changed nothing).
    pub unused_facts: Vec<String>,
    /// Conditions under which a rule that fired holds (`exp(log(x)) = x`
    /// needs `x > 0`).
    pub conditions: Vec<String>,
    /// The program text.
    pub source: String,
}

/// Highest derivative order symdiff computes. The contract asks for order
/// 10 on the xent family; past about 20 the symbolic result of any
/// non-polynomial expression of a vector outgrows the time limit anyway,
/// so a larger order is refused at once instead of after the deadline.
pub const MAX_ORDER: usize = 24;

/// Most terms differentiating one order may make, by
/// the differentiator's own count, made before any term is built (xent's order 9 makes 256; `softmax` nested
/// 6 deep at order 2 from 12,096, 3 s; 8 deep, 195,840, would run for
/// minutes).
pub const MAX_PREDICTED_TERMS: f64 = 50_000.0;

/// Refuses an order above [`MAX_ORDER`] before any work.
pub fn check_order(order: usize) -> Result<()> {
    if order > MAX_ORDER {
        return Err(Error::new(format!(
            "order {order} is above the highest order symdiff computes, {MAX_ORDER}"
        ))
        .with_note(
            "derivative tensors of order k have up to p(k) symmetry classes (p(24) = 1575), each growing with k",
        ));
    }
    Ok(())
}

/// Runs the pipeline, on a large stack and within `req.deadline` (see
/// [`crate::budget`]).
pub fn derive(req: &Request) -> Result<Derivation> {
    check_order(req.order)?;
    crate::budget::run(req.deadline, || derive_within_budget(req))
}

fn derive_within_budget(req: &Request) -> Result<Derivation> {
    let start = Instant::now();
    let program = crate::parse::parse_program(&req.expr)?;
    let typed = crate::shape::check_with_hints(&program, &req.shapes)?;
    let wrt = variable(&typed, req)?;
    let wrt_shape = typed.var_shape(&wrt).cloned().expect("checked above");
    let value_shape = typed.body.shape.clone();
    let value_idx: Vec<Ix> = (0..value_shape.rank() as Ix).collect();
    let value = crate::lower::lower(&typed.body, &value_idx);

    let mut rules = rules::identities();
    for f in &req.assume {
        rules.extend(f.rules());
    }
    let mut stats = Vec::new();
    let (value, s) = simplify_poly(&value, &rules, req.limits, "order 0");
    stats.push(s);
    let value = crate::simplify::combine_terms(&value);
    let mut tensor = Tensor::new(value, value_idx, value_shape.dims(), wrt_shape.dims());
    let mut orders = vec![tensor.clone()];
    for k in 1..=req.order {
        if start.elapsed() > req.deadline {
            return Err(Error::new(format!(
                "order {} was not reached within {:.0} s (order {} took that long); symdiff stops rather than run unbounded",
                req.order,
                req.deadline.as_secs_f64(),
                k - 1
            )));
        }
        check_next_order(&tensor, &wrt, k)?;
        tensor = tensor.differentiate(&wrt)?;
        let (reps, s) = simplify_poly(
            &tensor.representatives(),
            &rules,
            req.limits,
            &format!("order {k}"),
        );
        stats.push(s);
        // Each representative stands for itself alone when every orbit is
        // one term; only then may terms be combined over a denominator.
        let reps = if tensor.orbits_are_trivial() {
            crate::simplify::combine_terms(&reps)
        } else {
            reps
        };
        tensor.set_representatives(reps);
        orders.push(tensor.clone());
    }
    let (used_facts, unused_facts) = facts_used(req, &typed, &stats);
    let conditions = CONDITIONAL_RULES
        .iter()
        .filter(|(rule, _)| {
            stats
                .iter()
                .any(|s| s.applied.iter().any(|(n, _)| n == rule))
        })
        .map(|(_, c)| c.to_string())
        .collect();
    Ok(Derivation {
        conditions,
        typed,
        wrt,
        tensor,
        orders,
        stats,
        used_facts,
        unused_facts,
        source: req.expr.clone(),
    })
}

/// The variable to differentiate with respect to (the request's, checked,
/// or the default), after checking that every assumption names a variable.
fn variable(typed: &crate::shape::Typed, req: &Request) -> Result<String> {
    let wrt = match &req.wrt {
        Some(w) => {
            if typed.var_shape(w).is_none() {
                let vars: Vec<&str> = typed.vars.iter().map(|(n, _)| n.as_str()).collect();
                return Err(
                    Error::new(format!("`{w}` is not a variable of the expression, so there is nothing to differentiate with respect to"))
                        .with_note(format!(
                            "its variables are: {}",
                            if vars.is_empty() {
                                "(none)".into()
                            } else {
                                vars.join(", ")
                            }
                        )),
                );
            }
            w.clone()
        }
        None => typed.default_wrt().ok_or_else(|| {
            Error::new("the expression has no variable to differentiate with respect to")
        })?,
    };
    for f in &req.assume {
        if typed.var_shape(f.var()).is_none() {
            return Err(Error::new(format!(
                "the assumption `{}` names `{}`, which is not a variable",
                f.describe(),
                f.var()
            )));
        }
    }
    Ok(wrt)
}

/// The size of order `k`, bounded before any of it is built: one that
/// could not finish is refused at once, not at the deadline.
fn check_next_order(tensor: &Tensor, wrt: &str, k: usize) -> Result<()> {
    let predicted = crate::diff::predicted_terms(&tensor.representatives(), wrt);
    if predicted > MAX_PREDICTED_TERMS {
        return Err(Error::new(format!(
            "order {k} is too large: differentiating order {} would make about {predicted:.0} terms before like terms merge (the limit is {MAX_PREDICTED_TERMS:.0})", k - 1
        ))
        .with_note(format!(
            "order {} has {} terms; each nested softmax or power doubles what its derivative makes",
            k - 1,
            tensor.classes.len()
        )));
    }
    Ok(())
}

/// The assumptions whose rules fired, and the others, each with a hint
/// where a likely one was meant (`rowsum` for a matrix).
fn facts_used(
    req: &Request,
    typed: &crate::shape::Typed,
    stats: &[RunStats],
) -> (Vec<String>, Vec<String>) {
    let mut used_facts = Vec::new();
    let mut unused_facts = Vec::new();
    for f in &req.assume {
        let tag = format!("assume-{}", f.describe());
        if stats
            .iter()
            .any(|s| s.applied.iter().any(|(n, _)| n.starts_with(&tag)))
        {
            used_facts.push(f.describe());
        } else {
            let mut note = f.describe();
            if let (Fact::SumIsOne(v), Some(Shape::Mat(..))) = (f, typed.var_shape(f.var())) {
                // `sum` of a matrix is its total; the per-row fact has its own name.
                note.push_str(&format!(
                    " (sum of a matrix is its total; for every row write rowsum({v})=1)"
                ));
            }
            unused_facts.push(note);
        }
    }
    (used_facts, unused_facts)
}

/// Rules that hold only on part of the domain, with the condition the
/// report states when they fired.
const CONDITIONAL_RULES: &[(&str, &str)] = &[(
    "logexp-exp-of-log",
    "exp(log(u)) = u holds where log(u) is defined: u > 0",
)];

/// Classes are expanded for display when they stand for at most this many terms.
const EXPAND_DISPLAY: f64 = 10.0;

impl Derivation {
    /// The checked program (for the crate's tests).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn typed(&self) -> &Typed {
        &self.typed
    }

    /// The derivative tensor (for the crate's tests).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The order of the derivative.
    pub fn order(&self) -> usize {
        self.tensor.order()
    }

    /// Whether `f` does not change along `1` in its vector variable `z`
    /// (`f(z + c·1) = f(z)`, as xent, softmax and log_softmax): the derivative
    /// contracted with `1` simplifies to zero.
    pub fn shift_invariant(&self) -> bool {
        let d = self;
        if d.tensor.wrt_dims.len() != 1
            || !matches!(d.typed.var_shape(&d.wrt), Some(crate::shape::Shape::Vec(_)))
        {
            return false;
        }
        let t1 = match d.orders.get(1) {
            Some(t) => t.clone(),
            None => match d.orders[0].differentiate(&d.wrt) {
                Ok(t) => t,
                Err(_) => return false,
            },
        };
        let ones = crate::codegen::contract_with(&t1.expanded(), &t1, 0, |_| {
            crate::ir::Poly::constant(1.0)
        });
        let (sum, _) = crate::simplify::simplify_poly(
            &ones,
            &crate::rules::identities(),
            crate::simplify::Limits::default(),
            "shift-invariance check",
        );
        sum.is_zero()
    }

    /// This derivation stopped at order `k` (its tensor that of order k).
    pub fn at_order(&self, k: usize) -> Derivation {
        Derivation {
            typed: self.typed.clone(),
            wrt: self.wrt.clone(),
            tensor: self.orders[k].clone(),
            orders: self.orders[..=k].to_vec(),
            stats: Vec::new(),
            used_facts: self.used_facts.clone(),
            unused_facts: self.unused_facts.clone(),
            conditions: self.conditions.clone(),
            source: self.source.clone(),
        }
    }

    /// The formula of order `k` as `derive` prints it, for a kernel's doc:
    /// `∂f/∂z_i = s·p_i − q_i, where s = sum(q), p = softmax(z)`, or None
    /// when it is too long to read there.
    pub fn formula(&self, k: usize) -> Option<String> {
        let d = self.at_order(k);
        let (text, _) = d.report(Syntax::Text, Limits::default());
        let form = text
            .lines()
            .find_map(|l| l.strip_prefix("index form:"))?
            .trim();
        if form.chars().count() > 240 {
            return None;
        }
        let names = d.free_names(&d.names());
        let free = &names[d.tensor.value_idx.len()..];
        let lhs = match k {
            0 => "f".to_string(),
            1 => format!("∂f/∂{}{}", self.wrt, subscript(free)),
            _ => format!(
                "∂{}f/{}",
                superscript(k),
                if free.is_empty() {
                    format!("∂{}{}", self.wrt, superscript(k))
                } else {
                    free.iter()
                        .map(|i| format!("∂{}_{i}", self.wrt))
                        .collect::<String>()
                }
            ),
        };
        let wheres: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("where "))
            .collect();
        let mut out = format!("`{lhs} = {form}`");
        if !wheres.is_empty() {
            out.push_str(&format!(
                ", where {}",
                wheres
                    .iter()
                    .map(|w| format!("`{w}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(out)
    }

    /// The free indices of the result, value first.
    pub(crate) fn free_indices(&self) -> Vec<Ix> {
        let mut ids = self.tensor.value_idx.clone();
        for g in &self.tensor.groups {
            ids.extend(g.iter().copied());
        }
        ids
    }
}

mod report;
pub(crate) use report::chain_latex;
use report::{subscript, superscript};
