//! Loop fusion: adjacent loops and reductions over the same range become
//! one pass when every access they share stays within one iteration.

use std::collections::HashSet;

use crate::codegen::loops::*;

/// Something a statement touches: an array or a scalar temporary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    Array(Array),
    Scalar(TempId),
}

/// Every access of a statement: target, first index variable, write?
pub(crate) fn accesses(s: &Stmt, out: &mut Vec<(Target, Option<Var>, bool)>) {
    let write = |p: &Place, out: &mut Vec<(Target, Option<Var>, bool)>| match p {
        Place::Temp(t) => out.push((Target::Scalar(*t), None, true)),
        Place::Elem(a) => out.push((
            Target::Array(a.array.clone()),
            a.idx.first().map(|(v, _)| *v),
            true,
        )),
    };
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter().for_each(|b| accesses(b, out))
        }
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            for p in parts {
                scalar_reads(&p.body, out);
                write(&p.place, out);
                if let Some(k) = &p.keep {
                    write(&Place::Elem(k.clone()), out);
                }
            }
        }
        Stmt::Store { place, add, value } => {
            scalar_reads(value, out);
            if *add {
                write(place, out);
            }
            write(place, out);
        }
        Stmt::Return(v) => scalar_reads(v, out),
        Stmt::MatMul {
            out: o, summand, ..
        } => {
            scalar_reads(summand, out);
            write(&Place::Elem(o.clone()), out);
        }
        Stmt::Symmetric { classes, .. } => {
            classes.iter().for_each(|c| scalar_reads(&c.value, out));
            out.push((Target::Array(Array::Out), None, true))
        }
        // Scattered entries are anywhere in `out`.
        Stmt::ZeroOut | Stmt::Scatter { .. } => {
            if let Stmt::Scatter { value, .. } = s {
                scalar_reads(value, out);
            }
            out.push((Target::Array(Array::Out), None, true))
        }
    }
}

/// Every read of an expression, as [`accesses`] lists them.
pub(crate) fn scalar_reads(x: &Scalar, out: &mut Vec<(Target, Option<Var>, bool)>) {
    visit(x, &mut |e| match e {
        Scalar::Temp(t) => out.push((Target::Scalar(*t), None, false)),
        Scalar::Load(a) => out.push((
            Target::Array(a.array.clone()),
            a.idx.first().map(|(v, _)| *v),
            false,
        )),
        _ => {}
    })
}

pub(crate) type AccessList = Vec<(Target, Option<Var>, bool)>;

/// Whether loops with accesses `xa` (over `va`) and then `xb` (over `vb`)
/// may run as one: everything that one writes and both touch is touched
/// only at the row of the current iteration.
pub(crate) fn fusable(xa: &AccessList, va: Var, xb: &AccessList, vb: Var) -> bool {
    // Only what both touch and one of them writes can be reordered wrongly.
    let in_a: HashSet<&Target> = xa.iter().map(|x| &x.0).collect();
    let in_b: HashSet<&Target> = xb.iter().map(|x| &x.0).collect();
    let written: HashSet<&Target> = xa
        .iter()
        .chain(xb)
        .filter(|x| x.2)
        .map(|x| &x.0)
        .filter(|k| in_a.contains(k) && in_b.contains(k))
        .collect();
    let row_local = |xs: &AccessList, v: Var| {
        xs.iter()
            .filter(|x| written.contains(&x.0))
            .all(|x| matches!(x.0, Target::Array(_)) && x.1 == Some(v))
    };
    row_local(xa, va) && row_local(xb, vb)
}

/// Fuses adjacent loops and reductions over the same range, innermost
/// bodies too.
pub(crate) fn fuse(stmts: &mut Vec<Stmt>) {
    let mut i = 0;
    // The accesses of `stmts[i]`, kept up to date as loops merge into it
    // (recomputing them per candidate made fusing quadratic in the body).
    let mut acc_i: Option<AccessList> = None;
    while i + 1 < stmts.len() {
        crate::budget::check();
        let merged = match (&stmts[i], &stmts[i + 1]) {
            (
                Stmt::Loop {
                    var: va, dim: da, ..
                },
                Stmt::Loop {
                    var: vb, dim: db, ..
                },
            ) if da == db && {
                let xa = acc_i.get_or_insert_with(|| {
                    let mut x = Vec::new();
                    accesses(&stmts[i], &mut x);
                    x
                });
                let mut xb = Vec::new();
                accesses(&stmts[i + 1], &mut xb);
                fusable(xa, *va, &xb, *vb)
            } =>
            {
                merge_loops(stmts, i, &mut acc_i);
                true
            }
            (
                Stmt::Reduce {
                    dim: da, parts: pa, ..
                },
                Stmt::Reduce {
                    dim: db, parts: pb, ..
                },
            ) if da == db && independent(pa, pb) && at_most_one_shift(pa, pb) => {
                merge_reductions(stmts, i);
                acc_i = None;
                true
            }
            _ => false,
        };
        if !merged {
            i += 1;
            acc_i = None;
        }
    }
    for s in stmts.iter_mut() {
        if let Stmt::Loop { body, .. } = s {
            fuse(body);
        }
    }
}

/// Moves the body of the loop at `i + 1` into the loop at `i`, in its
/// variable; `acc_i`, the accesses of the loop at `i`, grows with it.
fn merge_loops(stmts: &mut Vec<Stmt>, i: usize, acc_i: &mut Option<AccessList>) {
    let Stmt::Loop { body: mut tail, var: vb, .. } = stmts.remove(i + 1) else {
        unreachable!("a loop follows")
    };
    let Stmt::Loop { body, var: va, .. } = &mut stmts[i] else {
        unreachable!("a loop")
    };
    tail.iter_mut().for_each(|s| rename_stmt(s, &[(vb, *va)]));
    if let Some(xa) = acc_i {
        for s in &tail {
            accesses(s, xa);
        }
    }
    body.extend(tail);
}

/// Moves the parts of the reduction at `i + 1` into the reduction at `i`,
/// in its variable.
fn merge_reductions(stmts: &mut Vec<Stmt>, i: usize) {
    let Stmt::Reduce {
        parts: mut tail,
        var: vb,
        ..
    } = stmts.remove(i + 1)
    else {
        unreachable!("a reduction follows")
    };
    let Stmt::Reduce { parts, var: va, .. } = &mut stmts[i] else {
        unreachable!("a reduction")
    };
    for p in &mut tail {
        rename_vars(&mut p.body, &[(vb, *va)]);
        if let Some(k) = &mut p.keep {
            k.idx
                .iter_mut()
                .filter(|(v, _)| *v == vb)
                .for_each(|(v, _)| *v = *va);
        }
    }
    parts.extend(tail);
}
