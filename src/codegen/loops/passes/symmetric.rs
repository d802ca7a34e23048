//! A full symmetric derivative tensor as one walk over sorted tuples.
//!
//! Tensors of high order are lowered one loop nest per symmetry class,
//! each scattering its value to the entries of all its distinct terms
//! (`Stmt::Scatter`, after `out = 0`): a write per term and entry, which
//! for xent at order 10 and n = 3 is millions of writes into 59,049
//! entries, and an entry summed in whatever order its terms arrive.
//! This pass gathers the class nests into one [`Stmt::Symmetric`], which
//! computes each entry once per multiset of indices and copies it to the
//! permutations (see `emit/symmetric.rs` for the sum).

use crate::codegen::loops::*;

/// Replaces `out = 0` and the scatter nests after it by one
/// [`Stmt::Symmetric`], when every statement from `out = 0` on is such a
/// nest over one index length.
pub(crate) fn gather_classes(stmts: &mut Vec<Stmt>) {
    let Some(start) = stmts.iter().position(|s| matches!(s, Stmt::ZeroOut)) else {
        return;
    };
    let mut classes = Vec::new();
    for s in &stmts[start + 1..] {
        match class_of(s) {
            Some(c) => classes.push(c),
            None => return,
        }
    }
    let Some(first) = classes.first() else {
        return;
    };
    let order: usize = first.sizes.iter().sum();
    let dim = first.vars[0].1.clone();
    let same_shape = |c: &SymClass| {
        c.sizes.iter().sum::<usize>() == order && c.vars.iter().all(|(_, d)| *d == dim)
    };
    if !classes.iter().all(same_shape) {
        return;
    }
    stmts.truncate(start);
    stmts.push(Stmt::Symmetric {
        order,
        dim,
        classes,
    });
}

/// The class of a nest `for i_1 { … for i_b { scatter } }` over exactly
/// the scatter's block variables.
fn class_of(s: &Stmt) -> Option<SymClass> {
    let mut loops = Vec::new();
    let mut at = s;
    loop {
        match at {
            Stmt::Loop { var, body, .. } => {
                let [inner] = &body[..] else { return None };
                loops.push(*var);
                at = inner;
            }
            Stmt::Scatter {
                vars,
                sizes,
                kinds,
                value,
            } => {
                let own: Vec<Var> = vars.iter().map(|(v, _)| *v).collect();
                return (own == loops && !vars.is_empty()).then(|| SymClass {
                    vars: vars.clone(),
                    sizes: sizes.clone(),
                    kinds: kinds.clone(),
                    value: value.clone(),
                });
            }
            _ => return None,
        }
    }
}
