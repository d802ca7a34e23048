//! Matrix products out of row loops.
//!
//! After fusion a batched kernel is one loop over the rows `r` of its data,
//! and the matrix products of its formula sit inside it as loop nests that
//! touch a whole matrix per row:
//!
//! * `T[a, b] += U(r, a) · V(r, b) · s(r)`, a rank-one update per row: the
//!   backward product `Xᵀ G` of a layer, the Gauss–Newton sum `Xᵀ D X`;
//! * `T[r, b] += U(r, a) · V(a, b)` summed over `a`, one row of a forward
//!   product `X @ W`.
//!
//! Written so, every multiply-add loads and stores an entry of `T` (a
//! `d × d` Hessian is a pass over memory per row). This pass takes each
//! such nest out of the row loop as one [`Stmt::MatMul`], which the
//! emitter prints as a call of the register-blocked runtime helper `gemm`:
//!
//! * a rank-one update becomes `T += Σ_r s_r U_r ⊗ V_r` after the loop.
//!   A factor that is an input (or is computed before the loop) is read in
//!   place; one computed in the loop (the per-row gradient `G_r` of a
//!   softmax layer) is stored per row in a new `rows × len` temporary by
//!   the loop instead, as is a per-row scale that is not already an
//!   array. When both factors are the same operand (`Xᵀ diag(s) X`) the
//!   product is marked symmetric: half the blocks, the other half mirrored;
//! * a forward product whose factors are not written in the loop moves in
//!   front of it, whole.
//!
//! A nest qualifies only when its target is written by it alone (so it
//! starts at zero) and is not read in the loop, and only when the product
//! is not tiny (fixed lengths below 4,096 multiply-adds stay loops).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::codegen::loops::passes::fuse::{accesses, Target};
use crate::codegen::loops::*;
use crate::ir::Dim;

/// Products of fixed lengths with fewer multiply-adds stay loops: packing
/// panels would cost more than it saves.
const SMALL: usize = 4096;

impl Body {
    /// Takes the matrix products out of every top-level row loop.
    pub(crate) fn matrix_products(&mut self, stmts: &mut Vec<Stmt>) {
        let mut k = 0;
        while k < stmts.len() {
            if !matches!(stmts[k], Stmt::Loop { .. }) {
                k += 1;
                continue;
            }
            let writes = write_counts(stmts);
            let Stmt::Loop { var, dim, body, .. } = &mut stmts[k] else {
                unreachable!("checked just above")
            };
            let (r, m) = (*var, dim.clone());
            let (mut around, after) = self.take_products(r, &m, body, &writes);
            if !body.is_empty() {
                around.push(stmts[k].clone());
            }
            around.extend(after);
            let n = around.len();
            stmts.splice(k..k + 1, around);
            k += n;
        }
    }

    /// The products of one row loop's body: (statements for before the
    /// loop, statements for after it); the body is rewritten in place.
    fn take_products(
        &mut self,
        r: Var,
        m: &Dim,
        body: &mut Vec<Stmt>,
        writes: &[(Target, usize)],
    ) -> (Vec<Stmt>, Vec<Stmt>) {
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut j = 0;
        while j < body.len() {
            if let Some(nest) = Nest::of(&body[j], writes) {
                let in_loop = touched(body, true);
                let read_so_far = touched(&body[..j], false);
                let read_in_loop = touched(body, false);
                if nest.out_vars() == BTreeSet::from([nest.a.0, nest.b.0])
                    && !read_in_loop.contains(&Target::Array(nest.out.array.clone()))
                {
                    let mut reads = HashMap::new();
                    body.iter().for_each(|s| count_stmt(s, &mut Vec::new(), &mut reads));
                    if let Some((replace, product)) = self.rank_one(r, m, &nest, &in_loop, &reads) {
                        body.splice(j..j + 1, replace.iter().cloned());
                        j += replace.len();
                        after.push(product);
                        continue;
                    }
                } else if !read_so_far.contains(&Target::Array(nest.out.array.clone())) {
                    if let Some(product) = forward(r, m, &nest, &in_loop) {
                        body.remove(j);
                        before.push(product);
                        continue;
                    }
                }
            }
            j += 1;
        }
        (before, after)
    }

    /// `T[a, b] += U(r, a)·V(r, b)·s(r)` as a product after the loop, and
    /// what replaces the nest in the loop (the factors it stores per row).
    fn rank_one(
        &mut self,
        r: Var,
        m: &Dim,
        nest: &Nest,
        in_loop: &HashSet<Target>,
        reads: &HashMap<TempId, Vec<bool>>,
    ) -> Option<(Vec<Stmt>, Stmt)> {
        let (a, b) = (nest.a.0, nest.b.0);
        if small(&[m, &nest.a.1, &nest.b.1]) {
            return None;
        }
        let (mut us, mut vs, mut ss) = split_factors(nest, r)?;
        let direct = |fs: &[Scalar], x: Var| direct_operand(fs, r, x, in_loop);
        let (mut u, mut v) = (direct(&us, a), direct(&vs, b));
        let mut pre = Vec::new();
        let mut in_a = nest.prefix.clone();
        // The scale joins a factor that is stored anyway.
        if u.is_none() {
            us.append(&mut ss);
        } else if v.is_none() {
            vs.append(&mut ss);
        }
        let scale = if ss.is_empty() {
            None
        } else if let Some(s) = direct(&ss, r).filter(|s| s.idx.len() == 1) {
            Some(s)
        } else {
            let s = self.per_row(r, m, None, "scale");
            pre.push(store(&s, &ss));
            Some(s)
        };
        if v.is_none() {
            let acc = self.per_row(r, m, Some(nest.b.clone()), "v");
            pre.push(Stmt::plain_loop(b, nest.b.1.clone(), vec![store(&acc, &vs)]));
            v = Some(acc);
        }
        if u.is_none() {
            let acc = self.per_row(r, m, Some(nest.a.clone()), "u");
            if !self.store_in_place(&mut in_a, &us, &acc, reads) {
                in_a.push(store(&acc, &us));
            }
            u = Some(acc);
        }
        let (u, v) = (u?, v?);
        let symmetric = scale_free_equal(&u, &v, a, b) && nest.a.1 == nest.b.1;
        if !in_a.is_empty() {
            pre.push(Stmt::plain_loop(a, nest.a.1.clone(), in_a));
        }
        let mut summand = vec![Scalar::Load(u), Scalar::Load(v)];
        summand.extend(scale.map(Scalar::Load));
        let product = Stmt::MatMul {
            sum: (r, m.clone()),
            left: nest.a.clone(),
            right: nest.b.clone(),
            out: nest.out.clone(),
            summand: Scalar::Product(summand),
            symmetric,
        };
        Some((pre, product))
    }

    /// When the factor `us` is a one-row buffer `T[a]` that the end of
    /// `in_a` stores and nothing else reads, that store writes the row of
    /// `acc` instead (`acc[r, a] = …`, not `T[a] = …; acc[r, a] = T[a]`),
    /// and `T` is gone.
    fn store_in_place(
        &mut self,
        in_a: &mut [Stmt],
        us: &[Scalar],
        acc: &Access,
        reads: &HashMap<TempId, Vec<bool>>,
    ) -> bool {
        let [Scalar::Load(Access {
            array: Array::Temp(t),
            idx,
        })] = us
        else {
            return false;
        };
        let Some(Stmt::Store {
            place: Place::Elem(place),
            add: false,
            ..
        }) = in_a.last_mut()
        else {
            return false;
        };
        if place.array != Array::Temp(*t) || place.idx != *idx || reads.get(t).map(Vec::len) != Some(1) {
            return false;
        }
        *place = acc.clone();
        self.temps[*t].live = false;
        true
    }

    /// A new temporary over the rows (and `x`), stored by the row loop.
    fn per_row(&mut self, r: Var, m: &Dim, x: Option<(Var, Dim)>, hint: &'static str) -> Access {
        let mut idx = vec![(r, m.clone())];
        idx.extend(x);
        let id = self.temps.push(Temp {
            vars: idx.clone(),
            def: Def::Elem(Scalar::Num(0.0)),
            hint,
            live: true,
            accumulated: false,
        });
        Access {
            array: Array::Temp(id),
            idx,
        }
    }
}

/// `T[r, b] += U(r, a)·V(a, b)` summed over `a`, with neither factor
/// written in the loop: the whole product, for before the loop.
fn forward(r: Var, m: &Dim, nest: &Nest, in_loop: &HashSet<Target>) -> Option<Stmt> {
    let out_vars = nest.out_vars();
    let (w, s) = if out_vars == BTreeSet::from([r, nest.b.0]) {
        (nest.b.clone(), nest.a.clone())
    } else if out_vars == BTreeSet::from([r, nest.a.0]) {
        (nest.a.clone(), nest.b.clone())
    } else {
        return None;
    };
    if !nest.prefix.is_empty() || small(&[m, &w.1, &s.1]) {
        return None;
    }
    let (mut left, mut right, mut scale) = (0, 0, 0);
    for f in &nest.factors {
        let Scalar::Load(acc) = f else { return None };
        if acc.array == Array::Out || in_loop.contains(&Target::Array(acc.array.clone())) {
            return None;
        }
        let vars = vars_of(f);
        if !vars.iter().all(|v| [r, w.0, s.0].contains(v)) {
            return None;
        }
        match (vars.contains(&r), vars.contains(&w.0)) {
            (true, true) => return None,
            (true, false) => left += 1,
            (false, true) => right += 1,
            (false, false) if acc.idx.len() == 1 => scale += 1,
            (false, false) => return None,
        }
    }
    if (left, right) != (1, 1) || scale > 1 {
        return None;
    }
    Some(Stmt::MatMul {
        sum: s,
        left: (r, m.clone()),
        right: w,
        out: nest.out.clone(),
        summand: Scalar::Product(nest.factors.clone()),
        symmetric: false,
    })
}

/// A two-loop nest `for a { prefix…; for b { T[…] += factors } }` whose
/// target `T` is an array temporary that nothing else writes.
struct Nest {
    a: (Var, Dim),
    b: (Var, Dim),
    /// Statements of the outer loop before the inner one.
    prefix: Vec<Stmt>,
    out: Access,
    factors: Vec<Scalar>,
}

impl Nest {
    fn of(s: &Stmt, writes: &[(Target, usize)]) -> Option<Nest> {
        let Stmt::Loop {
            var: a,
            dim: da,
            body,
            ..
        } = s
        else {
            return None;
        };
        let (
            Stmt::Loop {
                var: b,
                dim: db,
                body: inner,
                ..
            },
            prefix,
        ) = body.split_last()?
        else {
            return None;
        };
        let [Stmt::Store {
            place: Place::Elem(out),
            add: true,
            value,
        }] = &inner[..]
        else {
            return None;
        };
        let Array::Temp(_) = out.array else {
            return None;
        };
        let target = Target::Array(out.array.clone());
        if writes.iter().find(|(t, _)| *t == target).map(|(_, n)| *n) != Some(1)
            || touched(prefix, true).contains(&target)
        {
            return None;
        }
        let mut factors = Vec::new();
        flatten_product(value, &mut factors);
        Some(Nest {
            a: (*a, da.clone()),
            b: (*b, db.clone()),
            prefix: prefix.to_vec(),
            out: out.clone(),
            factors,
        })
    }

    fn out_vars(&self) -> BTreeSet<Var> {
        self.out.idx.iter().map(|(v, _)| *v).collect()
    }
}

/// `place = Π factors`.
fn store(place: &Access, factors: &[Scalar]) -> Stmt {
    Stmt::Store {
        place: Place::Elem(place.clone()),
        add: false,
        value: match factors {
            [one] => one.clone(),
            more => Scalar::Product(more.to_vec()),
        },
    }
}

/// Whether `u` over `a` is `v` over `b`: one operand on both sides.
fn scale_free_equal(u: &Access, v: &Access, a: Var, b: Var) -> bool {
    u.array == v.array
        && u.idx.len() == v.idx.len()
        && u.idx
            .iter()
            .zip(&v.idx)
            .all(|((x, dx), (y, dy))| dx == dy && (x == y || (*x == a && *y == b)))
}

/// Whether every length is fixed and their product below [`SMALL`].
fn small(dims: &[&Dim]) -> bool {
    let mut n = 1usize;
    for d in dims {
        match d {
            Dim::Fixed(k) => n = n.saturating_mul(*k),
            Dim::Named(_) => return false,
        }
    }
    n < SMALL
}

/// The loop variables an expression reads with.
fn vars_of(x: &Scalar) -> BTreeSet<Var> {
    let mut out = BTreeSet::new();
    visit(x, &mut |e| match e {
        Scalar::Load(a) => out.extend(a.idx.iter().map(|(v, _)| *v)),
        Scalar::Delta(p, q) => out.extend([*p, *q]),
        _ => {}
    });
    out
}

/// What an expression reads.
fn targets_read(x: &Scalar) -> HashSet<Target> {
    let mut out = Vec::new();
    super::fuse::scalar_reads(x, &mut out);
    out.into_iter().map(|(t, _, _)| t).collect()
}

/// What statements write (`write`) or read.
fn touched(stmts: &[Stmt], write: bool) -> HashSet<Target> {
    let mut out = Vec::new();
    stmts.iter().for_each(|s| accesses(s, &mut out));
    out.into_iter()
        .filter(|(_, _, w)| *w == write)
        .map(|(t, _, _)| t)
        .collect()
}

/// How many statements write each target, over a whole body.
fn write_counts(stmts: &[Stmt]) -> Vec<(Target, usize)> {
    fn go(s: &Stmt, out: &mut Vec<(Target, usize)>) {
        if let Stmt::Loop { body, .. } = s {
            body.iter().for_each(|b| go(b, out));
            return;
        }
        for t in touched(std::slice::from_ref(s), true) {
            match out.iter_mut().find(|(u, _)| *u == t) {
                Some((_, n)) => *n += 1,
                None => out.push((t, 1)),
            }
        }
    }
    let mut out = Vec::new();
    stmts.iter().for_each(|s| go(s, &mut out));
    out
}

/// The factors of a rank-one nest's summand by what they read besides the
/// row `r`: `a` only (`U`), `b` only (`V`), neither (the scale `s`).
/// None when a factor reads both, or another variable, or (not reading
/// `a`, so stored before the loop over `a`) something that loop writes.
fn split_factors(nest: &Nest, r: Var) -> Option<(Vec<Scalar>, Vec<Scalar>, Vec<Scalar>)> {
    let (a, b) = (nest.a.0, nest.b.0);
    let in_prefix = touched(&nest.prefix, true);
    let (mut us, mut vs, mut ss) = (Vec::new(), Vec::new(), Vec::new());
    for f in &nest.factors {
        let vars = vars_of(f);
        if !vars.iter().all(|v| [r, a, b].contains(v)) {
            return None;
        }
        match (vars.contains(&a), vars.contains(&b)) {
            (true, true) => return None,
            (true, false) => us.push(f.clone()),
            (false, true) => vs.push(f.clone()),
            (false, false) => ss.push(f.clone()),
        }
        if !vars.contains(&a) && targets_read(f).iter().any(|t| in_prefix.contains(t)) {
            return None;
        }
    }
    (!us.is_empty() && !vs.is_empty()).then_some((us, vs, ss))
}

/// The operand the factors `fs` already are, when they are one read of an
/// input over the row `r` (at most once) and `x` (once) that the row loop
/// does not write: the product reads it in place.
fn direct_operand(fs: &[Scalar], r: Var, x: Var, in_loop: &HashSet<Target>) -> Option<Access> {
    match fs {
        [Scalar::Load(acc)]
            if acc.array != Array::Out
                && !in_loop.contains(&Target::Array(acc.array.clone()))
                && acc.idx.iter().all(|(v, _)| *v == r || *v == x)
                && acc.idx.iter().filter(|(v, _)| *v == x).count() == 1
                && acc.idx.iter().filter(|(v, _)| *v == r).count() <= 1 =>
        {
            Some(acc.clone())
        }
        _ => None,
    }
}
