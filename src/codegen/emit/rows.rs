//! Row slices and prefetching: innermost loops walk the rows of matrices
//! through slices taken once per row (no per-entry bounds checks), and
//! blocked passes over a row prefetch the same block of the next row.

use std::cell::RefCell;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::Emitter;
use crate::codegen::loops::{Access, Array, Scalar, Stmt, Var};
use crate::codegen::Float;
use crate::ir::Dim;

/// An input matrix `a[r, j]` that a loop over rows `r` reads a row of at a
/// time. Blocked passes over row `r` with a costly body (`exp`) prefetch
/// the same block of row `r + 1`, so that its loads from memory overlap
/// with this row's arithmetic instead of waiting for the next row's first
/// pass.
pub(super) struct NextRow {
    pub(super) array: Array,
    pub(super) row: Var,
    /// The row length.
    pub(super) len: Dim,
}

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
    /// The row slices an innermost loop over `var` can take: arrays that
    /// every access in the loop reads or writes at one row, walked by
    /// `var` in its last index. With their `let` statements. In a block of
    /// a split reduction, vectors (an empty row prefix) are sliced too, and
    /// a row already sliced is sliced again from its slice.
    pub(super) fn row_slices(
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

    /// `emit` for the body of a loop over rows `row`, knowing the input
    /// matrices the body reads one row of (all reads at `[row, j]`).
    pub(super) fn with_next_rows(
        &self,
        row: Var,
        body: &[Stmt],
        emit: impl FnOnce() -> TokenStream,
    ) -> TokenStream {
        let mut reads = Vec::new();
        for s in body {
            crate::codegen::loops::visit_stmt(s, &mut |e| {
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
    pub(super) fn prefetch_next_rows(
        &self,
        var: Var,
        dim: &Dim,
        start: &Ident,
        len: &Ident,
    ) -> TokenStream {
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
    pub(super) fn with_rows<R>(&self, rows: Vec<RowSlice>, emit: impl FnOnce() -> R) -> R {
        scoped(&self.rows, rows, emit)
    }
}
