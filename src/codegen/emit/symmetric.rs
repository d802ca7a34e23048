//! A [`Stmt::Symmetric`] tensor as a walk over sorted index tuples.
//!
//! An entry of a symmetric tensor depends only on the multiset of its
//! indices, so the kernel visits each multiset once (`next_sorted`),
//! sums the terms of every class at it, and writes the sum to each
//! distinct permutation (`fill_permutations`): `n^k` writes in all, each
//! entry one rounded sum, where scattering the classes' terms one by one
//! costs a write per term and entry.
//!
//! A class's terms at a tuple with distinct indices `u_j`, each `m_j`
//! times: a term is nonzero when each of its blocks gets slots that all
//! hold one index, so the sum runs over the maps `f` of blocks to the
//! `u_j` that fill each `u_j`'s slots exactly (Σ of the sizes of the
//! blocks sent to `u_j` is `m_j`). Over all `k!` slot permutations each
//! such map occurs `Π_j m_j!` times, and the distinct terms are `1/stab`
//! of the permutations, `stab = Π_b s_b! · Π_kinds (blocks of the kind)!`
//! (sizes `s_b`). Interchangeable blocks (one kind) are walked with
//! non-decreasing `j` only, each map then standing for
//! `Π_kinds (blocks of the kind)! / Π (runs of equal j)!` maps, so
//!
//! `entry = Π_j m_j! · Σ_classes Σ_f value(u_f) / (Π_b s_b! · Π_b rep_b)`
//!
//! where `rep_b` is the position of block `b` in its run of equal `j`
//! among the blocks of its kind (so `Π rep_b` is the product of the
//! runs' factorials).

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{Emitter, SUM};
use crate::codegen::loops::SymClass;
use crate::ir::Dim;

impl Emitter<'_> {
    /// The walk over sorted tuples that writes every entry of `out`.
    pub(super) fn symmetric(&self, order: usize, dim: &Dim, classes: &[SymClass]) -> TokenStream {
        let ty = self.ty();
        let k = Literal::usize_unsuffixed(order);
        let n = self.dim(dim);
        let (next, fill) = (self.helper("next_sorted"), self.helper("fill_permutations"));
        let classes = classes.iter().map(|c| self.class_sum(c));
        quote! {
            let mut sorted = [0usize; #k];
            loop {
                // The tuple's distinct indices and how often each occurs.
                let (mut at, mut mult, mut distinct) = ([0usize; #k], [0usize; #k], 0);
                for s in 0..#k {
                    if s > 0 && sorted[s - 1] == sorted[s] {
                        mult[distinct - 1] += 1;
                    } else {
                        at[distinct] = sorted[s];
                        mult[distinct] = 1;
                        distinct += 1;
                    }
                }
                let mut entry: #ty = 0.0;
                #(#classes)*
                let mut weight: #ty = 1.0;
                for &m in &mult[..distinct] {
                    for f in 2..=m {
                        weight *= f as #ty;
                    }
                }
                #fill(&sorted, #n, entry * weight, out);
                if !#next(&mut sorted, #n) {
                    break;
                }
            }
        }
    }

    /// One class's terms at the tuple, added to `entry`: nested loops
    /// sending block `b` to distinct index `j_b`, while that index has
    /// `s_b` unfilled slots.
    fn class_sum(&self, c: &SymClass) -> TokenStream {
        let ty = self.ty();
        let blocks = c.vars.len();
        let j = |b: usize| format_ident!("j{}", c.vars[b].0);
        let rep = |b: usize| format_ident!("rep{}", c.vars[b].0);
        // The block of the same kind before each block, if any.
        let before: Vec<Option<usize>> = (0..blocks)
            .map(|b| (0..b).rev().find(|&p| c.kinds[p] == c.kinds[b]))
            .collect();
        let size_factorials: f64 = c
            .sizes
            .iter()
            .map(|&s| (2..=s).map(|f| f as f64).product::<f64>())
            .product();
        let reps: Vec<_> = (0..blocks)
            .filter(|&b| before[b].is_some())
            .map(rep)
            .collect();
        let base = self.num(size_factorials);
        let binds = (0..blocks).map(|b| {
            let (i, jb) = (Self::var(c.vars[b].0), j(b));
            quote!(let #i = at[#jb];)
        });
        let add = if reps.is_empty() && size_factorials == 1.0 {
            let value = self.at(&c.value, SUM);
            quote!(entry += #value;)
        } else if reps.is_empty() {
            let value = self.at(&c.value, super::PRODUCT);
            quote!(entry += #value / #base;)
        } else {
            let value = self.at(&c.value, super::PRODUCT);
            quote!(entry += #value / (#base #(* #reps as #ty)*);)
        };
        let mut body = quote! {
            #(#binds)*
            #add
        };
        for b in (0..blocks).rev() {
            let (jb, size) = (j(b), Literal::usize_unsuffixed(c.sizes[b]));
            let (start, run) = match before[b] {
                Some(p) => {
                    let (jp, rp, rb) = (j(p), rep(p), rep(b));
                    let rp = if before[p].is_some() {
                        quote!(#rp)
                    } else {
                        quote!(1usize)
                    };
                    (
                        quote!(#jp),
                        quote!(let #rb = if #jb == #jp { #rp + 1 } else { 1usize };),
                    )
                }
                None => (quote!(0), TokenStream::new()),
            };
            body = quote! {
                for #jb in #start..distinct {
                    if cap[#jb] < #size {
                        continue;
                    }
                    cap[#jb] -= #size;
                    #run
                    #body
                    cap[#jb] += #size;
                }
            };
        }
        quote! {
            {
                let mut cap = mult;
                #body
            }
        }
    }
}
