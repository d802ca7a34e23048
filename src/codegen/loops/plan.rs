//! The loop IR: arrays, accesses, scalar expressions, statements and
//! temporaries. A kernel body is a list of [`Stmt`]s over [`Temp`]s.

use crate::ir::{Dim, Fun, Ix};

/// A loop variable (`i3` in plans, in generated code and its names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub usize);

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A temporary, by its place among a body's [`Temps`] (`t5` in plans,
/// `sum5` or `acc5_0` in generated code where no mathematical name fits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TempId(pub usize);

impl std::fmt::Display for TempId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Placeholder indices for the free indices of a temporary's key.
pub(crate) const PLACEHOLDER: Ix = 900_000;

/// What an access reads or writes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Array {
    /// An input argument, by position among the inputs.
    Input(usize),
    /// A temporary.
    Temp(TempId),
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
    Temp(TempId),
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
    Temp(TempId),
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

/// One row of an array that a loop walks by its variable in the array's
/// last index, with the other indices (`prefix`) fixed: the kernel slices
/// it once per row (`let x_r5 = &x[base..][..n];`), so no entry's bounds
/// are checked in the loop (which keeps the compiler from vectorizing
/// short rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Slice {
    /// The array.
    pub array: Array,
    /// The access's indices before the last, which the loop leaves fixed.
    pub prefix: Vec<(Var, Dim)>,
    /// Whether the loop writes it.
    pub write: bool,
}

/// An input matrix whose next row (`row + 1`) a blocked pass over row
/// `row` prefetches, block by block, so that its loads overlap with this
/// row's arithmetic (`exp`) instead of waiting for the next row's pass.
#[derive(Clone, Debug, PartialEq)]
pub struct NextRow {
    /// The matrix.
    pub array: Array,
    /// The enclosing loop over its rows.
    pub row: Var,
    /// The row length (the pass's range).
    pub len: Dim,
}

/// How a pass of reductions walks memory (decided by the scheduling step).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Walk {
    /// Rows sliced once for the whole pass (lengths not fixed).
    pub rows: Vec<Slice>,
    /// Rows (and vectors) sliced per block of a blocked pass.
    pub blocks: Vec<Slice>,
    /// Next rows prefetched per block of a blocked pass.
    pub prefetch: Vec<NextRow>,
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
        /// The rows an innermost loop walks through slices (set by the
        /// scheduling step; empty before it).
        slices: Vec<Slice>,
        /// For a loop over the rows of a batch, how its ranges of rows run
        /// on threads of their own (set by the `rows` pass).
        split: Option<Box<RowSplit>>,
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
    /// A [`Stmt::Reduce`] after the scheduling step: the same reductions,
    /// run as `schedule` says (see [`super::schedule`]).
    Pass {
        /// The loop variable.
        var: Var,
        /// Its range.
        dim: Dim,
        /// The reductions.
        parts: Vec<Part>,
        /// How the pass runs.
        schedule: super::schedule::Schedule,
        /// How it walks memory.
        walk: Walk,
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
    /// class — see [`super::build::orbit_rows`].
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
    /// Writes every entry of `out`, a symmetric derivative tensor of order
    /// `order` with every index below `dim`, as the sum of the terms of
    /// its symmetry classes: one value per sorted index tuple, copied to
    /// the tuple's permutations (see [`super::passes::symmetric`]).
    Symmetric {
        /// The order (the number of indices of an entry).
        order: usize,
        /// The length of every index.
        dim: Dim,
        /// The classes.
        classes: Vec<SymClass>,
    },
    /// `for a { for b { body } }` in square tiles of `size × size`: the
    /// same iterations, each independent of the others, in an order that
    /// keeps an operand read transposed in the cache across a tile (see
    /// [`super::passes::tile`]).
    Tile {
        /// The outer variable.
        a: (Var, Dim),
        /// The inner variable.
        b: (Var, Dim),
        /// The side of a tile.
        size: usize,
        /// The body, stores only.
        body: Vec<Stmt>,
        /// The rows the inner loop walks (set by the scheduling step).
        slices: Vec<Slice>,
        /// The body is one store `M[a, b] = f(a, b)` with `f` symmetric:
        /// only the tiles on and above the diagonal are computed, and each
        /// one above is copied to its mirror (set by the scheduling step).
        mirror: bool,
    },
    /// A matrix product, `out[…] += Σ_sum summand` for every `left` and
    /// `right`, where `summand` is a product of two or three loads: one
    /// over `sum` and `left` (or `left` alone), one over `sum` and `right`
    /// (or `right` alone), and optionally a scale over `sum` alone (see
    /// [`super::passes::products`]). `out` is an accumulated temporary.
    MatMul {
        /// The summed variable.
        sum: (Var, Dim),
        /// The variable of the first factor.
        left: (Var, Dim),
        /// The variable of the second factor.
        right: (Var, Dim),
        /// Where the sums go, over `left` and `right`.
        out: Access,
        /// The product summed.
        summand: Scalar,
        /// The two factors are one operand (`Xᵀ diag(s) X`) and `out`
        /// starts symmetric (zero), so it stays symmetric.
        symmetric: bool,
    },
}

/// One symmetry class of a [`Stmt::Symmetric`] tensor: its distinct terms
/// are the ways to give each of the tensor's index slots to one of the
/// class's blocks, `sizes[b]` slots to block `b`, and the term's value at
/// an entry is `value` with each block's variable at the index its slots
/// hold (0 unless they all hold the same one).
#[derive(Clone, Debug, PartialEq)]
pub struct SymClass {
    /// The loop variable of each block.
    pub vars: Vec<(Var, Dim)>,
    /// How many slots each block takes.
    pub sizes: Vec<usize>,
    /// Blocks of one kind are interchangeable (same atoms and size).
    pub kinds: Vec<usize>,
    /// The class's value at the blocks' indices.
    pub value: Scalar,
}

impl SymClass {
    /// The class as a loop nest over its blocks that scatters its value to
    /// the entries of each of its terms (how it is lowered, and how the
    /// interpreter runs it).
    pub fn scatter_nest(&self) -> Stmt {
        let mut s = Stmt::Scatter {
            vars: self.vars.clone(),
            sizes: self.sizes.clone(),
            kinds: self.kinds.clone(),
            value: self.value.clone(),
        };
        for (v, d) in self.vars.iter().rev() {
            s = Stmt::plain_loop(*v, d.clone(), vec![s]);
        }
        s
    }
}

impl Stmt {
    /// `for var < dim { body }`, before scheduling.
    pub fn plain_loop(var: Var, dim: Dim, body: Vec<Stmt>) -> Stmt {
        Stmt::Loop {
            var,
            dim,
            body,
            slices: Vec::new(),
            split: None,
        }
    }
}

/// A loop over the rows of a batch whose rows are independent, but for
/// sums over them: the kernel gives each thread a range of rows `lo..hi`
/// (see `passes/rows.rs`).
#[derive(Clone, Debug, PartialEq)]
pub struct RowSplit {
    /// The row's place within its range, `row − lo`, by which the arrays
    /// of `split` are addressed.
    pub local: Var,
    /// Arrays written row by row (`out[r, ·]`): each range gets its own
    /// rows of them (a row has the given lengths).
    pub split: Vec<(Array, Vec<Dim>)>,
    /// Temporaries summed over the rows (`t[i] += …`, `s += …`): each range
    /// sums its own from zero, and they are added in order of ranges.
    pub sums: Vec<TempId>,
    /// Temporaries rewritten for every row (a row's buffer): each range
    /// has its own.
    pub private: Vec<TempId>,
    /// The lengths of the longest row the loop reads or writes, to judge
    /// whether a range is worth a thread.
    pub row: Vec<Dim>,
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
    pub(crate) fn expr(&self) -> &Scalar {
        match self {
            Def::Elem(x) | Def::Reduce { body: x, .. } => x,
        }
    }

    pub(crate) fn expr_mut(&mut self) -> &mut Scalar {
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

/// A body's temporaries, addressed by [`TempId`].
#[derive(Clone, Debug, Default)]
pub struct Temps(Vec<Temp>);

impl Temps {
    /// Adds a temporary and returns its id.
    pub fn push(&mut self, t: Temp) -> TempId {
        self.0.push(t);
        TempId(self.0.len() - 1)
    }

    /// How many temporaries there are (live or not).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every id, in order of creation.
    pub fn ids(&self) -> impl Iterator<Item = TempId> {
        (0..self.0.len()).map(TempId)
    }

    /// Every temporary, in order of creation.
    pub fn iter(&self) -> std::slice::Iter<'_, Temp> {
        self.0.iter()
    }

    /// Every temporary, mutably.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Temp> {
        self.0.iter_mut()
    }

    /// A value for each temporary, computed from it.
    pub fn map<T>(&self, f: impl FnMut(&Temp) -> T) -> PerTemp<T> {
        PerTemp(self.0.iter().map(f).collect())
    }

    /// Every temporary with its id, mutably.
    pub fn enumerate_mut(&mut self) -> impl Iterator<Item = (TempId, &mut Temp)> {
        self.0.iter_mut().enumerate().map(|(i, t)| (TempId(i), t))
    }

    /// Every temporary with its id.
    pub fn enumerate(&self) -> impl Iterator<Item = (TempId, &Temp)> {
        self.0.iter().enumerate().map(|(i, t)| (TempId(i), t))
    }
}

impl<'a> IntoIterator for &'a Temps {
    type Item = &'a Temp;
    type IntoIter = std::slice::Iter<'a, Temp>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl std::ops::Index<TempId> for Temps {
    type Output = Temp;
    fn index(&self, id: TempId) -> &Temp {
        &self.0[id.0]
    }
}

impl std::ops::IndexMut<TempId> for Temps {
    fn index_mut(&mut self, id: TempId) -> &mut Temp {
        &mut self.0[id.0]
    }
}

/// A value for each temporary of a body (a side table indexed by
/// [`TempId`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PerTemp<T>(Vec<T>);

impl<T: Clone> PerTemp<T> {
    /// `value` for each of `temps`.
    pub fn new(temps: &Temps, value: T) -> Self {
        PerTemp(vec![value; temps.len()])
    }
}

impl<T> std::ops::Index<TempId> for PerTemp<T> {
    type Output = T;
    fn index(&self, id: TempId) -> &T {
        &self.0[id.0]
    }
}

impl<T> std::ops::IndexMut<TempId> for PerTemp<T> {
    fn index_mut(&mut self, id: TempId) -> &mut T {
        &mut self.0[id.0]
    }
}
