//! Kernel bodies as loop nests.
//!
//! The simplified index IR is lowered here to a tiny imperative language:
//! temporaries (each compound atom of the IR, computed once over its own
//! free indices), loops, reductions and stores. Three passes then make the
//! nests cost what the formula costs:
//!
//! * a temporary that is read once, at a place where no extra loop
//!   surrounds it, is inlined there (so `s·p_i − q_i` computes `p_i` in the
//!   output loop instead of storing it);
//! * adjacent loops over the same length are fused when every access they
//!   share stays within one iteration (so the row-wise steps of a batched
//!   softmax all run in one pass over each row, and `max(z)` and `Σq` share
//!   a pass);
//! * a maximum that only shifts exponentials moves into the pass that sums
//!   them, as a [`RedOp::Shift`] (so a softmax reads its logits once before
//!   its output pass, not twice).
//!
//! Contractions never reach this stage as tensors: `H v` arrives as the
//! normal form of `Σ_j H_ij v_j`, which is already `s·(p_i v_i − p_i Σ p v)`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use crate::ir::{Atom, Dim, Fun, Ix, Poly};

/// A loop variable.
pub type Var = usize;

/// Placeholder indices for the free indices of a temporary's key.
const PLACEHOLDER: Ix = 900_000;

/// What an access reads or writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Array {
    /// An input argument, by position among the inputs.
    Input(usize),
    /// A temporary.
    Temp(usize),
    /// The `out` argument.
    Out,
}

/// One element of an array, addressed row-major by loop variables.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// The array.
    pub array: Array,
    /// The loop variable of each axis, with the axis length.
    pub idx: Vec<(Var, Dim)>,
}

/// A scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A constant.
    Num(f64),
    /// A scalar temporary.
    Temp(usize),
    /// An array element.
    Load(Access),
    /// A length, as a number.
    Dim(Dim),
    /// A sum.
    Sum(Vec<Scalar>),
    /// A product.
    Product(Vec<Scalar>),
    /// `a − b`.
    Sub(Box<Scalar>, Box<Scalar>),
    /// `−a`.
    Neg(Box<Scalar>),
    /// `1 / a`.
    Recip(Box<Scalar>),
    /// `a^k`.
    Powi(Box<Scalar>, i32),
    /// `a^b`.
    Powf(Box<Scalar>, Box<Scalar>),
    /// `√a`.
    Sqrt(Box<Scalar>),
    /// An elementwise function.
    Call(Fun, Box<Scalar>),
    /// `exp(a)` for an argument shifted by a maximum or by a
    /// [`RedOp::Shift`]: never far above zero.
    ExpShifted(Box<Scalar>),
    /// Natural logarithm.
    Ln(Box<Scalar>),
    /// 1 when two loop variables are equal, else 0.
    Delta(Var, Var),
}

/// A reduction operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedOp {
    /// Σ
    Sum,
    /// max
    Max,
    /// A shift for the exponentials the other parts of its pass sum,
    /// `exp(x − c)`: any `c` at most the maximum of `x`, and close enough
    /// to it that no exponential overflows (see `shift_in_pass`). The
    /// exact maximum is one; the emitted kernel takes the first block's and
    /// computes the exact one only when that is too far off.
    Shift,
}

/// Where a value goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// A scalar temporary.
    Temp(usize),
    /// An array element.
    Elem(Access),
}

/// One reduction sharing a loop with others.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Where the result goes.
    pub place: Place,
    /// The operator.
    pub op: RedOp,
    /// The reduced expression.
    pub body: Scalar,
    /// Where each reduced value is also stored (the exponentials of a
    /// softmax, kept so that they are computed once).
    pub keep: Option<Access>,
}

/// A softmax temporary and the parts of its logsumexp, all read in the
/// softmax's own nest: `p = exp(x − max − ln sumexp)`.
#[derive(Clone, Debug)]
struct SoftmaxTemp {
    /// The softmax temporary.
    p: usize,
    /// The shifted sum of exponentials.
    sumexp: usize,
    /// A read of `sumexp` in the nest of `p`.
    sumexp_read: Scalar,
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `for var in 0..dim { body }`.
    Loop {
        /// The loop variable.
        var: Var,
        /// Its range.
        dim: Dim,
        /// The body.
        body: Vec<Stmt>,
    },
    /// Reductions over `var in 0..dim`, sharing one pass.
    Reduce {
        /// The loop variable.
        var: Var,
        /// Its range.
        dim: Dim,
        /// The reductions.
        parts: Vec<Part>,
    },
    /// `place = value` or `place += value`.
    Store {
        /// The target.
        place: Place,
        /// Accumulate instead of overwrite.
        add: bool,
        /// The value.
        value: Scalar,
    },
    /// Sets every element of `out` to zero.
    ZeroOut,
    /// Adds `value` to every entry of `out` that one symmetry class puts it
    /// in: the class's derivative slots are split into blocks (slot `s` in
    /// block `b` gets index `vars[b]`), one way per distinct term of the
    /// class — see [`orbit_rows`].
    Scatter {
        /// The loop variable of each block (all of one length).
        vars: Vec<(Var, Dim)>,
        /// How many slots each block takes.
        sizes: Vec<usize>,
        /// Blocks of one kind are interchangeable (same atoms and size).
        kinds: Vec<usize>,
        /// The class's value at the blocks' indices.
        value: Scalar,
    },
    /// Returns the value.
    Return(Scalar),
}

/// How a temporary is computed, for each point of its loop nest.
#[derive(Clone, Debug)]
pub enum Def {
    /// Elementwise.
    Elem(Scalar),
    /// A reduction over one more variable.
    Reduce {
        /// The operator.
        op: RedOp,
        /// The reduced variable.
        var: Var,
        /// Its range.
        dim: Dim,
        /// The reduced expression.
        body: Scalar,
    },
}

impl Def {
    /// The expression computed (elementwise, or reduced).
    fn expr(&self) -> &Scalar {
        match self {
            Def::Elem(x) | Def::Reduce { body: x, .. } => x,
        }
    }

    fn expr_mut(&mut self) -> &mut Scalar {
        match self {
            Def::Elem(x) | Def::Reduce { body: x, .. } => x,
        }
    }
}

/// A temporary: one value per point of its loop nest.
#[derive(Clone, Debug)]
pub struct Temp {
    /// The nest (empty: a scalar).
    pub vars: Vec<(Var, Dim)>,
    /// Its definition.
    pub def: Def,
    /// What it is, for its name in the generated code.
    pub hint: &'static str,
    /// Whether it is still needed after inlining.
    pub live: bool,
    /// Whether a sum builds it up in place, `T[..] += …` inside a loop over
    /// the summed variable (so f32 kernels keep it in f64).
    pub accumulated: bool,
}

/// A variable that is computed from an input where it is read
/// (the centred direction `v − c` of a directional derivative).
#[derive(Clone, Debug)]
pub struct Shifted {
    /// The input it reads.
    pub input: usize,
    /// What is subtracted.
    pub minus: Scalar,
}

/// A kernel body under construction.
pub struct Body {
    inputs: Vec<(String, Vec<Dim>)>,
    shifted: HashMap<String, Shifted>,
    /// The temporaries.
    pub temps: Vec<Temp>,
    keys: HashMap<(u8, Atom), usize>,
    hoisted: HashMap<String, usize>,
    next_var: Var,
    softmaxes: Vec<SoftmaxTemp>,
    keeps: HashMap<usize, Access>,
    /// Arrays that a kept reduction fills, with no statement of their own.
    filled: BTreeSet<usize>,
}

/// Lowering environment: IR index → loop variable and its length.
type Env = Vec<(Ix, Var, Dim)>;

fn lookup(env: &Env, ix: Ix) -> (Var, Dim) {
    env.iter()
        .rev()
        .find(|(i, _, _)| *i == ix)
        .map(|(_, v, d)| (*v, d.clone()))
        .expect("index bound by an enclosing loop")
}

impl Body {
    /// A body over the given inputs (name and dims of each).
    pub fn new(inputs: Vec<(String, Vec<Dim>)>) -> Body {
        Body {
            inputs,
            shifted: HashMap::new(),
            temps: Vec::new(),
            keys: HashMap::new(),
            hoisted: HashMap::new(),
            next_var: 0,
            softmaxes: Vec::new(),
            keeps: HashMap::new(),
            filled: BTreeSet::new(),
        }
    }

    fn var(&mut self) -> Var {
        self.next_var += 1;
        self.next_var - 1
    }

    /// A scalar temporary holding the maximum of vector variable `name`
    /// over `dim` (a pass of its own).
    pub fn max_of(&mut self, name: &str, dim: &Dim) -> Scalar {
        let k = crate::ir::fresh();
        let lse = Poly::lse(k, dim, Poly::var(name, vec![k]));
        let atom = lse.terms[0].factors[0].atom.clone();
        self.temp(1, &atom, &Vec::new())
    }

    /// Makes IR variable `name` read as `input − minus`.
    pub fn shift(&mut self, name: &str, input: usize, minus: Scalar) {
        self.shifted
            .insert(name.to_string(), Shifted { input, minus });
    }

    /// A scalar temporary holding `x` (which reads no loop variable).
    fn hoist(&mut self, x: Scalar) -> Scalar {
        let key = format!("{x:?}");
        if let Some(&id) = self.hoisted.get(&key) {
            return Scalar::Temp(id);
        }
        let id = self.temps.len();
        self.temps.push(Temp {
            vars: Vec::new(),
            def: Def::Elem(x),
            hint: "c",
            live: true,
            accumulated: false,
        });
        self.hoisted.insert(key, id);
        Scalar::Temp(id)
    }

    /// Lowers a polynomial with no free index to a scalar expression.
    pub fn scalar(&mut self, p: &Poly) -> Scalar {
        self.poly(p, &Vec::new())
    }

    fn poly(&mut self, p: &Poly, env: &Env) -> Scalar {
        let mut terms = Vec::new();
        for t in &p.terms {
            let mut factors = Vec::new();
            for f in &t.factors {
                let base = self.atom(&f.atom, env);
                if matches!(&*f.atom, Atom::Dim(_)) && f.exp.0 != 1.0 {
                    // `1/m` once, not a division per element.
                    factors.push(self.hoist(power(base, f.exp.0)));
                    continue;
                }
                factors.push(power(base, f.exp.0));
            }
            let c = t.coef.0;
            let product = |mut fs: Vec<Scalar>| {
                if fs.len() == 1 {
                    fs.pop().unwrap()
                } else {
                    Scalar::Product(fs)
                }
            };
            terms.push(if factors.is_empty() {
                Scalar::Num(c)
            } else if c == 1.0 {
                product(factors)
            } else if c == -1.0 {
                Scalar::Neg(Box::new(product(factors)))
            } else {
                factors.insert(0, Scalar::Num(c));
                product(factors)
            });
        }
        match terms.len() {
            0 => Scalar::Num(0.0),
            1 => terms.pop().unwrap(),
            _ => Scalar::Sum(terms),
        }
    }

    fn input_access(&self, k: usize, idx: &[Ix], env: &Env) -> Access {
        let dims = &self.inputs[k].1;
        Access {
            array: Array::Input(k),
            idx: idx
                .iter()
                .zip(dims)
                .map(|(&i, d)| (lookup(env, i).0, d.clone()))
                .collect(),
        }
    }

    fn atom(&mut self, a: &Atom, env: &Env) -> Scalar {
        match a {
            Atom::Var { name, idx } => {
                if let Some(s) = self.shifted.get(&**name).cloned() {
                    let load = Scalar::Load(self.input_access(s.input, idx, env));
                    return Scalar::Sub(Box::new(load), Box::new(s.minus));
                }
                let k = self
                    .inputs
                    .iter()
                    .position(|(n, _)| **n == **name)
                    .expect("variables are inputs");
                Scalar::Load(self.input_access(k, idx, env))
            }
            Atom::Delta(x, y) => Scalar::Delta(lookup(env, *x).0, lookup(env, *y).0),
            Atom::Dim(d) => Scalar::Dim(Dim::Named(d.clone())),
            _ => self.temp(0, a, env),
        }
    }

    /// A read of the temporary that holds `a` (kind 0: its value; 1 and 2:
    /// the max and the shifted sum of exponentials of a logsumexp).
    fn temp(&mut self, kind: u8, a: &Atom, env: &Env) -> Scalar {
        let order = layout(a);
        let mut key = Poly::atom(Arc::new(a.clone()));
        // Through fresh names first: the atom may already use placeholders
        // of the temporary it sits in.
        let via: Vec<Ix> = order.iter().map(|_| crate::ir::fresh()).collect();
        for (&ix, &f) in order.iter().zip(&via) {
            key = key.rename(ix, f);
        }
        for (k, &f) in via.iter().enumerate() {
            key = key.rename(f, PLACEHOLDER + k as Ix);
        }
        // Renaming re-normalizes, which can open an atom up (a group is
        // its sum again); such an atom keeps its own index names as key.
        let (key_atom, key_ix): (Atom, Vec<Ix>) = match key.terms.as_slice() {
            // (A group of one variable renames to the variable itself,
            // which has no temporary: keep the group then.)
            [t] if t.coef.0 == 1.0
                && t.factors.len() == 1
                && t.factors[0].exp.0 == 1.0
                && !matches!(
                    *t.factors[0].atom,
                    Atom::Var { .. } | Atom::Delta(..) | Atom::Dim(_)
                ) =>
            {
                (
                    (*t.factors[0].atom).clone(),
                    (0..order.len()).map(|k| PLACEHOLDER + k as Ix).collect(),
                )
            }
            _ => (a.clone(), order.clone()),
        };
        let read = |id: usize| -> Scalar {
            if order.is_empty() {
                Scalar::Temp(id)
            } else {
                Scalar::Load(Access {
                    array: Array::Temp(id),
                    idx: order.iter().map(|&ix| lookup(env, ix)).collect(),
                })
            }
        };
        if let Some(&id) = self.keys.get(&(kind, key_atom.clone())) {
            return read(id);
        }
        // A fresh nest over the placeholders.
        let mut inner: Env = Vec::new();
        let mut vars = Vec::new();
        for (k, &ix) in order.iter().enumerate() {
            let v = self.var();
            let d = lookup(env, ix).1;
            inner.push((key_ix[k], v, d.clone()));
            vars.push((v, d));
        }
        let mut softmax = None;
        let (def, hint) = match (&key_atom, kind) {
            (Atom::Func(f, u), 0) => (
                Def::Elem(Scalar::Call(*f, Box::new(self.poly(u, &inner)))),
                "f",
            ),
            (Atom::Group(p), 0) => (Def::Elem(self.poly(p, &inner)), "g"),
            (Atom::Pow(b, e), 0) => {
                let (b, e) = (self.poly(b, &inner), self.poly(e, &inner));
                (Def::Elem(Scalar::Powf(Box::new(b), Box::new(e))), "pow")
            }
            (Atom::Sum { ix, dim, body }, 0) => {
                let v = self.var();
                let mut env2 = inner.clone();
                env2.push((*ix, v, dim.clone()));
                (
                    Def::Reduce {
                        op: RedOp::Sum,
                        var: v,
                        dim: dim.clone(),
                        body: self.poly(body, &env2),
                    },
                    "sum",
                )
            }
            (Atom::Lse { ix, dim, body }, 1) => {
                let v = self.var();
                let mut env2 = inner.clone();
                env2.push((*ix, v, dim.clone()));
                (
                    Def::Reduce {
                        op: RedOp::Max,
                        var: v,
                        dim: dim.clone(),
                        body: self.poly(body, &env2),
                    },
                    "max",
                )
            }
            (Atom::Lse { ix, dim, body }, 2) => {
                let max = self.temp(1, &key_atom, &inner);
                let v = self.var();
                let mut env2 = inner.clone();
                env2.push((*ix, v, dim.clone()));
                let x = self.poly(body, &env2);
                let e = Scalar::ExpShifted(Box::new(Scalar::Sub(Box::new(x), Box::new(max))));
                (
                    Def::Reduce {
                        op: RedOp::Sum,
                        var: v,
                        dim: dim.clone(),
                        body: e,
                    },
                    "sumexp",
                )
            }
            (Atom::Lse { .. }, 0) => {
                let max = self.temp(1, &key_atom, &inner);
                let sum = self.temp(2, &key_atom, &inner);
                (
                    Def::Elem(Scalar::Sum(vec![max, Scalar::Ln(Box::new(sum))])),
                    "lse",
                )
            }
            (Atom::Softmax { ix, dim, body, at }, 0) => {
                let lse = Atom::Lse {
                    ix: *ix,
                    dim: dim.clone(),
                    body: body.clone(),
                };
                let sumexp_read = self.temp(2, &lse, &inner);
                let (Scalar::Temp(sumexp)
                | Scalar::Load(Access {
                    array: Array::Temp(sumexp),
                    ..
                })) = sumexp_read
                else {
                    unreachable!("a sum of exponentials is a temporary")
                };
                softmax = Some((sumexp, sumexp_read));
                let lse = self.temp(0, &lse, &inner);
                let x = self.poly(&body.rename(*ix, *at), &inner);
                (
                    Def::Elem(Scalar::ExpShifted(Box::new(Scalar::Sub(
                        Box::new(x),
                        Box::new(lse),
                    )))),
                    "p",
                )
            }
            _ => unreachable!("simple atoms have no temporary"),
        };
        let id = self.temps.len();
        if let Some((sumexp, sumexp_read)) = softmax {
            self.softmaxes.push(SoftmaxTemp {
                p: id,
                sumexp,
                sumexp_read,
            });
        }
        self.temps.push(Temp {
            vars,
            def,
            hint,
            live: true,
            accumulated: false,
        });
        self.keys.insert((kind, key_atom), id);
        read(id)
    }

    /// Statements that write `p` (free indices `out`, row-major) to `out`.
    pub fn output(&mut self, p: &Poly, out: &[(Ix, Dim)]) -> Vec<Stmt> {
        // Terms grouped by the equalities their deltas impose.
        let mut groups: Vec<(Vec<(Ix, Ix)>, Poly)> = Vec::new();
        for t in &p.terms {
            let deltas: Vec<(Ix, Ix)> = t
                .factors
                .iter()
                .filter_map(|f| {
                    if let Atom::Delta(a, b) = &*f.atom {
                        Some((*a, *b))
                    } else {
                        None
                    }
                })
                .collect();
            let rest = crate::ir::Term {
                factors: t
                    .factors
                    .iter()
                    .filter(|f| !matches!(&*f.atom, Atom::Delta(..)))
                    .cloned()
                    .collect(),
                coef: t.coef,
            };
            match groups.iter_mut().find(|(d, _)| *d == deltas) {
                Some((_, g)) => g.terms.push(rest),
                None => groups.push((deltas, Poly { terms: vec![rest] })),
            }
        }
        // The dense group (no delta) overwrites; the others add.
        groups.sort_by_key(|(d, _)| d.len());
        let mut stmts = Vec::new();
        if groups.first().is_none_or(|(d, _)| !d.is_empty()) {
            stmts.push(Stmt::ZeroOut);
        }
        for (deltas, body) in groups {
            let add = !deltas.is_empty();
            let mut env: Env = Vec::new();
            let mut loops = Vec::new();
            let mut target = Vec::new();
            for (ix, dim) in out {
                match deltas.iter().find(|(_, m)| m == ix) {
                    Some((rep, _)) => target.push(lookup(&env, *rep)),
                    None => {
                        let v = self.var();
                        env.push((*ix, v, dim.clone()));
                        loops.push((v, dim.clone()));
                        target.push((v, dim.clone()));
                    }
                }
            }
            let value = self.poly(&body, &env);
            let mut s = Stmt::Store {
                place: Place::Elem(Access {
                    array: Array::Out,
                    idx: target,
                }),
                add,
                value,
            };
            for (v, d) in loops.into_iter().rev() {
                s = Stmt::Loop {
                    var: v,
                    dim: d,
                    body: vec![s],
                };
            }
            stmts.push(s);
        }
        stmts
    }

    /// Temporaries used only inside one fused loop, and only at its own
    /// row, need one row, not all: `max[r]` becomes a scalar, `g[r, c]` a
    /// buffer of one row reused for every `r` (array contraction), so the
    /// per-row values of a batch never travel to memory.
    fn contract_rows(&mut self, stmts: &mut [Stmt]) {
        for t in 0..self.temps.len() {
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

    /// A loop nest over the blocks of a symmetry class (block `b` indexed
    /// by IR index `reps[b]`) that scatters `value` to `out`.
    pub fn scatter(
        &mut self,
        value: &Poly,
        reps: &[Ix],
        sizes: Vec<usize>,
        kinds: Vec<usize>,
        dim: &Dim,
    ) -> Stmt {
        let mut env: Env = Vec::new();
        let mut vars = Vec::new();
        for &r in reps {
            let v = self.var();
            env.push((r, v, dim.clone()));
            vars.push((v, dim.clone()));
        }
        let value = self.poly(value, &env);
        let mut s = Stmt::Scatter {
            vars: vars.clone(),
            sizes,
            kinds,
            value,
        };
        for (v, d) in vars.into_iter().rev() {
            s = Stmt::Loop {
                var: v,
                dim: d,
                body: vec![s],
            };
        }
        s
    }

    /// The whole body: temporaries in dependency order, then `tail`,
    /// after inlining and fusion.
    pub fn finish(mut self, tail: Vec<Stmt>) -> (Vec<Stmt>, Vec<Temp>) {
        let mut tail = tail;
        self.keep_exponentials(&mut tail);
        self.inline(&mut tail);
        let depth = self.depths();
        let mut order: Vec<usize> = (0..self.temps.len())
            .filter(|&t| self.temps[t].live)
            .collect();
        // Where each sum's summed variable goes decides its outer loop.
        let summed_at: Vec<usize> = self
            .temps
            .iter()
            .enumerate()
            .map(|(t, temp)| match &temp.def {
                Def::Reduce {
                    op: RedOp::Sum,
                    var,
                    body,
                    ..
                } if !self.keeps.contains_key(&t) => summed_position(&temp.vars, *var, body),
                _ => temp.vars.len(),
            })
            .collect();
        let outer_dim = |t: usize| -> Option<String> {
            let temp = &self.temps[t];
            match &temp.def {
                Def::Reduce { dim, .. } if summed_at[t] == 0 && !temp.vars.is_empty() => {
                    Some(dim.to_string())
                }
                _ => temp.vars.first().map(|(_, d)| d.to_string()),
            }
        };
        order.sort_by_key(|&t| (depth[t], outer_dim(t), t));
        let mut stmts = Vec::new();
        let mut accumulated = Vec::new();
        for t in order.into_iter().filter(|t| !self.filled.contains(t)) {
            let temp = &self.temps[t];
            let place = if temp.vars.is_empty() {
                Place::Temp(t)
            } else {
                Place::Elem(Access {
                    array: Array::Temp(t),
                    idx: temp.vars.clone(),
                })
            };
            let mut s = match &temp.def {
                Def::Elem(x) => Stmt::Store {
                    place,
                    add: false,
                    value: x.clone(),
                },
                Def::Reduce { op, var, dim, body } => {
                    let at = summed_at[t];
                    if at < temp.vars.len() {
                        // `T[..] += body` with the summed variable outside
                        // the inner ones, so the innermost loop walks rows.
                        accumulated.push(t);
                        let mut nest = temp.vars.clone();
                        nest.insert(at, (*var, dim.clone()));
                        let mut s = Stmt::Store {
                            place,
                            add: true,
                            value: body.clone(),
                        };
                        for (v, d) in nest.into_iter().rev() {
                            s = Stmt::Loop {
                                var: v,
                                dim: d,
                                body: vec![s],
                            };
                        }
                        stmts.push(s);
                        continue;
                    }
                    Stmt::Reduce {
                        var: *var,
                        dim: dim.clone(),
                        parts: vec![Part {
                            place,
                            op: *op,
                            body: body.clone(),
                            keep: self.keeps.get(&t).cloned(),
                        }],
                    }
                }
            };
            for (v, d) in temp.vars.iter().rev() {
                s = Stmt::Loop {
                    var: *v,
                    dim: d.clone(),
                    body: vec![s],
                };
            }
            stmts.push(s);
        }
        for t in accumulated {
            self.temps[t].accumulated = true;
        }
        stmts.extend(tail);
        fuse(&mut stmts);
        self.contract_rows(&mut stmts);
        shift_in_pass(&mut stmts);
        self.join_scaled_sums(&mut stmts);
        // `let x = …; x` returns the value itself.
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
        (stmts, self.temps)
    }

    /// Lets a sum that waits on the pass before it only for a scalar
    /// factor join that pass: `Σ_i c·f(i)`, with `c` computed from the
    /// pass's totals (the `1/Σ exp` of a softmax), is `c·Σ_i f(i)`, and `f`
    /// may read at row `i` what the pass keeps there (the exponentials).
    /// `p·v` of a Hessian-vector product is then summed with `Σ exp`, and
    /// its own pass over `v` and the kept exponentials goes.
    fn join_scaled_sums(&mut self, stmts: &mut Vec<Stmt>) {
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
    fn join_scaled_sum(&mut self, stmts: &mut Vec<Stmt>, r: usize) -> bool {
        let Stmt::Reduce {
            var: vr,
            dim,
            parts,
        } = &stmts[r]
        else {
            return false;
        };
        // The pass before, with only scalar lets in between; what it and
        // they compute may be read by the scale only.
        let mut computed = BTreeSet::new();
        let mut p = r;
        loop {
            let Some(q) = p.checked_sub(1) else {
                return false;
            };
            p = q;
            match &stmts[p] {
                Stmt::Store {
                    place: Place::Temp(t),
                    add: false,
                    ..
                } => {
                    computed.insert(*t);
                }
                Stmt::Reduce { dim: dp, .. } if dp == dim => break,
                _ => return false,
            }
        }
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
        let (vr, vp) = (*vr, *vp);
        let mut split = Vec::new();
        for part in parts {
            let Place::Temp(t) = part.place else {
                return false;
            };
            if part.op != RedOp::Sum || part.keep.is_some() {
                return false;
            }
            let mut factors = Vec::new();
            flatten_product(&part.body, &mut factors);
            let (scale, rest): (Vec<Scalar>, Vec<Scalar>) =
                factors.into_iter().partition(invariant);
            let mut summand = match rest.len() {
                0 => return false,
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
                    row_local &= !totals.contains(&&a.array)
                        && kept.iter().all(|k| k.array != a.array || *k == a);
                }
            });
            if scale.is_empty() || !read.is_disjoint(&computed) || !row_local {
                return false;
            }
            split.push((t, scale, summand));
        }
        let dim = dim.clone();
        let mut stores = Vec::new();
        let mut joined = Vec::new();
        for (t, mut scale, summand) in split {
            let raw = self.temps.len();
            self.temps.push(Temp {
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
    fn keep_exponentials(&mut self, tail: &mut [Stmt]) {
        for sm in self.softmaxes.clone() {
            let (p, s) = (sm.p, sm.sumexp);
            if self.keeps.contains_key(&s) || !self.temps[p].live || !self.temps[s].live {
                continue;
            }
            let Def::Reduce {
                op: RedOp::Sum,
                var: v,
                dim,
                ..
            } = &self.temps[s].def
            else {
                continue;
            };
            let (v, dim) = (*v, dim.clone());
            let p_vars: Vec<Var> = self.temps[p].vars.iter().map(|(x, _)| *x).collect();
            let s_vars: Vec<Var> = self.temps[s].vars.iter().map(|(x, _)| *x).collect();
            // The sum's nest is the softmax's without its entry index.
            let read_vars: Vec<Var> = match &sm.sumexp_read {
                Scalar::Load(a) => a.idx.iter().map(|(x, _)| *x).collect(),
                _ => Vec::new(),
            };
            if p_vars.len() != s_vars.len() + 1 || read_vars.len() != s_vars.len() {
                continue;
            }
            // The softmax's nest, written in the sum's variables.
            let keep_idx: Option<Vec<(Var, Dim)>> = self.temps[p]
                .vars
                .iter()
                .map(|(x, d)| match read_vars.iter().position(|r| r == x) {
                    Some(k) => Some((s_vars[k], d.clone())),
                    None if *d == dim => Some((v, d.clone())),
                    None => None,
                })
                .collect();
            let Some(keep_idx) = keep_idx else { continue };
            if keep_idx.iter().filter(|(x, _)| *x == v).count() != 1 {
                continue;
            }
            let p_reads = self.reads(tail).remove(&p).unwrap_or_default();
            // `out` holds the exponentials of one softmax at most.
            let out_free = !self.keeps.values().any(|k| k.array == Array::Out);
            // Reads after the output nest would find `out` overwritten.
            let mut later = HashMap::new();
            for st in tail.iter().skip(1) {
                count_stmt(st, &mut Vec::new(), &mut later);
            }
            if let (true, Some(out_idx)) = (
                out_free && p_reads.iter().all(|tight| *tight) && !later.contains_key(&p),
                dense_output_reading(tail.first(), p),
            ) {
                // Read at single entries only (once in the output, or also
                // in a dot product with it before): the exponentials wait
                // in `out` until the output overwrites them, and every read
                // scales by 1/Σ — no array of its own, no scaling pass.
                debug_assert_eq!(out_idx.len(), p_vars.len());
                let scale = self.reciprocal(s, &sm.sumexp_read);
                self.scale_reads(p, &scale, Array::Out, tail);
                self.temps[p].live = false;
                self.keeps.insert(
                    s,
                    Access {
                        array: Array::Out,
                        idx: keep_idx,
                    },
                );
            } else if p_reads.len() > 1 || p_reads.iter().any(|tight| !tight) {
                let scale = self.reciprocal(s, &sm.sumexp_read);
                let own = Scalar::Load(Access {
                    array: Array::Temp(p),
                    idx: self.temps[p].vars.clone(),
                });
                let mut in_tail = HashMap::new();
                tail.iter()
                    .for_each(|st| count_stmt(st, &mut Vec::new(), &mut in_tail));
                let summed_only = !in_tail.contains_key(&p)
                    && self.temps.iter().enumerate().all(|(t, temp)| {
                        let mut read = BTreeSet::new();
                        temps_read(temp.def.expr(), &mut read);
                        t == p
                            || !temp.live
                            || !read.contains(&p)
                            || (temp.vars.is_empty()
                                && matches!(temp.def, Def::Reduce { op: RedOp::Sum, .. }))
                    });
                if summed_only {
                    // Read by sums only: each reads `e·(1/Σ)`, which a sum
                    // waiting on nothing else takes out of its summand and
                    // then joins the exponentials' pass (see
                    // `join_scaled_sums`); no pass scales the array.
                    self.scale_reads(p, &scale, Array::Temp(p), tail);
                    self.temps[p].def = Def::Elem(own);
                    self.filled.insert(p);
                } else {
                    self.temps[p].def = Def::Elem(Scalar::Product(vec![own, scale]));
                }
                self.keeps.insert(
                    s,
                    Access {
                        array: Array::Temp(p),
                        idx: keep_idx,
                    },
                );
            }
        }
    }

    /// Every read of the softmax temporary `p`, by the live temporaries and
    /// `tail`, becomes `into` at the same entry times `scale` (`1/Σ`) read
    /// at the matching indices.
    fn scale_reads(&mut self, p: usize, scale: &Scalar, into: Array, tail: &mut [Stmt]) {
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
    fn reciprocal(&mut self, s: usize, sumexp_read: &Scalar) -> Scalar {
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
        let id = self.temps.len();
        self.temps.push(Temp {
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

    /// Every read of every temporary by the live temporaries and `tail`:
    /// whether the loops around it are exactly the read's own indices.
    fn reads(&self, tail: &[Stmt]) -> HashMap<usize, Vec<bool>> {
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
    fn inline(&mut self, tail: &mut [Stmt]) {
        loop {
            let reads = self.reads(tail);
            let candidate = (0..self.temps.len()).find(|&t| {
                self.temps[t].live
                    && !self.temps[t].vars.is_empty()
                    && matches!(self.temps[t].def, Def::Elem(_))
                    && reads.get(&t).is_some_and(|r| r.len() == 1 && r[0])
            });
            let Some(t) = candidate else {
                // Temporaries nobody reads are dead, and then what only
                // they read.
                let mut swept = false;
                for (t, temp) in self.temps.iter_mut().enumerate() {
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

    /// Dependency depth of each temporary.
    fn depths(&self) -> Vec<usize> {
        fn go(t: usize, temps: &[Temp], memo: &mut Vec<Option<usize>>) -> usize {
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
        let mut memo = vec![None; self.temps.len()];
        (0..self.temps.len())
            .map(|t| go(t, &self.temps, &mut memo))
            .collect()
    }
}

/// Joins the sums of `p` that differ only in their summands,
/// `c₁·R·Σ_r a + c₂·R·Σ_r b = R·Σ_r (c₁a + c₂b)`, so the kernel makes one
/// pass over `r` instead of two (the backward pass of a linear layer,
/// `Σ_r x_ra (s_r p_rc − y_rc)`, is one sum of two terms in the normal form).
pub fn merge_sums(p: &Poly) -> Poly {
    // Terms with exactly one sum factor, keyed by the other factors and
    // the sum's length; each term remembers its group.
    type Member = (f64, Ix, Poly);
    let mut groups: Vec<(Vec<crate::ir::Factor>, Dim, Vec<Member>)> = Vec::new();
    let mut group_of: Vec<Option<usize>> = Vec::new();
    for t in &p.terms {
        let sums: Vec<usize> = (0..t.factors.len())
            .filter(|&k| {
                matches!(&*t.factors[k].atom, Atom::Sum { .. }) && t.factors[k].exp.0 == 1.0
            })
            .collect();
        let [k] = sums[..] else {
            group_of.push(None);
            continue;
        };
        let Atom::Sum { ix, dim, body } = &*t.factors[k].atom else {
            unreachable!()
        };
        let mut others = t.factors.clone();
        others.remove(k);
        let entry = (t.coef.0, *ix, body.clone());
        match groups.iter().position(|(o, d, _)| *o == others && d == dim) {
            Some(g) => {
                groups[g].2.push(entry);
                group_of.push(Some(g));
            }
            None => {
                groups.push((others, dim.clone(), vec![entry]));
                group_of.push(Some(groups.len() - 1));
            }
        }
    }
    // In the original order: a joined sum where its first member was.
    let mut out = Poly::zero();
    let mut emitted = vec![false; groups.len()];
    for (t, g) in p.terms.iter().zip(group_of) {
        let Some(g) = g.filter(|&g| groups[g].2.len() > 1) else {
            out.terms.push(t.clone());
            continue;
        };
        if std::mem::replace(&mut emitted[g], true) {
            continue;
        }
        let (others, dim, members) = &groups[g];
        // A coefficient all members share stays outside.
        let common = members[0].0;
        let common = if members.iter().all(|m| m.0 == common) {
            common
        } else {
            1.0
        };
        let k = crate::ir::fresh();
        let mut body = Poly::zero();
        for (c, ix, b) in members {
            body.terms.extend(b.rename(*ix, k).scale(c / common).terms);
        }
        let mut term = factor_summand(Poly::sum_whole(k, dim, body)).scale(common);
        for f in others {
            term = term.mul(&Poly::atom(f.atom.clone()).powf(f.exp.0));
        }
        out.terms.extend(term.terms);
    }
    out
}

/// `Σ_r (x·a + x·b)` as `Σ_r x·(a + b)`: the factors every summand shares
/// come out in front of a group, so the group (free of the innermost
/// index, say) is computed once per row rather than once per entry.
/// Built by hand because the normal form multiplies groups out.
fn factor_summand(sum: Poly) -> Poly {
    let [t] = &sum.terms[..] else {
        return sum;
    };
    let Atom::Sum { ix, dim, body } = &*t.factors[0].atom else {
        return sum;
    };
    if body.terms.len() < 2 {
        return sum;
    }
    let common: Vec<crate::ir::Factor> = body.terms[0]
        .factors
        .iter()
        .filter(|f| body.terms[1..].iter().all(|u| u.factors.contains(f)))
        .cloned()
        .collect();
    if common.is_empty() {
        return sum;
    }
    let rest = Poly {
        terms: body
            .terms
            .iter()
            .map(|u| crate::ir::Term {
                factors: u
                    .factors
                    .iter()
                    .filter(|f| !common.contains(f))
                    .cloned()
                    .collect(),
                coef: u.coef,
            })
            .collect(),
    };
    let mut factors = common;
    factors.push(crate::ir::Factor {
        atom: Arc::new(Atom::Group(rest)),
        exp: crate::ir::Real(1.0),
    });
    let body = Poly {
        terms: vec![crate::ir::Term {
            factors,
            coef: crate::ir::Real(1.0),
        }],
    };
    let mut t = t.clone();
    t.factors[0].atom = Arc::new(Atom::Sum {
        ix: *ix,
        dim: dim.clone(),
        body,
    });
    Poly { terms: vec![t] }
}

/// The index of `out` that statement `s` writes, when `s` is the dense
/// output nest (`out[..] = …`, no accumulation) and reads temporary `t`
/// there and nowhere else.
fn dense_output_reading(s: Option<&Stmt>, t: usize) -> Option<Vec<(Var, Dim)>> {
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

// One source for the kernels' orbit helper and the interpreter's.
include!("orbit_fn.rs");

/// The orbit of a symmetry class as the block of each slot, per distinct
/// term (see `orbit_fn.rs`, which generated kernels carry verbatim).
pub fn orbit_rows(sizes: &[usize], kinds: &[usize]) -> Vec<Vec<u8>> {
    orbit(sizes, kinds)
}

/// A scalar expression's factor `base^e`.
fn power(base: Scalar, e: f64) -> Scalar {
    if e == 1.0 {
        base
    } else if e == -1.0 {
        Scalar::Recip(Box::new(base))
    } else if e == 0.5 {
        Scalar::Sqrt(Box::new(base))
    } else if e == -0.5 {
        Scalar::Recip(Box::new(Scalar::Sqrt(Box::new(base))))
    } else if e.fract() == 0.0 && e.abs() <= 64.0 {
        Scalar::Powi(Box::new(base), e as i32)
    } else {
        Scalar::Powf(Box::new(base), Box::new(Scalar::Num(e)))
    }
}

/// The free indices of an atom in order of first occurrence.
fn first_free(a: &Atom) -> Vec<Ix> {
    fn walk_poly(p: &Poly, out: &mut Vec<Ix>) {
        for t in &p.terms {
            for f in &t.factors {
                walk(&f.atom, out);
            }
        }
    }
    fn walk(a: &Atom, out: &mut Vec<Ix>) {
        match a {
            Atom::Delta(x, y) => out.extend([*x, *y]),
            Atom::Var { idx, .. } => out.extend(idx.iter().copied()),
            Atom::Dim(_) => {}
            Atom::Func(_, p) | Atom::Group(p) => walk_poly(p, out),
            Atom::Pow(b, e) => {
                walk_poly(b, out);
                walk_poly(e, out);
            }
            Atom::Sum { body, .. } | Atom::Lse { body, .. } => walk_poly(body, out),
            Atom::Softmax { body, at, .. } => {
                walk_poly(body, out);
                out.push(*at);
            }
        }
    }
    let free = a.free();
    let mut all = Vec::new();
    walk(a, &mut all);
    let mut seen = BTreeSet::new();
    all.into_iter()
        .filter(|i| free.contains(i) && seen.insert(*i))
        .collect()
}

/// The free indices of an atom in the order its temporary stores them:
/// by the lowest axis each one indexes in the arrays it reads (so `X @ W`
/// is stored `[r, c]`, as its rows come from `X` and its columns from
/// `W`), then by first occurrence.
fn layout(a: &Atom) -> Vec<Ix> {
    fn walk_poly(p: &Poly, pos: &mut HashMap<Ix, usize>) {
        for t in &p.terms {
            for f in &t.factors {
                walk(&f.atom, pos);
            }
        }
    }
    fn walk(a: &Atom, pos: &mut HashMap<Ix, usize>) {
        match a {
            Atom::Var { idx, .. } => {
                for (k, i) in idx.iter().enumerate() {
                    let e = pos.entry(*i).or_insert(k);
                    *e = (*e).min(k);
                }
            }
            Atom::Delta(..) | Atom::Dim(_) => {}
            Atom::Func(_, p) | Atom::Group(p) => walk_poly(p, pos),
            Atom::Pow(b, e) => {
                walk_poly(b, pos);
                walk_poly(e, pos);
            }
            Atom::Sum { body, .. } | Atom::Lse { body, .. } => walk_poly(body, pos),
            Atom::Softmax { ix, body, at, .. } => {
                walk_poly(body, pos);
                // The entry `at` sits where the softmax's own index does.
                if let Some(&k) = pos.get(ix) {
                    let e = pos.entry(*at).or_insert(k);
                    *e = (*e).min(k);
                }
            }
        }
    }
    let mut order = first_free(a);
    let mut pos = HashMap::new();
    walk(a, &mut pos);
    order.sort_by_key(|i| pos.get(i).copied().unwrap_or(usize::MAX));
    order
}

/// Where the summed variable of a sum over a temporary's nest `vars` goes
/// in the loop nest: `vars.len()` (innermost, a dot product per entry) or
/// further out (the entries built up in place). Chosen so the innermost
/// loops stride through memory by one: a nest is scored, innermost level
/// first, by how many accesses index its variable at an axis other than
/// the last; ties keep the summed variable innermost.
fn summed_position(vars: &[(Var, Dim)], summed: Var, body: &Scalar) -> usize {
    let mut accesses: Vec<Vec<Var>> = vec![vars.iter().map(|(v, _)| *v).collect()];
    visit(body, &mut |x| {
        if let Scalar::Load(a) = x {
            accesses.push(a.idx.iter().map(|(v, _)| *v).collect());
        }
    });
    let strided = |v: Var| {
        accesses
            .iter()
            .filter(|a| {
                a.iter()
                    .position(|&u| u == v)
                    .is_some_and(|k| k + 1 < a.len())
            })
            .count()
    };
    let score = |at: usize| -> Vec<usize> {
        let mut nest: Vec<Var> = vars.iter().map(|(v, _)| *v).collect();
        nest.insert(at, summed);
        nest.iter().rev().take(2).map(|&v| strided(v)).collect()
    };
    (0..=vars.len())
        .rev()
        .min_by_key(|&at| score(at))
        .unwrap_or(vars.len())
}

/// Records each read of a temporary: whether every loop around it is one
/// of the read's own index variables.
fn count_reads(x: &Scalar, around: &[Var], reads: &mut HashMap<usize, Vec<bool>>) {
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

fn count_stmt(s: &Stmt, around: &mut Vec<Var>, reads: &mut HashMap<usize, Vec<bool>>) {
    match s {
        Stmt::Loop { var, body, .. } => {
            around.push(*var);
            for b in body {
                count_stmt(b, around, reads);
            }
            around.pop();
        }
        Stmt::Reduce { var, parts, .. } => {
            around.push(*var);
            for p in parts {
                count_reads(&p.body, around, reads);
            }
            around.pop();
        }
        Stmt::Store { value, .. } | Stmt::Return(value) | Stmt::Scatter { value, .. } => {
            count_reads(value, around, reads)
        }
        Stmt::ZeroOut => {}
    }
}

/// Whether `x` calls a function that costs far more than an add (an
/// `exp`, a `ln`, a power).
pub fn costly(x: &Scalar) -> bool {
    let mut hit = false;
    visit(x, &mut |e| {
        hit |= matches!(
            e,
            Scalar::Call(..) | Scalar::ExpShifted(_) | Scalar::Ln(_) | Scalar::Powf(..)
        )
    });
    hit
}

/// The factors of a product, nested products flattened.
fn flatten_product(x: &Scalar, out: &mut Vec<Scalar>) {
    match x {
        Scalar::Product(xs) => xs.iter().for_each(|y| flatten_product(y, out)),
        _ => out.push(x.clone()),
    }
}

/// Whether an expression is the same at every point of every loop: it
/// reads no array and no loop variable.
fn invariant(x: &Scalar) -> bool {
    let mut fixed = true;
    visit(x, &mut |e| {
        fixed &= !matches!(e, Scalar::Load(_) | Scalar::Delta(..));
    });
    fixed
}

/// Replaces each array read for which `f` gives an expression (which is
/// not visited again).
fn replace_loads(x: &mut Scalar, f: &impl Fn(&Access) -> Option<Scalar>) {
    if let Scalar::Load(a) = x {
        if let Some(y) = f(a) {
            *x = y;
        }
        return;
    }
    each_child_mut(x, &mut |y| replace_loads(y, f));
}

/// Calls `f` on each direct sub-expression.
fn each_child_mut(x: &mut Scalar, f: &mut impl FnMut(&mut Scalar)) {
    match x {
        Scalar::Sum(xs) | Scalar::Product(xs) => xs.iter_mut().for_each(f),
        Scalar::Sub(a, b) | Scalar::Powf(a, b) => {
            f(a);
            f(b);
        }
        Scalar::Neg(a)
        | Scalar::Recip(a)
        | Scalar::Powi(a, _)
        | Scalar::Sqrt(a)
        | Scalar::Call(_, a)
        | Scalar::ExpShifted(a)
        | Scalar::Ln(a) => f(a),
        Scalar::Num(_) | Scalar::Temp(_) | Scalar::Load(_) | Scalar::Dim(_) | Scalar::Delta(..) => {
        }
    }
}

/// Calls `f` on every sub-expression, outermost first.
pub fn visit<'s>(x: &'s Scalar, f: &mut impl FnMut(&'s Scalar)) {
    f(x);
    match x {
        Scalar::Sum(xs) | Scalar::Product(xs) => xs.iter().for_each(|y| visit(y, f)),
        Scalar::Sub(a, b) | Scalar::Powf(a, b) => {
            visit(a, f);
            visit(b, f);
        }
        Scalar::Neg(a)
        | Scalar::Recip(a)
        | Scalar::Powi(a, _)
        | Scalar::Sqrt(a)
        | Scalar::Call(_, a)
        | Scalar::ExpShifted(a)
        | Scalar::Ln(a) => visit(a, f),
        Scalar::Num(_) | Scalar::Temp(_) | Scalar::Load(_) | Scalar::Dim(_) | Scalar::Delta(..) => {
        }
    }
}

fn visit_mut(x: &mut Scalar, f: &mut impl FnMut(&mut Scalar)) {
    f(x);
    each_child_mut(x, &mut |y| visit_mut(y, f));
}

/// Calls `f` on every sub-expression of every expression in `s` and the
/// statements in it, outermost first.
pub fn visit_stmt<'s>(s: &'s Stmt, f: &mut impl FnMut(&'s Scalar)) {
    match s {
        Stmt::Loop { body, .. } => body.iter().for_each(|b| visit_stmt(b, f)),
        Stmt::Reduce { parts, .. } => parts.iter().for_each(|p| visit(&p.body, f)),
        Stmt::Store { value, .. } | Stmt::Return(value) | Stmt::Scatter { value, .. } => {
            visit(value, f)
        }
        Stmt::ZeroOut => {}
    }
}

fn visit_scalars(s: &mut Stmt, f: &mut impl FnMut(&mut Scalar)) {
    match s {
        Stmt::Loop { body, .. } => body.iter_mut().for_each(|b| visit_scalars(b, f)),
        Stmt::Reduce { parts, .. } => parts.iter_mut().for_each(|p| f(&mut p.body)),
        Stmt::Store { value, .. } | Stmt::Return(value) | Stmt::Scatter { value, .. } => f(value),
        Stmt::ZeroOut => {}
    }
}

/// Replaces reads of temporary `t` (nest `vars`) by its definition.
fn substitute(x: &mut Scalar, t: usize, vars: &[Var], def: &Scalar) {
    visit_mut(x, &mut |s| {
        if let Scalar::Load(Access {
            array: Array::Temp(u),
            idx,
        }) = s
        {
            if *u == t {
                let map: Vec<(Var, Var)> = vars
                    .iter()
                    .zip(idx.iter())
                    .map(|(a, (b, _))| (*a, *b))
                    .collect();
                let mut body = def.clone();
                rename_vars(&mut body, &map);
                *s = body;
            }
        }
    });
}

fn rename_vars(x: &mut Scalar, map: &[(Var, Var)]) {
    let m = |v: &mut Var| {
        if let Some((_, to)) = map.iter().find(|(from, _)| from == v) {
            *v = *to;
        }
    };
    visit_mut(x, &mut |s| match s {
        Scalar::Load(a) => a.idx.iter_mut().for_each(|(v, _)| m(v)),
        Scalar::Delta(a, b) => {
            m(a);
            m(b);
        }
        _ => {}
    });
}

fn rename_stmt(s: &mut Stmt, map: &[(Var, Var)]) {
    let m = |v: &mut Var| {
        if let Some((_, to)) = map.iter().find(|(from, _)| from == v) {
            *v = *to;
        }
    };
    let place = |p: &mut Place| {
        if let Place::Elem(a) = p {
            a.idx.iter_mut().for_each(|(v, _)| m(v));
        }
    };
    match s {
        Stmt::Loop { var, body, .. } => {
            m(var);
            body.iter_mut().for_each(|b| rename_stmt(b, map));
        }
        Stmt::Reduce { var, parts, .. } => {
            m(var);
            for p in parts {
                place(&mut p.place);
                rename_vars(&mut p.body, map);
                if let Some(k) = &mut p.keep {
                    k.idx.iter_mut().for_each(|(v, _)| m(v));
                }
            }
        }
        Stmt::Store {
            place: p, value, ..
        } => {
            place(p);
            rename_vars(value, map);
        }
        Stmt::Return(v) => rename_vars(v, map),
        Stmt::Scatter { vars, value, .. } => {
            vars.iter_mut().for_each(|(v, _)| m(v));
            rename_vars(value, map);
        }
        Stmt::ZeroOut => {}
    }
}

/// Calls `f` on every access of a statement: loads, places, kept values.
fn visit_accesses(s: &mut Stmt, f: &mut impl FnMut(&mut Access)) {
    let in_scalar = |x: &mut Scalar, f: &mut dyn FnMut(&mut Access)| {
        visit_mut(x, &mut |e| {
            if let Scalar::Load(a) = e {
                f(a)
            }
        })
    };
    match s {
        Stmt::Loop { body, .. } => body.iter_mut().for_each(|b| visit_accesses(b, f)),
        Stmt::Reduce { parts, .. } => {
            for p in parts {
                in_scalar(&mut p.body, f);
                if let Place::Elem(a) = &mut p.place {
                    f(a);
                }
                if let Some(k) = &mut p.keep {
                    f(k);
                }
            }
        }
        Stmt::Store { place, value, .. } => {
            in_scalar(value, f);
            if let Place::Elem(a) = place {
                f(a);
            }
        }
        Stmt::Return(v) | Stmt::Scatter { value: v, .. } => in_scalar(v, f),
        Stmt::ZeroOut => {}
    }
}

/// Turns the zero-axis accesses of temporary `t` into a scalar.
fn scalar_temp(s: &mut Stmt, t: usize) {
    let is_t = |a: &Access| a.array == Array::Temp(t) && a.idx.is_empty();
    let fix_place = |p: &mut Place| {
        if matches!(p, Place::Elem(a) if is_t(a)) {
            *p = Place::Temp(t);
        }
    };
    match s {
        Stmt::Loop { body, .. } => body.iter_mut().for_each(|b| scalar_temp(b, t)),
        Stmt::Reduce { parts, .. } => {
            for p in parts {
                fix_place(&mut p.place);
            }
        }
        Stmt::Store { place, .. } => fix_place(place),
        _ => {}
    }
    visit_scalars(s, &mut |x| {
        visit_mut(x, &mut |e| {
            if matches!(e, Scalar::Load(a) if is_t(a)) {
                *e = Scalar::Temp(t);
            }
        })
    });
}

/// Temporaries an expression reads.
pub fn temps_read(x: &Scalar, out: &mut BTreeSet<usize>) {
    visit(x, &mut |s| match s {
        Scalar::Temp(t)
        | Scalar::Load(Access {
            array: Array::Temp(t),
            ..
        }) => {
            out.insert(*t);
        }
        _ => {}
    });
}

/// Something a statement touches: an array or a scalar temporary.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    Array(Array),
    Scalar(usize),
}

/// Every access of a statement: target, first index variable, write?
fn accesses(s: &Stmt, out: &mut Vec<(Target, Option<Var>, bool)>) {
    let write = |p: &Place, out: &mut Vec<(Target, Option<Var>, bool)>| match p {
        Place::Temp(t) => out.push((Target::Scalar(*t), None, true)),
        Place::Elem(a) => out.push((
            Target::Array(a.array.clone()),
            a.idx.first().map(|(v, _)| *v),
            true,
        )),
    };
    match s {
        Stmt::Loop { body, .. } => body.iter().for_each(|b| accesses(b, out)),
        Stmt::Reduce { parts, .. } => {
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
fn scalar_reads(x: &Scalar, out: &mut Vec<(Target, Option<Var>, bool)>) {
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

type AccessList = Vec<(Target, Option<Var>, bool)>;

/// Whether loops with accesses `xa` (over `va`) and then `xb` (over `vb`)
/// may run as one: everything that one writes and both touch is touched
/// only at the row of the current iteration.
fn fusable(xa: &AccessList, va: Var, xb: &AccessList, vb: Var) -> bool {
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
fn fuse(stmts: &mut Vec<Stmt>) {
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
                let (va, vb) = (*va, *vb);
                let Stmt::Loop { body: mut tail, .. } = stmts.remove(i + 1) else {
                    unreachable!()
                };
                tail.iter_mut().for_each(|s| rename_stmt(s, &[(vb, va)]));
                if let Some(xa) = &mut acc_i {
                    for s in &tail {
                        accesses(s, xa);
                    }
                }
                let Stmt::Loop { body, .. } = &mut stmts[i] else {
                    unreachable!()
                };
                body.extend(tail);
                true
            }
            (
                Stmt::Reduce {
                    var: va,
                    dim: da,
                    parts: pa,
                },
                Stmt::Reduce {
                    var: vb,
                    dim: db,
                    parts: pb,
                },
            ) if da == db && independent(pa, pb) && at_most_one_shift(pa, pb) => {
                let (va, vb) = (*va, *vb);
                let Stmt::Reduce {
                    parts: mut tail, ..
                } = stmts.remove(i + 1)
                else {
                    unreachable!()
                };
                for p in &mut tail {
                    rename_vars(&mut p.body, &[(vb, va)]);
                    if let Some(k) = &mut p.keep {
                        k.idx
                            .iter_mut()
                            .filter(|(v, _)| *v == vb)
                            .for_each(|(v, _)| *v = va);
                    }
                }
                let Stmt::Reduce { parts, .. } = &mut stmts[i] else {
                    unreachable!()
                };
                parts.extend(tail);
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

/// Moves each maximum that only shifts the exponentials of a later sum
/// into that sum's pass, as a [`RedOp::Shift`]: `Σ exp(x − c)` is exact
/// for any shift `c`, and every other reader of the maximum (a logsumexp
/// `c + ln Σ`, a softmax `exp(x − c − ln Σ)`) is as well, so the separate
/// pass that reads all of `x` for its maximum goes. The pass that is left
/// may then fuse with what shared the maximum's (`Σq` of a cross-entropy).
fn shift_in_pass(stmts: &mut Vec<Stmt>) {
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
pub fn shifted_exp(x: Scalar, c: usize) -> Scalar {
    Scalar::ExpShifted(Box::new(Scalar::Sub(
        Box::new(x),
        Box::new(Scalar::Temp(c)),
    )))
}

/// A maximum (reduction `a`, part `k`) whose first reader is the pass `b`
/// over the same range that sums `exp(x − max)`, with `x` the maximum's
/// own body, cheap to compute, and unchanged between the two.
fn shift_candidate(stmts: &[Stmt]) -> Option<(usize, usize, usize)> {
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
fn at_most_one_shift(a: &[Part], b: &[Part]) -> bool {
    a.iter().chain(b).filter(|p| p.op == RedOp::Shift).count() <= 1
}

fn independent(a: &[Part], b: &[Part]) -> bool {
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
