//! Reductions: the passes that sum or maximize bodies over one index.
//!
//! A pass holds the parts fused into it (`Σq`, `Σ exp(z − c)`, `max z`…)
//! and at most one shift, which the other parts read. How it is emitted
//! depends on its length and its bodies:
//!
//! * short fixed lengths: one accumulator per part, a plain loop;
//! * cheap bodies: `LANES` interleaved partial results, which the compiler
//!   vectorizes without reassociating on its own;
//! * costly bodies (`exp`): blocks of `BLOCK`, each sliced once, that add
//!   into `BLOCK` partial results per part in a loop the compiler
//!   vectorizes, folded pairwise after the last block; a shift then starts
//!   as the first block's maximum (see [`Emitter::shift_restart`]).

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use super::{mentions, Block, Emitter, BLOCK, LANES, SUM};
use crate::codegen::loops::schedule::{shifted_sum, Schedule, RESTART_ABOVE, RESTART_ABOVE_F32};
use crate::codegen::loops::{Part, Place, RedOp, Scalar, Var, Walk};
use crate::codegen::Float;
use crate::ir::Dim;

/// One pass's reductions, as emission sees them.
struct Pass<'p> {
    var: Var,
    dim: &'p Dim,
    /// The accumulated parts (a shift is not one: they read it).
    parts: Vec<&'p Part>,
    /// The shift the parts read, if any.
    shift: Option<&'p Part>,
    /// Accumulator names, by part.
    accs: Vec<Ident>,
    /// Whether the last part's total is the value of the whole block.
    returns: bool,
    /// Its slices and prefetches.
    walk: &'p Walk,
}

/// `into ⊕= from` for the part's operator.
fn combine(op: RedOp, into: TokenStream, from: TokenStream) -> TokenStream {
    match op {
        RedOp::Sum => quote!(#into += #from;),
        RedOp::Max | RedOp::Shift => quote!(#into = #into.max(#from);),
    }
}

/// The `LANES` partial results `a` combined into one total.
fn lane_total(op: RedOp, a: &TokenStream) -> TokenStream {
    match op {
        RedOp::Sum => quote!((#a[0] + #a[1]) + (#a[2] + #a[3])),
        RedOp::Max | RedOp::Shift => quote!(#a[0].max(#a[1]).max(#a[2].max(#a[3]))),
    }
}

/// A loop over `at in 0..end` that keeps `LANES` interleaved partial
/// results: `main` updates lane `l{var}` of whole chunks, `rest` lane 0 of
/// the entries left over.
fn lanes_loop(
    var: Var,
    at: &Ident,
    end: &TokenStream,
    main: TokenStream,
    rest: TokenStream,
) -> TokenStream {
    let (chunk, lane) = (format_ident!("c{}", var), format_ident!("l{}", var));
    let lanes = Literal::usize_unsuffixed(LANES);
    quote! {
        for #chunk in 0..#end / #lanes {
            for #lane in 0..#lanes {
                let #at = #chunk * #lanes + #lane;
                #main
            }
        }
        for #at in #end / #lanes * #lanes..#end {
            #rest
        }
    }
}

impl Emitter<'_> {
    /// Reductions sharing one pass, reading rows sliced once. With
    /// `returns`, the last part's total is the value of the block.
    pub(super) fn reduce(
        &self,
        var: Var,
        dim: &Dim,
        parts: &[Part],
        schedule: Schedule,
        walk: &Walk,
        returns: bool,
    ) -> TokenStream {
        let (rows, lets) = self.row_slices(var, dim, &walk.rows, None);
        let code = self.with_rows(rows, || {
            self.reduce_pass(var, dim, parts, schedule, walk, returns)
        });
        quote!(#lets #code)
    }

    fn reduce_pass(
        &self,
        var: Var,
        dim: &Dim,
        parts: &[Part],
        schedule: Schedule,
        walk: &Walk,
        returns: bool,
    ) -> TokenStream {
        let accumulated: Vec<&Part> = parts.iter().filter(|p| p.op != RedOp::Shift).collect();
        let pass = Pass {
            var,
            dim,
            accs: (0..accumulated.len())
                .map(|k| format_ident!("acc{}_{}", var, k))
                .collect(),
            parts: accumulated,
            shift: parts.iter().find(|p| p.op == RedOp::Shift),
            returns,
            walk,
        };
        let split = schedule != Schedule::Single;
        let blocked = matches!(schedule, Schedule::Blocks { .. });
        let checked = match schedule {
            Schedule::Blocks { restart: true } => shifted_sum(parts),
            _ => None,
        };
        let mut out = TokenStream::new();
        // A shift that is not checked in blocks is the exact maximum, first.
        if let (Some(shift), None) = (pass.shift, checked) {
            let m = self.place(&shift.place);
            let d = self.dim(dim);
            out.extend(self.max_lanes(var, &shift.body, quote!(#d), split, quote!(let #m)));
        }
        if !split {
            out.extend(self.single_accumulators(&pass));
            return out;
        }
        out.extend(if blocked {
            self.blocks(&pass, checked)
        } else {
            self.lanes(&pass)
        });
        for (k, (&p, a)) in pass.parts.iter().zip(&pass.accs).enumerate() {
            let total = lane_total(p.op, &quote!(#a));
            out.extend(self.finish(&pass, k, p, total));
        }
        out
    }

    /// f32 kernels accumulate in f64.
    fn accumulates_wide(&self) -> bool {
        self.names.float == Float::F32
    }

    fn acc_ty(&self) -> TokenStream {
        if self.accumulates_wide() {
            quote!(f64)
        } else {
            self.ty()
        }
    }

    /// The identity of the part's operator.
    fn identity(&self, op: RedOp) -> TokenStream {
        let acc_ty = self.acc_ty();
        match op {
            RedOp::Sum => quote!(0.0),
            RedOp::Max | RedOp::Shift => quote!(#acc_ty::NEG_INFINITY),
        }
    }

    /// `slot ⊕= value`, after storing the value where the part keeps it.
    fn update(&self, p: &Part, slot: TokenStream) -> TokenStream {
        let b = self.at(&p.body, SUM);
        let (pre, b) = match &p.keep {
            Some(k) => {
                let k = self.access(k);
                (quote!(#k = #b;), k)
            }
            None => (TokenStream::new(), b),
        };
        let b = if self.accumulates_wide() {
            quote!(f64::from(#b))
        } else {
            b
        };
        let step = combine(p.op, slot, b);
        quote!(#pre #step)
    }

    /// Where part `k`'s total goes: a `let`, an array entry, or (the last
    /// part of a returning pass) the value itself.
    fn finish(&self, pass: &Pass, k: usize, p: &Part, total: TokenStream) -> TokenStream {
        let total = if self.accumulates_wide() {
            quote!((#total) as f32)
        } else {
            total
        };
        if pass.returns && k + 1 == pass.parts.len() {
            return total;
        }
        let n = self.place(&p.place);
        match &p.place {
            Place::Temp(_) => quote!(let #n = #total;),
            Place::Elem(_) => quote!(#n = #total;),
        }
    }

    /// Short fixed lengths: one accumulator per part.
    fn single_accumulators(&self, pass: &Pass) -> TokenStream {
        let (i, d, acc_ty) = (Self::var(pass.var), self.dim(pass.dim), self.acc_ty());
        let (mut out, mut body) = (TokenStream::new(), TokenStream::new());
        for (&p, a) in pass.parts.iter().zip(&pass.accs) {
            let init = self.identity(p.op);
            out.extend(quote!(let mut #a: #acc_ty = #init;));
            body.extend(self.update(p, quote!(#a)));
        }
        out.extend(quote!(for #i in 0..#d { #body }));
        for (k, (&p, a)) in pass.parts.iter().zip(&pass.accs).enumerate() {
            out.extend(self.finish(pass, k, p, quote!(#a)));
        }
        out
    }

    /// Cheap bodies: `LANES` interleaved partial results.
    fn lanes(&self, pass: &Pass) -> TokenStream {
        let (i, d, acc_ty) = (Self::var(pass.var), self.dim(pass.dim), self.acc_ty());
        let lane = format_ident!("l{}", pass.var);
        let lanes = Literal::usize_unsuffixed(LANES);
        let (mut out, mut main, mut rest) =
            (TokenStream::new(), TokenStream::new(), TokenStream::new());
        for (&p, a) in pass.parts.iter().zip(&pass.accs) {
            let init = self.identity(p.op);
            out.extend(quote!(let mut #a: [#acc_ty; #lanes] = [#init; #lanes];));
            main.extend(self.update(p, quote!(#a[#lane])));
            rest.extend(self.update(p, quote!(#a[0])));
        }
        out.extend(lanes_loop(pass.var, &i, &d, main, rest));
        out
    }

    /// Costly bodies, in blocks of `BLOCK`. Every part keeps `BLOCK`
    /// partial results, one per position in the block, updated by one loop
    /// over the block that the compiler vectorizes (no reassociation
    /// needed; arrays are sliced per block, so no entry's bounds are
    /// checked). No update waits on the one before, as with one running
    /// result per lane, and the partial results are folded pairwise only
    /// once, after the last block.
    fn blocks(&self, pass: &Pass, checked: Option<usize>) -> TokenStream {
        let (var, i, d, acc_ty) = (
            pass.var,
            Self::var(pass.var),
            self.dim(pass.dim),
            self.acc_ty(),
        );
        let block = Literal::usize_unsuffixed(BLOCK);
        let start = format_ident!("b{}", var);
        let len = format_ident!("len{}", var);
        let j = format_ident!("j{}", var);
        let lane = format_ident!("l{}", var);
        let blk = Block {
            start: &start,
            len: &len,
            j: &j,
        };
        let (slices, slice_lets) = self.row_slices(var, pass.dim, &pass.walk.blocks, Some(&blk));
        let (mut out, mut acc_slices, mut fold) =
            (TokenStream::new(), TokenStream::new(), TokenStream::new());
        let mut slots = Vec::new();
        for (k, (&p, a)) in pass.parts.iter().zip(&pass.accs).enumerate() {
            let init = self.identity(p.op);
            out.extend(quote!(let mut #a: [#acc_ty; #block] = [#init; #block];));
            let slot = format_ident!("part{}_{}", var, k);
            acc_slices.extend(quote!(let #slot = &mut #a[..#len];));
            slots.push(slot);
            // The runtime helper folds 64 into 4 (`fold64`); another
            // block or lane count is folded in place.
            if BLOCK == 64 && LANES == 4 {
                let helper = self.helper("fold64");
                let max = !matches!(p.op, RedOp::Sum);
                fold.extend(quote!(#helper::<#max>(&mut #a);));
                self.folded.set(true);
            } else {
                let mut half = BLOCK / 2;
                while half >= LANES {
                    let h = Literal::usize_unsuffixed(half);
                    let step = combine(p.op, quote!(#a[#lane]), quote!(#a[#lane + #h]));
                    fold.extend(quote!(for #lane in 0..#h { #step }));
                    half /= 2;
                }
            }
        }
        let update: TokenStream = self.with_rows(slices, || {
            pass.parts
                .iter()
                .zip(&slots)
                .map(|(&p, slot)| self.update(p, quote!(#slot[#j])))
                .collect()
        });
        // `i` only if an access was not sliced.
        let index = if mentions(&update, &i) {
            quote!(let #i = #start + #j;)
        } else {
            TokenStream::new()
        };
        let prefetch = self.prefetch_next_rows(var, pass.dim, &pass.walk.prefetch, &start, &len);
        let walk = quote! {
            let mut #start = 0;
            while #start < #d {
                let #len = (#d - #start).min(#block);
                #slice_lets
                #acc_slices
                for #j in 0..#len {
                    #index
                    #update
                }
                #prefetch
                #start += #len;
            }
            #fold
        };
        out.extend(match (pass.shift, checked) {
            (Some(shift), Some(k)) => self.shift_restart(pass, shift, k, walk),
            _ => walk,
        });
        out
    }

    /// A blocked pass (`walk`, which ends folded) with a shift. The shift
    /// starts as the first block's maximum. A later entry far above it
    /// makes the sum of exponentials (part `k`) pass a limit — the
    /// exponential clamps its argument, so it cannot wrap — and the pass
    /// runs again from the exact maximum, once. Below the limit no
    /// exponential, sum or kept value overflows.
    fn shift_restart(&self, pass: &Pass, shift: &Part, k: usize, walk: TokenStream) -> TokenStream {
        let (var, d) = (pass.var, self.dim(pass.dim));
        let block = Literal::usize_unsuffixed(BLOCK);
        let m = self.place(&shift.place);
        let exact = format_ident!("exact{}", var);
        let first = self.max_lanes(
            var,
            &shift.body,
            quote!(#d.min(#block)),
            true,
            quote!(let mut #m),
        );
        let again = self.max_lanes(var, &shift.body, quote!(#d), true, quote!(#m));
        let limit = match self.names.float {
            Float::F64 => RESTART_ABOVE,
            Float::F32 => RESTART_ABOVE_F32,
        };
        let limit: TokenStream = format!("{limit:e}").parse().expect("a float literal");
        let a = &pass.accs[k];
        let sum = lane_total(RedOp::Sum, &quote!(#a));
        let resets = pass.parts.iter().zip(&pass.accs).map(|(p, a)| {
            let init = self.identity(p.op);
            quote!(#a = [#init; #block];)
        });
        // A shift of −∞ (every logit so far masked with −∞) would make
        // `x − c` NaN; any finite shift is exact, and one far below a later
        // logit passes the limit and restarts from the true maximum.
        let ty = self.ty();
        let finite = quote! {
            if #m == #ty::NEG_INFINITY {
                #m = 0.0;
            }
        };
        quote! {
            #first
            #finite
            let mut #exact = #d <= #block;
            loop {
                #walk
                if !#exact && #sum > #limit {
                    #exact = true;
                    #again
                    #finite
                    #(#resets)*
                    continue;
                }
                break;
            }
        }
    }

    /// `target = max of body over var in 0..end;`, with `LANES` partial
    /// maxima unless the pass is not split (a short fixed length).
    fn max_lanes(
        &self,
        var: Var,
        body: &Scalar,
        end: TokenStream,
        split: bool,
        target: TokenStream,
    ) -> TokenStream {
        let i = Self::var(var);
        let ty = self.ty();
        let x = self.at(body, SUM);
        let top = format_ident!("top{}", var);
        if !split {
            return quote! {
                #target = {
                    let mut #top = #ty::NEG_INFINITY;
                    for #i in 0..#end {
                        #top = #top.max(#x);
                    }
                    #top
                };
            };
        }
        let lane = format_ident!("l{}", var);
        let lanes = Literal::usize_unsuffixed(LANES);
        let main = combine(RedOp::Max, quote!(#top[#lane]), x.clone());
        let rest = combine(RedOp::Max, quote!(#top[0]), x);
        let walk = lanes_loop(var, &i, &end, main, rest);
        let total = lane_total(RedOp::Max, &quote!(#top));
        quote! {
            #target = {
                let mut #top: [#ty; #lanes] = [#ty::NEG_INFINITY; #lanes];
                #walk
                #total
            };
        }
    }
}
