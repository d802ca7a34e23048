//! Names and shapes: inlines `let` and `def`, infers the shape of every
//! variable (declared, or what its use requires) and checks broadcasting.
//!
//! The result is a [`Typed`] program: one expression tree of built-in
//! operations, each node with its [`Shape`], and the variables in order of
//! first appearance.

use std::collections::HashMap;
use std::fmt;

use crate::ast::{BinOp, DimName, Expr, ExprKind, Program, Span, Statement, Type};
use crate::diag::{Error, Result};
use crate::ir::{Dim, Fun};

/// The built-in functions with their definitions, as `symdiff functions`
/// prints them.
pub const FUNCTIONS: &str = "\
elementwise (any shape):
  exp(x)  log(x)  sqrt(x)  sin(x)  cos(x)  tanh(x)
  sigmoid(x)       1 / (1 + exp(-x))
  softplus(x)      log(1 + exp(x)), without overflow
  x^c, x^y         powers
reductions (to a scalar):
  sum(x)           sum of all entries
  mean(x)          sum(x) / number of entries
  dot(x, y)        sum(x * y), two vectors
  logsumexp(x)     log(sum(exp(x))), shifted by the maximum
along the last axis (each row of a matrix):
  softmax(x)       exp(x) / sum(exp(x))
  log_softmax(x)   x - logsumexp(x)
losses:
  xent(z, q)       logsumexp(z)*sum(q) - dot(z, q) = -sum(q * log_softmax(z));
                   for matrices, the sum over rows
matrices:
  A @ B            product: mat·mat, mat·vec, vec·mat, vec·vec
  transpose(A)     A^T
  diag(v), diag(A) diagonal matrix of a vector / diagonal of a square matrix
  outer(u, v)      u v^T
";

/// The implicit length of vectors that no declaration sizes.
pub const IMPLICIT_DIM: &str = "n";

/// Largest number of nodes after inlining `let` and `def`.
pub const MAX_INLINED_NODES: usize = 200_000;

/// The shape of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A number.
    Scalar,
    /// A vector.
    Vec(Dim),
    /// A matrix (rows, columns).
    Mat(Dim, Dim),
}

impl Shape {
    /// Number of indices.
    pub fn rank(&self) -> usize {
        self.dims().len()
    }

    /// The lengths, outermost first.
    pub fn dims(&self) -> Vec<Dim> {
        match self {
            Shape::Scalar => vec![],
            Shape::Vec(d) => vec![d.clone()],
            Shape::Mat(a, b) => vec![a.clone(), b.clone()],
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Scalar => f.write_str("scalar"),
            Shape::Vec(d) => write!(f, "vec[{d}]"),
            Shape::Mat(a, b) => write!(f, "mat[{a}, {b}]"),
        }
    }
}

/// Built-in operations after name resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// An elementwise function.
    Elem(Fun),
    /// `sqrt`
    Sqrt,
    /// `sum`
    Sum,
    /// `mean`
    Mean,
    /// `dot`
    Dot,
    /// `logsumexp`
    LogSumExp,
    /// `softmax` along the last axis
    Softmax,
    /// `log_softmax` along the last axis
    LogSoftmax,
    /// `xent(z, q)`
    Xent,
    /// `transpose`
    Transpose,
    /// `diag`
    Diag,
    /// `outer`
    Outer,
}

impl Builtin {
    fn lookup(name: &str) -> Option<(Builtin, usize)> {
        if let Some(f) = Fun::from_name(name) {
            return Some((Builtin::Elem(f), 1));
        }
        Some(match name {
            "sqrt" => (Builtin::Sqrt, 1),
            "sum" => (Builtin::Sum, 1),
            "mean" => (Builtin::Mean, 1),
            "dot" => (Builtin::Dot, 2),
            "logsumexp" => (Builtin::LogSumExp, 1),
            "softmax" => (Builtin::Softmax, 1),
            "log_softmax" => (Builtin::LogSoftmax, 1),
            "xent" => (Builtin::Xent, 2),
            "transpose" => (Builtin::Transpose, 1),
            "diag" => (Builtin::Diag, 1),
            "outer" => (Builtin::Outer, 2),
            _ => return None,
        })
    }

    /// All names, for "did you mean" notes.
    pub const NAMES: &'static [&'static str] = &[
        "exp",
        "log",
        "sqrt",
        "sin",
        "cos",
        "tanh",
        "sigmoid",
        "softplus",
        "sum",
        "mean",
        "dot",
        "logsumexp",
        "softmax",
        "log_softmax",
        "xent",
        "transpose",
        "diag",
        "outer",
    ];
}

/// A resolved, shaped expression.
#[derive(Clone, Debug)]
pub struct TExpr {
    /// What it computes.
    pub kind: TKind,
    /// Its shape.
    pub shape: Shape,
    /// Where it came from.
    pub span: Span,
}

/// Resolved expression kinds.
#[derive(Clone, Debug)]
pub enum TKind {
    /// A literal.
    Num(f64),
    /// An input variable.
    Var(String),
    /// A dimension used as a number.
    Dim(Dim),
    /// Unary minus.
    Neg(Box<TExpr>),
    /// A binary operation.
    Bin(BinOp, Box<TExpr>, Box<TExpr>),
    /// A built-in call.
    Call(Builtin, Vec<TExpr>),
}

/// A program with names resolved and shapes known.
#[derive(Clone, Debug)]
pub struct Typed {
    /// The expression.
    pub body: TExpr,
    /// Input variables in order of first appearance, with shapes.
    pub vars: Vec<(String, Shape)>,
    /// Declared variables, in declaration order.
    pub declared: Vec<String>,
}

impl Typed {
    /// The variable to differentiate with respect to when none is named:
    /// the first declared one; without declarations, the first logits
    /// (an argument of softmax, log_softmax, logsumexp, or the first of
    /// xent) in order of appearance, so `-sum(q*log(softmax(z)))` is
    /// differentiated with respect to `z`, not its targets; else the first
    /// variable.
    pub fn default_wrt(&self) -> Option<String> {
        if let Some(d) = self.declared.first() {
            return Some(d.clone());
        }
        let mut logits: Vec<(usize, String)> = Vec::new();
        let mut stack = vec![(&self.body, false)];
        while let Some((e, inside)) = stack.pop() {
            match &e.kind {
                TKind::Var(n) if inside => logits.push((e.span.start, n.clone())),
                TKind::Num(_) | TKind::Var(_) | TKind::Dim(_) => {}
                TKind::Neg(x) => stack.push((x, inside)),
                TKind::Bin(_, a, b) => {
                    stack.push((a, inside));
                    stack.push((b, inside));
                }
                TKind::Call(f, args) => {
                    for (k, a) in args.iter().enumerate() {
                        let logit = match f {
                            Builtin::Softmax | Builtin::LogSoftmax | Builtin::LogSumExp => true,
                            Builtin::Xent => k == 0,
                            _ => false,
                        };
                        stack.push((a, inside || logit));
                    }
                }
            }
        }
        logits.sort();
        logits
            .into_iter()
            .map(|(_, n)| n)
            .next()
            .or_else(|| self.vars.first().map(|(n, _)| n.clone()))
    }

    /// The shape of variable `name`.
    pub fn var_shape(&self, name: &str) -> Option<&Shape> {
        self.vars.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    /// The symbolic dimensions in order of first appearance among the
    /// variables (then the result).
    pub fn symbolic_dims(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let shapes = self
            .vars
            .iter()
            .map(|(_, s)| s)
            .chain(std::iter::once(&self.body.shape));
        for s in shapes {
            for d in s.dims() {
                if let Dim::Named(n) = d {
                    if !out.iter().any(|o| **o == *n) {
                        out.push(n.to_string());
                    }
                }
            }
        }
        out
    }
}

/// Resolves names and infers shapes, where an undeclared variable whose use allows any shape
/// (only elementwise functions and arithmetic) takes the shape `hints`
/// gives it — `eval` passes the shapes of the values in `--at`, as NumPy
/// and JAX take them from the data.
pub fn check_with_hints(program: &Program, hints: &[(String, Shape)]) -> Result<Typed> {
    let mut decls: HashMap<String, (Shape, Span)> = HashMap::new();
    let mut dim_names: Vec<String> = Vec::new();
    let mut scope = Scope::default();
    for st in &program.statements {
        match st {
            Statement::Decl { name, ty, span } => {
                if decls.contains_key(name) {
                    return Err(Error::at(
                        span.clone(),
                        format!("`{name}` is declared twice"),
                        "second declaration",
                    ));
                }
                let shape = declared_shape(ty);
                for d in shape.dims() {
                    if let Dim::Named(s) = d {
                        if !dim_names.iter().any(|x| **x == *s) {
                            dim_names.push(s.to_string());
                        }
                    }
                }
                decls.insert(name.clone(), (shape, span.clone()));
            }
            Statement::Let { name, value, .. } => {
                let value = scope.inline(value, &HashMap::new(), None)?;
                scope.lets.insert(name.clone(), value);
            }
            Statement::Def {
                name,
                params,
                body,
                span,
            } => scope.define(name, params, body, span)?,
        }
    }
    let body = scope.inline(&program.body, &HashMap::new(), None)?;
    let declared: Vec<String> = program
        .statements
        .iter()
        .filter_map(|s| {
            if let Statement::Decl { name, .. } = s {
                Some(name.clone())
            } else {
                None
            }
        })
        .collect();
    let (mut inf, mut typed_body) = infer_program(&body, &decls, &dim_names, &declared, hints);
    // The implicit length `n` of undeclared vectors is a dimension name
    // too, usable as a number (`sum(z)/n`), unless something declares `n`.
    let implicit = IMPLICIT_DIM.to_string();
    if inf.implicit_used
        && inf.order.contains(&implicit)
        && !decls.contains_key(&implicit)
        && !dim_names.contains(&implicit)
    {
        dim_names.push(implicit);
        (inf, typed_body) = infer_program(&body, &decls, &dim_names, &declared, hints);
    }
    let typed_body = typed_body?;
    let vars = inf
        .order
        .iter()
        .map(|name| (name.clone(), inf.var_shape(name).unwrap_or(Shape::Scalar)))
        .collect();
    Ok(Typed {
        body: typed_body,
        vars,
        declared,
    })
}

/// The shape a declaration gives.
fn declared_shape(ty: &Type) -> Shape {
    let to_dim = |d: &DimName| match d {
        DimName::Named(s) => Dim::Named(s.as_str().into()),
        DimName::Fixed(n) => Dim::Fixed(*n),
    };
    match ty {
        Type::Scalar => Shape::Scalar,
        Type::Vec(d) => Shape::Vec(to_dim(d)),
        Type::Mat(a, b) => Shape::Mat(to_dim(a), to_dim(b)),
    }
}

impl Scope {
    /// `def name(params) = body`: checked now (a built-in's name, a
    /// repeated parameter, and, since its own name is not defined yet, a
    /// recursive call are errors), then defined.
    fn define(&mut self, name: &String, params: &[String], body: &Expr, span: &Span) -> Result<()> {
        if Builtin::lookup(name).is_some() {
            return Err(Error::at(
                span.clone(),
                format!("`{name}` is a built-in function"),
                "cannot redefine it",
            ));
        }
        for (i, p) in params.iter().enumerate() {
            if params[..i].contains(p) {
                return Err(Error::at(
                    span.clone(),
                    format!("parameter `{p}` appears twice"),
                    "in this definition",
                ));
            }
        }
        let bound: HashMap<String, Expr> = params
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    Expr {
                        kind: ExprKind::Name(p.clone()),
                        span: 0..0,
                    },
                )
            })
            .collect();
        let _ = self.inline(body, &bound, Some(name))?;
        self.defs
            .insert(name.clone(), (params.to_vec(), body.clone()));
        Ok(())
    }
}

/// Shapes the inlined body: undeclared variables take the shape their use
/// requires (iterated until nothing new is learned), the rest are scalars.
fn infer_program(
    body: &Expr,
    decls: &HashMap<String, (Shape, Span)>,
    dim_names: &[String],
    declared: &[String],
    hints: &[(String, Shape)],
) -> (Infer, Result<TExpr>) {
    let mut inf = Infer {
        decls: decls.clone(),
        dim_names: dim_names.to_vec(),
        shapes: HashMap::new(),
        order: Vec::new(),
        implicit_used: false,
    };
    inf.collect_vars(body);
    // Declared variables the expression does not use are still inputs
    // (after the used ones).
    for name in declared {
        if !inf.order.contains(name) {
            inf.order.push(name.clone());
        }
    }
    inf.learn_all(body);
    // What the use leaves open, the data decides.
    let mut hinted = false;
    for (name, shape) in hints {
        if inf.order.contains(name) && inf.var_shape(name).is_none() && *shape != Shape::Scalar {
            inf.shapes.insert(name.clone(), shape.clone());
            hinted = true;
        }
    }
    if hinted {
        inf.learn_all(body);
    }
    let typed = inf.infer(body);
    (inf, typed)
}

mod scope;
use scope::Scope;

mod infer;
use infer::Infer;
/// Dropped without recursion (see the `Drop` of [`crate::ast::Expr`]).
impl Drop for TExpr {
    fn drop(&mut self) {
        let mut stack: Vec<TExpr> = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(mut e) = stack.pop() {
            take_children(&mut e.kind, &mut stack);
        }
    }
}

fn take_children(kind: &mut TKind, stack: &mut Vec<TExpr>) {
    match std::mem::replace(kind, TKind::Num(0.0)) {
        TKind::Neg(x) => stack.push(*x),
        TKind::Bin(_, a, b) => {
            stack.push(*a);
            stack.push(*b);
        }
        TKind::Call(_, args) => stack.extend(args),
        TKind::Num(_) | TKind::Var(_) | TKind::Dim(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(src: &str) -> Vec<(String, Shape)> {
        check_with_hints(&crate::parse::parse_program(src).unwrap(), &[])
            .unwrap()
            .vars
    }

    #[test]
    fn implicit_length_is_a_number_where_vectors_are_implicit() {
        // `n` is the length of `z`, not a variable.
        let v = vars("sum(z * z) / n");
        assert_eq!(v, vec![("z".into(), Shape::Vec(Dim::Named("n".into())))]);
        let v = vars("n * logsumexp(z)");
        assert_eq!(v, vec![("z".into(), Shape::Vec(Dim::Named("n".into())))]);
    }

    #[test]
    fn n_stays_a_variable_without_implicit_vectors_or_when_declared() {
        assert_eq!(
            vars("n * x"),
            vec![("n".into(), Shape::Scalar), ("x".into(), Shape::Scalar)]
        );
        let v = vars("n: vec[k]; sum(n * z)");
        assert_eq!(v[0], ("n".into(), Shape::Vec(Dim::Named("k".into()))));
    }
}
