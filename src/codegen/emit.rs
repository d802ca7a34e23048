//! Loop nests to Rust tokens.
//!
//! Expressions are printed with the least parentheses Rust's precedence
//! needs (the emitted code must be warning-free), reductions keep four
//! partial accumulators so the compiler may vectorize them without
//! reassociating floating point on its own, and `exp` is a branch-free
//! polynomial the compiler can vectorize (libm's `exp` is a call per
//! element, and at half the speed it sets the pace of a whole kernel).

use std::cell::RefCell;
use std::collections::HashMap;

use proc_macro2::{Ident, Literal, Span, TokenStream};
use quote::{format_ident, quote};

mod names;
mod reduce;

use super::loops::{Access, Array, Part, Place, Scalar, Stmt, Temp, Var};
use super::Float;
use crate::ir::{Dim, Fun};

/// Reductions over fixed lengths below this run with one accumulator.
const SPLIT_FROM: usize = 16;
/// Partial accumulators of a split reduction.
const LANES: usize = 4;
/// Entries per block of a split reduction.
const BLOCK: usize = 64;
/// Fixed-size temporaries up to this many entries live on the stack.
const STACK_MAX: usize = 4096;

/// Everything emission needs to name things.
pub struct Names {
    /// The kernel's name (prefix of its helper functions).
    pub kernel: String,
    /// Input parameter names, by input position.
    pub inputs: Vec<Ident>,
    /// Which inputs are scalars, passed by value (`x: f64`, read as `x`).
    pub scalar: Vec<bool>,
    /// Lengths fixed at generation time (`--dim`).
    pub fixed: HashMap<String, usize>,
    /// Float type.
    pub float: Float,
}

/// Which helper functions a body uses.
#[derive(Default, Clone, Copy)]
pub struct Helpers {
    /// The polynomial `exp`, for any argument.
    pub exp: bool,
    /// The polynomial `exp` of a shifted argument (never far above zero).
    pub exp_shifted: bool,
    /// Stable sigmoid.
    pub sigmoid: bool,
    /// Stable softplus.
    pub softplus: bool,
    /// The orbit enumerator of scattered symmetry classes.
    pub orbit: bool,
    /// The pairwise fold of a blocked pass's 64 partial results.
    pub fold: bool,
}

impl Helpers {
    /// The runtime helpers (see [`super::runtime`]) these flags name.
    pub fn runtime_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.exp, "exp"),
            (self.exp_shifted, "exp_shifted"),
            (self.sigmoid, "sigmoid"),
            (self.softplus, "softplus"),
            (self.fold, "fold64"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }

    /// Adds the helpers `x` needs.
    pub fn note(&mut self, x: &Scalar) {
        super::loops::visit(x, &mut |s| match s {
            Scalar::Call(Fun::Exp, _) => self.exp = true,
            Scalar::ExpShifted(_) => self.exp_shifted = true,
            Scalar::Call(Fun::Sigmoid, _) => {
                self.exp_shifted = true;
                self.sigmoid = true
            }
            Scalar::Call(Fun::Softplus, _) => {
                self.exp_shifted = true;
                self.softplus = true
            }
            _ => {}
        });
    }

    /// Adds the helpers a statement needs.
    pub fn note_stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Loop { body, .. } => body.iter().for_each(|b| self.note_stmt(b)),
            Stmt::Reduce { parts, .. } => parts.iter().for_each(|p| self.note(&p.body)),
            Stmt::Store { value, .. } | Stmt::Return(value) => self.note(value),
            Stmt::Scatter { value, .. } => {
                self.orbit = true;
                self.note(value)
            }
            Stmt::ZeroOut => {}
        }
    }
}

/// Precedence levels: sum < product < unary < postfix.
const SUM: u8 = 0;
const PRODUCT: u8 = 1;
const UNARY: u8 = 2;
const POSTFIX: u8 = 3;

/// A body's statements to tokens.
pub struct Emitter<'a> {
    names: &'a Names,
    temps: &'a [Temp],
    temp_names: Vec<Ident>,
    /// Row slices of the innermost loops being emitted.
    rows: RefCell<Vec<RowSlice>>,
    /// Input matrices the enclosing row loops read a row of at a time.
    ahead: RefCell<Vec<NextRow>>,
    /// Whether a blocked pass was emitted (its fold is a runtime helper).
    pub(crate) folded: std::cell::Cell<bool>,
}

/// An input matrix `a[r, j]` that a loop over rows `r` reads a row of at a
/// time. Blocked passes over row `r` with a costly body (`exp`) prefetch
/// the same block of row `r + 1`, so that its loads from memory overlap
/// with this row's arithmetic instead of waiting for the next row's first
/// pass.
struct NextRow {
    array: Array,
    row: Var,
    /// The row length.
    len: Dim,
}

/// Every array access of `x`, as a read.
fn loads(x: &Scalar) -> Vec<(&Access, bool)> {
    let mut out = Vec::new();
    super::loops::visit(x, &mut |e| {
        if let Scalar::Load(a) = e {
            out.push((a, false));
        }
    });
    out
}

/// The array accesses of reduction bodies: their reads, and the entries
/// where reduced values are kept.
fn body_accesses<'p>(parts: impl IntoIterator<Item = &'p Part>) -> Vec<(&'p Access, bool)> {
    let mut out = Vec::new();
    for p in parts {
        out.extend(loads(&p.body));
        out.extend(p.keep.iter().map(|a| (a, true)));
    }
    out
}

/// One row of an array, sliced before an innermost loop that walks it:
/// `let x_r5 = &x[base..][..n];` and `x_r5[i5]` in the loop, so the bounds
/// are checked once per row, not per entry (which keeps the compiler from
/// vectorizing the loop when the row is short). A block of a split
/// reduction slices the same way: `let x_b5 = &x_r5[b5..][..len5];` and
/// `x_b5[j5]`.
struct RowSlice {
    array: Array,
    /// The access's indices before the last, which the loop leaves fixed.
    prefix: Vec<(Var, Dim)>,
    /// The loop variable, the access's last index.
    var: Var,
    name: Ident,
    /// What the slice is indexed by: `var` itself, or a block's offset.
    at: Ident,
}

/// A block of a split reduction over `var`: entries `start..start + len`,
/// walked by `j`.
struct Block<'b> {
    start: &'b Ident,
    len: &'b Ident,
    j: &'b Ident,
}

impl<'a> Emitter<'a> {
    /// An emitter for a body with these temporaries.
    pub fn new(names: &'a Names, temps: &'a [Temp]) -> Self {
        let temp_names = names::temp_names(names, temps);
        Emitter {
            names,
            temps,
            temp_names,
            rows: RefCell::new(Vec::new()),
            ahead: RefCell::new(Vec::new()),
            folded: std::cell::Cell::new(false),
        }
    }

    fn ty(&self) -> TokenStream {
        self.names.float.rust_type()
    }

    /// A length as a `usize` expression (a name or a literal).
    pub fn dim(&self, d: &Dim) -> TokenStream {
        match self.fixed(d) {
            // Past i32 an unsuffixed literal compared with another literal
            // (`N <= 64`) would be typed i32 and overflow.
            Some(k) if k > i32::MAX as usize => {
                let l = Literal::usize_suffixed(k);
                quote!(#l)
            }
            Some(k) => {
                let l = Literal::usize_unsuffixed(k);
                quote!(#l)
            }
            None => {
                let i = Ident::new(&d.to_string(), Span::call_site());
                quote!(#i)
            }
        }
    }

    /// The product of lengths, as a `usize` expression.
    pub fn product(&self, dims: &[Dim]) -> TokenStream {
        let mut out = TokenStream::new();
        for (k, d) in dims.iter().enumerate() {
            let d = self.dim(d);
            out.extend(if k == 0 { quote!(#d) } else { quote!(* #d) });
        }
        if dims.is_empty() {
            quote!(1)
        } else {
            out
        }
    }

    fn fixed(&self, d: &Dim) -> Option<usize> {
        match d {
            Dim::Fixed(k) => Some(*k),
            Dim::Named(n) => self.names.fixed.get(&**n).copied(),
        }
    }

    fn num(&self, c: f64) -> TokenStream {
        if !c.is_finite() {
            // Constant folding can overflow (`1e308 * 10`) or leave the
            // domain (`sqrt(-1)`): name the value, there is no literal.
            let ty = self.ty();
            return match (c.is_nan(), c > 0.0) {
                (true, _) => quote!(#ty::NAN),
                (false, true) => quote!(#ty::INFINITY),
                (false, false) => quote!(#ty::NEG_INFINITY),
            };
        }
        let l = match self.names.float {
            Float::F64 => Literal::f64_unsuffixed(c.abs()),
            Float::F32 => Literal::f32_unsuffixed(c.abs() as f32),
        };
        if c < 0.0 {
            quote!(-#l)
        } else {
            quote!(#l)
        }
    }

    /// `a` as the receiver of a method call: a literal gets its type
    /// suffix (`2.0_f64.ln()`; a bare `2.0.ln()` is ambiguous to rustc).
    fn receiver(&self, a: &Scalar) -> TokenStream {
        let fixed = match a {
            Scalar::Num(c) => Some(*c),
            Scalar::Dim(d) => self.fixed(d).map(|k| k as f64),
            _ => None,
        };
        match fixed {
            Some(c) if c.is_finite() => {
                let l = match self.names.float {
                    Float::F64 => Literal::f64_suffixed(c.abs()),
                    Float::F32 => Literal::f32_suffixed(c.abs() as f32),
                };
                if c < 0.0 {
                    quote!((-#l))
                } else {
                    quote!(#l)
                }
            }
            _ => self.at(a, POSTFIX),
        }
    }

    /// Whether temporary `t` is kept in f64 in an f32 kernel: a sum built
    /// up in place accumulates in f64, as the 4-lane sums do.
    fn wide(&self, t: usize) -> bool {
        self.names.float == Float::F32 && self.temps[t].accumulated
    }

    fn var(v: Var) -> Ident {
        format_ident!("i{}", v)
    }

    fn array(&self, a: &Array) -> Ident {
        match a {
            Array::Input(k) => self.names.inputs[*k].clone(),
            Array::Temp(t) => self.temp_names[*t].clone(),
            Array::Out => format_ident!("out"),
        }
    }

    /// Row-major flat index.
    fn flat(&self, idx: &[(Var, Dim)]) -> TokenStream {
        let mut acc = TokenStream::new();
        let mut compound = false;
        for (k, (v, _)) in idx.iter().enumerate() {
            let i = Self::var(*v);
            if k == 0 {
                acc = quote!(#i);
                continue;
            }
            let d = self.dim(&idx[k].1);
            acc = if compound {
                quote!((#acc) * #d + #i)
            } else {
                quote!(#acc * #d + #i)
            };
            compound = true;
        }
        if idx.is_empty() {
            quote!(0)
        } else {
            acc
        }
    }

    /// The slice (its name and index) that walks `array` by `var` at this
    /// row. A block's slice, taken inside a row's, comes later and wins.
    fn slice_of(&self, array: &Array, var: Var, prefix: &[(Var, Dim)]) -> Option<(Ident, Ident)> {
        let rows = self.rows.borrow();
        rows.iter()
            .rev()
            .find(|r| r.array == *array && r.var == var && r.prefix == prefix)
            .map(|r| (r.name.clone(), r.at.clone()))
    }

    fn access(&self, a: &Access) -> TokenStream {
        if let Array::Input(k) = a.array {
            if self.names.scalar.get(k).copied().unwrap_or(false) {
                let name = &self.names.inputs[k];
                return quote!(#name);
            }
        }
        if let Some(((last, _), prefix)) = a.idx.split_last() {
            if let Some((name, at)) = self.slice_of(&a.array, *last, prefix) {
                return quote!(#name[#at]);
            }
        }
        let name = self.array(&a.array);
        let at = self.flat(&a.idx);
        quote!(#name[#at])
    }

    /// The row slices an innermost loop over `var` can take: arrays that
    /// every access in the loop reads or writes at one row, walked by
    /// `var` in its last index. With their `let` statements. In a block of
    /// a split reduction, vectors (an empty row prefix) are sliced too, and
    /// a row already sliced is sliced again from its slice.
    fn row_slices(
        &self,
        var: Var,
        dim: &Dim,
        accesses: &[(&Access, bool)],
        block: Option<&Block>,
    ) -> (Vec<RowSlice>, TokenStream) {
        // Per array: the one row it is accessed at (None: several, or not
        // by `var` last), and whether it is written.
        type Prefix = Option<Vec<(Var, Dim)>>;
        let mut seen: Vec<(Array, Prefix, bool)> = Vec::new();
        for &(a, write) in accesses {
            let row = match a.idx.split_last() {
                Some(((last, _), prefix))
                    if *last == var
                        && (block.is_some() || !prefix.is_empty())
                        && prefix.iter().all(|(v, _)| *v != var) =>
                {
                    Some(prefix.to_vec())
                }
                _ => None,
            };
            match seen.iter_mut().find(|(array, ..)| *array == a.array) {
                Some((_, known, w)) => {
                    if *known != row {
                        *known = None;
                    }
                    *w |= write;
                }
                None => seen.push((a.array.clone(), row, write)),
            }
        }
        let d = self.dim(dim);
        let mut rows = Vec::new();
        let mut lets = TokenStream::new();
        for (array, prefix, write) in seen {
            let Some(prefix) = prefix else { continue };
            let src = self.array(&array);
            let borrow = if write { quote!(&mut) } else { quote!(&) };
            let base = self.flat(&prefix);
            let base = if prefix.len() > 1 {
                quote!((#base))
            } else {
                base
            };
            let (name, at) = match block {
                None => {
                    let name = format_ident!("{}_r{}", src, var);
                    lets.extend(quote!(let #name = #borrow #src[#base * #d..][..#d];));
                    (name, Self::var(var))
                }
                Some(Block { start, len, j }) => {
                    let name = format_ident!("{}_b{}", src, var);
                    let from = match self.slice_of(&array, var, &prefix) {
                        Some((row, _)) => quote!(#row[#start..]),
                        None if prefix.is_empty() => quote!(#src[#start..]),
                        None => quote!(#src[#base * #d + #start..]),
                    };
                    lets.extend(quote!(let #name = #borrow #from[..#len];));
                    (name, (*j).clone())
                }
            };
            rows.push(RowSlice {
                array,
                prefix,
                var,
                name,
                at,
            });
        }
        (rows, lets)
    }

    pub(crate) fn helper(&self, what: &str) -> Ident {
        format_ident!("{}_{}", self.names.kernel, what)
    }

    /// An expression at precedence at least `need`.
    fn at(&self, x: &Scalar, need: u8) -> TokenStream {
        let (t, level) = self.expr(x);
        if level < need {
            quote!((#t))
        } else {
            t
        }
    }

    /// An expression and its precedence level.
    pub fn expr(&self, x: &Scalar) -> (TokenStream, u8) {
        let ty = self.ty();
        match x {
            Scalar::Num(c) => (
                self.num(*c),
                if *c < 0.0 || c.is_nan() {
                    UNARY
                } else {
                    POSTFIX
                },
            ),
            Scalar::Temp(t) => {
                let n = &self.temp_names[*t];
                (quote!(#n), POSTFIX)
            }
            Scalar::Load(a) => match a.array {
                Array::Temp(t) if self.wide(t) => {
                    let x = self.access(a);
                    (quote!((#x as f32)), POSTFIX)
                }
                _ => (self.access(a), POSTFIX),
            },
            Scalar::Dim(d) => match self.fixed(d) {
                Some(k) => (self.num(k as f64), POSTFIX),
                None => {
                    let d = self.dim(d);
                    (quote!((#d as #ty)), POSTFIX)
                }
            },
            Scalar::Sum(xs) => {
                let mut out = TokenStream::new();
                // A positive term first reads better: `s·p − q`, not `−q + s·p`.
                let mut xs = xs.clone();
                if let Some(k) = xs.iter().position(|y| !split_sign(y).0) {
                    let first = xs.remove(k);
                    xs.insert(0, first);
                }
                for (k, y) in xs.iter().enumerate() {
                    let (neg, body) = split_sign(y);
                    let t = self.at(&body, if k == 0 && !neg { SUM } else { PRODUCT });
                    out.extend(match (k, neg) {
                        (0, false) => t,
                        (0, true) => {
                            let t = self.at(&body, UNARY);
                            quote!(-#t)
                        }
                        (_, false) => quote!(+ #t),
                        (_, true) => quote!(- #t),
                    });
                }
                (out, SUM)
            }
            Scalar::Sub(a, b) => {
                let (a, b) = (self.at(a, SUM), self.at(b, PRODUCT));
                (quote!(#a - #b), SUM)
            }
            Scalar::Product(xs) => {
                let mut out = TokenStream::new();
                for (k, y) in xs.iter().enumerate() {
                    match (k, y) {
                        (0, Scalar::Recip(r)) => {
                            let one = self.num(1.0);
                            let r = self.at(r, UNARY);
                            out.extend(quote!(#one / #r));
                        }
                        (_, Scalar::Recip(r)) => {
                            let r = self.at(r, UNARY);
                            out.extend(quote!(/ #r));
                        }
                        (0, _) => out.extend(self.at(y, UNARY)),
                        _ => {
                            let t = self.at(y, UNARY);
                            out.extend(quote!(* #t));
                        }
                    }
                }
                (out, PRODUCT)
            }
            Scalar::Neg(a) => {
                let a = self.at(a, UNARY);
                (quote!(-#a), UNARY)
            }
            Scalar::Recip(a) => {
                let one = self.num(1.0);
                let a = self.at(a, UNARY);
                (quote!(#one / #a), PRODUCT)
            }
            Scalar::Powi(a, k) => {
                let a = self.receiver(a);
                let k = Literal::i32_unsuffixed(*k);
                (quote!(#a.powi(#k)), POSTFIX)
            }
            Scalar::Powf(a, b) => {
                let a = self.receiver(a);
                let b = self.at(b, SUM);
                (quote!(#a.powf(#b)), POSTFIX)
            }
            Scalar::Sqrt(a) => {
                let a = self.receiver(a);
                (quote!(#a.sqrt()), POSTFIX)
            }
            Scalar::Ln(a) => {
                let a = self.receiver(a);
                (quote!(#a.ln()), POSTFIX)
            }
            Scalar::ExpShifted(a) => {
                let f = self.helper("exp_shifted");
                let a = self.at(a, SUM);
                (quote!(#f::<FMA>(#a)), POSTFIX)
            }
            Scalar::Call(f, a) => {
                let method = |m: &str| {
                    let m = format_ident!("{}", m);
                    let a = self.receiver(a);
                    (quote!(#a.#m()), POSTFIX)
                };
                let helper = |h: &str| {
                    let h = self.helper(h);
                    let a = self.at(a, SUM);
                    (quote!(#h::<FMA>(#a)), POSTFIX)
                };
                match f {
                    Fun::Exp => helper("exp"),
                    Fun::Sigmoid => helper("sigmoid"),
                    Fun::Softplus => helper("softplus"),
                    Fun::Log => method("ln"),
                    Fun::Sin => method("sin"),
                    Fun::Cos => method("cos"),
                    Fun::Tanh => method("tanh"),
                }
            }
            Scalar::Delta(a, b) => {
                let (a, b) = (Self::var(*a), Self::var(*b));
                let (one, zero) = (self.num(1.0), self.num(0.0));
                (quote!((if #a == #b { #one } else { #zero })), POSTFIX)
            }
        }
    }

    /// Declarations of the array temporaries.
    pub fn allocations(&self) -> TokenStream {
        let mut out = TokenStream::new();
        for (t, temp) in self.temps.iter().enumerate() {
            if !temp.live || temp.vars.is_empty() {
                continue;
            }
            let name = &self.temp_names[t];
            let zero = if self.wide(t) {
                quote!(0.0f64)
            } else {
                self.num(0.0)
            };
            let fixed: Option<usize> = temp.vars.iter().map(|(_, d)| self.fixed(d)).product();
            match fixed {
                Some(size) if size <= STACK_MAX => {
                    let size = Literal::usize_unsuffixed(size);
                    out.extend(quote!(let mut #name = [#zero; #size];));
                }
                _ => {
                    let dims: Vec<Dim> = temp.vars.iter().map(|(_, d)| d.clone()).collect();
                    let len = self.product(&dims);
                    out.extend(quote!(let mut #name = vec![#zero; #len];));
                }
            }
        }
        out
    }

    /// The orbit of every scattered class, enumerated once at entry.
    pub fn orbits(&self, ss: &[Stmt]) -> TokenStream {
        let mut out = TokenStream::new();
        for s in ss {
            match s {
                Stmt::Loop { body, .. } => out.extend(self.orbits(body)),
                Stmt::Scatter {
                    vars, sizes, kinds, ..
                } => {
                    let rows = format_ident!("rows{}", vars[0].0);
                    let f = self.helper("orbit");
                    let sizes = sizes.iter().map(|&x| Literal::usize_unsuffixed(x));
                    let kinds = kinds.iter().map(|&x| Literal::usize_unsuffixed(x));
                    out.extend(quote!(let #rows = #f(&[#(#sizes),*], &[#(#kinds),*]);));
                }
                _ => {}
            }
        }
        out
    }

    /// A statement list.
    pub fn stmts(&self, ss: &[Stmt]) -> TokenStream {
        // A reduction whose last total is returned at once ends the body
        // with that total, not with `let x = total; x`.
        if let [init @ .., Stmt::Reduce { var, dim, parts }, Stmt::Return(Scalar::Temp(u))] = ss {
            if matches!(parts.last().map(|p| &p.place), Some(Place::Temp(t)) if t == u) {
                let mut out: TokenStream = init.iter().map(|s| self.stmt(s)).collect();
                out.extend(self.reduce(*var, dim, parts, true));
                return out;
            }
        }
        ss.iter().map(|s| self.stmt(s)).collect()
    }

    fn place(&self, p: &Place) -> TokenStream {
        match p {
            Place::Temp(t) => {
                let n = &self.temp_names[*t];
                quote!(#n)
            }
            Place::Elem(a) => self.access(a),
        }
    }

    fn stmt(&self, s: &Stmt) -> TokenStream {
        match s {
            Stmt::Loop { var, dim, body } => {
                let i = Self::var(*var);
                let d = self.dim(dim);
                // Innermost loops only: stores and nothing else.
                let mut accesses = Vec::new();
                let innermost = body.iter().all(|s| match s {
                    Stmt::Store { place, value, .. } => {
                        if let Place::Elem(a) = place {
                            accesses.push((a, true));
                        }
                        accesses.extend(loads(value));
                        true
                    }
                    _ => false,
                });
                // Fixed lengths: the compiler sees the bounds already.
                let (rows, lets) = if innermost && self.fixed(dim).is_none() {
                    self.row_slices(*var, dim, &accesses, None)
                } else {
                    (Vec::new(), TokenStream::new())
                };
                let body = if innermost {
                    self.with_rows(rows, || self.stmts(body))
                } else {
                    self.with_next_rows(*var, body, || self.stmts(body))
                };
                quote!(#lets for #i in 0..#d { #body })
            }
            Stmt::Reduce { var, dim, parts } => self.reduce(*var, dim, parts, false),
            Stmt::Store {
                place: Place::Elem(a),
                add: false,
                value: Scalar::Product(xs),
            } if xs.len() >= 2 && xs[0] == Scalar::Load(a.clone()) => {
                // In-place scaling (a softmax over its sum) reads as such.
                let p = self.access(a);
                let rest = match &xs[1..] {
                    [one] => one.clone(),
                    more => Scalar::Product(more.to_vec()),
                };
                let v = self.at(&rest, SUM);
                quote!(#p *= #v;)
            }
            Stmt::Store { place, add, value } => {
                let v = self.at(value, SUM);
                match (place, add) {
                    // A scalar built up inside a loop (a folded row sum).
                    (Place::Temp(t), false) if self.temps[*t].accumulated => {
                        let p = self.place(place);
                        quote!(let mut #p = #v;)
                    }
                    (Place::Temp(_), true) => {
                        let p = self.place(place);
                        quote!(#p += #v;)
                    }
                    (Place::Temp(_), false) => {
                        let p = self.place(place);
                        quote!(let #p = #v;)
                    }
                    (_, false) => {
                        let p = self.place(place);
                        quote!(#p = #v;)
                    }
                    (
                        Place::Elem(Access {
                            array: Array::Temp(t),
                            ..
                        }),
                        true,
                    ) if self.wide(*t) => {
                        let p = self.place(place);
                        quote!(#p += f64::from(#v);)
                    }
                    (_, true) => {
                        let p = self.place(place);
                        quote!(#p += #v;)
                    }
                }
            }
            Stmt::ZeroOut => {
                let z = self.num(0.0);
                quote!(out.fill(#z);)
            }
            Stmt::Scatter { vars, value, .. } => {
                let rows = format_ident!("rows{}", vars[0].0);
                let ix = vars.iter().map(|(v, _)| Self::var(*v));
                let n = self.dim(&vars[0].1);
                let v = self.at(value, SUM);
                quote! {
                    let value = #v;
                    let ix = [#(#ix),*];
                    for row in #rows.iter() {
                        let mut at = 0;
                        for &b in row.iter() {
                            at = at * #n + ix[b as usize];
                        }
                        out[at] += value;
                    }
                }
            }
            Stmt::Return(v) => self.at(v, SUM),
        }
    }

    /// `emit` for the body of a loop over rows `row`, knowing the input
    /// matrices the body reads one row of (all reads at `[row, j]`).
    fn with_next_rows(
        &self,
        row: Var,
        body: &[Stmt],
        emit: impl FnOnce() -> TokenStream,
    ) -> TokenStream {
        let mut reads = Vec::new();
        for s in body {
            super::loops::visit_stmt(s, &mut |e| {
                if let Scalar::Load(a) = e {
                    reads.push(a)
                }
            });
        }
        let mut found: Vec<NextRow> = Vec::new();
        let mut other: Vec<Array> = Vec::new();
        for a in reads {
            if !matches!(a.array, Array::Input(_)) {
                continue;
            }
            match &a.idx[..] {
                [(r, _), (j, len)] if *r == row && *j != row => {
                    if !found.iter().any(|f| f.array == a.array) {
                        found.push(NextRow {
                            array: a.array.clone(),
                            row,
                            len: len.clone(),
                        })
                    }
                }
                _ => other.push(a.array.clone()),
            }
        }
        found.retain(|f| !other.contains(&f.array));
        scoped(&self.ahead, found, emit)
    }

    /// Prefetches of the next row's block `start..start + len` of the
    /// matrices whose rows have length `dim`.
    fn prefetch_next_rows(&self, var: Var, dim: &Dim, start: &Ident, len: &Ident) -> TokenStream {
        let ahead = self.ahead.borrow();
        let rows: Vec<&NextRow> = ahead.iter().filter(|r| r.len == *dim).collect();
        if rows.is_empty() {
            return TokenStream::new();
        }
        let d = self.dim(dim);
        let at = format_ident!("ahead{}", var);
        let line = Literal::usize_unsuffixed(match self.names.float {
            Float::F64 => 8,
            Float::F32 => 16,
        });
        let fetches = rows.iter().map(|r| {
            let (src, row) = (self.array(&r.array), Self::var(r.row));
            // Past the last row the address is outside the array: a
            // prefetch never faults, and `wrapping_add` makes no claim.
            quote! {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    #src.as_ptr().wrapping_add((#row + 1) * #d + #at).cast::<i8>(),
                );
            }
        });
        quote! {
            #[cfg(target_arch = "x86_64")]
            for #at in (#start..#start + #len).step_by(#line) {
                unsafe { #(#fetches)* }
            }
        }
    }

    /// `emit`, with accesses to these rows going through their slices.
    fn with_rows<R>(&self, rows: Vec<RowSlice>, emit: impl FnOnce() -> R) -> R {
        scoped(&self.rows, rows, emit)
    }
}

/// `emit` with `items` pushed on `stack`, popped again after.
fn scoped<T, R>(stack: &RefCell<Vec<T>>, items: Vec<T>, emit: impl FnOnce() -> R) -> R {
    let taken = items.len();
    stack.borrow_mut().extend(items);
    let code = emit();
    let mut stack = stack.borrow_mut();
    let keep = stack.len() - taken;
    stack.truncate(keep);
    code
}

/// Whether `ts` uses the identifier `id`.
fn mentions(ts: &TokenStream, id: &Ident) -> bool {
    ts.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(x) => x == *id,
        proc_macro2::TokenTree::Group(g) => mentions(&g.stream(), id),
        _ => false,
    })
}

/// A term's sign, for printing `a - b` rather than `a + -b`.
fn split_sign(x: &Scalar) -> (bool, Scalar) {
    match x {
        Scalar::Neg(a) => (true, (**a).clone()),
        Scalar::Num(c) if *c < 0.0 => (true, Scalar::Num(-c)),
        Scalar::Product(fs) => match fs.first() {
            Some(Scalar::Num(c)) if *c < 0.0 => {
                let mut fs = fs.clone();
                if *c == -1.0 {
                    fs.remove(0);
                } else {
                    fs[0] = Scalar::Num(-c);
                }
                (
                    true,
                    if fs.len() == 1 {
                        fs.pop().unwrap()
                    } else {
                        Scalar::Product(fs)
                    },
                )
            }
            _ => (false, x.clone()),
        },
        _ => (false, x.clone()),
    }
}

/// The helper functions a kernel's bodies use that are generated as
/// items (the orbit enumerator); the others are [`super::runtime`] source.
pub fn helpers(kernel: &str, _float: Float, used: Helpers) -> TokenStream {
    let mut out = TokenStream::new();
    if used.orbit {
        // The helper's text is the one the interpreter compiles.
        let mut item: syn::ItemFn =
            syn::parse_str(include_str!("orbit_fn.rs")).expect("orbit_fn.rs is one function");
        item.sig.ident = format_ident!("{}_orbit", kernel);
        out.extend(quote!(#item));
    }
    out
}
