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
//! When the nest is one store of a value symmetric in its two indices
//! (`A[i, j] + A[j, i]`), the scheduling step marks the tile `mirror`:
//! only the tiles on and above the diagonal are computed, and each is
//! copied to its mirror while it is still in cache, so `A` is read once
//! instead of twice.
//!
//! Measured at n = 2048 (`A + Aᵀ`, this machine, `cargo bench --bench
//! kernels -- quad`): plain loops 28–30 ms; square tiles 7.8–8.0 ms, 33–37 %
//! of the triad's bandwidth timed in alternation (warm); mirrored tiles
//! 6.4–6.6 ms, 59–62 % warm and 48–50 % cold (the target is 50 %: within
//! 2× of a triad over the same bytes). In scratch runs a transpose through
//! AVX2 registers (4×4 blocks), non-temporal stores, tiles of 16 or 64,
//! and prefetching the next tile's column side did no better than these
//! plain loops (the prefetch was tried in the kernel too: within the
//! noise), so the kernel stays plain Rust.
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
            body,
            ..
        } = s
        else {
            continue;
        };
        let [Stmt::Loop {
            var: b,
            dim: db,
            body: inner,
            ..
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
                slices: Vec::new(),
                mirror: false,
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
