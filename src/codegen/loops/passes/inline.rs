//! Inlining: a temporary read once, where no extra loop surrounds the
//! read, is computed there instead of stored.

use std::collections::{BTreeSet, HashMap};

use crate::codegen::loops::*;

/// Records each read of a temporary: whether every loop around it is one
/// of the read's own index variables.
pub(crate) fn count_reads(x: &Scalar, around: &[Var], reads: &mut HashMap<TempId, Vec<bool>>) {
    visit(x, &mut |s| match s {
        Scalar::Temp(t) => reads.entry(*t).or_default().push(false),
        Scalar::Load(Access {
            array: Array::Temp(t),
            idx,
        }) => {
            let own: BTreeSet<Var> = idx.iter().map(|(v, _)| *v).collect();
            let tight = around.iter().all(|v| own.contains(v)) && own.len() == around.len();
            reads.entry(*t).or_default().push(tight);
        }
        _ => {}
    });
}

pub(crate) fn count_stmt(s: &Stmt, around: &mut Vec<Var>, reads: &mut HashMap<TempId, Vec<bool>>) {
    match s {
        Stmt::Loop { var, body, .. } => {
            around.push(*var);
            for b in body {
                count_stmt(b, around, reads);
            }
            around.pop();
        }
        Stmt::Reduce { var, parts, .. } | Stmt::Pass { var, parts, .. } => {
            around.push(*var);
            for p in parts {
                count_reads(&p.body, around, reads);
            }
            around.pop();
        }
        Stmt::Store { value, .. } | Stmt::Return(value) | Stmt::Scatter { value, .. } => {
            count_reads(value, around, reads)
        }
        Stmt::Symmetric { classes, .. } => {
            for c in classes {
                around.extend(c.vars.iter().map(|(v, _)| *v));
                count_reads(&c.value, around, reads);
                around.truncate(around.len() - c.vars.len());
            }
        }
        Stmt::Tile { a, b, body, .. } => {
            around.extend([a.0, b.0]);
            for s in body {
                count_stmt(s, around, reads);
            }
            around.truncate(around.len() - 2);
        }
        Stmt::MatMul {
            sum,
            left,
            right,
            summand,
            ..
        } => {
            around.extend([sum.0, left.0, right.0]);
            count_reads(summand, around, reads);
            around.truncate(around.len() - 3);
        }
        Stmt::ZeroOut => {}
    }
}

impl Body {
    /// Every read of every temporary by the live temporaries and `tail`:
    /// whether the loops around it are exactly the read's own indices.
    pub(crate) fn reads(&self, tail: &[Stmt]) -> HashMap<TempId, Vec<bool>> {
        let mut reads = HashMap::new();
        for temp in self.temps.iter().filter(|t| t.live) {
            let mut around: Vec<Var> = temp.vars.iter().map(|(v, _)| *v).collect();
            match &temp.def {
                Def::Elem(x) => count_reads(x, &around, &mut reads),
                Def::Reduce { var, body, .. } => {
                    around.push(*var);
                    count_reads(body, &around, &mut reads);
                }
            }
        }
        for s in tail {
            count_stmt(s, &mut Vec::new(), &mut reads);
        }
        reads
    }

    /// Inlines elementwise temporaries read once, where no extra loop
    /// surrounds the read.
    pub(crate) fn inline(&mut self, tail: &mut [Stmt]) {
        loop {
            let reads = self.reads(tail);
            let candidate = self.temps.ids().find(|&t| {
                self.temps[t].live
                    && !self.temps[t].vars.is_empty()
                    && matches!(self.temps[t].def, Def::Elem(_))
                    && reads.get(&t).is_some_and(|r| r.len() == 1 && r[0])
            });
            let Some(t) = candidate else {
                // Temporaries nobody reads are dead, and then what only
                // they read.
                let mut swept = false;
                for (t, temp) in self.temps.enumerate_mut() {
                    if temp.live && !reads.contains_key(&t) {
                        temp.live = false;
                        swept = true;
                    }
                }
                if swept {
                    continue;
                }
                return;
            };
            let Def::Elem(def) = self.temps[t].def.clone() else {
                unreachable!()
            };
            let vars: Vec<Var> = self.temps[t].vars.iter().map(|(v, _)| *v).collect();
            self.temps[t].live = false;
            let mut replace = |x: &mut Scalar| substitute(x, t, &vars, &def);
            for temp in self.temps.iter_mut().filter(|x| x.live) {
                replace(temp.def.expr_mut());
            }
            for s in tail.iter_mut() {
                visit_scalars(s, &mut replace);
            }
        }
    }
}
