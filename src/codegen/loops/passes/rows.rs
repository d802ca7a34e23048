//! Row ranges for threads: a top-level loop over the rows of a batch
//! whose rows do not depend on each other is marked with a [`RowSplit`],
//! so that the kernel's `_threads` entry point can give each thread a
//! range of rows (`std::thread::scope`, no dependency).
//!
//! A loop qualifies when it has inner loops (a row is worth a thread's
//! while only when it is a vector's work) and everything it writes is one
//! of:
//!
//! * a scalar it declares itself (a row's sum, its shift);
//! * an array written at the loop's row only, in its first index, and
//!   read, if at all, at that row (`out[r, ·]`, the `G` of `Xᵀ G`, the
//!   diagonal `out[r, r]` of a Jacobian): each range gets its own rows,
//!   addressed by the row's place in the range;
//! * a temporary summed over the rows (`t[i] += …`, `s += …`) and not read
//!   in the loop: each range sums its own from zero, and the kernel adds
//!   them in order of ranges after the loop;
//! * a temporary rewritten for each row (a one-row buffer) that nothing
//!   after the loop reads: each range has its own.
//!
//! With one range the kernel computes exactly what the plain loop does;
//! with more, only the sums over rows are grouped differently (per range),
//! as in any threaded reduction.

use std::collections::{BTreeSet, HashMap};

use super::fuse::Target;

use crate::codegen::loops::*;
use crate::ir::Dim;

/// Entries a range of rows should touch at least, as a power of two
/// (about 16 thousand: some ten microseconds, a few times what starting a
/// thread costs).
pub const MIN_ENTRIES_LOG2: usize = 14;

/// Everything a row loop writes, with what it does with it, in order of
/// first write.
type Uses = Vec<(Target, Written)>;

/// What a row loop does with one temporary or array it writes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Written {
    /// Written at the row (first index), read only there.
    Split,
    /// Summed over the rows.
    Sum,
    /// Rewritten for every row.
    Private,
}

impl Body {
    /// Marks each qualifying top-level row loop of `stmts`, but those
    /// whose lengths, fixed at generation time (`--dim`), leave too little
    /// for two ranges (see `emit/ranges.rs`).
    pub(crate) fn split_rows(&mut self, stmts: &mut [Stmt], fixed: &HashMap<String, usize>) {
        for k in 0..stmts.len() {
            let (head, tail) = stmts.split_at_mut(k + 1);
            let Stmt::Loop {
                var,
                dim,
                body,
                split: split @ None,
                ..
            } = &mut head[k]
            else {
                continue;
            };
            let mut later = BTreeSet::new();
            for s in tail.iter() {
                visit_stmt(s, &mut |x| temps_read(x, &mut later));
            }
            let Some(mut plan) = classify(*var, body, &later) else {
                continue;
            };
            let entries: Option<usize> = std::iter::once(&*dim)
                .chain(&plan.row)
                .map(|d| d.length_in(fixed))
                .product();
            if entries.is_some_and(|e| e >> MIN_ENTRIES_LOG2 < 2) {
                continue;
            }
            let local = self.var();
            plan.local = local;
            let split_arrays: Vec<Array> = plan.split.iter().map(|(a, _)| a.clone()).collect();
            let row = *var;
            for s in body.iter_mut() {
                visit_accesses(s, &mut |a| {
                    if split_arrays.contains(&a.array) && a.idx[0].0 == row {
                        a.idx[0].0 = local;
                    }
                });
            }
            *split = Some(Box::new(plan));
        }
    }
}

/// Every access of a statement (loads and writes), with whether it writes
/// and adds (`Some(add)`) or reads (`None`). `None` overall for statements
/// a row loop does not split (products, tiles, tensors, returns).
fn accesses_of<'s>(s: &'s Stmt, out: &mut Vec<(&'s Access, Option<bool>)>) -> Option<()> {
    let loads = |x: &'s Scalar, out: &mut Vec<(&'s Access, Option<bool>)>| {
        visit(x, &mut |e| {
            if let Scalar::Load(a) = e {
                out.push((a, None));
            }
        })
    };
    match s {
        Stmt::Loop { body, .. } => {
            for b in body {
                accesses_of(b, out)?;
            }
        }
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            for p in parts {
                loads(&p.body, out);
                if let Place::Elem(a) = &p.place {
                    out.push((a, Some(false)));
                }
                if let Some(k) = &p.keep {
                    out.push((k, Some(false)));
                }
            }
        }
        Stmt::Store { place, add, value } => {
            loads(value, out);
            if let Place::Elem(a) = place {
                out.push((a, Some(*add)));
            }
        }
        _ => return None,
    }
    Some(())
}

/// Scalars a statement writes: (temporary, declared here, added to).
fn scalar_writes(s: &Stmt, out: &mut Vec<(TempId, bool)>) {
    match s {
        Stmt::Loop { body, .. } => body.iter().for_each(|b| scalar_writes(b, out)),
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            for p in parts {
                if let Place::Temp(t) = p.place {
                    out.push((t, false));
                }
            }
        }
        Stmt::Store {
            place: Place::Temp(t),
            add,
            ..
        } => out.push((*t, *add)),
        _ => {}
    }
}

/// How the row loop over `row` with `body` uses what it writes, and the
/// lengths of the longest row it touches, as the loop's split (its
/// `local` variable, still `row`, is the caller's to make); `None` when
/// it does not qualify.
fn classify(row: Var, body: &[Stmt], later: &BTreeSet<TempId>) -> Option<RowSplit> {
    if !body
        .iter()
        .any(|s| matches!(s, Stmt::Loop { .. } | Stmt::Reduce { .. } | Stmt::Pass { .. }))
    {
        return None;
    }
    let mut all = Vec::new();
    for s in body {
        accesses_of(s, &mut all)?;
    }
    let mut read_temps = BTreeSet::new();
    for s in body {
        visit_stmt(s, &mut |x| temps_read(x, &mut read_temps));
    }
    // In order of first write, so that plans and kernels are stable.
    let mut written: Uses = Vec::new();
    let mut note = |t: Target, how: Written| match written.iter().find(|(u, _)| *u == t) {
        Some((_, h)) if *h != how => None,
        Some(_) => Some(()),
        None => {
            written.push((t, how));
            Some(())
        }
    };
    // Scalars: declared in the loop (local), or only added to (a sum).
    let mut scalars = Vec::new();
    body.iter().for_each(|s| scalar_writes(s, &mut scalars));
    let declared: BTreeSet<TempId> = scalars.iter().filter(|(_, add)| !add).map(|(t, _)| *t).collect();
    for &(t, _) in scalars.iter().filter(|(t, add)| *add && !declared.contains(t)) {
        if read_temps.contains(&t) {
            return None;
        }
        note(Target::Scalar(t), Written::Sum)?;
    }
    // Arrays: by where the row is in the index of their writes.
    for &(a, add) in &all {
        let Some(add) = add else { continue };
        let at = a.idx.iter().position(|(v, _)| *v == row);
        let target = Target::Array(a.array.clone());
        match (at, &a.array) {
            (_, Array::Input(_)) => return None,
            (Some(0), _) => note(target, Written::Split)?,
            (None, Array::Temp(t)) if add => {
                if read_temps.contains(t) {
                    return None;
                }
                note(target, Written::Sum)?
            }
            (None, Array::Temp(t)) if !later.contains(t) => note(target, Written::Private)?,
            _ => return None,
        }
    }
    // A split array is read, if at all, at its row only; `out` is not
    // read unless split.
    for &(a, _) in &all {
        let target = Target::Array(a.array.clone());
        let split = written.contains(&(target, Written::Split));
        let at_row = a.idx.first().is_some_and(|(v, _)| *v == row);
        if split && !at_row || !split && a.array == Array::Out {
            return None;
        }
    }
    if !written.iter().any(|(_, h)| matches!(h, Written::Split | Written::Sum)) {
        return None;
    }
    let row_dims = |a: &Access| a.idx[1..].iter().map(|(_, d)| d.clone()).collect::<Vec<Dim>>();
    let mut plan = RowSplit {
        local: row,
        split: Vec::new(),
        sums: Vec::new(),
        private: Vec::new(),
        row: all
            .iter()
            .filter(|(a, _)| a.idx.first().is_some_and(|(v, _)| *v == row))
            .max_by_key(|(a, _)| a.idx.len())
            .map(|(a, _)| row_dims(a))
            .unwrap_or_default(),
    };
    for (target, how) in written {
        match (how, target) {
            (Written::Split, Target::Array(array)) => {
                // Each array is written at least once, so found here.
                let first = all.iter().find(|(a, _)| a.array == array).map(|(a, _)| row_dims(a));
                plan.split.push((array, first.unwrap_or_default()));
            }
            (Written::Sum, Target::Scalar(t) | Target::Array(Array::Temp(t))) => plan.sums.push(t),
            (Written::Private, Target::Array(Array::Temp(t))) => plan.private.push(t),
            _ => unreachable!("sums and buffers are temporaries"),
        }
    }
    Some(plan)
}
