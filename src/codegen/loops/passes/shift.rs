//! The max shift moved into the pass that sums the exponentials
//! ([`RedOp::Shift`]), so a softmax reads its logits once before its output.

use crate::codegen::loops::*;

/// Moves each maximum that only shifts the exponentials of a later sum
/// into that sum's pass, as a [`RedOp::Shift`]: `Σ exp(x − c)` is exact
/// for any shift `c`, and every other reader of the maximum (a logsumexp
/// `c + ln Σ`, a softmax `exp(x − c − ln Σ)`) is as well, so the separate
/// pass that reads all of `x` for its maximum goes. The pass that is left
/// may then fuse with what shared the maximum's (`Σq` of a cross-entropy).
pub(crate) fn shift_in_pass(stmts: &mut Vec<Stmt>) {
    for s in stmts.iter_mut() {
        if let Stmt::Loop { body, .. } = s {
            shift_in_pass(body);
        }
    }
    let mut moved = false;
    while let Some((a, k, b)) = shift_candidate(stmts) {
        let Stmt::Reduce {
            var: va, parts: pa, ..
        } = &mut stmts[a]
        else {
            unreachable!()
        };
        let va = *va;
        let max = pa.remove(k);
        let emptied = pa.is_empty();
        let Stmt::Reduce {
            var: vb, parts: pb, ..
        } = &mut stmts[b]
        else {
            unreachable!()
        };
        let mut body = max.body;
        rename_vars(&mut body, &[(va, *vb)]);
        pb.insert(
            0,
            Part {
                place: max.place,
                op: RedOp::Shift,
                body,
                keep: None,
            },
        );
        if emptied {
            stmts.remove(a);
        }
        moved = true;
    }
    if moved {
        fuse(stmts);
    }
}

/// `exp(x − c)` for the scalar temporary `c`, as a shifted sum reads it.
pub fn shifted_exp(x: Scalar, c: TempId) -> Scalar {
    Scalar::ExpShifted(Box::new(Scalar::Sub(
        Box::new(x),
        Box::new(Scalar::Temp(c)),
    )))
}

/// A maximum (reduction `a`, part `k`) whose first reader is the pass `b`
/// over the same range that sums `exp(x − max)`, with `x` the maximum's
/// own body, cheap to compute, and unchanged between the two.
pub(crate) fn shift_candidate(stmts: &[Stmt]) -> Option<(usize, usize, usize)> {
    for (a, s) in stmts.iter().enumerate() {
        let Stmt::Reduce {
            var: va,
            dim: da,
            parts: pa,
        } = s
        else {
            continue;
        };
        for (k, part) in pa.iter().enumerate() {
            let (RedOp::Max, Place::Temp(m)) = (part.op, &part.place) else {
                continue;
            };
            let shift = *m;
            let m = Target::Scalar(shift);
            let touches = |s: &Stmt| {
                let mut xs = Vec::new();
                accesses(s, &mut xs);
                xs.iter().any(|x| x.0 == m)
            };
            let Some(b) = (a + 1..stmts.len()).find(|&b| touches(&stmts[b])) else {
                continue;
            };
            let Stmt::Reduce {
                var: vb,
                dim: db,
                parts: pb,
            } = &stmts[b]
            else {
                continue;
            };
            let mut x = part.body.clone();
            rename_vars(&mut x, &[(*va, *vb)]);
            let summed = shifted_exp(x, shift);
            let cheap = !costly(&part.body);
            // What `x` reads must not be written before the pass reads it.
            let mut read = Vec::new();
            scalar_reads(&part.body, &mut read);
            let unchanged = stmts[a + 1..=b].iter().all(|s| {
                let mut xs = Vec::new();
                accesses(s, &mut xs);
                !xs.iter().any(|x| x.2 && read.iter().any(|r| r.0 == x.0))
            });
            // A pass restarts from the exact maximum of one shift only.
            let shifted_already = pb.iter().any(|p| p.op == RedOp::Shift);
            if db == da
                && cheap
                && unchanged
                && !shifted_already
                && pb.iter().any(|p| p.op == RedOp::Sum && p.body == summed)
            {
                return Some((a, k, b));
            }
        }
    }
    None
}

/// Whether the reductions `b` read nothing that the reductions `a` produce.
/// Whether two passes together shift by at most one maximum: the emitter
/// restarts a pass from the exact maximum of its one shift.
pub(crate) fn at_most_one_shift(a: &[Part], b: &[Part]) -> bool {
    a.iter().chain(b).filter(|p| p.op == RedOp::Shift).count() <= 1
}

pub(crate) fn independent(a: &[Part], b: &[Part]) -> bool {
    let kept: Vec<Place> = a
        .iter()
        .filter_map(|p| p.keep.clone().map(Place::Elem))
        .collect();
    let produced: Vec<&Place> = a.iter().map(|p| &p.place).chain(&kept).collect();
    b.iter().all(|p| {
        let mut hit = false;
        visit(&p.body, &mut |e| {
            let place = match e {
                Scalar::Temp(t) => Some(Place::Temp(*t)),
                Scalar::Load(acc) if matches!(acc.array, Array::Temp(_)) => {
                    if produced
                        .iter()
                        .any(|q| matches!(q, Place::Elem(x) if x.array == acc.array))
                    {
                        hit = true;
                    }
                    None
                }
                _ => None,
            };
            if let Some(pl) = place {
                if produced.contains(&&pl) {
                    hit = true;
                }
            }
        });
        !hit
    })
}
