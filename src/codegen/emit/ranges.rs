//! A row loop marked by the `rows` pass ([`RowSplit`]) as a closure over a
//! range of rows, run once (`threads == 1`) or once per thread on
//! consecutive ranges (`std::thread::scope`). Each call gets its own rows
//! of the arrays written row by row (`split_at_mut`), its own sums over
//! rows, starting from zero, and its own row buffers; the sums are added
//! in order of ranges when all have returned.

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::Emitter;
use crate::codegen::loops::passes::rows::MIN_ENTRIES_LOG2;
use crate::codegen::loops::{Array, RowSplit, Slice, Stmt, Var};
use crate::ir::Dim;


/// The arrays a range gets its own rows of: names (the closure's
/// parameters shadow the whole arrays), element types, and how many
/// entries `hi − lo` rows are.
struct OwnRows {
    names: Vec<Ident>,
    types: Vec<TokenStream>,
    lens: Vec<TokenStream>,
}

impl Emitter<'_> {
    /// `for row < dim { body }` over ranges of rows, on `threads` threads,
    /// in a block of its own (`threads` there is this loop's).
    pub(super) fn row_ranges(
        &self,
        (row, dim): (Var, &Dim),
        body: &[Stmt],
        slices: &[Slice],
        split: &RowSplit,
    ) -> TokenStream {
        let own = self.own_rows(split);
        let region = self.range_closure((row, dim), body, slices, split, &own);
        let with_sums = !split.sums.is_empty();
        let dispatch = self.range_dispatch(dim, split, &own, with_sums);
        let combine = self.add_sums(split);
        quote! { {
            #region
            #dispatch
            #combine
        } }
    }

    fn own_rows(&self, split: &RowSplit) -> OwnRows {
        let names = split.split.iter().map(|(a, _)| self.array(a)).collect();
        let types = split
            .split
            .iter()
            .map(|(a, _)| match a {
                Array::Temp(t) if self.wide(*t) => quote!(f64),
                _ => self.ty(),
            })
            .collect();
        // `(hi − lo)·len`, or `hi − lo` for rows of one entry (no `* 1`).
        let lens = split
            .split
            .iter()
            .map(|(_, d)| {
                if d.is_empty() {
                    quote!(hi - lo)
                } else {
                    let len = self.product(d);
                    quote!((hi - lo) * #len)
                }
            })
            .collect();
        OwnRows { names, types, lens }
    }

    /// `region(lo, hi, rows…)`, the loop over one range with its own sums
    /// (returned) and row buffers, and `run`, which calls it through the
    /// runtime's `on_thread`: the only call of `region`, so that it is
    /// inlined there and compiled with its target features.
    fn range_closure(
        &self,
        (row, dim): (Var, &Dim),
        body: &[Stmt],
        slices: &[Slice],
        split: &RowSplit,
        own: &OwnRows,
    ) -> TokenStream {
        let i = Self::var(row);
        let (rows, lets) = self.row_slices(row, dim, slices, None);
        let inner = self.with_rows(rows, || self.stmts(body));
        let local = if split.split.is_empty() {
            quote!()
        } else {
            let j = Self::var(split.local);
            quote!(let #j = #i - lo;)
        };
        let fresh: TokenStream = split
            .sums
            .iter()
            .chain(&split.private)
            .map(|&t| self.allocation(t))
            .collect();
        let sums = split.sums.iter().map(|t| &self.temp_names[t.0]);
        let returned = if split.sums.is_empty() {
            quote!()
        } else {
            quote!((#(#sums,)*))
        };
        let (names, types) = (&own.names, &own.types);
        let on_thread = self.helper("on_thread");
        quote! {
            let region = |lo: usize, hi: usize, #(#names: &mut [#types]),*| {
                #fresh
                #lets
                for #i in lo..hi {
                    #local
                    #inner
                }
                #returned
            };
            let run = |lo: usize, hi: usize, #(#names: &mut [#types]),*| {
                #on_thread::<FMA, _>(|| region(lo, hi, #(#names),*))
            };
        }
    }

    /// Runs `run` on the whole range, or on `threads` consecutive ranges
    /// (each given its rows by `split_at_mut`), when each range would
    /// touch at least `2^MIN_ENTRIES_LOG2` entries. With sums, the ranges'
    /// results are kept, in order, as `ranges`.
    fn range_dispatch(&self, dim: &Dim, split: &RowSplit, own: &OwnRows, with_sums: bool) -> TokenStream {
        let m = self.dim(dim);
        // How many threads the work is worth: a number when the lengths
        // are fixed (the rows pass left only loops worth two).
        let fixed: Option<usize> = std::iter::once(dim).chain(&split.row).map(|d| self.fixed(d)).product();
        let most = match fixed {
            Some(entries) => {
                let most = Literal::usize_unsuffixed(entries >> MIN_ENTRIES_LOG2);
                quote!(#most)
            }
            None => {
                let log2 = Literal::usize_unsuffixed(MIN_ENTRIES_LOG2);
                let entries = if split.row.is_empty() {
                    m.clone()
                } else {
                    let len = self.product(&split.row);
                    quote!(#m * #len)
                };
                quote!((#entries) >> #log2)
            }
        };
        let (names, lens) = (&own.names, &own.lens);
        let rests: Vec<_> = names.iter().map(|n| format_ident!("{}_rest", n)).collect();
        let parts: Vec<_> = names.iter().map(|n| format_ident!("{}_rows", n)).collect();
        let all = quote!(run(0, #m, #(&mut #names[..]),*));
        let (bind, one, joined) = if with_sums {
            let joined = quote! {
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a range of rows does not panic"))
                    .collect::<Vec<_>>()
            };
            (quote!(let ranges =), quote!(Vec::from([#all])), joined)
        } else {
            let joined = quote! {
                for h in handles {
                    h.join().expect("a range of rows does not panic");
                }
            };
            (quote!(), quote!(#all;), joined)
        };
        quote! {
            let threads = threads.min(#most).max(1);
            #bind if threads == 1 {
                #one
            } else {
                let bounds: Vec<usize> = (0..=threads).map(|t| t * #m / threads).collect();
                #(let mut #rests = &mut #names[..];)*
                std::thread::scope(|scope| {
                    let run = &run;
                    let handles: Vec<_> = bounds
                        .windows(2)
                        .map(|w| {
                            let (lo, hi) = (w[0], w[1]);
                            #(
                                let (#parts, rest) = std::mem::take(&mut #rests).split_at_mut(#lens);
                                #rests = rest;
                            )*
                            scope.spawn(move || run(lo, hi, #(#parts),*))
                        })
                        .collect();
                    #joined
                })
            };
        }
    }

    /// Adds each range's sums to the totals, in order of ranges.
    fn add_sums(&self, split: &RowSplit) -> TokenStream {
        if split.sums.is_empty() {
            return quote!();
        }
        let totals: Vec<_> = split.sums.iter().map(|t| self.temp_names[t.0].clone()).collect();
        let parts: Vec<_> = totals.iter().map(|n| format_ident!("{}_part", n)).collect();
        let add = split.sums.iter().zip(totals.iter().zip(&parts)).map(|(&t, (total, part))| {
            if self.temps[t].vars.is_empty() {
                quote!(#total += #part;)
            } else {
                quote!(for (t, p) in #total.iter_mut().zip(&#part) { *t += p; })
            }
        });
        quote! {
            for (#(#parts,)*) in ranges {
                #(#add)*
            }
        }
    }
}
