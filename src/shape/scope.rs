//! `let` and `def` inlined: names replaced by what they stand for, with
//! the arity of each call checked and a bound on the size of the result.

use std::collections::HashMap;

use super::*;
use crate::ast::{Expr, ExprKind, Span};
use crate::diag::Error;

#[derive(Default)]
pub(super) struct Scope {
    pub(super) lets: HashMap<String, Expr>,
    pub(super) defs: HashMap<String, (Vec<String>, Expr)>,
}

impl Scope {
    /// Substitutes `let` names, parameters and `def` calls, leaving built-in
    /// calls and free names. `defining` is the function whose body this is.
    pub(super) fn inline(
        &self,
        e: &Expr,
        params: &HashMap<String, Expr>,
        defining: Option<&String>,
    ) -> Result<Expr> {
        let mut budget = MAX_INLINED_NODES;
        self.inline_rec(e, params, defining, &mut budget)
    }

    pub(super) fn inline_rec(
        &self,
        e: &Expr,
        params: &HashMap<String, Expr>,
        defining: Option<&String>,
        budget: &mut usize,
    ) -> Result<Expr> {
        if *budget == 0 {
            return Err(Error::at(
                e.span.clone(),
                format!("the expression grows past {MAX_INLINED_NODES} nodes when its definitions are inlined"),
                "while inlining this",
            ));
        }
        *budget -= 1;
        let kind = match &e.kind {
            ExprKind::Num(v) => ExprKind::Num(*v),
            ExprKind::Name(n) => match self.substitute(e, n, params, budget)? {
                Some(v) => return Ok(v),
                None => ExprKind::Name(n.clone()),
            },
            ExprKind::Neg(x) => {
                ExprKind::Neg(Box::new(self.inline_rec(x, params, defining, budget)?))
            }
            ExprKind::Binary(op, a, b) => ExprKind::Binary(
                *op,
                Box::new(self.inline_rec(a, params, defining, budget)?),
                Box::new(self.inline_rec(b, params, defining, budget)?),
            ),
            ExprKind::Call {
                name,
                name_span,
                args,
            } => {
                let args: Vec<Expr> = args
                    .iter()
                    .map(|a| self.inline_rec(a, params, defining, budget))
                    .collect::<Result<_>>()?;
                if Some(name) == defining {
                    return Err(Error::at(
                        name_span.clone(),
                        format!("`{name}` calls itself; recursive definitions are not allowed"),
                        "recursive call",
                    ));
                }
                if let Some((ps, body)) = self.defs.get(name) {
                    if ps.len() != args.len() {
                        return Err(arity_error(name, name_span, ps.len(), args.len(), &e.span));
                    }
                    let bound: HashMap<String, Expr> = ps.iter().cloned().zip(args).collect();
                    return self.inline_rec(body, &bound, None, budget);
                }
                check_builtin_call(name, name_span, args.len(), &e.span)?;
                ExprKind::Call {
                    name: name.clone(),
                    name_span: name_span.clone(),
                    args,
                }
            }
        };
        Ok(Expr {
            kind,
            span: e.span.clone(),
        })
    }

    /// The value a parameter or `let` binds `n` to, counted at its full
    /// size against the budget (`let`s that each double the one before
    /// grow exponentially otherwise); None for a variable. A function's
    /// name used as a value is an error.
    fn substitute(
        &self,
        e: &Expr,
        n: &String,
        params: &HashMap<String, Expr>,
        budget: &mut usize,
    ) -> Result<Option<Expr>> {
        if let Some(v) = params.get(n).or_else(|| self.lets.get(n)) {
            let size = node_count(v);
            if size > *budget {
                return Err(Error::at(
                    e.span.clone(),
                    format!("the expression grows past {MAX_INLINED_NODES} nodes when its definitions are inlined"),
                    "while inlining this",
                ));
            }
            *budget -= size;
            return Ok(Some(v.clone()));
        }
        if self.defs.contains_key(n) || Builtin::lookup(n).is_some() {
            return Err(Error::at(
                e.span.clone(),
                format!("`{n}` is a function"),
                "call it with arguments",
            ));
        }
        Ok(None)
    }
}

/// Nodes in an expression tree, counted without recursion.
pub(super) fn node_count(e: &Expr) -> usize {
    let mut stack = vec![e];
    let mut count = 0;
    while let Some(e) = stack.pop() {
        count += 1;
        match &e.kind {
            ExprKind::Num(_) | ExprKind::Name(_) => {}
            ExprKind::Neg(x) => stack.push(x),
            ExprKind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            ExprKind::Call { args, .. } => stack.extend(args.iter()),
        }
    }
    count
}

fn arity_error(name: &str, name_span: &Span, want: usize, got: usize, span: &Span) -> Error {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    Error::at(
        name_span.start..span.end,
        format!(
            "`{name}` takes {want} {}, but {got} {} given",
            plural(want),
            if got == 1 { "was" } else { "were" }
        ),
        format!("called with {got} {}", plural(got)),
    )
}

/// The built-in name nearest to a misspelt one, if any is close.
fn closest(name: &str) -> Option<&'static str> {
    pub(super) fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for j in 0..b.len() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != b[j]))
                    .min(row[j] + 1)
                    .min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    Builtin::NAMES
        .iter()
        .copied()
        .map(|n| (distance(name, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// A call of `name` that is not a definition: a built-in with the right
/// number of arguments, else an error that lists the built-ins (and the
/// closest name).
fn check_builtin_call(name: &str, name_span: &Span, args: usize, span: &Span) -> Result<()> {
    match Builtin::lookup(name) {
        Some((_, arity)) if arity != args => Err(arity_error(name, name_span, arity, args, span)),
        Some(_) => Ok(()),
        None => {
            let mut err = Error::at(
                name_span.clone(),
                format!("unknown function `{name}`"),
                "not defined",
            );
            if let Some(best) = closest(name) {
                err = err.with_note(format!("did you mean `{best}`?"));
            }
            Err(err.with_note(format!(
                "built-in functions: {}",
                Builtin::NAMES.join(", ")
            )))
        }
    }
}
