//! Joining scaled sums: a sum that only rescales another over the same
//! range (`p·v` of a Hessian-vector product) is summed in the same pass.

use std::collections::BTreeSet;

use crate::codegen::loops::*;
use crate::ir::Dim;

impl Body {
    /// Lets a sum that waits on the pass before it only for a scalar
    /// factor join that pass: `Σ_i c·f(i)`, with `c` computed from the
    /// pass's totals (the `1/Σ exp` of a softmax), is `c·Σ_i f(i)`, and `f`
    /// may read at row `i` what the pass keeps there (the exponentials).
    /// `p·v` of a Hessian-vector product is then summed with `Σ exp`, and
    /// its own pass over `v` and the kept exponentials goes.
    pub(crate) fn join_scaled_sums(&mut self, stmts: &mut Vec<Stmt>) {
        for s in stmts.iter_mut() {
            if let Stmt::Loop { body, .. } = s {
                self.join_scaled_sums(body);
            }
        }
        let mut r = 0;
        while r < stmts.len() {
            if !self.join_scaled_sum(stmts, r) {
                r += 1;
            }
        }
    }

    /// Moves the reduction at `r` into the pass before it, if it can (see
    /// [`Body::join_scaled_sums`]): each part then sums into a new
    /// temporary, and stores at `r` scale those into the original places.
    pub(crate) fn join_scaled_sum(&mut self, stmts: &mut Vec<Stmt>, r: usize) -> bool {
        let Stmt::Reduce {
            var: vr,
            dim,
            parts,
        } = &stmts[r]
        else {
            return false;
        };
        let Some((p, mut computed)) = pass_before(stmts, r, dim) else {
            return false;
        };
        let Stmt::Reduce {
            var: vp,
            parts: before,
            ..
        } = &stmts[p]
        else {
            unreachable!()
        };
        // Entries the pass writes as totals are ready only after it.
        let mut totals: Vec<&Array> = Vec::new();
        for q in before {
            match &q.place {
                Place::Temp(t) => {
                    computed.insert(*t);
                }
                Place::Elem(a) => totals.push(&a.array),
            }
        }
        let kept: Vec<&Access> = before.iter().filter_map(|q| q.keep.as_ref()).collect();
        let ready = Ready {
            computed: &computed,
            totals: &totals,
            kept: &kept,
        };
        let Some(split) = parts
            .iter()
            .map(|part| ready.split(part, *vr, *vp))
            .collect::<Option<Vec<_>>>()
        else {
            return false;
        };
        let (dim, vp) = (dim.clone(), *vp);
        let mut stores = Vec::new();
        let mut joined = Vec::new();
        for (t, mut scale, summand) in split {
            let raw = self.temps.push(Temp {
                vars: self.temps[t].vars.clone(),
                def: Def::Reduce {
                    op: RedOp::Sum,
                    var: vp,
                    dim: dim.clone(),
                    body: summand.clone(),
                },
                hint: "sum",
                live: true,
                accumulated: false,
            });
            scale.push(Scalar::Temp(raw));
            stores.push(Stmt::Store {
                place: Place::Temp(t),
                add: false,
                value: Scalar::Product(scale),
            });
            joined.push(Part {
                place: Place::Temp(raw),
                op: RedOp::Sum,
                body: summand,
                keep: None,
            });
        }
        let Stmt::Reduce { parts, .. } = &mut stmts[p] else {
            unreachable!()
        };
        parts.extend(joined);
        stmts.splice(r..=r, stores);
        true
    }
}

/// The pass over `dim` before statement `r`, with only scalar lets in
/// between, and the temporaries those lets compute.
fn pass_before(stmts: &[Stmt], r: usize, dim: &Dim) -> Option<(usize, BTreeSet<TempId>)> {
    let mut computed = BTreeSet::new();
    let mut p = r;
    loop {
        p = p.checked_sub(1)?;
        match &stmts[p] {
            Stmt::Store {
                place: Place::Temp(t),
                add: false,
                ..
            } => {
                computed.insert(*t);
            }
            Stmt::Reduce { dim: dp, .. } if dp == dim => return Some((p, computed)),
            _ => return None,
        }
    }
}

/// What the pass before a reduction makes, and when.
struct Ready<'a> {
    /// Temporaries ready only after the pass (its totals and the lets
    /// after it): the scale may read them, the summand may not.
    computed: &'a BTreeSet<TempId>,
    /// Arrays the pass writes as totals.
    totals: &'a [&'a Array],
    /// Entries the pass keeps, row by row.
    kept: &'a [&'a Access],
}

impl Ready<'_> {
    /// A part `Σ_vr c·f` of the later reduction as its temporary, the
    /// scale `c` and the summand `f` over the pass's variable `vp`; None
    /// when it cannot join the pass.
    fn split(&self, part: &Part, vr: Var, vp: Var) -> Option<(TempId, Vec<Scalar>, Scalar)> {
        let Place::Temp(t) = part.place else {
            return None;
        };
        if part.op != RedOp::Sum || part.keep.is_some() {
            return None;
        }
        let mut factors = Vec::new();
        flatten_product(&part.body, &mut factors);
        let (scale, rest): (Vec<Scalar>, Vec<Scalar>) = factors.into_iter().partition(invariant);
        let mut summand = match rest.len() {
            0 => return None,
            1 => rest.into_iter().next().expect("one factor"),
            _ => Scalar::Product(rest),
        };
        rename_vars(&mut summand, &[(vr, vp)]);
        let mut read = BTreeSet::new();
        temps_read(&summand, &mut read);
        // What the pass keeps is read at its own row only.
        let mut row_local = true;
        visit(&summand, &mut |e| {
            if let Scalar::Load(a) = e {
                row_local &= !self.totals.contains(&&a.array)
                    && self.kept.iter().all(|k| k.array != a.array || *k == a);
            }
        });
        if scale.is_empty() || !read.is_disjoint(self.computed) || !row_local {
            return None;
        }
        Some((t, scale, summand))
    }
}
