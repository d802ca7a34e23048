//! symdiff: exact n-th order derivatives in index notation, simplified with
//! egg, evaluated or compiled.
//!
//! The pipeline, one module per stage:
//! `grammar/symdiff.pest` → `parse` → `shape` → `lower` (index IR, `ir`)
//! → `diff` (with `sym` for symmetry classes) → `simplify` (`lang`,
//! `rules`) → `render` | [`eval`] | [`codegen`]. The stages are public
//! for the crate's own tests but hidden from these docs; the API is
//! [`derive()`], [`eval`], [`codegen`], [`analyze`], [`explain`] and
//! [`Builder`].
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

// The API: what a user of `derive`, `eval`, `codegen`, `analyze`,
// `--explain` and the build-script `Builder` needs (with the re-exports
// below).
pub mod analyze;
pub mod builder;
pub mod codegen;
pub mod derive;
pub mod diag;
pub mod eval;
pub mod explain;

// The pipeline's stages. Public for the crate's own tests, benchmarks and
// fuzz targets (which check each stage against independent truth), not
// part of the API: hidden from the documentation, free to change.
#[doc(hidden)]
pub mod ast;
#[doc(hidden)]
pub mod budget;
#[doc(hidden)]
pub mod compact;
#[doc(hidden)]
pub mod diff;
#[doc(hidden)]
pub mod ir;
#[doc(hidden)]
pub mod kernel_algebra;
#[doc(hidden)]
pub mod lang;
#[doc(hidden)]
pub mod lower;
#[doc(hidden)]
pub mod matform;
#[doc(hidden)]
pub mod parse;
#[doc(hidden)]
pub mod ratfun;
#[doc(hidden)]
pub mod render;
#[doc(hidden)]
pub mod rules;
#[doc(hidden)]
pub mod shape;
#[doc(hidden)]
pub mod simplify;
#[doc(hidden)]
pub mod sym;

pub use builder::{BuildError, Builder};
pub use codegen::Float;
pub use derive::{derive, Derivation, Request};
pub use diag::{Error, Result};
pub use render::Syntax;
pub use rules::assume::Fact;
pub use simplify::Limits;
