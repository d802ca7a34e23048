//! Walkers over the loop IR: visiting, rewriting and renaming scalars,
//! statements and accesses.

use std::collections::BTreeSet;

use crate::codegen::loops::*;

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
pub(crate) fn flatten_product(x: &Scalar, out: &mut Vec<Scalar>) {
    match x {
        Scalar::Product(xs) => xs.iter().for_each(|y| flatten_product(y, out)),
        _ => out.push(x.clone()),
    }
}

/// Whether an expression is the same at every point of every loop: it
/// reads no array and no loop variable.
pub(crate) fn invariant(x: &Scalar) -> bool {
    let mut fixed = true;
    visit(x, &mut |e| {
        fixed &= !matches!(e, Scalar::Load(_) | Scalar::Delta(..));
    });
    fixed
}

/// Replaces each array read for which `f` gives an expression (which is
/// not visited again).
pub(crate) fn replace_loads(x: &mut Scalar, f: &impl Fn(&Access) -> Option<Scalar>) {
    if let Scalar::Load(a) = x {
        if let Some(y) = f(a) {
            *x = y;
        }
        return;
    }
    each_child_mut(x, &mut |y| replace_loads(y, f));
}

/// Calls `f` on each direct sub-expression.
pub(crate) fn each_child_mut(x: &mut Scalar, f: &mut impl FnMut(&mut Scalar)) {
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

/// Calls `f` on each direct sub-expression.
pub(crate) fn each_child<'s>(x: &'s Scalar, f: &mut impl FnMut(&'s Scalar)) {
    match x {
        Scalar::Sum(xs) | Scalar::Product(xs) => xs.iter().for_each(f),
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
    each_child(x, &mut |y| visit(y, f));
}

pub(crate) fn visit_mut(x: &mut Scalar, f: &mut impl FnMut(&mut Scalar)) {
    f(x);
    each_child_mut(x, &mut |y| visit_mut(y, f));
}

/// Calls `f` on every sub-expression of every expression in `s` and the
/// statements in it, outermost first.
pub fn visit_stmt<'s>(s: &'s Stmt, f: &mut impl FnMut(&'s Scalar)) {
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter().for_each(|b| visit_stmt(b, f))
        }
        Stmt::Symmetric { classes, .. } => classes.iter().for_each(|c| visit(&c.value, f)),
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            parts.iter().for_each(|p| visit(&p.body, f))
        }
        Stmt::Store { value, .. }
        | Stmt::Return(value)
        | Stmt::Scatter { value, .. }
        | Stmt::MatMul { summand: value, .. } => visit(value, f),
        Stmt::ZeroOut => {}
    }
}

/// Calls `f` on each top-level expression of `s` and the statements in it
/// (not their sub-expressions: see [`visit_stmt`]).
pub(crate) fn visit_top<'s>(s: &'s Stmt, f: &mut impl FnMut(&'s Scalar)) {
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter().for_each(|b| visit_top(b, f))
        }
        Stmt::Symmetric { classes, .. } => classes.iter().for_each(|c| f(&c.value)),
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            parts.iter().for_each(|p| f(&p.body))
        }
        Stmt::Store { value, .. }
        | Stmt::Return(value)
        | Stmt::Scatter { value, .. }
        | Stmt::MatMul { summand: value, .. } => f(value),
        Stmt::ZeroOut => {}
    }
}

/// [`visit_top`], mutably.
pub(crate) fn visit_scalars(s: &mut Stmt, f: &mut impl FnMut(&mut Scalar)) {
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter_mut().for_each(|b| visit_scalars(b, f))
        }
        Stmt::Symmetric { classes, .. } => classes.iter_mut().for_each(|c| f(&mut c.value)),
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
            parts.iter_mut().for_each(|p| f(&mut p.body))
        }
        Stmt::Store { value, .. }
        | Stmt::Return(value)
        | Stmt::Scatter { value, .. }
        | Stmt::MatMul { summand: value, .. } => f(value),
        Stmt::ZeroOut => {}
    }
}

/// Replaces reads of temporary `t` (nest `vars`) by its definition.
pub(crate) fn substitute(x: &mut Scalar, t: TempId, vars: &[Var], def: &Scalar) {
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

pub(crate) fn rename_vars(x: &mut Scalar, map: &[(Var, Var)]) {
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

pub(crate) fn rename_stmt(s: &mut Stmt, map: &[(Var, Var)]) {
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
        Stmt::Tile { a, b, body, .. } => {
            m(&mut a.0);
            m(&mut b.0);
            body.iter_mut().for_each(|s| rename_stmt(s, map));
        }
        Stmt::Symmetric { classes, .. } => {
            for c in classes {
                c.vars.iter_mut().for_each(|(v, _)| m(v));
                rename_vars(&mut c.value, map);
            }
        }
        Stmt::Reduce { var, parts, .. } | Stmt::Pass { var, parts, .. } => {
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
        Stmt::MatMul {
            sum,
            left,
            right,
            out,
            summand,
            ..
        } => {
            for (v, _) in [sum, left, right] {
                m(v);
            }
            out.idx.iter_mut().for_each(|(v, _)| m(v));
            rename_vars(summand, map);
        }
        Stmt::ZeroOut => {}
    }
}

/// Calls `f` on every access of a statement: loads, places, kept values.
pub(crate) fn visit_accesses(s: &mut Stmt, f: &mut impl FnMut(&mut Access)) {
    let in_scalar = |x: &mut Scalar, f: &mut dyn FnMut(&mut Access)| {
        visit_mut(x, &mut |e| {
            if let Scalar::Load(a) = e {
                f(a)
            }
        })
    };
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter_mut().for_each(|b| visit_accesses(b, f))
        }
        Stmt::Symmetric { classes, .. } => {
            classes.iter_mut().for_each(|c| in_scalar(&mut c.value, f))
        }
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
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
        Stmt::MatMul { out, summand, .. } => {
            in_scalar(summand, f);
            f(out);
        }
        Stmt::ZeroOut => {}
    }
}

/// Turns the zero-axis accesses of temporary `t` into a scalar.
pub(crate) fn scalar_temp(s: &mut Stmt, t: TempId) {
    let is_t = |a: &Access| a.array == Array::Temp(t) && a.idx.is_empty();
    let fix_place = |p: &mut Place| {
        if matches!(p, Place::Elem(a) if is_t(a)) {
            *p = Place::Temp(t);
        }
    };
    match s {
        Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => {
            body.iter_mut().for_each(|b| scalar_temp(b, t))
        }
        Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
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

/// The temporary `x` reads, if it is a read of one (a scalar temporary or
/// an element of a temporary array).
pub(crate) fn temp_read(x: &Scalar) -> Option<TempId> {
    match x {
        Scalar::Temp(t)
        | Scalar::Load(Access {
            array: Array::Temp(t),
            ..
        }) => Some(*t),
        _ => None,
    }
}

/// Temporaries an expression reads.
pub fn temps_read(x: &Scalar, out: &mut BTreeSet<TempId>) {
    visit(x, &mut |s| {
        if let Some(t) = temp_read(s) {
            out.insert(t);
        }
    });
}

/// A scalar expression's factor `base^e`.
pub(crate) fn power(base: Scalar, e: f64) -> Scalar {
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
