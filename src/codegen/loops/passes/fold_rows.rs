//! Folding row reductions: a sum over rows that follows the loop over the
//! same rows, and reads only the current row of what that loop wrote,
//! becomes an accumulation inside the loop (`acc += …`). The per-row values
//! it read then never leave their row, so [`super::contract`] keeps them in
//! registers and [`super::shift`] can estimate their maximum in the pass
//! that sums the exponentials. This is what makes `f_value_grad` of a
//! batched loss one pass set per row: the value's `Σ_r s_r·lse_r − Σ y z`
//! rides along with the gradient.

use crate::codegen::loops::*;

impl Body {
    /// Folds each `Reduce` over a range into the `Loop` over the same range
    /// just before it, when every part is a scalar sum and everything it
    /// reads of the loop's results is the current row.
    pub(crate) fn fold_row_reductions(&mut self, stmts: &mut Vec<Stmt>) {
        let mut i = 0;
        while i + 1 < stmts.len() {
            crate::budget::check();
            let fold = match (&stmts[i], &stmts[i + 1]) {
                // Row loops only (a body with passes of its own): an
                // elementwise loop keeps its reduction apart, where it runs
                // on independent lanes instead of one carried sum.
                (
                    Stmt::Loop {
                        var: va,
                        dim: da,
                        body: row,
                        ..
                    },
                    Stmt::Reduce {
                        var: vb,
                        dim: db,
                        parts,
                    },
                ) if da == db
                    && row
                        .iter()
                        .any(|s| matches!(s, Stmt::Loop { .. } | Stmt::Reduce { .. }))
                    && parts.iter().all(|p| {
                        p.op == RedOp::Sum && p.keep.is_none() && matches!(p.place, Place::Temp(_))
                    }) =>
                {
                    let (mut xa, mut xb) = (Vec::new(), Vec::new());
                    accesses(&stmts[i], &mut xa);
                    accesses(&stmts[i + 1], &mut xb);
                    fusable(&xa, *va, &xb, *vb).then_some((*va, *vb))
                }
                _ => None,
            };
            let Some((va, vb)) = fold else {
                i += 1;
                continue;
            };
            let Stmt::Reduce { parts, .. } = stmts.remove(i + 1) else {
                unreachable!()
            };
            let mut inits = Vec::new();
            let mut adds = Vec::new();
            for p in parts {
                let Place::Temp(t) = p.place else {
                    unreachable!()
                };
                self.temps[t].accumulated = true;
                inits.push(Stmt::Store {
                    place: Place::Temp(t),
                    add: false,
                    value: Scalar::Num(0.0),
                });
                let mut body = p.body;
                rename_vars(&mut body, &[(vb, va)]);
                adds.push(Stmt::Store {
                    place: Place::Temp(t),
                    add: true,
                    value: body,
                });
            }
            let Stmt::Loop { body, .. } = &mut stmts[i] else {
                unreachable!()
            };
            body.extend(adds);
            let n = inits.len();
            for (k, s) in inits.into_iter().enumerate() {
                stmts.insert(i + k, s);
            }
            i += n + 1;
        }
    }
}
