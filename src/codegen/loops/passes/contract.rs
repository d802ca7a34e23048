//! Array contraction: a per-row temporary read only by the dense output
//! nest of the same row becomes a one-row buffer.

use crate::codegen::loops::*;
use crate::ir::Dim;

/// The index of `out` that statement `s` writes, when `s` is the dense
/// output nest (`out[..] = …`, no accumulation) and reads temporary `t`
/// there and nowhere else.
pub(crate) fn dense_output_reading(s: Option<&Stmt>, t: TempId) -> Option<Vec<(Var, Dim)>> {
    let mut s = s?;
    while let Stmt::Loop { body, .. } = s {
        let [inner] = &body[..] else { return None };
        s = inner;
    }
    let Stmt::Store {
        place: Place::Elem(Access {
            array: Array::Out,
            idx,
        }),
        add: false,
        value,
    } = s
    else {
        return None;
    };
    let mut reads = Vec::new();
    visit(value, &mut |e| {
        if let Scalar::Load(Access {
            array: Array::Temp(u),
            idx: read,
        }) = e
        {
            if *u == t {
                reads.push(read == idx);
            }
        }
    });
    (!reads.is_empty() && reads.iter().all(|r| *r)).then(|| idx.clone())
}

impl Body {
    /// Temporaries used only inside one fused loop, and only at its own
    /// row, need one row, not all: `max[r]` becomes a scalar, `g[r, c]` a
    /// buffer of one row reused for every `r` (array contraction), so the
    /// per-row values of a batch never travel to memory.
    pub(crate) fn contract_rows(&mut self, stmts: &mut [Stmt]) {
        for t in self.temps.ids() {
            let temp = &self.temps[t];
            if !temp.live || temp.vars.is_empty() || temp.accumulated {
                continue;
            }
            // The first index of each access to `t`, per top-level statement.
            let target = Target::Array(Array::Temp(t));
            let touching: Vec<(usize, Vec<Option<Var>>)> = stmts
                .iter()
                .enumerate()
                .filter_map(|(k, s)| {
                    let mut xs = Vec::new();
                    accesses(s, &mut xs);
                    let firsts: Vec<Option<Var>> = xs
                        .into_iter()
                        .filter(|x| x.0 == target)
                        .map(|x| x.1)
                        .collect();
                    (!firsts.is_empty()).then_some((k, firsts))
                })
                .collect();
            let [(k, firsts)] = &touching[..] else {
                continue;
            };
            let k = *k;
            let Stmt::Loop { var: row, .. } = &stmts[k] else {
                continue;
            };
            if firsts.iter().any(|v| *v != Some(*row)) {
                continue;
            }
            visit_accesses(&mut stmts[k], &mut |a| {
                if a.array == Array::Temp(t) {
                    a.idx.remove(0);
                }
            });
            self.temps[t].vars.remove(0);
            if self.temps[t].vars.is_empty() {
                scalar_temp(&mut stmts[k], t);
            }
        }
    }
}
