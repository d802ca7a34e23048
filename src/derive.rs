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
    /// (see [`crate::shape::check_with_hints`]); `eval` takes them from
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
    pub typed: Typed,
    /// The variable.
    pub wrt: String,
    /// The derivative tensor.
    pub tensor: Tensor,
    /// The tensors of every order from 0 up to the requested one (the last
    /// is `tensor`); code generation emits a function for each.
    pub orders: Vec<Tensor>,
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
/// [`crate::diff::predicted_terms`] (xent's order 9 makes 256; `softmax` nested
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
        None => match typed.default_wrt() {
            Some(n) => n,
            None => {
                return Err(Error::new(
                    "the expression has no variable to differentiate with respect to",
                ))
            }
        },
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
        // The size of the next order, bounded before any of it is built:
        // one that could not finish is refused at once, not at the deadline.
        let predicted = crate::diff::predicted_terms(&tensor.representatives(), &wrt);
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

/// Rules that hold only on part of the domain, with the condition the
/// report states when they fired.
const CONDITIONAL_RULES: &[(&str, &str)] = &[(
    "logexp-exp-of-log",
    "exp(log(u)) = u holds where log(u) is defined: u > 0",
)];

/// Classes are expanded for display when they stand for at most this many terms.
const EXPAND_DISPLAY: f64 = 10.0;

impl Derivation {
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
    pub fn free_indices(&self) -> Vec<Ix> {
        let mut ids = self.tensor.value_idx.clone();
        for g in &self.tensor.groups {
            ids.extend(g.iter().copied());
        }
        ids
    }

    /// The display expression: classes (symmetrized where large), factored
    /// by the e-graph. Returns it with the stats of the display run.
    pub fn display_expr(&self, limits: Limits) -> (egg::RecExpr<Math>, RunStats) {
        let order = self.tensor.order();
        let total: f64 = self.tensor.classes.iter().map(|c| c.orbit(order)).sum();
        let mut r = egg::RecExpr::default();
        if self.free_indices().is_empty() {
            // A scalar: the factored, common-denominator form (see
            // `compact`); the e-graph's factoring has nothing to add.
            crate::compact::display(&self.tensor.expanded()).add_to(&mut r);
            return saturate(&r, &[], limits, "display");
        }
        let expand = !self.tensor.symmetric || total <= EXPAND_DISPLAY;
        let mut kids = Vec::new();
        if expand {
            // Sums that differ only in their summand are one sum, its body
            // factored: Σ_b X_bi X_bj·σ_b·(1 − σ_b)·(1 − 2 y_b)².
            let terms = crate::matform::merge_row_sums(&self.tensor.expanded().terms);
            for t in &terms {
                kids.push(crate::compact::term_node(t).add_to(&mut r));
            }
        } else {
            for c in &self.tensor.classes {
                let orbit = c.orbit(order);
                let (scal, idx): (Vec<_>, Vec<_>) = c
                    .term
                    .factors
                    .iter()
                    .cloned()
                    .partition(|f| f.atom.free().is_empty());
                if orbit <= 1.0 || idx.is_empty() {
                    kids.push(crate::lang::add_term(
                        &c.term.factors,
                        c.term.coef.0,
                        &mut r,
                    ));
                    continue;
                }
                let inner = crate::lang::add_term(&idx, 1.0, &mut r);
                let n = r.add(Math::Num(crate::lang::Num(crate::ir::Real(orbit.round()))));
                let sym = r.add(Math::Sym([n, inner]));
                let mut outer = Vec::new();
                if c.term.coef.0 != 1.0 {
                    outer.push(r.add(Math::Num(crate::lang::Num(c.term.coef))));
                }
                for f in &scal {
                    outer.push(crate::lang::add_term(std::slice::from_ref(f), 1.0, &mut r));
                }
                outer.push(sym);
                kids.push(if outer.len() == 1 {
                    outer[0]
                } else {
                    r.add(Math::Mul(outer.into()))
                });
            }
        }
        crate::render::lead_with(&mut kids, |&k| !starts_negative(&r, k));
        match kids.len() {
            0 => {
                r.add(Math::Num(crate::lang::Num(crate::ir::Real(0.0))));
            }
            1 => {}
            _ => {
                r.add(Math::Add(kids.into()));
            }
        }
        saturate(&r, &rules::factor::rules(), limits, "display")
    }

    /// The printed names of the free indices, in order.
    fn free_names(&self, names: &Names) -> Vec<String> {
        self.free_indices()
            .iter()
            .map(|&i| names.name_of(i))
            .collect()
    }

    /// Names for the indices and parts of this derivation's output.
    pub fn names(&self) -> Names {
        let mut taken: BTreeSet<String> = self.typed.vars.iter().map(|(n, _)| n.clone()).collect();
        taken.extend(self.typed.symbolic_dims());
        taken.insert("p".into());
        taken.insert("s".into());
        let mut names = Names::new(&self.free_indices(), &taken);
        names.exact = !typed_floats(&self.source);
        names
    }

    /// The report `derive` prints.
    pub fn report(&self, syntax: Syntax, limits: Limits) -> (String, RunStats) {
        let (expr, display_stats) = self.display_expr(limits);
        let mut names = self.names();
        let mut printer = Printer {
            names: &mut names,
            syntax,
            overrides: Default::default(),
        };
        let index_form = printer.show(&expr);
        let k = self.tensor.order();
        // Matrix variables get chain forms (`Xᵀ(A − Y)/m`); vector ones the
        // diag/outer form (`diag(p) − p pᵀ`).
        let has_matrix = self.typed.vars.iter().any(|(_, s)| s.rank() == 2);
        let free_idx = self.free_indices();
        let matrix = if k > 2 || free_idx.is_empty() {
            None
        } else if has_matrix {
            let terms = self.tensor.expanded().terms;
            let mut namer = PartNamer {
                printer: &mut printer,
            };
            // Scalars print as text here; the whole chain is converted to
            // LaTeX below.
            let mut show = |fs: &[crate::ir::Factor]| -> String {
                if fs.is_empty() {
                    return String::new();
                }
                let mut r = egg::RecExpr::default();
                crate::lang::add_term(fs, 1.0, &mut r);
                let mut names = Names::new(&[], &BTreeSet::new());
                Printer {
                    names: &mut names,
                    syntax: Syntax::Text,
                    overrides: Default::default(),
                }
                .show(&r)
            };
            // Sums merged first (one chain with a row weight), else term
            // by term.
            let merged = crate::matform::merge_row_sums(&terms);
            let chain =
                crate::matform::matrix_chain_form(&merged, &free_idx, &mut namer, &mut show)
                    .or_else(|| {
                        crate::matform::matrix_chain_form(&terms, &free_idx, &mut namer, &mut show)
                    });
            match syntax {
                Syntax::Text => chain,
                Syntax::Latex => chain.map(|c| chain_latex(&c)),
            }
        } else if self.typed.var_shape(&self.wrt).map(Shape::rank) == Some(1) {
            matrix_form(&self.tensor.expanded().terms, &free_idx, &mut printer)
        } else {
            None
        };
        // A row-wise part's definition names itself (`A_ec = softmax_c(…)`).
        let part_lines: Vec<String> = names
            .parts
            .iter()
            .map(|(n, def, _)| {
                if def.starts_with(&format!("{n}_")) {
                    def.clone()
                } else {
                    format!("{n} = {def}")
                }
            })
            .collect();
        let free = self.free_names(&names);
        let shape = self.symbolic_shape();
        let mut out = String::new();
        match syntax {
            Syntax::Text => {
                let lhs = if k == 0 {
                    "f".to_string()
                } else {
                    let sup = superscript(k);
                    format!(
                        "∂{}f/∂{}{}",
                        if k > 1 { sup.clone() } else { String::new() },
                        self.wrt,
                        if k > 1 { sup } else { String::new() }
                    )
                };
                out.push_str(&format!("f = {}\n", self.expr_text()));
                out.push_str(&format!(
                    "{lhs}  (order {k} with respect to {}, shape [{}])\n",
                    self.wrt,
                    shape.join(", ")
                ));
                if !free.is_empty() {
                    out.push_str(&format!("indices: {}\n", free.join(" ")));
                }
                for line in &part_lines {
                    out.push_str(&format!("where {line}\n"));
                }
                out.push_str(&format!("\nindex form:  {index_form}\n"));
                if let Some(m) = matrix {
                    out.push_str(&format!("matrix form: {m}\n"));
                }
                if self.display_is_symmetrized() {
                    out.push_str("\nX[N] is the sum of the N distinct permutations of X's derivative indices.\n");
                }
                if !self.used_facts.is_empty() {
                    out.push_str(&format!(
                        "assumptions used: {}\n",
                        self.used_facts.join(", ")
                    ));
                }
                for c in &self.conditions {
                    out.push_str(&format!("valid where: {c}\n"));
                }
                if !self.unused_facts.is_empty() {
                    out.push_str(&format!(
                        "assumptions not used (no rule applies them to this derivative): {}\n",
                        self.unused_facts.join(", ")
                    ));
                }
            }
            Syntax::Latex => {
                for line in &part_lines {
                    out.push_str(&format!("{line}\n"));
                }
                // A left-hand side to paste: ∂³f/∂z_i∂z_j∂z_k with the
                // derivative's own indices.
                let value_names = &free[..self.tensor.value_idx.len()];
                let f = if value_names.is_empty() {
                    "f".to_string()
                } else {
                    format!("f_{{{}}}", value_names.join(""))
                };
                let wrt = latex_name(&self.wrt);
                let lhs = if k == 0 {
                    f.clone()
                } else {
                    let per = self.tensor.wrt_dims.len();
                    let dens: Vec<String> = (0..k)
                        .map(|g| {
                            let idx = &free
                                [value_names.len() + g * per..value_names.len() + (g + 1) * per];
                            if idx.is_empty() {
                                format!("\\partial {wrt}")
                            } else {
                                format!("\\partial {wrt}_{{{}}}", idx.join(""))
                            }
                        })
                        .collect();
                    let dens = if per == 0 && k > 1 {
                        format!("\\partial {wrt}^{{{k}}}")
                    } else {
                        dens.join(" ")
                    };
                    let pow = if k > 1 {
                        format!("^{{{k}}}")
                    } else {
                        String::new()
                    };
                    format!("\\frac{{\\partial{pow} {f}}}{{{dens}}}")
                };
                out.push_str(&format!("{lhs} = {index_form}\n"));
                if let Some(m) = matrix {
                    let whole = if k == 0 {
                        "f".to_string()
                    } else {
                        let pow = if k > 1 {
                            format!("^{{{k}}}")
                        } else {
                            String::new()
                        };
                        format!("\\frac{{\\partial{pow} f}}{{\\partial {wrt}{pow}}}")
                    };
                    out.push_str(&format!("{whole} = {m}\n"));
                }
                if !self.used_facts.is_empty() {
                    out.push_str(&format!(
                        "\\text{{assuming }} {}\n",
                        self.used_facts
                            .iter()
                            .map(|f| format!("\\texttt{{{}}}", latex_text(f)))
                            .collect::<Vec<_>>()
                            .join(",\\ ")
                    ));
                }
            }
        }
        (out, display_stats)
    }

    fn display_is_symmetrized(&self) -> bool {
        let order = self.tensor.order();
        let total: f64 = self.tensor.classes.iter().map(|c| c.orbit(order)).sum();
        self.tensor.symmetric && total > EXPAND_DISPLAY
    }

    /// The program text, on one line.
    pub fn expr_text(&self) -> String {
        crate::parse::one_line(&self.source)
    }

    /// The matrix form `derive` prints (`diag(p) − p pᵀ`, `Xᵀ(A − Y)/m`),
    /// as text, where one exists.
    pub fn matrix_form(&self, limits: Limits) -> Option<String> {
        self.report(Syntax::Text, limits)
            .0
            .lines()
            .find_map(|l| l.strip_prefix("matrix form: ").map(str::to_string))
    }

    /// The shape with symbolic dimensions.
    pub fn symbolic_shape(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .tensor
            .value_dims
            .iter()
            .map(|d| d.to_string())
            .collect();
        for _ in 0..self.tensor.order() {
            s.extend(self.tensor.wrt_dims.iter().map(|d| d.to_string()));
        }
        s
    }

    /// The JSON `derive --format json` prints.
    pub fn json(&self, limits: Limits) -> serde_json::Value {
        let (expr, _) = self.display_expr(limits);
        let mut names = self.names();
        let mut printer = Printer {
            names: &mut names,
            syntax: Syntax::Text,
            overrides: Default::default(),
        };
        let text = printer.show(&expr);
        let parts: serde_json::Map<String, serde_json::Value> = names
            .parts
            .iter()
            .map(|(n, d, _)| (n.clone(), serde_json::Value::String(d.clone())))
            .collect();
        let free = self.free_names(&names);
        let matrix = self.matrix_form(limits);
        serde_json::json!({
            "wrt": self.wrt,
            "order": self.tensor.order(),
            "shape": self.symbolic_shape(),
            "indices": free,
            "definitions": parts,
            "symmetrized": self.display_is_symmetrized(),
            "text": text,
            "matrix_form": matrix,
            "tree": json_tree(&expr, &names),
            "assumptions_used": self.used_facts,
            "assumptions_unused": self.unused_facts,
            "conditions": self.conditions,
        })
    }
}

/// Names row-wise softmax parts (`A`) for matrix forms, through the
/// printer so that the index form and the matrix form agree.
struct PartNamer<'p, 'n> {
    printer: &'p mut Printer<'n>,
}

impl crate::matform::Namer for PartNamer<'_, '_> {
    fn exact(&self) -> bool {
        self.printer.names.exact
    }

    fn atom_name(&mut self, a: &crate::ir::Atom) -> Option<String> {
        let mut r = egg::RecExpr::default();
        crate::lang::add_atom(a, &mut r);
        let shown = self.printer.show(&r);
        Some(shown.split('_').next().unwrap_or(&shown).to_string())
    }
}

#[doc(hidden)]
/// Whether the program text has a number literal that is not a short
/// fraction (`0.7978845608`, `1e-3`): then results print as decimals, as
/// the user wrote them; otherwise as exact fractions (`0.5` reads `1/2`).
pub fn typed_floats(source: &str) -> bool {
    let bytes = source.as_bytes();
    let mut n = 0;
    while n < bytes.len() {
        let c = bytes[n];
        let starts_number = (c.is_ascii_digit() || c == b'.')
            && (n == 0 || !(bytes[n - 1].is_ascii_alphanumeric() || bytes[n - 1] == b'_'));
        if !starts_number {
            n += 1;
            continue;
        }
        let start = n;
        while n < bytes.len()
            && (bytes[n].is_ascii_digit()
                || bytes[n] == b'.'
                || ((bytes[n] == b'e' || bytes[n] == b'E')
                    && bytes
                        .get(n + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == b'-' || *d == b'+'))
                || ((bytes[n] == b'-' || bytes[n] == b'+') && matches!(bytes[n - 1], b'e' | b'E')))
        {
            n += 1;
        }
        if let Ok(v) = source[start..n].parse::<f64>() {
            if !matches!(crate::compact::as_fraction(v), Some((_, q)) if q <= 1000) {
                return true;
            }
        }
    }
    false
}

/// Whether a display term has a negative leading coefficient.
fn starts_negative(r: &egg::RecExpr<Math>, id: egg::Id) -> bool {
    match &r[id] {
        Math::Num(n) => n.0 .0 < 0.0,
        Math::Mul(kids) => kids
            .iter()
            .any(|k| matches!(&r[*k], Math::Num(n) if n.0 .0 < 0.0)),
        _ => false,
    }
}

/// A matrix form printed as text, in LaTeX: `ᵀ` is `^\top`, `∘` is
/// `\circ`, function names upright.
pub(crate) fn chain_latex(text: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&match word.as_str() {
                "diag" | "sigmoid" | "softplus" | "sqrt" => format!("\\operatorname{{{word}}}"),
                "exp" | "log" | "tanh" | "sin" | "cos" => format!("\\{word}"),
                _ => word.clone(),
            });
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        match c {
            'ᵀ' => out.push_str("^{\\top}"),
            '∘' => out.push_str(" \\circ "),
            '·' => out.push_str(" \\cdot "),
            '−' => out.push('-'),
            c if c.is_ascii() => out.push(c),
            _ => out.push('?'),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A variable name in math mode (`W`, `w_{1}` for `w_1`).
fn latex_name(name: &str) -> String {
    match name.split_once('_') {
        Some((a, b)) => format!("{a}_{{{b}}}"),
        None => name.to_string(),
    }
}

/// Text for `\texttt{…}`: the characters TeX treats specially escaped.
fn latex_text(s: &str) -> String {
    s.replace('_', "\\_")
}

fn subscript(free: &[String]) -> String {
    if free.is_empty() {
        String::new()
    } else {
        format!("_{}", free.join(""))
    }
}

fn superscript(k: usize) -> String {
    const D: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    k.to_string()
        .chars()
        .map(|c| D[c.to_digit(10).unwrap() as usize])
        .collect()
}
