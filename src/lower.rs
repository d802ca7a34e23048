//! Shaped expressions to the index IR: every vector or matrix expression is
//! lowered at given free indices, so `z + b` at `i` is `z_i + b_i` and
//! `X @ W` at `(r, c)` is `Σ_k X_rk W_kc`.

use crate::ast::BinOp;
use crate::ir::{fresh, Dim, Fun, Ix, Poly};
use crate::shape::{Builtin, Shape, TExpr, TKind};

/// Lowers `e` at the indices `idx` (one per axis of its shape).
pub fn lower(e: &TExpr, idx: &[Ix]) -> Poly {
    debug_assert_eq!(idx.len(), e.shape.rank());
    match &e.kind {
        TKind::Num(v) => Poly::constant(*v),
        TKind::Dim(d) => Poly::dim(d),
        TKind::Var(name) => Poly::var(name, idx.to_vec()),
        TKind::Neg(x) => lower(x, idx).neg(),
        TKind::Bin(op, a, b) => {
            if *op == BinOp::MatMul {
                return matmul(a, b, idx);
            }
            let la = lower(a, trailing(idx, a.shape.rank()));
            let lb = lower(b, trailing(idx, b.shape.rank()));
            match op {
                BinOp::Add => la.add(&lb),
                BinOp::Sub => la.sub(&lb),
                BinOp::Mul => la.mul(&lb),
                BinOp::Div => la.mul(&lb.powf(-1.0)),
                BinOp::Pow => la.pow(&lb),
                BinOp::MatMul => unreachable!(),
            }
        }
        TKind::Call(b, args) => call(*b, args, idx),
    }
}

/// The indices a broadcast operand of rank `r` sees: the trailing ones.
fn trailing(idx: &[Ix], r: usize) -> &[Ix] {
    &idx[idx.len() - r..]
}

fn matmul(a: &TExpr, b: &TExpr, idx: &[Ix]) -> Poly {
    let k = fresh();
    let (ai, bi, dim): (Vec<Ix>, Vec<Ix>, Dim) = match (&a.shape, &b.shape) {
        (Shape::Mat(_, d), Shape::Mat(..)) => (vec![idx[0], k], vec![k, idx[1]], d.clone()),
        (Shape::Mat(_, d), Shape::Vec(_)) => (vec![idx[0], k], vec![k], d.clone()),
        (Shape::Vec(d), Shape::Mat(..)) => (vec![k], vec![k, idx[0]], d.clone()),
        (Shape::Vec(d), Shape::Vec(_)) => (vec![k], vec![k], d.clone()),
        _ => unreachable!("shapes are checked before lowering"),
    };
    Poly::sum_over(k, &dim, &lower(a, &ai).mul(&lower(b, &bi)))
}

/// `Σ` over every entry of `e`.
fn sum_all(e: &TExpr, f: impl Fn(&[Ix]) -> Poly) -> Poly {
    let dims = e.shape.dims();
    let idx: Vec<Ix> = dims.iter().map(|_| fresh()).collect();
    let mut p = f(&idx);
    for (k, d) in idx.iter().zip(&dims).rev() {
        p = Poly::sum_over(*k, d, &p);
    }
    p
}

fn call(b: Builtin, args: &[TExpr], idx: &[Ix]) -> Poly {
    let x = &args[0];
    match b {
        Builtin::Elem(f) => Poly::func(f, lower(x, idx)),
        Builtin::Sqrt => lower(x, idx).powf(0.5),
        Builtin::Sum => sum_all(x, |i| lower(x, i)),
        Builtin::Mean => {
            let size = x
                .shape
                .dims()
                .iter()
                .fold(Poly::constant(1.0), |acc, d| acc.mul(&Poly::dim(d)));
            sum_all(x, |i| lower(x, i)).mul(&size.powf(-1.0))
        }
        Builtin::Dot => {
            let y = &args[1];
            sum_all(x, |i| lower(x, i).mul(&lower(y, i)))
        }
        Builtin::LogSumExp => match &x.shape {
            Shape::Mat(m, _) => {
                // log Σ_r Σ_c exp(x_rc) = log Σ_r exp(lse_c(x_r·)): row-wise
                // logsumexp keeps every exponential max-shifted.
                let r = fresh();
                let row_lse = row_lse(x, r);
                let s = fresh();
                Poly::lse(s, m, row_lse.rename(r, s))
            }
            _ => row_lse(x, NO_ROW),
        },
        Builtin::Softmax => {
            let (row, at, dim) = last_axis(x, idx);
            let k = fresh();
            Poly::softmax(k, &dim, lower(x, &with_row(row, k)), at)
        }
        Builtin::LogSoftmax => {
            // log_softmax(x)_i = x_i - logsumexp(x): computed directly,
            // never as the log of a softmax.
            let (row, _, _) = last_axis(x, idx);
            lower(x, idx).sub(&row_lse(x, row.unwrap_or(NO_ROW)))
        }
        Builtin::Xent => {
            let q = &args[1];
            match &x.shape {
                Shape::Mat(m, _) => {
                    let r = fresh();
                    let row = xent_row(x, q, Some(r));
                    Poly::sum_over(r, m, &row)
                }
                _ => xent_row(x, q, None),
            }
        }
        Builtin::Transpose => match &x.shape {
            Shape::Mat(..) => lower(x, &[idx[1], idx[0]]),
            _ => lower(x, idx),
        },
        Builtin::Diag => match &x.shape {
            Shape::Vec(_) => lower(x, &idx[..1]).mul(&Poly::delta(idx[0], idx[1])),
            _ => lower(x, &[idx[0], idx[0]]),
        },
        Builtin::Outer => lower(x, &idx[..1]).mul(&lower(&args[1], &idx[1..])),
    }
}

/// Marker for "no row index" (vectors).
const NO_ROW: Ix = Ix::MAX;

fn with_row(row: Option<Ix>, k: Ix) -> Vec<Ix> {
    match row {
        Some(r) => vec![r, k],
        None => vec![k],
    }
}

/// For a vector: `(None, idx[0], n)`; for a matrix: `(Some(row), col, n)`.
fn last_axis(x: &TExpr, idx: &[Ix]) -> (Option<Ix>, Ix, Dim) {
    match &x.shape {
        Shape::Mat(_, n) => (Some(idx[0]), idx[1], n.clone()),
        Shape::Vec(n) => (None, idx[0], n.clone()),
        Shape::Scalar => unreachable!("checked"),
    }
}

/// `logsumexp` of a vector, or of row `row` of a matrix.
fn row_lse(x: &TExpr, row: Ix) -> Poly {
    let (dim, row) = match &x.shape {
        Shape::Mat(_, n) => (n.clone(), Some(row)),
        Shape::Vec(n) => (n.clone(), None),
        Shape::Scalar => unreachable!("checked"),
    };
    let k = fresh();
    Poly::lse(k, &dim, lower(x, &with_row(row, k)))
}

/// `logsumexp(z)·sum(q) − dot(z, q)` for a vector or one matrix row.
fn xent_row(z: &TExpr, q: &TExpr, row: Option<Ix>) -> Poly {
    let dim = match &z.shape {
        Shape::Mat(_, n) | Shape::Vec(n) => n.clone(),
        Shape::Scalar => unreachable!("checked"),
    };
    let k = fresh();
    let lse = Poly::lse(k, &dim, lower(z, &with_row(row, k)));
    let k = fresh();
    let sum_q = Poly::sum_over(k, &dim, &lower(q, &with_row(row, k)));
    let k = fresh();
    let dot = Poly::sum_over(
        k,
        &dim,
        &lower(z, &with_row(row, k)).mul(&lower(q, &with_row(row, k))),
    );
    lse.mul(&sum_q).sub(&dot)
}

/// The elementwise derivative of `f` at `u`, as a polynomial in `u`.
pub fn fun_derivative(f: Fun, u: &Poly) -> Poly {
    let call = |g: Fun| Poly::func(g, u.clone());
    match f {
        Fun::Exp => call(Fun::Exp),
        Fun::Log => u.powf(-1.0),
        Fun::Sin => call(Fun::Cos),
        Fun::Cos => call(Fun::Sin).neg(),
        // 1 - tanh²
        Fun::Tanh => Poly::constant(1.0).sub(&call(Fun::Tanh).powf(2.0)),
        // σ (1 - σ)
        Fun::Sigmoid => call(Fun::Sigmoid).sub(&call(Fun::Sigmoid).powf(2.0)),
        Fun::Softplus => call(Fun::Sigmoid),
    }
}
