//! What to generate: the kernel spec, the float type, and the checks on
//! names and sizes made before any code exists.

use std::collections::HashMap;

use proc_macro2::{Ident, TokenStream};
use quote::quote;

use crate::derive::Derivation;
use crate::diag::{Error, Result};
use crate::ir::Dim;

/// Float type of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Float {
    /// `f64` throughout.
    #[default]
    F64,
    /// `f32` data and arithmetic; sums accumulate in `f64`.
    F32,
}

impl Float {
    /// The Rust type, as tokens.
    pub(crate) fn rust_type(self) -> TokenStream {
        match self {
            Float::F64 => quote!(f64),
            Float::F32 => quote!(f32),
        }
    }
}

/// One kernel to generate.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    /// Function name prefix.
    pub name: String,
    /// The program text.
    pub expr: String,
    /// Highest order: functions for every order up to it are emitted.
    pub order: usize,
    /// Lowest order emitted (0: from the value on).
    pub min_order: usize,
    /// Variable to differentiate with respect to (default: the first).
    pub wrt: Option<String>,
    /// Lengths fixed at generation time, such as `n = 8`.
    pub dims: Vec<(String, usize)>,
    /// Float type.
    pub float: Float,
}

impl KernelSpec {
    /// A spec with defaults: order 1, f64, no fixed lengths.
    pub fn new(name: &str, expr: &str) -> KernelSpec {
        KernelSpec {
            name: name.into(),
            expr: expr.into(),
            order: 1,
            min_order: 0,
            wrt: None,
            dims: Vec::new(),
            float: Float::F64,
        }
    }
}

pub(crate) fn check_ident(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && syn::parse_str::<Ident>(name).is_ok();
    if ok {
        Ok(())
    } else if syn::parse_str::<Ident>(&format!("r#{name}")).is_ok()
        || name == "self"
        || name == "Self"
    {
        Err(Error::new(format!(
            "kernel name `{name}` is a Rust keyword; pick another (`{name}_loss`, say)"
        )))
    } else {
        Err(
            Error::new(format!("kernel name `{name}` is not a Rust identifier"))
                .with_note("use letters, digits and `_`, starting with a letter"),
        )
    }
}

/// Refuses fixed lengths (`--dim`) whose full tensors could not be
/// addressed: the entry count of every function that writes `out` must
/// fit in memory's address range.
pub(crate) fn check_output_sizes(
    spec: &KernelSpec,
    d: &Derivation,
    fixed: &HashMap<String, usize>,
) -> Result<()> {
    let len = |dim: &Dim| dim.length_in(fixed).unwrap_or(1);
    let value: Option<usize> = d
        .tensor
        .value_dims
        .iter()
        .try_fold(1usize, |a, x| a.checked_mul(len(x)));
    let wrt: Option<usize> = d
        .tensor
        .wrt_dims
        .iter()
        .try_fold(1usize, |a, x| a.checked_mul(len(x)));
    let limit = isize::MAX as usize / std::mem::size_of::<f64>();
    for k in spec.min_order..=spec.order {
        let entries = (0..k).try_fold(value.unwrap_or(usize::MAX), |a, _| a.checked_mul(wrt?));
        match entries {
            Some(e) if e <= limit && value.is_some() => {}
            _ => {
                return Err(Error::new(format!(
                    "the order-{k} tensor has more entries than a slice can hold at these lengths"
                ))
                .with_note("lower the order or the fixed dimension lengths; the directional and Hessian-vector kernels do not form it"))
            }
        }
    }
    Ok(())
}
