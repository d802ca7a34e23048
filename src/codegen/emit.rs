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

mod expr;
mod helpers;
mod matmul;
mod names;
mod ranges;
mod reduce;
mod rows;
mod symmetric;

pub use helpers::{helpers, Helpers};
use rows::{Block, RowSlice};

pub(crate) use super::loops::schedule::{BLOCK, LANES};
use super::loops::{Access, Array, Place, Scalar, Stmt, TempId, Temps, Var};
use super::Float;
use crate::ir::Dim;

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

/// Loop variables go into generated names (`i3`, `acc3_0`, `x_r3`).
impl quote::IdentFragment for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
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
    temps: &'a Temps,
    temp_names: Vec<Ident>,
    /// Row slices of the innermost loops being emitted.
    rows: RefCell<Vec<RowSlice>>,
    /// Whether a blocked pass was emitted (its fold is a runtime helper).
    pub(crate) folded: std::cell::Cell<bool>,
}

impl<'a> Emitter<'a> {
    /// An emitter for a body with these temporaries.
    pub fn new(names: &'a Names, temps: &'a Temps) -> Self {
        let temp_names = names::temp_names(names, temps);
        Emitter {
            names,
            temps,
            temp_names,
            rows: RefCell::new(Vec::new()),
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
        d.length_in(&self.names.fixed)
    }

    /// Whether temporary `t` is kept in f64 in an f32 kernel: a sum built
    /// up in place accumulates in f64, as the 4-lane sums do.
    fn wide(&self, t: TempId) -> bool {
        self.names.float == Float::F32 && self.temps[t].accumulated
    }

    fn var(v: Var) -> Ident {
        format_ident!("i{}", v)
    }

    fn array(&self, a: &Array) -> Ident {
        match a {
            Array::Input(k) => self.names.inputs[*k].clone(),
            Array::Temp(t) => self.temp_names[t.0].clone(),
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

    pub(crate) fn helper(&self, what: &str) -> Ident {
        format_ident!("{}_{}", self.names.kernel, what)
    }

    /// Declarations of the array temporaries of `stmts` (but the row
    /// buffers that each range of rows allocates for itself).
    pub fn allocations(&self, stmts: &[Stmt]) -> TokenStream {
        let own: Vec<TempId> = stmts
            .iter()
            .filter_map(|s| match s {
                Stmt::Loop { split: Some(s), .. } => Some(s.private.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        self.temps
            .enumerate()
            .filter(|(t, temp)| temp.live && !temp.vars.is_empty() && !own.contains(t))
            .map(|(t, _)| self.allocation(t))
            .collect()
    }

    /// The declaration of temporary `t`, zero: an array on the stack or
    /// the heap, or a scalar.
    fn allocation(&self, t: TempId) -> TokenStream {
        let temp = &self.temps[t];
        let name = &self.temp_names[t.0];
        let zero = if self.wide(t) {
            quote!(0.0f64)
        } else {
            self.num(0.0)
        };
        let fixed: Option<usize> = temp.vars.iter().map(|(_, d)| self.fixed(d)).product();
        match fixed {
            _ if temp.vars.is_empty() => quote!(let mut #name = #zero;),
            Some(size) if size <= STACK_MAX => {
                let size = Literal::usize_unsuffixed(size);
                quote!(let mut #name = [#zero; #size];)
            }
            _ => {
                let dims: Vec<Dim> = temp.vars.iter().map(|(_, d)| d.clone()).collect();
                let len = self.product(&dims);
                quote!(let mut #name = vec![#zero; #len];)
            }
        }
    }

    /// The orbit of every scattered class, enumerated once at entry.
    pub fn orbits(&self, ss: &[Stmt]) -> TokenStream {
        let mut out = TokenStream::new();
        for s in ss {
            match s {
                Stmt::Loop { body, .. } | Stmt::Tile { body, .. } => out.extend(self.orbits(body)),
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
        if let [init @ .., Stmt::Pass {
            var,
            dim,
            parts,
            schedule,
            walk,
        }, Stmt::Return(Scalar::Temp(u))] = ss
        {
            if matches!(parts.last().map(|p| &p.place), Some(Place::Temp(t)) if t == u) {
                let mut out: TokenStream = init.iter().map(|s| self.stmt(s)).collect();
                out.extend(self.reduce(*var, dim, parts, *schedule, walk, true));
                return out;
            }
        }
        ss.iter().map(|s| self.stmt(s)).collect()
    }

    fn place(&self, p: &Place) -> TokenStream {
        match p {
            Place::Temp(t) => {
                let n = &self.temp_names[t.0];
                quote!(#n)
            }
            Place::Elem(a) => self.access(a),
        }
    }

    fn stmt(&self, s: &Stmt) -> TokenStream {
        match s {
            Stmt::Loop {
                var,
                dim,
                body,
                slices,
                split: Some(split),
            } => self.row_ranges((*var, dim), body, slices, split),
            Stmt::Loop {
                var,
                dim,
                body,
                slices,
                split: None,
            } => {
                let i = Self::var(*var);
                let d = self.dim(dim);
                let (rows, lets) = self.row_slices(*var, dim, slices, None);
                let body = self.with_rows(rows, || self.stmts(body));
                quote!(#lets for #i in 0..#d { #body })
            }
            Stmt::Symmetric {
                order,
                dim,
                classes,
            } => self.symmetric(*order, dim, classes),
            Stmt::Tile {
                a: (va, da),
                b: (vb, db),
                size,
                body,
                slices,
                mirror,
            } => {
                let (ia, ib) = (Self::var(*va), Self::var(*vb));
                let (ta, tb) = (format_ident!("tile{}", va), format_ident!("tile{}", vb));
                let (na, nb) = (self.dim(da), self.dim(db));
                let size = Literal::usize_unsuffixed(*size);
                let (rows, lets) = self.row_slices(*vb, db, slices, None);
                let stores = self.with_rows(rows, || self.stmts(body));
                let (first, copy) = match (mirror, &body[..]) {
                    (true, [Stmt::Store { place: Place::Elem(m), .. }]) => {
                        let m = self.array(&m.array);
                        let copy = quote! {
                            if #tb != #ta {
                                for #ib in #tb..(#tb + #size).min(#nb) {
                                    for #ia in #ta..(#ta + #size).min(#na) {
                                        #m[#ib * #na + #ia] = #m[#ia * #nb + #ib];
                                    }
                                }
                            }
                        };
                        (quote!(#ta), copy)
                    }
                    _ => (quote!(0), TokenStream::new()),
                };
                quote! {
                    for #ta in (0..#na).step_by(#size) {
                        for #tb in (#first..#nb).step_by(#size) {
                            for #ia in #ta..(#ta + #size).min(#na) {
                                #lets
                                for #ib in #tb..(#tb + #size).min(#nb) {
                                    #stores
                                }
                            }
                            #copy
                        }
                    }
                }
            }
            Stmt::Pass {
                var,
                dim,
                parts,
                schedule,
                walk,
            } => self.reduce(*var, dim, parts, *schedule, walk, false),
            Stmt::Reduce { .. } => unreachable!("reductions are scheduled before they are printed"),
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
            Stmt::MatMul {
                sum,
                left,
                right,
                out,
                summand,
                symmetric,
            } => self.matmul(sum, left, right, out, summand, *symmetric),
        }
    }
}

/// Whether `ts` uses the identifier `id`.
fn mentions(ts: &TokenStream, id: &Ident) -> bool {
    ts.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(x) => x == *id,
        proc_macro2::TokenTree::Group(g) => mentions(&g.stream(), id),
        _ => false,
    })
}
