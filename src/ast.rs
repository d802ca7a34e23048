//! The syntax tree of a symdiff program, with byte spans into the source.

use std::ops::Range;

/// Byte range into the program text.
pub type Span = Range<usize>;

/// A parsed program: statements, then the expression to differentiate.
#[derive(Clone, Debug)]
pub struct Program {
    /// Declarations, `let`s and `def`s in source order.
    pub statements: Vec<Statement>,
    /// The final expression.
    pub body: Expr,
}

/// One statement before the final expression.
#[derive(Clone, Debug)]
pub enum Statement {
    /// `x: vec[n]`
    Decl {
        /// The declared variable.
        name: String,
        /// Its type.
        ty: Type,
        /// Where the declaration is.
        span: Span,
    },
    /// `let x = e`
    Let {
        /// The bound name.
        name: String,
        /// Its value (which carries its own span).
        value: Expr,
    },
    /// `def f(a, b) = e`
    Def {
        /// The function's name.
        name: String,
        /// Its parameters, in order.
        params: Vec<String>,
        /// Its body, over the parameters.
        body: Expr,
        /// Where the definition is.
        span: Span,
    },
}

/// A declared type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Type {
    /// A single number.
    Scalar,
    /// `vec[n]`
    Vec(DimName),
    /// `mat[m, n]`
    Mat(DimName, DimName),
}

/// A dimension as written: a name or a fixed size.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DimName {
    /// A symbolic length such as `n`.
    Named(String),
    /// A fixed length such as `3`.
    Fixed(usize),
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`, elementwise
    Mul,
    /// `/`, elementwise
    Div,
    /// `^`, elementwise power
    Pow,
    /// `@`, matrix product
    MatMul,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
            BinOp::MatMul => "@",
        }
    }
}

/// An expression node with its span.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
}

/// Expression kinds.
#[derive(Clone, Debug)]
pub enum ExprKind {
    /// A numeric literal.
    Num(f64),
    /// A variable, dimension or local name.
    Name(String),
    /// `f(args)`, with the span of the name.
    Call {
        /// The function called.
        name: String,
        /// Where its name is (errors about the function point here).
        name_span: Span,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// Unary minus.
    Neg(Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// Dropped without recursion: a long chain (`x - x - … - x` is as deep as
/// it is long) would otherwise overflow a small stack in the thread that
/// drops it, which for a library user can be any thread.
impl Drop for Expr {
    fn drop(&mut self) {
        let mut stack: Vec<Expr> = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(mut e) = stack.pop() {
            take_children(&mut e.kind, &mut stack);
        }
    }
}

fn take_children(kind: &mut ExprKind, stack: &mut Vec<Expr>) {
    match std::mem::replace(kind, ExprKind::Num(0.0)) {
        ExprKind::Neg(x) => stack.push(*x),
        ExprKind::Binary(_, a, b) => {
            stack.push(*a);
            stack.push(*b);
        }
        ExprKind::Call { args, .. } => stack.extend(args),
        ExprKind::Num(_) | ExprKind::Name(_) => {}
    }
}
