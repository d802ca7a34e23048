//! The scheduling step: how each pass of reductions runs.
//!
//! After the passes of [`super::passes`] have decided *what* each loop
//! computes, this step decides *how* each pass of reductions runs, once,
//! for the emitter to print and the interpreter ([`crate::codegen::interp`])
//! to run the same way:
//!
//! * [`Schedule::Single`]: short fixed lengths (below [`SPLIT_FROM`]), one
//!   accumulator per part;
//! * [`Schedule::Lanes`]: cheap bodies, [`LANES`] interleaved partial
//!   results, which the compiler vectorizes without reassociating;
//! * [`Schedule::Blocks`]: costly bodies (`exp`), blocks of [`BLOCK`] with
//!   a partial result per position, folded pairwise after the last block.
//!   With `restart`, the pass's shift starts as the first block's maximum
//!   and the pass runs again from the exact maximum only when the shifted
//!   sum passes [`RESTART_ABOVE`] (so a softmax reads its logits once).
//!
//! Every `Stmt::Reduce` becomes a `Stmt::Pass` carrying its schedule.

use std::collections::HashMap;

use super::*;
use crate::ir::Dim;

/// Reductions over fixed lengths below this run with one accumulator.
pub const SPLIT_FROM: usize = 16;
/// Partial accumulators of a split reduction.
pub const LANES: usize = 4;
/// Entries per block of a split reduction.
pub const BLOCK: usize = 64;
/// A shifted sum above this (e^414) means a later entry lay far above the
/// first block's maximum: the pass restarts from the exact maximum. An
/// f64 sum of up to 2^60 exponentials of at most that stays finite.
pub const RESTART_ABOVE: f64 = 1e180;
/// [`RESTART_ABOVE`] for f32 sums (e^44).
pub const RESTART_ABOVE_F32: f64 = 1e19;

/// How a pass of reductions runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One accumulator per part.
    Single,
    /// `LANES` interleaved partial results per part.
    Lanes,
    /// Blocks of `BLOCK`, a partial result per position.
    Blocks {
        /// The shift starts at the first block's maximum and is made
        /// exact only when the shifted sum says so.
        restart: bool,
    },
}

/// Turns every reduction of `stmts` into a scheduled pass; `fixed` holds
/// the lengths fixed at generation time (`--dim`).
pub fn schedule(stmts: &mut [Stmt], fixed: &HashMap<String, usize>) {
    for s in stmts {
        match s {
            Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => schedule(body, fixed),
            Stmt::Reduce { var, dim, parts } => {
                let schedule = decide(dim, parts, fixed);
                *s = Stmt::Pass {
                    var: *var,
                    dim: dim.clone(),
                    parts: std::mem::take(parts),
                    schedule,
                };
            }
            _ => {}
        }
    }
}

fn decide(dim: &Dim, parts: &[Part], fixed: &HashMap<String, usize>) -> Schedule {
    let len = match dim {
        Dim::Fixed(k) => Some(*k),
        Dim::Named(n) => fixed.get(&**n).copied(),
    };
    if len.is_some_and(|k| k < SPLIT_FROM) {
        return Schedule::Single;
    }
    if !parts
        .iter()
        .any(|p| p.op != RedOp::Shift && costly(&p.body))
    {
        return Schedule::Lanes;
    }
    Schedule::Blocks {
        restart: shifted_sum(parts).is_some(),
    }
}

/// The part that sums the exponentials shifted by the pass's shift, whose
/// total tells whether the shift is too far below the maximum.
pub fn shifted_sum(parts: &[Part]) -> Option<usize> {
    let shift = parts.iter().find(|p| p.op == RedOp::Shift)?;
    let Place::Temp(t) = shift.place else {
        return None;
    };
    let summed = shifted_exp(shift.body.clone(), t);
    parts
        .iter()
        .filter(|p| p.op != RedOp::Shift)
        .position(|p| p.op == RedOp::Sum && p.body == summed)
}
