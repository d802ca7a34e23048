//! Shape inference over one expression: each node's shape from its
//! children's (broadcasting, `@`, the built-ins' rules), and the shapes
//! of undeclared variables from what their uses require.

use std::collections::HashMap;

use super::*;
use crate::ast::{BinOp, Expr, ExprKind, Span};
use crate::diag::{Error, Result};

pub(super) struct Infer {
    pub(super) decls: HashMap<String, (Shape, Span)>,
    pub(super) dim_names: Vec<String>,
    /// Shapes learned for undeclared variables.
    pub(super) shapes: HashMap<String, Shape>,
    /// Variables in order of first appearance.
    pub(super) order: Vec<String>,
    pub(super) implicit_used: bool,
}

/// Shape of a subexpression during inference: known, or decided by
/// undeclared variables that could still be anything.
#[derive(Clone, Debug)]
pub(super) enum Inferred {
    Known(Shape),
    Open(Vec<String>),
}

impl Infer {
    pub(super) fn is_dim_name(&self, n: &str) -> bool {
        !self.decls.contains_key(n) && self.dim_names.iter().any(|d| d == n)
    }

    /// Variables ordered by where they first appear in the source text
    /// (inlined arguments keep their call-site spans, so `nll(z, y)` puts
    /// `z` first whatever the body of `nll` does).
    pub(super) fn collect_vars(&mut self, e: &Expr) {
        let mut seen: Vec<(usize, String)> = Vec::new();
        self.collect_spans(e, &mut seen);
        seen.sort();
        for (_, n) in seen {
            if !self.order.contains(&n) {
                self.order.push(n);
            }
        }
    }

    pub(super) fn collect_spans(&self, e: &Expr, out: &mut Vec<(usize, String)>) {
        match &e.kind {
            ExprKind::Name(n) => {
                if !self.is_dim_name(n) {
                    out.push((e.span.start, n.clone()));
                }
            }
            ExprKind::Num(_) => {}
            ExprKind::Neg(x) => self.collect_spans(x, out),
            ExprKind::Binary(_, a, b) => {
                self.collect_spans(a, out);
                self.collect_spans(b, out);
            }
            ExprKind::Call { args, .. } => args.iter().for_each(|a| self.collect_spans(a, out)),
        }
    }

    pub(super) fn var_shape(&self, n: &str) -> Option<Shape> {
        self.decls
            .get(n)
            .map(|(s, _)| s.clone())
            .or_else(|| self.shapes.get(n).cloned())
    }

    pub(super) fn implicit_vec(&mut self) -> Shape {
        self.implicit_used = true;
        Shape::Vec(Dim::Named(IMPLICIT_DIM.into()))
    }

    /// Gives every open variable the shape `s`.
    pub(super) fn assign(&mut self, vars: &[String], s: &Shape) {
        for v in vars {
            if self.var_shape(v).is_none() {
                self.shapes.insert(v.clone(), s.clone());
            }
        }
    }

    /// Learning passes until one learns nothing new (each productive pass
    /// fixes at least one variable, so there are at most one more than
    /// there are variables).
    pub(super) fn learn_all(&mut self, body: &Expr) {
        loop {
            let before = self.shapes.len();
            let _ = self.learn(body);
            if self.shapes.len() == before {
                break;
            }
        }
    }

    /// One bottom-up learning pass over `e`: each node is visited once, its
    /// children's shapes (or the open variables deciding them) combined by
    /// the rule of its operation. Where a use fixes the shape of open
    /// variables they are assigned, and that child is looked at again (at
    /// most once per assignment, so a pass is linear in the tree for each
    /// variable it learns).
    pub(super) fn learn(&mut self, e: &Expr) -> Inferred {
        match &e.kind {
            ExprKind::Num(_) => Inferred::Known(Shape::Scalar),
            ExprKind::Name(n) => {
                if self.is_dim_name(n) {
                    return Inferred::Known(Shape::Scalar);
                }
                match self.var_shape(n) {
                    Some(s) => Inferred::Known(s),
                    None => Inferred::Open(vec![n.clone()]),
                }
            }
            ExprKind::Neg(x) => self.learn(x),
            ExprKind::Binary(op, a, b) => self.learn_binary(*op, a, b),
            ExprKind::Call { name, args, .. } => self.learn_call(name, args),
        }
    }

    /// Two operands of one shape: an open side takes the other side's
    /// (non-scalar) shape, and is learned again.
    fn share(&mut self, (a, la): (&Expr, &mut Inferred), (b, lb): (&Expr, &mut Inferred)) {
        match (&*la, &*lb) {
            (Inferred::Known(s), Inferred::Open(v)) if *s != Shape::Scalar => {
                let (s, v) = (s.clone(), v.clone());
                self.assign(&v, &s);
                *lb = self.learn(b);
            }
            (Inferred::Open(v), Inferred::Known(s)) if *s != Shape::Scalar => {
                let (s, v) = (s.clone(), v.clone());
                self.assign(&v, &s);
                *la = self.learn(a);
            }
            _ => {}
        }
    }

    fn learn_binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Inferred {
        let (mut la, mut lb) = (self.learn(a), self.learn(b));
        if op != BinOp::MatMul {
            self.share((a, &mut la), (b, &mut lb));
        }
        match (la, lb) {
            (Inferred::Known(sa), Inferred::Known(sb)) => {
                let shape = if op == BinOp::MatMul {
                    matmul_dims(&sa, &sb)
                } else {
                    broadcast_dims(&sa, &sb)
                };
                shape.map_or(Inferred::Open(Vec::new()), Inferred::Known)
            }
            (Inferred::Open(mut v), Inferred::Open(w)) => {
                for x in w {
                    if !v.contains(&x) {
                        v.push(x);
                    }
                }
                Inferred::Open(v)
            }
            (Inferred::Open(v), _) | (_, Inferred::Open(v)) => Inferred::Open(v),
        }
    }

    fn learn_call(&mut self, name: &str, args: &[Expr]) -> Inferred {
        let (builtin, _) = Builtin::lookup(name).expect("inlining leaves only built-in calls");
        let mut learned: Vec<Inferred> = args.iter().map(|a| self.learn(a)).collect();
        // Arguments that must be tensors: open ones become implicit
        // vectors; two arguments of one shape share what is known.
        let tensor_args: &[usize] = match builtin {
            Builtin::Sum
            | Builtin::Mean
            | Builtin::LogSumExp
            | Builtin::Softmax
            | Builtin::LogSoftmax
            | Builtin::Transpose
            | Builtin::Diag => &[0],
            Builtin::Dot | Builtin::Xent | Builtin::Outer => &[0, 1],
            Builtin::Elem(_) | Builtin::Sqrt => &[],
        };
        if let (Builtin::Dot | Builtin::Xent, [l0, l1]) = (builtin, &mut learned[..]) {
            self.share((&args[0], l0), (&args[1], l1));
        }
        for &i in tensor_args {
            if let Inferred::Open(vars) = &learned[i] {
                if !vars.is_empty() {
                    let vars = vars.clone();
                    let v = self.implicit_vec();
                    self.assign(&vars, &v);
                    learned[i] = self.learn(&args[i]);
                }
            }
        }
        let reduces = matches!(
            builtin,
            Builtin::Sum | Builtin::Mean | Builtin::Dot | Builtin::LogSumExp | Builtin::Xent
        );
        let mut shapes = Vec::new();
        let mut open = Vec::new();
        for l in learned {
            match l {
                Inferred::Known(s) => shapes.push(s),
                Inferred::Open(v) => {
                    for x in v {
                        if !open.contains(&x) {
                            open.push(x);
                        }
                    }
                }
            }
        }
        if reduces {
            // Reductions hide the shapes of their arguments.
            return Inferred::Known(Shape::Scalar);
        }
        if shapes.len() < args.len() {
            return Inferred::Open(open);
        }
        call_dims(builtin, &shapes).map_or(Inferred::Open(Vec::new()), Inferred::Known)
    }

    /// Shapes `e` once learning is done: variables still open are scalars.
    pub(super) fn infer(&mut self, e: &Expr) -> Result<TExpr> {
        let span = e.span.clone();
        let mk = |kind, shape| TExpr {
            kind,
            shape,
            span: span.clone(),
        };
        match &e.kind {
            ExprKind::Num(v) => Ok(mk(TKind::Num(*v), Shape::Scalar)),
            ExprKind::Name(n) => {
                if self.is_dim_name(n) {
                    return Ok(mk(TKind::Dim(Dim::Named(n.as_str().into())), Shape::Scalar));
                }
                let s = self.var_shape(n).unwrap_or(Shape::Scalar);
                Ok(mk(TKind::Var(n.clone()), s))
            }
            ExprKind::Neg(x) => {
                let x = self.infer(x)?;
                let s = x.shape.clone();
                Ok(mk(TKind::Neg(Box::new(x)), s))
            }
            ExprKind::Binary(op, a, b) => {
                let (ta, tb) = (self.infer(a)?, self.infer(b)?);
                let shape = if *op == BinOp::MatMul {
                    matmul_shape(&ta, &tb, &span)?
                } else {
                    broadcast(&ta, &tb, *op)?
                };
                Ok(mk(TKind::Bin(*op, Box::new(ta), Box::new(tb)), shape))
            }
            ExprKind::Call {
                name,
                args,
                name_span,
            } => {
                let (builtin, _) =
                    Builtin::lookup(name).expect("inlining leaves only built-in calls");
                let targs: Vec<TExpr> =
                    args.iter().map(|a| self.infer(a)).collect::<Result<_>>()?;
                let shape = call_shape(builtin, name, name_span, &targs, &span)?;
                Ok(mk(TKind::Call(builtin, targs), shape))
            }
        }
    }
}

/// A shape standing alone, for the shape rules during learning (which
/// only need to know whether a combination is allowed and what it gives).
fn bare(shape: &Shape) -> TExpr {
    TExpr {
        kind: TKind::Num(0.0),
        shape: shape.clone(),
        span: 0..0,
    }
}

fn broadcast_dims(a: &Shape, b: &Shape) -> Option<Shape> {
    broadcast(&bare(a), &bare(b), BinOp::Add).ok()
}

fn matmul_dims(a: &Shape, b: &Shape) -> Option<Shape> {
    matmul_shape(&bare(a), &bare(b), &(0..0)).ok()
}

fn call_dims(b: Builtin, args: &[Shape]) -> Option<Shape> {
    let args: Vec<TExpr> = args.iter().map(bare).collect();
    call_shape(b, "", &(0..0), &args, &(0..0)).ok()
}

fn describe(e: &TExpr) -> String {
    format!("{}", e.shape)
}

fn conflict(what: &str, a: &TExpr, b: &TExpr) -> Error {
    Error::at(
        a.span.clone(),
        format!(
            "shape conflict in {what}: {} and {}",
            describe(a),
            describe(b)
        ),
        format!("this is {}", describe(a)),
    )
    .with_spot(
        crate::diag::Source::Expr,
        b.span.clone(),
        format!("this is {}", describe(b)),
    )
}

/// NumPy broadcasting, restricted to the shapes of the language.
fn broadcast(a: &TExpr, b: &TExpr, op: BinOp) -> Result<Shape> {
    use Shape::*;
    let what = format!("`{}`", op.symbol());
    Ok(match (&a.shape, &b.shape) {
        (Scalar, s) | (s, Scalar) => s.clone(),
        (Vec(x), Vec(y)) if x == y => a.shape.clone(),
        (Mat(_, n), Vec(y)) if n == y => a.shape.clone(),
        (Vec(x), Mat(_, n)) if x == n => b.shape.clone(),
        (Mat(m1, n1), Mat(m2, n2)) if m1 == m2 && n1 == n2 => a.shape.clone(),
        _ => return Err(conflict(&what, a, b)),
    })
}

fn matmul_shape(a: &TExpr, b: &TExpr, span: &Span) -> Result<Shape> {
    use Shape::*;
    let inner = |x: &Dim, y: &Dim| -> Result<()> {
        if x == y {
            Ok(())
        } else {
            Err(conflict("`@` (inner dimensions differ)", a, b))
        }
    };
    match (&a.shape, &b.shape) {
        (Mat(m, k1), Mat(k2, n)) => inner(k1, k2).map(|_| Mat(m.clone(), n.clone())),
        (Mat(m, k1), Vec(k2)) => inner(k1, k2).map(|_| Vec(m.clone())),
        (Vec(k1), Mat(k2, n)) => inner(k1, k2).map(|_| Vec(n.clone())),
        (Vec(k1), Vec(k2)) => inner(k1, k2).map(|_| Scalar),
        _ => Err(Error::at(
            span.clone(),
            "`@` needs vectors or matrices on both sides",
            format!("{} @ {}", a.shape, b.shape),
        )),
    }
}

fn call_shape(
    b: Builtin,
    name: &str,
    name_span: &Span,
    args: &[TExpr],
    span: &Span,
) -> Result<Shape> {
    use Shape::*;
    let want = |what: &str, arg: &TExpr| {
        Err(Error::at(
            arg.span.clone(),
            format!("`{name}` needs {what}, but its argument is {}", arg.shape),
            format!("this is {}", arg.shape),
        )
        .with_spot(crate::diag::Source::Expr, name_span.clone(), "in this call"))
    };
    let _ = span;
    match b {
        Builtin::Elem(_) | Builtin::Sqrt => Ok(args[0].shape.clone()),
        Builtin::Sum | Builtin::Mean => Ok(Scalar),
        Builtin::LogSumExp => match args[0].shape {
            Scalar => want("a vector or matrix", &args[0]),
            _ => Ok(Scalar),
        },
        Builtin::Softmax | Builtin::LogSoftmax => match args[0].shape {
            Scalar => want("a vector or matrix", &args[0]),
            ref s => Ok(s.clone()),
        },
        Builtin::Dot => match (&args[0].shape, &args[1].shape) {
            (Vec(x), Vec(y)) if x == y => Ok(Scalar),
            (Vec(_), Vec(_)) => Err(conflict("`dot`", &args[0], &args[1])),
            (Vec(_), _) => want("two vectors", &args[1]),
            _ => want("two vectors", &args[0]),
        },
        Builtin::Xent => match (&args[0].shape, &args[1].shape) {
            (Scalar, _) => want("vectors or matrices", &args[0]),
            (x, y) if x == y => Ok(Scalar),
            _ => Err(conflict(
                "`xent` (logits and targets must have one shape)",
                &args[0],
                &args[1],
            )),
        },
        Builtin::Transpose => match &args[0].shape {
            Mat(m, n) => Ok(Mat(n.clone(), m.clone())),
            s => Ok(s.clone()),
        },
        Builtin::Diag => match &args[0].shape {
            Vec(n) => Ok(Mat(n.clone(), n.clone())),
            Mat(m, n) if m == n => Ok(Vec(n.clone())),
            _ => want("a vector or a square matrix", &args[0]),
        },
        Builtin::Outer => match (&args[0].shape, &args[1].shape) {
            (Vec(m), Vec(n)) => Ok(Mat(m.clone(), n.clone())),
            (Vec(_), _) => want("two vectors", &args[1]),
            _ => want("two vectors", &args[0]),
        },
    }
}
