//! Which helper functions a kernel's bodies use: the runtime helpers
//! (emitted verbatim from `codegen/runtime/`) and the orbit enumerator.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::codegen::loops::{Scalar, Stmt};
use crate::codegen::Float;
use crate::ir::Fun;

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
    /// The register-blocked matrix product.
    pub gemm: bool,
    /// The sorted-tuple walk and permutation fill of symmetric tensors.
    pub symmetric: bool,
    /// Ranges of rows on threads.
    pub rows: bool,
}

impl Helpers {
    /// The runtime helpers (see [`crate::codegen::runtime`]) these flags name.
    pub fn runtime_names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (on, name) in [
            (self.exp, "exp"),
            (self.exp_shifted, "exp_shifted"),
            (self.sigmoid, "sigmoid"),
            (self.softplus, "softplus"),
            (self.fold, "fold64"),
            (self.gemm, "gemm"),
            (self.rows, "on_thread"),
            (self.symmetric, "next_sorted"),
            (self.symmetric, "fill_permutations"),
        ] {
            if on {
                out.push(name);
            }
        }
        out
    }

    /// Adds the helpers `x` needs.
    pub fn note(&mut self, x: &Scalar) {
        crate::codegen::loops::visit(x, &mut |s| match s {
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
            Stmt::Loop { body, split, .. } => {
                self.rows |= split.is_some();
                body.iter().for_each(|b| self.note_stmt(b))
            }
            Stmt::Tile { body, .. } => body.iter().for_each(|b| self.note_stmt(b)),
            Stmt::Reduce { parts, .. } | Stmt::Pass { parts, .. } => {
                parts.iter().for_each(|p| self.note(&p.body))
            }
            Stmt::Store { value, .. } | Stmt::Return(value) => self.note(value),
            Stmt::Scatter { value, .. } => {
                self.orbit = true;
                self.note(value)
            }
            Stmt::Symmetric { classes, .. } => {
                self.symmetric = true;
                classes.iter().for_each(|c| self.note(&c.value))
            }
            Stmt::MatMul { summand, .. } => {
                self.gemm = true;
                self.note(summand)
            }
            Stmt::ZeroOut => {}
        }
    }
}

/// The helper functions a kernel's bodies use that are generated as
/// items (the orbit enumerator); the others are [`crate::codegen::runtime`] source.
pub fn helpers(kernel: &str, _float: Float, used: Helpers) -> TokenStream {
    let mut out = TokenStream::new();
    if used.orbit {
        // The helper's text is the one the interpreter compiles.
        let mut item: syn::ItemFn =
            syn::parse_str(include_str!("../orbit_fn.rs")).expect("orbit_fn.rs is one function");
        item.sig.ident = format_ident!("{}_orbit", kernel);
        out.extend(quote!(#item));
    }
    out
}
