//! `derive --explain`: the derivation as numbered steps, each naming what
//! it applied.
//!
//! The steps are made by the same rules that `derive` uses, one kind at a
//! time, so that a reader can check each by hand:
//!
//! 1. the expression, then its definitions expanded (the lowered index
//!    form: `xent(z, q)` is `sum(q)·logsumexp(z) − Σ_a q_a z_a`);
//! 2. for each order, the sum and product rules write the derivative as
//!    unevaluated derivatives `∂g/∂z_i` of the atoms `g` (an `Ex` tree);
//! 3. each following step applies one rule to every unevaluated
//!    derivative of one kind of atom (chain rule through logsumexp, the
//!    derivative of softmax, `∂z_a/∂z_i = δ_ai`, …), outermost first; runs
//!    of the same rule fold into one step with a count;
//! 4. multiplying out contracts the deltas (`Σ_a q_a δ_ai = q_i`) and
//!    collects like terms (the IR's normal form);
//! 5. the e-graph's identities, by rule name (`softmax-sum-to-one:
//!    Σ_i p_i = 1`), and the assumptions used;
//! 6. the common parts named (`p = softmax(z)`, `s = sum(q)`): the form
//!    `derive` prints. Order k starts from order k − 1's result.
//!
//! Every step keeps its value as a polynomial (unevaluated derivatives
//! resolved by the differentiator), so [`Explanation::check`] can evaluate
//! each step at a point and compare it with the one before.

use crate::derive::{derive, Derivation, Request};
use crate::diag::Result;
use crate::ir::{Dim, Ix, Poly};
use crate::render::{Names, Syntax};
use crate::sym::Tensor;

mod show;
mod tree;

use show::{derivative_lhs, latex_escape, latex_lhs, show_ex, show_poly, show_rec};
use tree::{d_poly, first_kind, identity_of, resolve, rule_of, tidy, to_poly, Ctx, Ex};

/// One step: the rule applied and the expression after it.
pub struct Step {
    /// What was applied (`chain rule through logsumexp`), plain ASCII.
    pub rule: String,
    /// The identity it applied, in text (`∂z_a/∂z_i = δ_ai`), if any.
    pub identity: Option<String>,
    /// How many times in a row the rule was applied (folded).
    pub count: usize,
    /// The derivative order of the expression.
    pub order: usize,
    /// The left-hand side where a new chain starts (`f`, `∂f/∂z_i`).
    pub lhs: Option<(String, String)>,
    /// The expression after the step, text and LaTeX.
    pub text: String,
    /// The same in LaTeX.
    pub latex: String,
    /// Its value, for checking, and the free indices with their lengths.
    value: Poly,
    idx: Vec<(Ix, Dim)>,
}

/// The steps from the expression to the printed derivative.
pub struct Explanation {
    /// The steps, in order.
    pub steps: Vec<Step>,
    derivation: Derivation,
    /// The assumptions, which the check's point satisfies.
    facts: Vec<crate::rules::assume::Fact>,
}

/// Explains `derive(req)`.
pub fn explain(req: &Request) -> Result<Explanation> {
    let d = derive(req)?;
    let steps = crate::budget::run(req.deadline, || build(&d, req))?;
    Ok(Explanation {
        steps,
        derivation: d,
        facts: req.assume.clone(),
    })
}

fn build(d: &Derivation, req: &Request) -> Result<Vec<Step>> {
    let mut names = d.names();
    names.naming = false;
    let mut steps: Vec<Step> = Vec::new();
    let t0 = &d.orders[0];
    let idx0: Vec<(Ix, Dim)> = t0
        .value_idx
        .iter()
        .copied()
        .zip(t0.value_dims.iter().cloned())
        .collect();
    let f_name = {
        let v: Vec<String> = t0.value_idx.iter().map(|i| names.name_of(*i)).collect();
        if v.is_empty() {
            "f".to_string()
        } else {
            format!("f_{}", v.join(""))
        }
    };
    let lowered = expression_steps(&mut steps, d, &f_name, &idx0, &mut names);
    let rules = {
        let mut r = crate::rules::identities();
        for f in &req.assume {
            r.extend(f.rules());
        }
        r
    };
    simplify_step(&mut steps, &lowered, 0, &idx0, &rules, req, &mut names, d);
    if d.orders.len() == 1 {
        named_step(&mut steps, d, 0, &idx0, &mut names, req.limits);
    }
    let order = Order {
        d,
        req,
        rules: &rules,
        f_name: &f_name,
        idx0: &idx0,
    };
    for k in 1..d.orders.len() {
        if k > 1 {
            steps.push(restated(d, k, &f_name, &idx0, &mut names, req));
        }
        order.steps(k, &mut steps, &mut names)?;
    }
    Ok(steps)
}

/// The expression as typed, then with its definitions expanded; returns
/// the expanded polynomial.
fn expression_steps(
    steps: &mut Vec<Step>,
    d: &Derivation,
    f_name: &str,
    idx0: &[(Ix, Dim)],
    names: &mut Names,
) -> Poly {
    let lowered = crate::lower::lower(&d.typed.body, &d.orders[0].value_idx);
    let source = d.expr_text();
    let body_text = source
        .rsplit(';')
        .next()
        .unwrap_or(&source)
        .trim()
        .to_string();
    steps.push(Step {
        rule: "the expression".into(),
        identity: None,
        count: 1,
        order: 0,
        lhs: Some((f_name.to_string(), latex_lhs(f_name))),
        latex: format!("\\texttt{{{}}}", latex_escape(&body_text)),
        text: body_text,
        value: lowered.clone(),
        idx: idx0.to_vec(),
    });
    push_poly(
        steps,
        "expand the definitions",
        None,
        0,
        &lowered,
        idx0,
        names,
    );
    lowered
}

/// What the steps of every order share.
struct Order<'a> {
    d: &'a Derivation,
    req: &'a Request,
    rules: &'a [crate::rules::Rule],
    f_name: &'a str,
    idx0: &'a [(Ix, Dim)],
}

impl Order<'_> {
    /// The steps of order `k`, from order k − 1's result: the sum and
    /// product rules, each atom's rule, the normal form, simplification,
    /// and for the last order the named parts.
    fn steps(&self, k: usize, steps: &mut Vec<Step>, names: &mut Names) -> Result<()> {
        let d = self.d;
        let current = d.orders[k - 1].expanded();
        let t = &d.orders[k];
        let j = t.groups[k - 1].clone();
        let mut idx = self.idx0.to_vec();
        for g in &t.groups {
            idx.extend(g.iter().copied().zip(t.wrt_dims.iter().cloned()));
        }
        let lhs = derivative_lhs(self.f_name, d, &t.groups[..k], names);
        let mut ctx = Ctx {
            wrt: &d.wrt,
            j: j.clone(),
            names,
        };
        // Sum and product rules: unevaluated derivatives of the atoms.
        let ex = tidy(d_poly(&current, ctx.wrt));
        let mut step = ex_step(
            "sum and product rules",
            Some("∂(a + b) = ∂a + ∂b, ∂(a·b) = ∂a·b + a·∂b, ∂(a^c) = c·a^(c−1)·∂a".into()),
            k,
            &ex,
            &idx,
            &mut ctx,
        )?;
        step.lhs = Some(lhs);
        steps.push(step);
        let ex = rule_steps(steps, ex, k, &idx, &mut ctx)?;
        let normal = to_poly(&ex, ctx.wrt, &ctx.j)?;
        push_poly(
            steps,
            "multiply out, contract the deltas and collect like terms",
            Some("Σ_a x_a δ_ai = x_i".into()),
            k,
            &normal,
            &idx,
            ctx.names,
        );
        simplify_step(steps, &normal, k, &idx, self.rules, self.req, names, d);
        if k + 1 == d.orders.len() {
            named_step(steps, d, k, &idx, names, self.req.limits);
        }
        Ok(())
    }
}

/// Order k − 1's result as derive prints it, where order k starts; the
/// parts it names for the first time are defined in the step.
fn restated(
    d: &Derivation,
    k: usize,
    f_name: &str,
    idx0: &[(Ix, Dim)],
    names: &mut Names,
    req: &Request,
) -> Step {
    let t = &d.orders[k];
    let prev = d.at_order(k - 1);
    let (rec, _) = prev.display_expr(req.limits);
    let (text, latex, defs) = show_named(&rec, names);
    // From here on the named parts print by name.
    names.naming = true;
    let lhs = derivative_lhs(f_name, d, &t.groups[..k - 1], names);
    let mut idx = idx0.to_vec();
    for g in &t.groups[..k - 1] {
        idx.extend(g.iter().copied().zip(t.wrt_dims.iter().cloned()));
    }
    Step {
        rule: format!("order {} from above", k - 1),
        identity: (!defs.is_empty()).then(|| format!("where {}", defs.join(", "))),
        count: 1,
        order: k - 1,
        lhs: Some(lhs),
        text,
        latex,
        value: d.orders[k - 1].expanded(),
        idx,
    }
}

/// Takes the unevaluated derivatives of `ex` one kind of atom at a time,
/// outermost first, a step each (runs of one rule folded); returns the
/// expression with none left.
fn rule_steps(
    steps: &mut Vec<Step>,
    mut ex: Ex,
    k: usize,
    idx: &[(Ix, Dim)],
    ctx: &mut Ctx,
) -> Result<Ex> {
    while let Some(kind) = first_kind(&ex) {
        crate::budget::check();
        ex = tidy(resolve(&ex, kind, ctx));
        let (rule, identity) = rule_of(kind, ctx);
        let step = ex_step(&rule, identity, k, &ex, idx, ctx)?;
        match steps.last_mut() {
            Some(last) if last.rule == rule && last.order == k => {
                last.count += 1;
                last.text = step.text;
                last.latex = step.latex;
                last.value = step.value;
            }
            _ => steps.push(step),
        }
    }
    Ok(ex)
}

/// The e-graph's identities and the assumptions, as derive applies them.
#[allow(clippy::too_many_arguments)]
fn simplify_step(
    steps: &mut Vec<Step>,
    p: &Poly,
    order: usize,
    idx: &[(Ix, Dim)],
    rules: &[crate::rules::Rule],
    req: &Request,
    names: &mut Names,
    d: &Derivation,
) {
    let (s, stats) = crate::simplify::simplify_poly(p, rules, req.limits, "explain");
    let s = if d.orders[order].orbits_are_trivial() {
        crate::simplify::combine_terms(&s)
    } else {
        s
    };
    let mut applied: Vec<String> = Vec::new();
    let mut identities: Vec<String> = Vec::new();
    for (name, n) in &stats.applied {
        let times = if *n > 1 {
            format!(" ({n} times)")
        } else {
            String::new()
        };
        match name.strip_prefix("assume-") {
            Some(rest) => {
                let fact = req
                    .assume
                    .iter()
                    .map(|f| f.describe())
                    .find(|f| rest.starts_with(f.as_str()))
                    .unwrap_or_else(|| rest.to_string());
                let text = format!("assumption {fact}");
                if !applied.contains(&text) {
                    applied.push(text);
                }
            }
            None => {
                applied.push(format!("{name}{times}"));
                if let Some(i) = identity_of(name) {
                    identities.push(format!("{name}: {i}"));
                }
            }
        }
    }
    let rule = if applied.is_empty() {
        "collect terms over a common denominator".to_string()
    } else {
        format!("simplify: {}", applied.join(", "))
    };
    let identity = (!identities.is_empty()).then(|| identities.join("; "));
    push_poly(steps, &rule, identity, order, &s, idx, names);
}

/// The form `derive` prints, with its common parts named.
fn named_step(
    steps: &mut Vec<Step>,
    d: &Derivation,
    k: usize,
    idx: &[(Ix, Dim)],
    names: &mut Names,
    limits: crate::simplify::Limits,
) {
    let at = d.at_order(k);
    let (rec, _) = at.display_expr(limits);
    let (text, latex, defs) = show_named(&rec, names);
    let value = crate::lang::from_rec(&rec).unwrap_or_else(|| d.orders[k].expanded());
    let rule = if defs.is_empty() {
        "factor (the printed form)".to_string()
    } else {
        "name the common parts and factor".to_string()
    };
    if steps.last().is_some_and(|s| s.text == text) {
        return;
    }
    steps.push(Step {
        rule,
        identity: (!defs.is_empty()).then(|| defs.join(", ")),
        count: 1,
        order: k,
        lhs: None,
        text,
        latex,
        value: value.clone(),
        idx: idx.to_vec(),
    });
    // The same in matrix form, where one exists (the printer's reading of
    // the index form: the value is the step's before it).
    if let Some(m) = at.matrix_form(limits) {
        let ml = crate::derive::chain_latex(&m);
        steps.push(Step {
            rule: "the same in matrix form".into(),
            identity: None,
            count: 1,
            order: k,
            lhs: None,
            text: m,
            latex: ml,
            value,
            idx: idx.to_vec(),
        });
    }
}

/// Prints with the common parts named; returns the definitions of the
/// parts named for the first time.
fn show_named(
    rec: &egg::RecExpr<crate::lang::Math>,
    names: &mut Names,
) -> (String, String, Vec<String>) {
    names.naming = true;
    let before = names.parts.len();
    let (text, latex) = show_rec(rec, names);
    let defs = names.parts[before..]
        .iter()
        .map(|(n, def, _)| {
            if def.starts_with(&format!("{n}_")) {
                def.clone()
            } else {
                format!("{n} = {def}")
            }
        })
        .collect();
    names.naming = false;
    (text, latex, defs)
}

/// Pushes a step whose expression is a polynomial, unless it prints the
/// same as the step before (a rule that changed nothing is not a step).
fn push_poly(
    steps: &mut Vec<Step>,
    rule: &str,
    identity: Option<String>,
    order: usize,
    p: &Poly,
    idx: &[(Ix, Dim)],
    names: &mut Names,
) {
    let (text, latex) = show_poly(p, names);
    if steps.last().is_some_and(|s| s.text == text) {
        return;
    }
    steps.push(Step {
        rule: rule.to_string(),
        identity,
        count: 1,
        order,
        lhs: None,
        text,
        latex,
        value: p.clone(),
        idx: idx.to_vec(),
    });
}

fn ex_step(
    rule: &str,
    identity: Option<String>,
    order: usize,
    ex: &Ex,
    idx: &[(Ix, Dim)],
    ctx: &mut Ctx,
) -> Result<Step> {
    let text = show_ex(ex, ctx, Syntax::Text);
    let latex = show_ex(ex, ctx, Syntax::Latex);
    Ok(Step {
        rule: rule.to_string(),
        identity,
        count: 1,
        order,
        lhs: None,
        text,
        latex,
        value: to_poly(ex, ctx.wrt, &ctx.j)?,
        idx: idx.to_vec(),
    })
}

impl Explanation {
    /// The steps as numbered text, one rule line and one expression line
    /// each.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (n, s) in self.steps.iter().enumerate() {
            let times = if s.count > 1 {
                format!(" ({} times)", s.count)
            } else {
                String::new()
            };
            let identity = s
                .identity
                .as_ref()
                .map_or(String::new(), |i| format!(": {i}"));
            out.push_str(&format!("{:>2}. {}{times}{identity}\n", n + 1, s.rule));
            let lhs = s.lhs.as_ref().map_or(" ".to_string(), |l| l.0.clone());
            out.push_str(&format!("    {lhs} = {}\n", s.text));
        }
        out
    }

    /// The steps as the body of an `align*` environment.
    pub fn latex(&self) -> String {
        let mut out = String::from("\\begin{align*}\n");
        for (n, s) in self.steps.iter().enumerate() {
            let times = if s.count > 1 {
                format!(" ({} times)", s.count)
            } else {
                String::new()
            };
            let lhs = s.lhs.as_ref().map_or(String::new(), |l| l.1.clone());
            let rule = latex_escape(&format!("({}) {}{times}", n + 1, s.rule));
            out.push_str(&format!("{lhs} &= {} && \\text{{{rule}}} \\\\\n", s.latex));
        }
        out.push_str("\\end{align*}\n");
        out
    }

    /// The steps as data: rule, identity, count, order, before, after.
    pub fn json(&self) -> serde_json::Value {
        let mut before: Option<String> = None;
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                let after = match &s.lhs {
                    Some((l, _)) => format!("{l} = {}", s.text),
                    None => s.text.clone(),
                };
                let v = serde_json::json!({
                    "rule": s.rule,
                    "identity": s.identity,
                    "count": s.count,
                    "order": s.order,
                    "before": before,
                    "after": after,
                });
                before = Some(s.text.clone());
                v
            })
            .collect();
        serde_json::json!({ "wrt": self.derivation.wrt, "steps": steps })
    }

    /// Evaluates every step at a random point (every length 5, where the
    /// assumptions hold) and returns
    /// the largest relative difference between a step and the one before
    /// it, over the steps that continue a chain (the first step of each
    /// order restates a result and is compared with nothing).
    pub fn check(&self) -> Result<f64> {
        let point = crate::analyze::random_point_where(&self.derivation, &self.facts)
            .ok_or_else(|| crate::diag::Error::new("the check point could not be built"))?;
        let wrt_dims = self.derivation.orders[0].wrt_dims.clone();
        let mut worst = 0.0f64;
        let mut prev: Option<(usize, Vec<f64>, f64)> = None;
        for s in &self.steps {
            let (idx, dims): (Vec<Ix>, Vec<Dim>) = s.idx.iter().cloned().unzip();
            let eval = |value: crate::ir::Poly| {
                let t = Tensor::new(value, idx.clone(), dims.clone(), wrt_dims.clone());
                crate::eval::evaluate(&t, &point)
            };
            let got = eval(s.value.clone())?;
            // The largest term, entry by entry: a step that multiplies out
            // `(tanh(u)² − 1)·a` into `tanh(u)²·a − a` is as exact as the
            // one before only relative to its terms, not to their
            // difference.
            let mut terms = 0.0f64;
            for t in &s.value.terms {
                let one = crate::ir::Poly {
                    terms: vec![t.clone()],
                };
                if let Ok(v) = eval(one) {
                    terms = v
                        .iter()
                        .filter(|x| x.is_finite())
                        .fold(terms, |m, x| m.max(x.abs()));
                }
            }
            if s.lhs.is_none() {
                if let Some((order, want, want_terms)) = &prev {
                    if *order == s.order && want.len() == got.len() {
                        // Relative to the largest entry or term of either
                        // step (at least 1e-6, so that rounding in entries
                        // that cancel to zero does not count as a
                        // difference).
                        let scale = want
                            .iter()
                            .fold(1e-6f64, |m, x| m.max(x.abs()))
                            .max(terms)
                            .max(*want_terms);
                        for (a, b) in got.iter().zip(want) {
                            let diff = if a.is_finite() && b.is_finite() {
                                (a - b).abs() / scale
                            } else if a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()) {
                                0.0
                            } else {
                                f64::INFINITY
                            };
                            worst = worst.max(diff);
                        }
                    }
                }
            }
            prev = Some((s.order, got, terms));
        }
        Ok(worst)
    }
}
