//! A [`Stmt::MatMul`] as one call of the runtime helper `gemm`
//! (`codegen/runtime/f64.rs`): each factor of the summand becomes an
//! operand addressed by two strides, the one of the summed variable and
//! the one of its own (a transposed operand is only other strides).

use proc_macro2::TokenStream;
use quote::quote;

use super::Emitter;
use crate::codegen::loops::{flatten_product, Access, Array, Scalar, Var};
use crate::ir::Dim;

/// The factors of a product's summand: over `left`, over `right`, and the
/// optional scale over the summed variable alone.
fn operands(summand: &Scalar, left: Var, right: Var) -> Option<(Access, Access, Option<Access>)> {
    let mut factors = Vec::new();
    flatten_product(summand, &mut factors);
    let (mut u, mut v, mut s) = (None, None, None);
    for f in factors {
        let Scalar::Load(a) = f else { return None };
        let over = |x: Var| a.idx.iter().any(|(w, _)| *w == x);
        let slot = match (over(left), over(right)) {
            (true, false) => &mut u,
            (false, true) => &mut v,
            (false, false) => &mut s,
            (true, true) => return None,
        };
        if slot.replace(a).is_some() {
            return None;
        }
    }
    Some((u?, v?, s))
}

impl Emitter<'_> {
    /// `out[…] += Σ_sum summand` by the blocked helper.
    pub(super) fn matmul(
        &self,
        (sum, rows): &(Var, Dim),
        (left, left_len): &(Var, Dim),
        (right, right_len): &(Var, Dim),
        out: &Access,
        summand: &Scalar,
        symmetric: bool,
    ) -> TokenStream {
        let (u, v, scale) =
            operands(summand, *left, *right).expect("the products pass builds summands of loads");
        let gemm = self.helper("gemm");
        // Inputs are slices already; temporaries are vectors or arrays.
        let slice = |a: &Access| {
            let name = self.array(&a.array);
            match a.array {
                Array::Input(_) => quote!(#name),
                _ => quote!(&#name[..]),
            }
        };
        let strides = |a: &Access, x: Var, y: Var| {
            let (sx, sy) = (self.stride(a, x), self.stride(a, y));
            quote!([#sx, #sy])
        };
        let (u_s, v_s) = (strides(&u, *sum, *left), strides(&v, *sum, *right));
        let (u, v) = (slice(&u), slice(&v));
        let scale = match &scale {
            Some(s) => slice(s),
            None => quote!(&[] as &[f64]),
        };
        let c = self.array(&out.array);
        let c_s = strides(out, *left, *right);
        let (n, l, r) = (self.dim(rows), self.dim(left_len), self.dim(right_len));
        quote! {
            #gemm::<FMA>(#n, #l, #r, #u, #u_s, #v, #v_s, #scale, &mut #c[..], #c_s, #symmetric, threads);
        }
    }

    /// How far apart consecutive values of `x` are in `a` (row-major):
    /// the product of the lengths after its axis, 0 when `a` has none.
    fn stride(&self, a: &Access, x: Var) -> TokenStream {
        match a.idx.iter().position(|(w, _)| *w == x) {
            None => quote!(0),
            Some(k) => {
                let after: Vec<Dim> = a.idx[k + 1..].iter().map(|(_, d)| d.clone()).collect();
                self.product(&after)
            }
        }
    }
}
