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
    pub(crate) p: TempId,
    /// The shifted sum of exponentials.
    pub(crate) sumexp: TempId,
    /// A read of `sumexp` in the nest of `p`.
    pub(crate) sumexp_read: Scalar,
}

/// A kernel body under construction.
pub struct Body {
    inputs: Vec<(String, Vec<Dim>)>,
    pub(crate) shifted: HashMap<String, Shifted>,
    /// The temporaries.
    pub temps: Temps,
    pub(crate) keys: HashMap<(Holds, Atom), TempId>,
    /// Loop-invariant values already hoisted into scalar temporaries
    /// (few per kernel: compared by value, not hashed).
    pub(crate) hoisted: Vec<(Scalar, TempId)>,
    pub(crate) next_var: usize,
    pub(crate) softmaxes: Vec<SoftmaxTemp>,
    pub(crate) keeps: HashMap<TempId, Access>,
    /// Arrays that a kept reduction fills, with no statement of their own.
    pub(crate) filled: BTreeSet<TempId>,
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

/// What a temporary holds for its atom: the atom's value, or for a
/// logsumexp the two reductions its value is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Holds {
    /// The value.
    Value,
    /// `max_k body` of a logsumexp.
    Max,
    /// `Σ_k exp(body − max)` of a logsumexp.
    SumExp,
}

/// The key under which the temporary of atom `a` (indexed by `order`) is
/// shared: the atom, its indices as placeholders, and the atom the map is
/// keyed by.
fn temp_key(a: &Atom, order: &[Ix]) -> (Atom, Vec<Ix>, Atom) {
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
    // Renaming re-normalizes, which can open an atom up (a group is its
    // sum again); such an atom keeps its own index names in its definition
    // (re-normalized, a sum could split term by term), and the renamed
    // polynomial is its key, so the same group over other indices (`d_i +
    // λ` and `d_k + λ`) is one temporary, not two.
    match key.terms.as_slice() {
        // (A group of one variable renames to the variable itself, which
        // has no temporary: keep the group then.)
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
        _ => (a.clone(), order.to_vec(), Atom::Group(key)),
    }
}

impl Body {
    /// A body over the given inputs (name and dims of each).
    pub fn new(inputs: Vec<(String, Vec<Dim>)>) -> Body {
        Body {
            inputs,
            shifted: HashMap::new(),
            temps: Temps::default(),
            keys: HashMap::new(),
            hoisted: Vec::new(),
            next_var: 0,
            softmaxes: Vec::new(),
            keeps: HashMap::new(),
            filled: BTreeSet::new(),
        }
    }

    pub(crate) fn var(&mut self) -> Var {
        self.next_var += 1;
        Var(self.next_var - 1)
    }

    /// A scalar temporary holding the maximum of vector variable `name`
    /// over `dim` (a pass of its own).
    pub fn max_of(&mut self, name: &str, dim: &Dim) -> Scalar {
        let k = crate::ir::fresh();
        let lse = Poly::lse(k, dim, Poly::var(name, vec![k]));
        let atom = lse.terms[0].factors[0].atom.clone();
        self.temp(Holds::Max, &atom, &Vec::new())
    }

    /// Makes IR variable `name` read as `input − minus`.
    pub fn shift(&mut self, name: &str, input: usize, minus: Scalar) {
        self.shifted
            .insert(name.to_string(), Shifted { input, minus });
    }

    /// A scalar temporary holding `x` (which reads no loop variable).
    pub(crate) fn hoist(&mut self, x: Scalar) -> Scalar {
        if let Some(&(_, id)) = self.hoisted.iter().find(|(y, _)| *y == x) {
            return Scalar::Temp(id);
        }
        let id = self.temps.push(Temp {
            vars: Vec::new(),
            def: Def::Elem(x.clone()),
            hint: "c",
            live: true,
            accumulated: false,
        });
        self.hoisted.push((x, id));
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
            _ => self.temp(Holds::Value, a, env),
        }
    }

    /// A read of the temporary that holds `what` of atom `a`.
    pub(crate) fn temp(&mut self, what: Holds, a: &Atom, env: &Env) -> Scalar {
        let order = layout(a);
        let (key_atom, key_ix, map_key) = temp_key(a, &order);
        let read = |id: TempId| -> Scalar {
            if order.is_empty() {
                Scalar::Temp(id)
            } else {
                Scalar::Load(Access {
                    array: Array::Temp(id),
                    idx: order.iter().map(|&ix| lookup(env, ix)).collect(),
                })
            }
        };
        if let Some(&id) = self.keys.get(&(what, map_key.clone())) {
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
        let (def, hint, softmax) = self.definition(what, &key_atom, &inner);
        let id = self.temps.push(Temp {
            vars,
            def,
            hint,
            live: true,
            accumulated: false,
        });
        if let Some((sumexp, sumexp_read)) = softmax {
            self.softmaxes.push(SoftmaxTemp {
                p: id,
                sumexp,
                sumexp_read,
            });
        }
        self.keys.insert((what, map_key), id);
        read(id)
    }

    /// The definition of the temporary holding `what` of `a` over the
    /// nest `inner`, its name hint, and for a softmax the sum of
    /// exponentials it divides by (the temporary and its read).
    fn definition(
        &mut self,
        what: Holds,
        a: &Atom,
        inner: &Env,
    ) -> (Def, &'static str, Option<(TempId, Scalar)>) {
        match (a, what) {
            (Atom::Func(f, u), Holds::Value) => (
                Def::Elem(Scalar::Call(*f, Box::new(self.poly(u, inner)))),
                "f",
                None,
            ),
            (Atom::Group(p), Holds::Value) => (Def::Elem(self.poly(p, inner)), "g", None),
            (Atom::Pow(b, e), Holds::Value) => {
                let (b, e) = (self.poly(b, inner), self.poly(e, inner));
                (Def::Elem(Scalar::Powf(Box::new(b), Box::new(e))), "pow", None)
            }
            (Atom::Sum { ix, dim, body }, Holds::Value) => {
                let def = self.reduction(RedOp::Sum, (*ix, dim), inner, |x| x, body);
                (def, "sum", None)
            }
            (Atom::Lse { ix, dim, body }, Holds::Max) => {
                let def = self.reduction(RedOp::Max, (*ix, dim), inner, |x| x, body);
                (def, "max", None)
            }
            (Atom::Lse { ix, dim, body }, Holds::SumExp) => {
                let max = self.temp(Holds::Max, a, inner);
                let shifted = |x| {
                    Scalar::ExpShifted(Box::new(Scalar::Sub(Box::new(x), Box::new(max))))
                };
                let def = self.reduction(RedOp::Sum, (*ix, dim), inner, shifted, body);
                (def, "sumexp", None)
            }
            (Atom::Lse { .. }, Holds::Value) => {
                let max = self.temp(Holds::Max, a, inner);
                let sum = self.temp(Holds::SumExp, a, inner);
                let lse = Scalar::Sum(vec![max, Scalar::Ln(Box::new(sum))]);
                (Def::Elem(lse), "lse", None)
            }
            (Atom::Softmax { ix, dim, body, at }, Holds::Value) => {
                let lse = Atom::Lse {
                    ix: *ix,
                    dim: dim.clone(),
                    body: body.clone(),
                };
                let sumexp_read = self.temp(Holds::SumExp, &lse, inner);
                let (Scalar::Temp(sumexp)
                | Scalar::Load(Access {
                    array: Array::Temp(sumexp),
                    ..
                })) = sumexp_read
                else {
                    unreachable!("a sum of exponentials is a temporary")
                };
                let lse = self.temp(Holds::Value, &lse, inner);
                let x = self.poly(&body.rename(*ix, *at), inner);
                let p = Scalar::ExpShifted(Box::new(Scalar::Sub(Box::new(x), Box::new(lse))));
                (Def::Elem(p), "p", Some((sumexp, sumexp_read)))
            }
            _ => unreachable!("simple atoms have no temporary"),
        }
    }

    /// `op` over `ix < dim` of `summand(body)`, in the nest `inner`.
    fn reduction(
        &mut self,
        op: RedOp,
        (ix, dim): (Ix, &Dim),
        inner: &Env,
        summand: impl FnOnce(Scalar) -> Scalar,
        body: &Poly,
    ) -> Def {
        let v = self.var();
        let mut env = inner.clone();
        env.push((ix, v, dim.clone()));
        let x = self.poly(body, &env);
        Def::Reduce {
            op,
            var: v,
            dim: dim.clone(),
            body: summand(x),
        }
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
                s = Stmt::plain_loop(v, d, vec![s]);
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
