//! Square tiles for a nest that reads an operand transposed.
//!
//! `out[i, j] = A[i, j] + A[j, i]` (the Hessian of `xᵀAx`) walks `A` by
//! rows and by columns at once: in plain loops every read of the column
//! side touches a new cache line, and a line is evicted long before its
//! neighbours are read, so each value costs a line from memory. In
//! `TILE × TILE` tiles the column side of a tile (32 rows of 32 values)
//! stays in the first-level cache while the tile's rows use it,
//! and the nest moves each line once.
//!
//! Measured at n = 2048 (`A + Aᵀ`, this machine): plain loops 38 ms,
//! tiles of 32 14–19 ms (`cargo bench --bench kernels -- quad`). Scratch
//! runs of tiles of 8 to 64, and of computing only the tiles above the
//! diagonal with each value stored twice (`A` read once), spread over
//! 12–30 ms from run to run with no side consistently ahead: the column
//! side's pages (one per row) and whether the allocator got huge pages
//! decide more than the tile. A triad over the same bytes takes about
//! 5 ms; closing that gap needs a transpose through registers.
//!
//! A top-level nest of two loops qualifies when its inner body only
//! stores, each store writes an element over both variables (so the
//! iterations are independent and any order gives the same result), no
//! value it reads is one it writes, and some read has the inner variable
//! on an axis before the outer one's. Nests whose lengths are fixed and
//! within one tile stay as they are.

use crate::codegen::loops::*;
use crate::ir::Dim;

/// The side of a tile: 32 × 32 `f64` values of one operand are 8 KiB.
pub const TILE: usize = 32;

/// Tiles each qualifying top-level nest of `stmts`.
pub(crate) fn tile_transposed(stmts: &mut [Stmt]) {
    for s in stmts.iter_mut() {
        let Stmt::Loop {
            var: a,
            dim: da,
            body, ..
        } = s
        else {
            continue;
        };
        let [Stmt::Loop {
            var: b,
            dim: db,
            body: inner, ..
        }] = &body[..]
        else {
            continue;
        };
        if within_one_tile(da) && within_one_tile(db) || !independent(inner, *a, *b) {
            continue;
        }
        if reads_transposed(inner, *a, *b) {
            *s = Stmt::Tile {
                a: (*a, da.clone()),
                b: (*b, db.clone()),
                size: TILE,
                body: inner.clone(),
            };
        }
    }
}

fn within_one_tile(d: &Dim) -> bool {
    matches!(d, Dim::Fixed(k) if *k <= TILE)
}

/// Stores only, each to an element over both variables, reading nothing
/// that the nest writes.
fn independent(body: &[Stmt], a: Var, b: Var) -> bool {
    let mut written = Vec::new();
    for s in body {
        let Stmt::Store {
            place: Place::Elem(acc),
            ..
        } = s
        else {
            return false;
        };
        let over = |v: Var| acc.idx.iter().any(|(w, _)| *w == v);
        if !(over(a) && over(b)) {
            return false;
        }
        written.push(acc.array.clone());
    }
    let mut clash = false;
    for s in body {
        visit_stmt(s, &mut |e| {
            if let Scalar::Load(acc) = e {
                clash |= written.contains(&acc.array);
            }
        });
    }
    !clash
}

/// Whether some read has `b` on an axis before `a`'s.
fn reads_transposed(body: &[Stmt], a: Var, b: Var) -> bool {
    let mut found = false;
    for s in body {
        visit_stmt(s, &mut |e| {
            if let Scalar::Load(acc) = e {
                let at = |v: Var| acc.idx.iter().position(|(w, _)| *w == v);
                if let (Some(pa), Some(pb)) = (at(a), at(b)) {
                    found |= pb < pa;
                }
            }
        });
    }
    found
}
