//! symdiff: exact n-th order derivatives in index notation, simplified with
//! egg, evaluated or compiled.
//!
//! The pipeline, one module per stage:
//! `grammar/symdiff.pest` → [`parse`] → [`shape`] → [`lower`] (index IR,
//! [`ir`]) → [`diff`] (with [`sym`] for symmetry classes) → [`simplify`]
//! ([`lang`], [`rules`]) → [`render`] | [`eval`].
//!
//! # Kernels from a build script
//!
//! 1. In `Cargo.toml`: `[build-dependencies] symdiff = { path = "…" }`
//!    (the generated code itself needs no dependency).
//! 2. In `build.rs`:
//!
//! ```no_run
//! fn main() {
//!     symdiff::Builder::new()
//!         .kernel("xent", "xent(z, q)")
//!         .orders(0..=3)
//!         .write_to_out_dir("kernels.rs")
//!         .unwrap();
//! }
//! ```
//!
//! 3. In `src/lib.rs`: `include!(concat!(env!("OUT_DIR"), "/kernels.rs"));`
//!    gives `xent(z, q) -> f64`, `xent_grad(z, q, out)`, `xent_hvp(z, q, v,
//!    out)`, `xent_hessian`, `xent_d3` and `xent_d3_dir(z, q, v) -> f64`.
//!
//! Errors name the kernel and point into its expression; see [`Builder`].
#![warn(missing_docs)]
// The crate docs show build scripts, whose `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

pub mod analyze;
pub mod ast;
pub mod budget;
pub mod builder;
pub mod codegen;
pub mod compact;
pub mod derive;
pub mod diag;
pub mod diff;
pub mod eval;
pub mod explain;
pub mod ir;
pub mod kernel_algebra;
pub mod lang;
pub mod lower;
pub mod matform;
pub mod parse;
pub mod ratfun;
pub mod render;
pub mod rules;
pub mod shape;
pub mod simplify;
pub mod sym;

pub use builder::{BuildError, Builder};
pub use codegen::Float;
pub use derive::{derive, Derivation, Request};
pub use diag::{Error, Result};
pub use render::Syntax;
pub use rules::assume::Fact;
pub use simplify::Limits;
