//! The passes over a lowered body, in the order [`Body::finish`] runs them:
//!
//! 1. [`keep_exp`]: a softmax read in several places keeps its shifted
//!    exponentials from its sum pass;
//! 2. [`inline`]: temporaries read once are computed where they are read,
//!    and [`reciprocal`]: a temporary read only as a divisor stores its
//!    reciprocal;
//! 3. ordering ([`Body::finish`]): the live temporaries in dependency
//!    order, each a loop nest or a reduction;
//! 4. `fuse`: adjacent loops over one range become one pass, then
//!    [`sink`] moves a loop up past what it commutes with to meet an
//!    earlier loop over its range, and they fuse too;
//!    A sum over rows right after the loop over them folds into it
//!    ([`fold_rows`]);
//! 5. [`contract`]: per-row temporaries read only by their row's output
//!    become one-row buffers;
//! 6. [`shift`]: a maximum that only shifts exponentials moves into the
//!    pass that sums them;
//! 7. [`join_sums`]: a sum that only rescales another joins its pass;
//! 8. [`products`]: matrix products in a row loop (`X @ W`, `Xᵀ G`,
//!    `Xᵀ D X`) leave it as one blocked product each;
//! 9. [`tile`]: a nest that reads an operand transposed (`A + Aᵀ`) runs in
//!    square tiles;
//! 10. [`symmetric`]: the class nests of a full symmetric tensor become one
//!     walk over sorted index tuples;
//! 11. [`rows`]: a loop over independent rows of a batch is marked for
//!     ranges of rows on threads;
//!
//! and then the scheduling step ([`crate::codegen::loops::schedule`]),
//! which decides how each pass of reductions runs (one accumulator, lanes,
//! or blocks with a restarting shift) for the emitter and the interpreter.

pub mod contract;
pub mod fold_rows;
pub mod fuse;
pub mod inline;
pub mod join_sums;
pub mod keep_exp;
pub mod products;
pub mod reciprocal;
pub mod rows;
pub mod shift;
pub mod sink;
pub mod symmetric;
pub mod tile;

use std::collections::BTreeSet;

use crate::codegen::loops::*;

thread_local! {
    /// When set, each [`Body::finish`] appends its plan after every pass.
    static TRACE: std::cell::RefCell<Option<Vec<Trace>>> = const { std::cell::RefCell::new(None) };
}

/// One body's plan after each pass: (pass, the plan as text).
pub type Trace = Vec<(&'static str, String)>;

/// Runs `f` with tracing on; returns what it returned and one trace per
/// body it finished, in order.
#[cfg(feature = "internals")]
pub fn traced<T>(f: impl FnOnce() -> T) -> (T, Vec<Trace>) {
    TRACE.with(|t| *t.borrow_mut() = Some(Vec::new()));
    let out = f();
    let traces = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    (out, traces)
}

fn record(pass: &'static str, stmts: &[Stmt]) {
    TRACE.with(|t| {
        if let Some(all) = t.borrow_mut().as_mut() {
            if pass == "ordered" {
                all.push(Vec::new());
            }
            if let Some(last) = all.last_mut() {
                last.push((pass, crate::codegen::loops::display::show(stmts)));
            }
        }
    })
}

impl Body {
    /// The whole body: temporaries in dependency order, then `tail`,
    /// after inlining and fusion.
    pub fn finish(
        mut self,
        tail: Vec<Stmt>,
        fixed: &std::collections::HashMap<String, usize>,
    ) -> (Vec<Stmt>, Temps) {
        let mut tail = tail;
        self.keep_exponentials(&mut tail);
        self.inline(&mut tail);
        self.store_reciprocals(&mut tail);
        let mut stmts = self.ordered(tail);
        record("ordered", &stmts);
        fuse(&mut stmts);
        record("fuse", &stmts);
        sink::sink(&mut stmts);
        fuse(&mut stmts);
        record("sink, fuse", &stmts);
        self.fold_row_reductions(&mut stmts);
        record("fold_rows", &stmts);
        self.contract_rows(&mut stmts);
        record("contract", &stmts);
        shift_in_pass(&mut stmts);
        record("shift", &stmts);
        self.join_scaled_sums(&mut stmts);
        record("join_sums", &stmts);
        self.matrix_products(&mut stmts);
        record("products", &stmts);
        tile::tile_transposed(&mut stmts);
        record("tile", &stmts);
        symmetric::gather_classes(&mut stmts);
        record("symmetric", &stmts);
        self.split_rows(&mut stmts, fixed);
        record("rows", &stmts);
        crate::codegen::loops::schedule::schedule(&mut stmts, fixed);
        record("schedule", &stmts);
        return_directly(&mut stmts);
        (stmts, self.temps)
    }

    /// The live temporaries in dependency order, each a loop nest or a
    /// reduction (a sum over rows as `T[..] += …` with the summed variable
    /// outside), then `tail`.
    fn ordered(&mut self, tail: Vec<Stmt>) -> Vec<Stmt> {
        let (order, summed_at) = self.dependency_order();
        let mut stmts = Vec::new();
        for t in order.into_iter().filter(|t| !self.filled.contains(t)) {
            let (s, accumulated) = self.nest_of(t, summed_at[t]);
            self.temps[t].accumulated |= accumulated;
            stmts.push(s);
        }
        stmts.extend(tail);
        stmts
    }

    /// The live temporaries in dependency order (by depth, then by the
    /// range of their outer loop, so that nests over the same rows meet),
    /// and for each temporary where its sum's summed variable goes in its
    /// nest (see [`summed_position`]; the nest's length for no sum).
    fn dependency_order(&self) -> (Vec<TempId>, PerTemp<usize>) {
        let depth = self.depths();
        let mut order: Vec<TempId> = self.temps.ids().filter(|&t| self.temps[t].live).collect();
        let mut summed_at = PerTemp::new(&self.temps, 0);
        for (t, temp) in self.temps.enumerate() {
            summed_at[t] = match &temp.def {
                Def::Reduce {
                    op: RedOp::Sum,
                    var,
                    body,
                    ..
                } if !self.keeps.contains_key(&t) => summed_position(&temp.vars, *var, body),
                _ => temp.vars.len(),
            };
        }
        let outer_dim = |t: TempId| -> Option<String> {
            let temp = &self.temps[t];
            match &temp.def {
                Def::Reduce { dim, .. } if summed_at[t] == 0 && !temp.vars.is_empty() => {
                    Some(dim.to_string())
                }
                _ => temp.vars.first().map(|(_, d)| d.to_string()),
            }
        };
        order.sort_by_key(|&t| (depth[t], outer_dim(t), t));
        (order, summed_at)
    }

    /// The loop nest that computes temporary `t`, and whether it builds
    /// `t` up in place: a sum whose summed variable goes at `at` in the
    /// nest, outside the inner ones, is `T[..] += body` (the innermost
    /// loop walks rows); otherwise a reduction per entry.
    fn nest_of(&self, t: TempId, at: usize) -> (Stmt, bool) {
        let temp = &self.temps[t];
        let place = if temp.vars.is_empty() {
            Place::Temp(t)
        } else {
            Place::Elem(Access {
                array: Array::Temp(t),
                idx: temp.vars.clone(),
            })
        };
        let (s, nest, accumulated) = match &temp.def {
            Def::Elem(x) => {
                let s = Stmt::Store {
                    place,
                    add: false,
                    value: x.clone(),
                };
                (s, temp.vars.clone(), false)
            }
            Def::Reduce { var, dim, body, .. } if at < temp.vars.len() => {
                let mut nest = temp.vars.clone();
                nest.insert(at, (*var, dim.clone()));
                let s = Stmt::Store {
                    place,
                    add: true,
                    value: body.clone(),
                };
                (s, nest, true)
            }
            Def::Reduce { op, var, dim, body } => {
                let s = Stmt::Reduce {
                    var: *var,
                    dim: dim.clone(),
                    parts: vec![Part {
                        place,
                        op: *op,
                        body: body.clone(),
                        keep: self.keeps.get(&t).cloned(),
                    }],
                };
                (s, temp.vars.clone(), false)
            }
        };
        let s = nest
            .into_iter()
            .rev()
            .fold(s, |s, (var, dim)| Stmt::plain_loop(var, dim, vec![s]));
        (s, accumulated)
    }

    /// Dependency depth of each temporary.
    pub(crate) fn depths(&self) -> PerTemp<usize> {
        fn go(t: TempId, temps: &Temps, memo: &mut PerTemp<Option<usize>>) -> usize {
            if let Some(d) = memo[t] {
                return d;
            }
            let mut deps = BTreeSet::new();
            temps_read(temps[t].def.expr(), &mut deps);
            // A softmax scaled in place reads itself.
            deps.remove(&t);
            let d = deps
                .iter()
                .map(|&u| 1 + go(u, temps, memo))
                .max()
                .unwrap_or(0);
            memo[t] = Some(d);
            d
        }
        let mut memo = PerTemp::new(&self.temps, None);
        let mut depth = PerTemp::new(&self.temps, 0);
        for t in self.temps.ids() {
            depth[t] = go(t, &self.temps, &mut memo);
        }
        depth
    }
}

/// `let x = …; x` returns the value itself.
fn return_directly(stmts: &mut Vec<Stmt>) {
    if let [.., Stmt::Store {
        place: Place::Temp(t),
        add: false,
        value,
    }, Stmt::Return(Scalar::Temp(u))] = &stmts[..]
    {
        if t == u {
            let value = value.clone();
            stmts.truncate(stmts.len() - 2);
            stmts.push(Stmt::Return(value));
        }
    }
}
