//! Rules from `--assume` facts. Each fact becomes named rules; the runner
//! reports which of them fired, so the output can say which facts it used.

use egg::{Id, Subst, Var};

use super::{number_of, Graph, Rule};
use crate::diag::{Error, Result};

/// A fact the user allows symdiff to use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact {
    /// `sum(q)=1`: the entries sum to 1 (for a matrix, all of them: the
    /// language's `sum` is the total).
    SumIsOne(String),
    /// `rowsum(Y)=1`: every row of matrix `Y` sums to 1 (a batch of
    /// distributions).
    RowSumIsOne(String),
    /// `onehot(q)`: entries are 0 or 1 and each row has one 1.
    OneHot(String),
}

impl Fact {
    /// Reads `sum(q)=1` or `onehot(q)`.
    pub fn parse(s: &str) -> Result<Fact> {
        let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let name = |inner: &str| -> Option<String> {
            (!inner.is_empty() && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| inner.to_string())
        };
        if let Some(rest) = t.strip_prefix("sum(").and_then(|r| r.strip_suffix(")=1")) {
            if let Some(n) = name(rest) {
                return Ok(Fact::SumIsOne(n));
            }
        }
        if let Some(rest) = t
            .strip_prefix("rowsum(")
            .and_then(|r| r.strip_suffix(")=1"))
        {
            if let Some(n) = name(rest) {
                return Ok(Fact::RowSumIsOne(n));
            }
        }
        if let Some(rest) = t.strip_prefix("onehot(").and_then(|r| r.strip_suffix(')')) {
            if let Some(n) = name(rest) {
                return Ok(Fact::OneHot(n));
            }
        }
        Err(Error::new(format!("cannot use the assumption `{s}`")).with_note(
            "facts symdiff can use: `sum(q)=1`, `rowsum(Y)=1` (every row of a matrix), `onehot(q)`",
        ))
    }

    /// The variable it is about.
    pub fn var(&self) -> &str {
        match self {
            Fact::SumIsOne(v) | Fact::RowSumIsOne(v) | Fact::OneHot(v) => v,
        }
    }

    /// The fact as written in reports.
    pub fn describe(&self) -> String {
        match self {
            Fact::SumIsOne(v) => format!("sum({v})=1"),
            Fact::RowSumIsOne(v) => format!("rowsum({v})=1"),
            Fact::OneHot(v) => format!("onehot({v})"),
        }
    }

    /// The rules this fact licenses; their names start with `assume-`.
    pub fn rules(&self) -> Vec<Rule> {
        let tag = self.describe();
        let v = self.var();
        // Σ_k q_k = 1 (a vector), Σ_r Σ_k Q_rk = 1 (a whole matrix),
        // Σ_k Q_rk = 1 (each row of a matrix).
        let sum_vec: egg::Pattern<_> = format!("(sum ?k ?n (var {v} ?k))").parse().unwrap();
        let sum_all: egg::Pattern<_> = format!("(sum ?r ?m (sum ?k ?n (var {v} ?r ?k)))")
            .parse()
            .unwrap();
        let sum_row: egg::Pattern<_> = format!("(sum ?k ?n (var {v} ?r ?k))").parse().unwrap();
        let one: egg::Pattern<_> = "1".parse().unwrap();
        let vector = || {
            egg::Rewrite::new(
                format!("assume-{tag}-vector-sum"),
                sum_vec.clone(),
                one.clone(),
            )
            .unwrap()
        };
        let rows = || {
            egg::Rewrite::new(
                format!("assume-{tag}-row-sum"),
                sum_row.clone(),
                one.clone(),
            )
            .unwrap()
        };
        let mut rules = match self {
            Fact::SumIsOne(_) => vec![
                vector(),
                egg::Rewrite::new(format!("assume-{tag}-total-sum"), sum_all, one.clone()).unwrap(),
            ],
            Fact::RowSumIsOne(_) => vec![rows()],
            // One 1 per row: a vector, or each row of a matrix, sums to 1.
            Fact::OneHot(_) => vec![vector(), rows()],
        };
        if let Fact::OneHot(_) = self {
            // q_i^e = q_i for e ≥ 1 when q_i is 0 or 1.
            let pow_vec: egg::Pattern<_> = format!("(^ (var {v} ?i) ?e)").parse().unwrap();
            let base_vec: egg::Pattern<_> = format!("(var {v} ?i)").parse().unwrap();
            let pow_mat: egg::Pattern<_> = format!("(^ (var {v} ?r ?i) ?e)").parse().unwrap();
            let base_mat: egg::Pattern<_> = format!("(var {v} ?r ?i)").parse().unwrap();
            rules.push(
                egg::Rewrite::new(
                    format!("assume-{tag}-idempotent"),
                    pow_vec,
                    egg::ConditionalApplier {
                        condition: positive_integer("?e"),
                        applier: base_vec,
                    },
                )
                .unwrap(),
            );
            rules.push(
                egg::Rewrite::new(
                    format!("assume-{tag}-idempotent-rows"),
                    pow_mat,
                    egg::ConditionalApplier {
                        condition: positive_integer("?e"),
                        applier: base_mat,
                    },
                )
                .unwrap(),
            );
        }

        rules
    }
}

fn positive_integer(v: &str) -> impl Fn(&mut Graph, Id, &Subst) -> bool {
    let v: Var = v.parse().unwrap();
    move |egraph, _, subst| {
        number_of(egraph, subst[v]).is_some_and(|e| e >= 1.0 && e.fract() == 0.0)
    }
}
