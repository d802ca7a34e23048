//! Sinking: a loop moves up past statements it commutes with, to sit right
//! after an earlier loop over the same range, so that `fuse` can
//! merge them. In `f_value_grad` of a batched loss the reduction of the
//! value over rows sits between the row passes and the gradient's output
//! loop; moving the output loop up puts the whole gradient in one pass per
//! row again.

use crate::codegen::loops::*;

/// Moves each loop up to just after the nearest earlier loop over the same
/// range, when every statement in between commutes with it.
pub(crate) fn sink(stmts: &mut Vec<Stmt>) {
    let mut j = 2;
    while j < stmts.len() {
        crate::budget::check();
        if let Stmt::Loop { dim, .. } = &stmts[j] {
            let dim = dim.clone();
            let target = (0..j - 1)
                .rev()
                .find(|&i| matches!(&stmts[i], Stmt::Loop { dim: d, .. } if *d == dim));
            if let Some(i) = target {
                let mut xb = Vec::new();
                accesses(&stmts[j], &mut xb);
                if stmts[i + 1..j].iter().all(|s| commute(s, &xb)) {
                    let moved = stmts.remove(j);
                    stmts.insert(i + 1, moved);
                }
            }
        }
        j += 1;
    }
}

/// Whether statement `s` and a statement with accesses `xb` may swap:
/// neither writes anything the other touches.
fn commute(s: &Stmt, xb: &AccessList) -> bool {
    let mut xa = Vec::new();
    accesses(s, &mut xa);
    let clash = |w: &AccessList, other: &AccessList| {
        w.iter()
            .filter(|x| x.2)
            .any(|x| other.iter().any(|y| y.0 == x.0))
    };
    !clash(&xa, xb) && !clash(xb, &xa)
}
