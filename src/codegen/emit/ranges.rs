//! A row loop marked by the `rows` pass ([`RowSplit`]) as a closure over a
//! range of rows, run once (`threads == 1`) or once per thread on
//! consecutive ranges (`std::thread::scope`). Each call gets its own rows
//! of the arrays written row by row (`split_at_mut`), its own sums over
//! rows, starting from zero, and its own row buffers; the sums are added
//! in order of ranges when all have returned.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::Emitter;
use crate::codegen::loops::{Array, RowSplit, Slice, Stmt, Var};
use crate::ir::Dim;

/// Rows a thread should have at least: `row × rows` entries touched per
/// range, as a power of two (about 16 thousand: some ten microseconds,
/// a few times what starting a thread costs).
const MIN_ENTRIES_LOG2: usize = 14;

impl Emitter<'_> {
    /// `for row < dim { body }` over ranges of rows, on `threads` threads.
    pub(super) fn row_ranges(
        &self,
        (row, dim): (Var, &Dim),
        body: &[Stmt],
        slices: &[Slice],
        split: &RowSplit,
    ) -> TokenStream {
        let (i, m) = (Self::var(row), self.dim(dim));
        let (rows, lets) = self.row_slices(row, dim, slices, None);
        let inner = self.with_rows(rows, || self.stmts(body));
        let local = if split.split.is_empty() {
            quote!()
        } else {
            let j = Self::var(split.local);
            quote!(let #j = #i - lo;)
        };
        // The arrays written row by row, as the closure's own rows.
        let names: Vec<_> = split.split.iter().map(|(a, _)| self.array(a)).collect();
        let types: Vec<TokenStream> = split
            .split
            .iter()
            .map(|(a, _)| match a {
                Array::Temp(t) if self.wide(*t) => quote!(f64),
                _ => self.ty(),
            })
            .collect();
        // `(hi − lo)·len` entries for each array's rows (`hi − lo` when a
        // row is one entry: no `* 1` for clippy).
        let times = |n: TokenStream, dims: &[Dim]| {
            if dims.is_empty() {
                n
            } else {
                let len = self.product(dims);
                quote!(#n * #len)
            }
        };
        let row_lens: Vec<TokenStream> = split
            .split
            .iter()
            .map(|(_, d)| {
                if d.is_empty() {
                    quote!(hi - lo)
                } else {
                    times(quote!((hi - lo)), d)
                }
            })
            .collect();
        let rests: Vec<_> = names.iter().map(|n| format_ident!("{}_rest", n)).collect();
        let parts: Vec<_> = names.iter().map(|n| format_ident!("{}_rows", n)).collect();
        // Sums and row buffers, each range's own.
        let own: TokenStream = split
            .sums
            .iter()
            .chain(&split.private)
            .map(|&t| self.allocation(t))
            .collect();
        let sums: Vec<_> = split.sums.iter().map(|t| self.temp_names[t.0].clone()).collect();
        let partial: Vec<_> = sums.iter().map(|n| format_ident!("{}_part", n)).collect();
        let add: TokenStream = split
            .sums
            .iter()
            .zip(sums.iter().zip(&partial))
            .map(|(&t, (total, part))| {
                if self.temps[t].vars.is_empty() {
                    quote!(#total += #part;)
                } else {
                    quote!(for (t, p) in #total.iter_mut().zip(&#part) { *t += p; })
                }
            })
            .collect();
        let entries = times(m.clone(), &split.row);
        let on_thread = self.helper("on_thread");
        let log2 = proc_macro2::Literal::usize_unsuffixed(MIN_ENTRIES_LOG2);
        // With sums, each range returns its own, added in order of ranges.
        let call_all = quote!(run(0, #m, #(&mut #names[..]),*));
        let (returned, bind, one, joined, combine) = if sums.is_empty() {
            let joined = quote! {
                for h in handles {
                    h.join().expect("a range of rows does not panic");
                }
            };
            (quote!(), quote!(), quote!(#call_all;), joined, quote!())
        } else {
            let joined = quote! {
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a range of rows does not panic"))
                    .collect::<Vec<_>>()
            };
            let combine = quote! {
                for (#(#partial,)*) in ranges {
                    #add
                }
            };
            let bind = quote!(let ranges =);
            (quote!((#(#sums,)*)), bind, quote!(Vec::from([#call_all])), joined, combine)
        };
        // In a block of its own: `threads` here is this loop's.
        quote! { {
            let region = |lo: usize, hi: usize, #(#names: &mut [#types]),*| {
                #own
                #lets
                for #i in lo..hi {
                    #local
                    #inner
                }
                #returned
            };
            // The only call of `region`, so that it is inlined into
            // `on_thread` (and compiled with its target features).
            let run = |lo: usize, hi: usize, #(#names: &mut [#types]),*| {
                #on_thread::<FMA, _>(|| region(lo, hi, #(#names),*))
            };
            let threads = threads.min((#entries) >> #log2).max(1);
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
                                let (#parts, rest) = std::mem::take(&mut #rests).split_at_mut(#row_lens);
                                #rests = rest;
                            )*
                            scope.spawn(move || run(lo, hi, #(#parts),*))
                        })
                        .collect();
                    #joined
                })
            };
            #combine
        } }
    }
}
