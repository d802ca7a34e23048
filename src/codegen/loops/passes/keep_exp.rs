//! Kept exponentials: a softmax read in several places keeps `exp(x − max)`
//! from its sum pass and scales it by `1/Σ` where it is read.

use std::collections::{BTreeSet, HashMap};

use crate::codegen::loops::*;
use crate::ir::Dim;

impl Body {
    /// One `exp` per softmax entry instead of two: the pass that sums
    /// `exp(x − max)` also stores each exponential, and the softmax is that
    /// value over the sum. Where the entries go:
    ///
    /// * into `out`, when the softmax is read once, at the entry the dense
    ///   output statement writes (`out_i = s·p_i − q_i` becomes
    ///   `out_i = s·out_i/Σ − q_i`, in place);
    /// * into the softmax's own array, when it is stored anyway (read more
    ///   than once), which is then scaled in place.
    ///
    /// Otherwise (a softmax read once elsewhere) it stays inlined.
    pub(crate) fn keep_exponentials(&mut self, tail: &mut [Stmt]) {
        for sm in self.softmaxes.clone() {
            let (p, s) = (sm.p, sm.sumexp);
            if self.keeps.contains_key(&s) || !self.temps[p].live || !self.temps[s].live {
                continue;
            }
            let Some(keep_idx) = self.kept_index(&sm) else {
                continue;
            };
            let p_reads = self.reads(tail).remove(&p).unwrap_or_default();
            // `out` holds the exponentials of one softmax at most.
            let out_free = !self.keeps.values().any(|k| k.array == Array::Out);
            // Reads after the output nest would find `out` overwritten.
            let mut later = HashMap::new();
            for st in tail.iter().skip(1) {
                count_stmt(st, &mut Vec::new(), &mut later);
            }
            let into = if out_free
                && p_reads.iter().all(|tight| *tight)
                && !later.contains_key(&p)
                && dense_output_reading(tail.first(), p).is_some()
            {
                // Read at single entries only (once in the output, or also
                // in a dot product with it before): the exponentials wait
                // in `out` until the output overwrites them, and every read
                // scales by 1/Σ — no array of its own, no scaling pass.
                let scale = self.reciprocal(s, &sm.sumexp_read);
                self.scale_reads(p, &scale, Array::Out, tail);
                self.temps[p].live = false;
                Array::Out
            } else if p_reads.len() > 1 || p_reads.iter().any(|tight| !tight) {
                self.keep_in_own_array(&sm, tail);
                Array::Temp(p)
            } else {
                continue;
            };
            self.keeps.insert(
                s,
                Access {
                    array: into,
                    idx: keep_idx,
                },
            );
        }
    }

    /// The entry of the sum's pass where the softmax `sm`'s exponential is
    /// kept: the softmax's nest written in the sum's variables (the sum's
    /// nest is the softmax's without its entry index, which is the sum's
    /// own variable). None when the nests do not line up so.
    fn kept_index(&self, sm: &SoftmaxTemp) -> Option<Vec<(Var, Dim)>> {
        let (p, s) = (sm.p, sm.sumexp);
        let Def::Reduce {
            op: RedOp::Sum,
            var: v,
            dim,
            ..
        } = &self.temps[s].def
        else {
            return None;
        };
        let s_vars: Vec<Var> = self.temps[s].vars.iter().map(|(x, _)| *x).collect();
        let read_vars: Vec<Var> = match &sm.sumexp_read {
            Scalar::Load(a) => a.idx.iter().map(|(x, _)| *x).collect(),
            _ => Vec::new(),
        };
        if self.temps[p].vars.len() != s_vars.len() + 1 || read_vars.len() != s_vars.len() {
            return None;
        }
        let keep_idx: Vec<(Var, Dim)> = self.temps[p]
            .vars
            .iter()
            .map(|(x, d)| match read_vars.iter().position(|r| r == x) {
                Some(k) => Some((s_vars[k], d.clone())),
                None if d == dim => Some((*v, d.clone())),
                None => None,
            })
            .collect::<Option<_>>()?;
        (keep_idx.iter().filter(|(x, _)| x == v).count() == 1).then_some(keep_idx)
    }

    /// The softmax `sm` read in several places keeps its exponentials in
    /// its own array: scaled by `1/Σ` in place, or, when only sums read
    /// it, at each read (each sum then takes the scale out of its summand
    /// and joins the exponentials' pass, see `join_scaled_sums`; no pass
    /// scales the array).
    fn keep_in_own_array(&mut self, sm: &SoftmaxTemp, tail: &mut [Stmt]) {
        let (p, s) = (sm.p, sm.sumexp);
        let scale = self.reciprocal(s, &sm.sumexp_read);
        let own = Scalar::Load(Access {
            array: Array::Temp(p),
            idx: self.temps[p].vars.clone(),
        });
        let mut in_tail = HashMap::new();
        tail.iter()
            .for_each(|st| count_stmt(st, &mut Vec::new(), &mut in_tail));
        let summed_only = !in_tail.contains_key(&p)
            && self.temps.enumerate().all(|(t, temp)| {
                let mut read = BTreeSet::new();
                temps_read(temp.def.expr(), &mut read);
                t == p
                    || !temp.live
                    || !read.contains(&p)
                    || (temp.vars.is_empty()
                        && matches!(temp.def, Def::Reduce { op: RedOp::Sum, .. }))
            });
        if summed_only {
            self.scale_reads(p, &scale, Array::Temp(p), tail);
            self.temps[p].def = Def::Elem(own);
            self.filled.insert(p);
        } else {
            self.temps[p].def = Def::Elem(Scalar::Product(vec![own, scale]));
        }
    }

    /// Every read of the softmax temporary `p`, by the live temporaries and
    /// `tail`, becomes `into` at the same entry times `scale` (`1/Σ`) read
    /// at the matching indices.
    pub(crate) fn scale_reads(&mut self, p: TempId, scale: &Scalar, into: Array, tail: &mut [Stmt]) {
        let p_vars: Vec<Var> = self.temps[p].vars.iter().map(|(v, _)| *v).collect();
        let scaled = |a: &Access| {
            (a.array == Array::Temp(p)).then(|| {
                let map: Vec<(Var, Var)> = p_vars
                    .iter()
                    .zip(&a.idx)
                    .map(|(x, (y, _))| (*x, *y))
                    .collect();
                let mut scale = scale.clone();
                rename_vars(&mut scale, &map);
                Scalar::Product(vec![
                    Scalar::Load(Access {
                        array: into.clone(),
                        idx: a.idx.clone(),
                    }),
                    scale,
                ])
            })
        };
        for temp in self.temps.iter_mut().filter(|t| t.live) {
            replace_loads(temp.def.expr_mut(), &scaled);
        }
        for st in tail {
            visit_scalars(st, &mut |x: &mut Scalar| replace_loads(x, &scaled));
        }
    }

    /// A temporary holding `1 / sumexp` (one division per row, not per
    /// entry), read the way `sumexp_read` reads the sum.
    pub(crate) fn reciprocal(&mut self, s: TempId, sumexp_read: &Scalar) -> Scalar {
        let vars: Vec<(Var, Dim)> = self.temps[s]
            .vars
            .clone()
            .into_iter()
            .map(|(_, d)| (self.var(), d))
            .collect();
        let own = if vars.is_empty() {
            Scalar::Temp(s)
        } else {
            Scalar::Load(Access {
                array: Array::Temp(s),
                idx: vars.clone(),
            })
        };
        let id = self.temps.push(Temp {
            vars,
            def: Def::Elem(Scalar::Recip(Box::new(own))),
            hint: "inv",
            live: true,
            accumulated: false,
        });
        match sumexp_read {
            Scalar::Load(a) => Scalar::Load(Access {
                array: Array::Temp(id),
                idx: a.idx.clone(),
            }),
            _ => Scalar::Temp(id),
        }
    }
}
