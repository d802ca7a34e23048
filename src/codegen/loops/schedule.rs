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
//! Every `Stmt::Reduce` becomes a `Stmt::Pass` carrying its schedule and
//! its [`Walk`]: the rows it slices once, the rows and vectors a blocked
//! pass slices per block, and the next rows it prefetches. Innermost loops
//! of stores get their row [`Slice`]s. None of this changes what is
//! computed (the interpreter ignores slices and prefetches); it is how
//! the kernel touches memory, decided here so the emitter only prints.

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

/// Turns every reduction of `stmts` into a scheduled pass and gives
/// every innermost loop its row slices; `fixed` holds the lengths fixed
/// at generation time (`--dim`).
pub fn schedule(stmts: &mut [Stmt], fixed: &HashMap<String, usize>) {
    schedule_under(stmts, fixed, &[]);
}

/// [`schedule`] inside loops over rows whose next rows are in `ahead`.
fn schedule_under(stmts: &mut [Stmt], fixed: &HashMap<String, usize>, ahead: &[NextRow]) {
    let length = |dim: &Dim| dim.length_in(fixed);
    for s in stmts {
        match s {
            Stmt::Loop {
                var,
                dim,
                body,
                slices,
                split: _,
            } => match store_accesses(body) {
                // Fixed lengths: the compiler sees the bounds already.
                Some(accesses) if length(dim).is_none() => {
                    *slices = row_slices(*var, &accesses, false);
                }
                Some(_) => {}
                None => {
                    let mut inner = ahead.to_vec();
                    inner.extend(next_rows(*var, body));
                    schedule_under(body, fixed, &inner);
                }
            },
            Stmt::Tile {
                a: (va, da),
                b: (vb, db),
                body,
                slices,
                mirror,
                ..
            } => {
                *mirror = da == db && symmetric_store(body, *va, *vb);
                if let Some(accesses) = store_accesses(body) {
                    *slices = row_slices(*vb, &accesses, false);
                }
            }
            Stmt::Reduce { var, dim, parts } => {
                let schedule = decide(length(dim), parts);
                let mut walk = Walk::default();
                if length(dim).is_none() {
                    let mut accesses = body_accesses(parts);
                    for p in parts.iter() {
                        if let Place::Elem(a) = &p.place {
                            accesses.push((a, true));
                        }
                    }
                    walk.rows = row_slices(*var, &accesses, false);
                }
                if matches!(schedule, Schedule::Blocks { .. }) {
                    walk.blocks = row_slices(*var, &body_accesses(parts), true);
                    walk.prefetch = ahead.iter().filter(|r| r.len == *dim).cloned().collect();
                }
                *s = Stmt::Pass {
                    var: *var,
                    dim: dim.clone(),
                    parts: std::mem::take(parts),
                    schedule,
                    walk,
                };
            }
            _ => {}
        }
    }
}

/// The accesses of a loop body of stores only (each with whether it is
/// written), or None when the body holds anything else.
fn store_accesses(body: &[Stmt]) -> Option<Vec<(&Access, bool)>> {
    let mut out = Vec::new();
    for s in body {
        let Stmt::Store { place, value, .. } = s else {
            return None;
        };
        if let Place::Elem(a) = place {
            out.push((a, true));
        }
        out.extend(loads(value));
    }
    Some(out)
}

/// The array reads of an expression.
fn loads(x: &Scalar) -> Vec<(&Access, bool)> {
    let mut out = Vec::new();
    visit(x, &mut |e| {
        if let Scalar::Load(a) = e {
            out.push((a, false));
        }
    });
    out
}

/// The array accesses of reduction bodies: their reads, and the entries
/// where reduced values are kept.
fn body_accesses(parts: &[Part]) -> Vec<(&Access, bool)> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(loads(&p.body));
        out.extend(p.keep.iter().map(|a| (a, true)));
    }
    out
}

/// The rows a loop over `var` can walk through slices: arrays that every
/// access in the loop reads or writes at one row, walked by `var` in the
/// last index. Vectors (an empty row prefix) only per block (`blocked`).
fn row_slices(var: Var, accesses: &[(&Access, bool)], blocked: bool) -> Vec<Slice> {
    // Per array: the one row it is accessed at (None: several, or not by
    // `var` last), and whether it is written.
    type Prefix = Option<Vec<(Var, Dim)>>;
    let mut seen: Vec<(Array, Prefix, bool)> = Vec::new();
    for &(a, write) in accesses {
        let row = match a.idx.split_last() {
            Some(((last, _), prefix))
                if *last == var
                    && (blocked || !prefix.is_empty())
                    && prefix.iter().all(|(v, _)| *v != var) =>
            {
                Some(prefix.to_vec())
            }
            _ => None,
        };
        match seen.iter_mut().find(|(array, ..)| *array == a.array) {
            Some((_, known, w)) => {
                if *known != row {
                    *known = None;
                }
                *w |= write;
            }
            None => seen.push((a.array.clone(), row, write)),
        }
    }
    seen.into_iter()
        .filter_map(|(array, prefix, write)| {
            Some(Slice {
                array,
                prefix: prefix?,
                write,
            })
        })
        .collect()
}

/// Whether `body` is one store `M[a, b] = f(a, b)` (not an update) with
/// `f(a, b) = f(b, a)` as written, up to the order of sums and products:
/// `A[a, b] + A[b, a]`, the Hessian of `xᵀAx`. Then `M` is symmetric and a
/// tile's mirror is a copy of it: the kernel reads each tile of `A` once
/// where it read it twice.
fn symmetric_store(body: &[Stmt], a: Var, b: Var) -> bool {
    let [Stmt::Store {
        place: Place::Elem(m),
        add: false,
        value,
    }] = body
    else {
        return false;
    };
    if !matches!(&m.idx[..], [(x, _), (y, _)] if *x == a && *y == b) {
        return false;
    }
    let mut swapped = value.clone();
    rename_vars(&mut swapped, &[(a, b), (b, a)]);
    same_up_to_order(value, &swapped)
}

/// `x = y`, where the terms of sums and the factors of products may come
/// in any order.
fn same_up_to_order(x: &Scalar, y: &Scalar) -> bool {
    match (x, y) {
        (Scalar::Sum(xs), Scalar::Sum(ys)) | (Scalar::Product(xs), Scalar::Product(ys)) => {
            let mut unused: Vec<&Scalar> = ys.iter().collect();
            xs.len() == ys.len()
                && xs.iter().all(|x| {
                    match unused.iter().position(|y| same_up_to_order(x, y)) {
                        Some(k) => {
                            unused.swap_remove(k);
                            true
                        }
                        None => false,
                    }
                })
        }
        _ => x == y,
    }
}

/// The input matrices a loop over rows `row` reads one row of (every read
/// at `[row, j]`): their next rows are worth prefetching.
fn next_rows(row: Var, body: &[Stmt]) -> Vec<NextRow> {
    let mut reads = Vec::new();
    for s in body {
        visit_stmt(s, &mut |e| {
            if let Scalar::Load(a) = e {
                reads.push(a.clone())
            }
        });
    }
    let mut found: Vec<NextRow> = Vec::new();
    let mut other: Vec<Array> = Vec::new();
    for a in reads {
        if !matches!(a.array, Array::Input(_)) {
            continue;
        }
        match &a.idx[..] {
            [(r, _), (j, len)] if *r == row && *j != row => {
                if !found.iter().any(|f| f.array == a.array) {
                    found.push(NextRow {
                        array: a.array.clone(),
                        row,
                        len: len.clone(),
                    })
                }
            }
            _ => other.push(a.array.clone()),
        }
    }
    found.retain(|f| !other.contains(&f.array));
    found
}

fn decide(len: Option<usize>, parts: &[Part]) -> Schedule {
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
