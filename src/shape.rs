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

/// Resolves names and infers shapes.
pub fn check(program: &Program) -> Result<Typed> {
    check_with_hints(program, &[])
}

/// [`check`], where an undeclared variable whose use allows any shape
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
                let to_dim = |d: &DimName| match d {
                    DimName::Named(s) => Dim::Named(s.as_str().into()),
                    DimName::Fixed(n) => Dim::Fixed(*n),
                };
                let shape = match ty {
                    Type::Scalar => Shape::Scalar,
                    Type::Vec(d) => Shape::Vec(to_dim(d)),
                    Type::Mat(a, b) => Shape::Mat(to_dim(a), to_dim(b)),
                };
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
            } => {
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
                // The body is checked now, with its own name not yet defined,
                // so a recursive call is caught here.
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
                let _ = scope.inline(body, &bound, Some(name))?;
                scope
                    .defs
                    .insert(name.clone(), (params.clone(), body.clone()));
            }
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

#[derive(Default)]
struct Scope {
    lets: HashMap<String, Expr>,
    defs: HashMap<String, (Vec<String>, Expr)>,
}

impl Scope {
    /// Substitutes `let` names, parameters and `def` calls, leaving built-in
    /// calls and free names. `defining` is the function whose body this is.
    fn inline(
        &self,
        e: &Expr,
        params: &HashMap<String, Expr>,
        defining: Option<&String>,
    ) -> Result<Expr> {
        let mut budget = MAX_INLINED_NODES;
        self.inline_rec(e, params, defining, &mut budget)
    }

    fn inline_rec(
        &self,
        e: &Expr,
        params: &HashMap<String, Expr>,
        defining: Option<&String>,
        budget: &mut usize,
    ) -> Result<Expr> {
        if *budget == 0 {
            return Err(Error::at(
                e.span.clone(),
                format!("the expression grows past {MAX_INLINED_NODES} nodes when its definitions are inlined"),
                "while inlining this",
            ));
        }
        *budget -= 1;
        let kind = match &e.kind {
            ExprKind::Num(v) => ExprKind::Num(*v),
            ExprKind::Name(n) => {
                // A substituted value counts at its full size: `let`s that
                // each double the one before grow exponentially otherwise.
                let substituted = params.get(n).or_else(|| self.lets.get(n));
                if let Some(v) = substituted {
                    let size = node_count(v);
                    if size > *budget {
                        return Err(Error::at(
                            e.span.clone(),
                            format!("the expression grows past {MAX_INLINED_NODES} nodes when its definitions are inlined"),
                            "while inlining this",
                        ));
                    }
                    *budget -= size;
                    return Ok(v.clone());
                }
                if self.defs.contains_key(n) || Builtin::lookup(n).is_some() {
                    return Err(Error::at(
                        e.span.clone(),
                        format!("`{n}` is a function"),
                        "call it with arguments",
                    ));
                }
                ExprKind::Name(n.clone())
            }
            ExprKind::Neg(x) => {
                ExprKind::Neg(Box::new(self.inline_rec(x, params, defining, budget)?))
            }
            ExprKind::Binary(op, a, b) => ExprKind::Binary(
                *op,
                Box::new(self.inline_rec(a, params, defining, budget)?),
                Box::new(self.inline_rec(b, params, defining, budget)?),
            ),
            ExprKind::Call {
                name,
                name_span,
                args,
            } => {
                let args: Vec<Expr> = args
                    .iter()
                    .map(|a| self.inline_rec(a, params, defining, budget))
                    .collect::<Result<_>>()?;
                if Some(name) == defining {
                    return Err(Error::at(
                        name_span.clone(),
                        format!("`{name}` calls itself; recursive definitions are not allowed"),
                        "recursive call",
                    ));
                }
                if let Some((ps, body)) = self.defs.get(name) {
                    if ps.len() != args.len() {
                        return Err(arity_error(name, name_span, ps.len(), args.len(), &e.span));
                    }
                    let bound: HashMap<String, Expr> = ps.iter().cloned().zip(args).collect();
                    return self.inline_rec(body, &bound, None, budget);
                }
                match Builtin::lookup(name) {
                    Some((_, arity)) if arity != args.len() => {
                        return Err(arity_error(name, name_span, arity, args.len(), &e.span))
                    }
                    Some(_) => {}
                    None => {
                        let mut err = Error::at(
                            name_span.clone(),
                            format!("unknown function `{name}`"),
                            "not defined",
                        );
                        if let Some(best) = closest(name) {
                            err = err.with_note(format!("did you mean `{best}`?"));
                        }
                        return Err(err.with_note(format!(
                            "built-in functions: {}",
                            Builtin::NAMES.join(", ")
                        )));
                    }
                }
                ExprKind::Call {
                    name: name.clone(),
                    name_span: name_span.clone(),
                    args,
                }
            }
        };
        Ok(Expr {
            kind,
            span: e.span.clone(),
        })
    }
}

/// Nodes in an expression tree, counted without recursion.
fn node_count(e: &Expr) -> usize {
    let mut stack = vec![e];
    let mut count = 0;
    while let Some(e) = stack.pop() {
        count += 1;
        match &e.kind {
            ExprKind::Num(_) | ExprKind::Name(_) => {}
            ExprKind::Neg(x) => stack.push(x),
            ExprKind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            ExprKind::Call { args, .. } => stack.extend(args.iter()),
        }
    }
    count
}

fn arity_error(name: &str, name_span: &Span, want: usize, got: usize, span: &Span) -> Error {
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    Error::at(
        name_span.start..span.end,
        format!(
            "`{name}` takes {want} {}, but {got} {} given",
            plural(want),
            if got == 1 { "was" } else { "were" }
        ),
        format!("called with {got} {}", plural(got)),
    )
}

/// The built-in name nearest to a misspelt one, if any is close.
fn closest(name: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for j in 0..b.len() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != b[j]))
                    .min(row[j] + 1)
                    .min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    Builtin::NAMES
        .iter()
        .copied()
        .map(|n| (distance(name, n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

struct Infer {
    decls: HashMap<String, (Shape, Span)>,
    dim_names: Vec<String>,
    /// Shapes learned for undeclared variables.
    shapes: HashMap<String, Shape>,
    /// Variables in order of first appearance.
    order: Vec<String>,
    implicit_used: bool,
}

/// Shape of a subexpression during inference: known, or decided by
/// undeclared variables that could still be anything.
#[derive(Clone, Debug)]
enum Inferred {
    Known(Shape),
    Open(Vec<String>),
}

impl Infer {
    fn is_dim_name(&self, n: &str) -> bool {
        !self.decls.contains_key(n) && self.dim_names.iter().any(|d| d == n)
    }

    /// Variables ordered by where they first appear in the source text
    /// (inlined arguments keep their call-site spans, so `nll(z, y)` puts
    /// `z` first whatever the body of `nll` does).
    fn collect_vars(&mut self, e: &Expr) {
        let mut seen: Vec<(usize, String)> = Vec::new();
        self.collect_spans(e, &mut seen);
        seen.sort();
        for (_, n) in seen {
            if !self.order.contains(&n) {
                self.order.push(n);
            }
        }
    }

    fn collect_spans(&self, e: &Expr, out: &mut Vec<(usize, String)>) {
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

    fn var_shape(&self, n: &str) -> Option<Shape> {
        self.decls
            .get(n)
            .map(|(s, _)| s.clone())
            .or_else(|| self.shapes.get(n).cloned())
    }

    fn implicit_vec(&mut self) -> Shape {
        self.implicit_used = true;
        Shape::Vec(Dim::Named(IMPLICIT_DIM.into()))
    }

    /// Gives every open variable the shape `s`.
    fn assign(&mut self, vars: &[String], s: &Shape) {
        for v in vars {
            if self.var_shape(v).is_none() {
                self.shapes.insert(v.clone(), s.clone());
            }
        }
    }

    /// Learning passes until one learns nothing new (each productive pass
    /// fixes at least one variable, so there are at most one more than
    /// there are variables).
    fn learn_all(&mut self, body: &Expr) {
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
    fn learn(&mut self, e: &Expr) -> Inferred {
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
            ExprKind::Binary(op, a, b) => {
                let (mut la, mut lb) = (self.learn(a), self.learn(b));
                if *op != BinOp::MatMul {
                    // Elementwise: an open side takes the other side's
                    // (non-scalar) shape.
                    match (&la, &lb) {
                        (Inferred::Known(s), Inferred::Open(v)) if *s != Shape::Scalar => {
                            let (s, v) = (s.clone(), v.clone());
                            self.assign(&v, &s);
                            lb = self.learn(b);
                        }
                        (Inferred::Open(v), Inferred::Known(s)) if *s != Shape::Scalar => {
                            let (s, v) = (s.clone(), v.clone());
                            self.assign(&v, &s);
                            la = self.learn(a);
                        }
                        _ => {}
                    }
                }
                match (la, lb) {
                    (Inferred::Known(sa), Inferred::Known(sb)) => {
                        let shape = if *op == BinOp::MatMul {
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
            ExprKind::Call { name, args, .. } => {
                let (builtin, _) =
                    Builtin::lookup(name).expect("inlining leaves only built-in calls");
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
                if matches!(builtin, Builtin::Dot | Builtin::Xent) {
                    match (&learned[0], &learned[1]) {
                        (Inferred::Known(s), Inferred::Open(v)) if *s != Shape::Scalar => {
                            let (s, v) = (s.clone(), v.clone());
                            self.assign(&v, &s);
                            learned[1] = self.learn(&args[1]);
                        }
                        (Inferred::Open(v), Inferred::Known(s)) if *s != Shape::Scalar => {
                            let (s, v) = (s.clone(), v.clone());
                            self.assign(&v, &s);
                            learned[0] = self.learn(&args[0]);
                        }
                        _ => {}
                    }
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
                    Builtin::Sum
                        | Builtin::Mean
                        | Builtin::Dot
                        | Builtin::LogSumExp
                        | Builtin::Xent
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
        }
    }

    /// Shapes `e` once learning is done: variables still open are scalars.
    fn infer(&mut self, e: &Expr) -> Result<TExpr> {
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
        check(&crate::parse::parse_program(src).unwrap())
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
