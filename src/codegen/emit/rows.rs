//! Row slices and prefetches, printed as the scheduling step decided them
//! (see [`crate::codegen::loops::schedule`]): innermost loops walk the rows
//! of matrices through slices taken once per row (no per-entry bounds
//! checks), and blocked passes over a row prefetch the same block of the
//! next row.

use std::cell::RefCell;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::Emitter;
use crate::codegen::loops::{Array, NextRow, Slice, Var};
use crate::codegen::Float;
use crate::ir::Dim;

/// One row of an array, sliced before an innermost loop that walks it:
/// `let x_r5 = &x[base..][..n];` and `x_r5[i5]` in the loop, so the bounds
/// are checked once per row, not per entry (which keeps the compiler from
/// vectorizing the loop when the row is short). A block of a split
/// reduction slices the same way: `let x_b5 = &x_r5[b5..][..len5];` and
/// `x_b5[j5]`.
pub(super) struct RowSlice {
    pub(super) array: Array,
    /// The access's indices before the last, which the loop leaves fixed.
    pub(super) prefix: Vec<(Var, Dim)>,
    /// The loop variable, the access's last index.
    pub(super) var: Var,
    pub(super) name: Ident,
    /// What the slice is indexed by: `var` itself, or a block's offset.
    pub(super) at: Ident,
}

/// A block of a split reduction over `var`: entries `start..start + len`,
/// walked by `j`.
pub(super) struct Block<'b> {
    pub(super) start: &'b Ident,
    pub(super) len: &'b Ident,
    pub(super) j: &'b Ident,
}

/// `emit` with `items` pushed on `stack`, popped again after.
pub(super) fn scoped<T, R>(stack: &RefCell<Vec<T>>, items: Vec<T>, emit: impl FnOnce() -> R) -> R {
    let taken = items.len();
    stack.borrow_mut().extend(items);
    let code = emit();
    let mut stack = stack.borrow_mut();
    let keep = stack.len() - taken;
    stack.truncate(keep);
    code
}

impl Emitter<'_> {
    /// The `let`s that take these slices of a loop over `var` (per
    /// block of a split reduction with `block`), and the slices for
    /// [`Self::with_rows`]. A row already sliced is sliced again from its
    /// slice.
    pub(super) fn row_slices(
        &self,
        var: Var,
        dim: &Dim,
        slices: &[Slice],
        block: Option<&Block>,
    ) -> (Vec<RowSlice>, TokenStream) {
        let d = self.dim(dim);
        let mut rows = Vec::new();
        let mut lets = TokenStream::new();
        for Slice {
            array,
            prefix,
            write,
        } in slices.iter().cloned()
        {
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

    /// Prefetches of the next row's block `start..start + len` of these
    /// matrices, whose rows have length `dim`.
    pub(super) fn prefetch_next_rows(
        &self,
        var: Var,
        dim: &Dim,
        rows: &[NextRow],
        start: &Ident,
        len: &Ident,
    ) -> TokenStream {
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
    pub(super) fn with_rows<R>(&self, rows: Vec<RowSlice>, emit: impl FnOnce() -> R) -> R {
        scoped(&self.rows, rows, emit)
    }
}
