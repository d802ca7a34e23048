//! Signs of the parts of a Hessian (its diagonal, a row weight, κ):
//! positive by construction (exp, sigmoid, softmax, even powers) or under a
//! stated condition (`s > 0`), which the report's definiteness lines use.

use super::Poly;
use crate::ir::{Atom, Fun};

/// The sign of a polynomial: positive under the listed conditions, or
/// unknown.
pub(super) enum Sign {
    /// Nonnegative under `conds` (`s > 0`), and positive where also
    /// `nonzero` holds (the bases of even powers).
    Positive {
        conds: Vec<String>,
        nonzero: Vec<String>,
    },
    Unknown,
}

impl Sign {
    /// The conditions under which the value is positive, not only
    /// nonnegative: both lists of a known sign; `otherwise` for an
    /// unknown one.
    pub(super) fn positive_when(&self, otherwise: &[&str]) -> Vec<String> {
        match self {
            Sign::Positive { conds, nonzero } => conds.iter().chain(nonzero).cloned().collect(),
            Sign::Unknown => otherwise.iter().map(|c| c.to_string()).collect(),
        }
    }
}

pub(super) fn sign(p: &Poly, show: &mut dyn FnMut(&Poly) -> String) -> Sign {
    use crate::compact::Node;
    let node = crate::compact::display(p);
    let mut conds = Vec::new();
    let mut nonzero = Vec::new();
    let factors = match &node {
        Node::Mul(kids) => kids.clone(),
        other => vec![other.clone()],
    };
    for f in &factors {
        // An even power is positive where its base is not zero.
        if let Node::Pow(b, e) = f {
            if e.fract() == 0.0 && (*e as i64) % 2 == 0 {
                nonzero.push(format!("{} ≠ 0", show(&b.to_poly())));
                continue;
            }
        }
        match positive(f) {
            Some(true) => {}
            Some(false) => return Sign::Unknown,
            None => {
                // One factor of unknown sign is a condition (s > 0); two or
                // more could each be negative, so nothing is claimed.
                if !conds.is_empty() {
                    return Sign::Unknown;
                }
                let text = show(&f.to_poly());
                conds.push(format!("{text} > 0"));
            }
        }
    }
    Sign::Positive { conds, nonzero }
}

/// Whether a factor is positive by construction (Some(true)), negative or
/// of changing sign by construction (Some(false)), or unknown (None: a
/// variable or a sum of them, which the report states as a condition).
pub(super) fn positive(n: &crate::compact::Node) -> Option<bool> {
    use crate::compact::Node;
    match n {
        Node::Num(v) => Some(*v > 0.0),
        Node::Pow(b, _) => positive(b),
        Node::Func(f, _) => fun_positive(*f),
        Node::Atom(a) => match &**a {
            Atom::Func(f, _) => fun_positive(*f),
            Atom::Softmax { .. } | Atom::Dim(_) => Some(true),
            Atom::Var { .. } | Atom::Sum { .. } | Atom::Group(_) => None,
            _ => Some(false),
        },
        // A sum of nonnegative terms, one of them positive.
        Node::Add(kids) if kids.iter().all(|k| nonnegative(k).is_some()) => kids
            .iter()
            .any(|k| nonnegative(k) == Some(true))
            .then_some(true),
        // 1 − σ(u) = σ(−u) > 0.
        Node::Add(kids) => match kids.as_slice() {
            [Node::Num(one), Node::Mul(m)] if *one == 1.0 => match m.as_slice() {
                [Node::Num(c), s] if *c == -1.0 && is_sigmoid(s) => Some(true),
                _ => None,
            },
            _ => None,
        },
        Node::Sum { .. } | Node::Mul(_) => None,
    }
}

/// `Some(strict)` when a term is nonnegative by construction (strictly
/// positive if `strict`): positive factors and even powers.
pub(super) fn nonnegative(n: &crate::compact::Node) -> Option<bool> {
    use crate::compact::Node;
    match n {
        Node::Pow(_, e) if e.fract() == 0.0 && (*e as i64) % 2 == 0 => Some(false),
        Node::Mul(kids) => {
            let each: Option<Vec<bool>> = kids.iter().map(nonnegative).collect();
            each.map(|e| e.iter().all(|x| *x))
        }
        other => (positive(other) == Some(true)).then_some(true),
    }
}

pub(super) fn is_sigmoid(n: &crate::compact::Node) -> bool {
    use crate::compact::Node;
    matches!(n, Node::Func(Fun::Sigmoid, _))
        || matches!(n, Node::Atom(a) if matches!(&**a, Atom::Func(Fun::Sigmoid, _)))
}

pub(super) fn fun_positive(f: Fun) -> Option<bool> {
    match f {
        Fun::Exp | Fun::Sigmoid | Fun::Softplus => Some(true),
        _ => None,
    }
}

pub(super) fn when(conds: &[String]) -> String {
    if conds.is_empty() {
        String::new()
    } else {
        format!(" when {}", conds.join(" and "))
    }
}

pub(super) fn positive_when(what: &str, conds: &[String]) -> String {
    format!(
        "{what}{}",
        if conds.is_empty() {
            " everywhere".to_string()
        } else {
            when(conds)
        }
    )
}
