//! Lowering: the normal form of the index IR into loop nests, one
//! temporary per compound atom over its own free indices ([`Body`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::codegen::loops::*;
use crate::ir::{Atom, Dim, Ix, Poly};

/// A softmax temporary and the parts of its logsumexp, all read in the
/// softmax's own nest: `p = exp(x − max − ln sumexp)`.
#[derive(Clone, Debug)]
pub(crate) struct SoftmaxTemp {
    /// The softmax temporary.
    pub(crate) p: usize,
    /// The shifted sum of exponentials.
    pub(crate) sumexp: usize,
    /// A read of `sumexp` in the nest of `p`.
    pub(crate) sumexp_read: Scalar,
}

/// A kernel body under construction.
pub struct Body {
    inputs: Vec<(String, Vec<Dim>)>,
    pub(crate) shifted: HashMap<String, Shifted>,
    /// The temporaries.
    pub temps: Vec<Temp>,
    pub(crate) keys: HashMap<(u8, Atom), usize>,
    pub(crate) hoisted: HashMap<String, usize>,
    pub(crate) next_var: Var,
    pub(crate) softmaxes: Vec<SoftmaxTemp>,
    pub(crate) keeps: HashMap<usize, Access>,
    /// Arrays that a kept reduction fills, with no statement of their own.
    pub(crate) filled: BTreeSet<usize>,
}

/// Lowering environment: IR index → loop variable and its length.
pub(crate) type Env = Vec<(Ix, Var, Dim)>;

pub(crate) fn lookup(env: &Env, ix: Ix) -> (Var, Dim) {
    env.iter()
        .rev()
        .find(|(i, _, _)| *i == ix)
        .map(|(_, v, d)| (*v, d.clone()))
        .expect("index bound by an enclosing loop")
}

/// The free indices of an atom in order of first occurrence.
pub(crate) fn first_free(a: &Atom) -> Vec<Ix> {
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
pub(crate) fn layout(a: &Atom) -> Vec<Ix> {
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
pub(crate) fn summed_position(vars: &[(Var, Dim)], summed: Var, body: &Scalar) -> usize {
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

/// The orbit of a symmetry class as the block of each slot, per distinct
/// term (see `orbit_fn.rs`, which generated kernels carry verbatim).
pub fn orbit_rows(sizes: &[usize], kinds: &[usize]) -> Vec<Vec<u8>> {
    orbit(sizes, kinds)
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

    pub(crate) fn var(&mut self) -> Var {
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
    pub(crate) fn hoist(&mut self, x: Scalar) -> Scalar {
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

    pub(crate) fn poly(&mut self, p: &Poly, env: &Env) -> Scalar {
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

    pub(crate) fn input_access(&self, k: usize, idx: &[Ix], env: &Env) -> Access {
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

    pub(crate) fn atom(&mut self, a: &Atom, env: &Env) -> Scalar {
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
    pub(crate) fn temp(&mut self, kind: u8, a: &Atom, env: &Env) -> Scalar {
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
        // its sum again); such an atom keeps its own index names in its
        // definition (re-normalized, a sum could split term by term), and
        // the renamed polynomial is its key, so the same group over other
        // indices (`d_i + λ` and `d_k + λ`) is one temporary, not two.
        let (key_atom, key_ix, map_key): (Atom, Vec<Ix>, Atom) = match key.terms.as_slice() {
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
                let atom = (*t.factors[0].atom).clone();
                (
                    atom.clone(),
                    (0..order.len()).map(|k| PLACEHOLDER + k as Ix).collect(),
                    atom,
                )
            }
            _ => (a.clone(), order.clone(), Atom::Group(key)),
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
        if let Some(&id) = self.keys.get(&(kind, map_key.clone())) {
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
        self.keys.insert((kind, map_key), id);
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
                    body: vec![s], slices: Vec::new(),
                };
            }
            stmts.push(s);
        }
        stmts
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
        SymClass {
            vars,
            sizes,
            kinds,
            value,
        }
        .scatter_nest()
    }
}

// One source for the kernels' orbit helper and the interpreter's.
include!("../orbit_fn.rs");
