//! symdiff: exact n-th order derivatives in index notation, simplified with
//! egg, evaluated or compiled.
//!
//! The pipeline, one module per stage:
//! `grammar/symdiff.pest` → `parse` → `shape` → `lower` (index IR, `ir`)
//! → `diff` (with `sym` for symmetry classes) → `simplify` (`lang`,
//! `rules`) → `render` | [`eval`] | [`codegen`]. The stages are private
//! (the crate's own tests reach them through the `internals` feature);
//! the API is [`derive()`], [`eval`], [`codegen`], [`analyze`],
//! [`explain`], [`budget`] and [`Builder`].
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

// The pipeline's stages: private, not part of the API. The `internals`
// feature makes them public for the crate's own tests, benchmarks and fuzz
// targets, which check each stage against independent truth (the
// dev-dependency on this crate turns it on for `cargo test`). `internal!`
// does the same for one item of an API module.
macro_rules! internal {
    ($(#[$meta:meta])* pub $($item:tt)*) => {
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        $(#[$meta])*
        pub $($item)*
        #[cfg(not(feature = "internals"))]
        $(#[$meta])*
        pub(crate) $($item)*
    };
}
macro_rules! stages {
    ($($stage:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $stage;
        #[cfg(not(feature = "internals"))]
        pub(crate) mod $stage;
    )*};
}
// The API: what a user of `derive`, `eval`, `codegen`, `analyze`,
// `--explain` and the build-script `Builder` needs (with the re-exports
// below).
pub mod analyze;
pub mod budget;
pub mod builder;
pub mod codegen;
pub mod derive;
pub mod diag;
pub mod eval;
pub mod explain;

stages!(
    ast,
    compact,
    diff,
    ir,
    kernel_algebra,
    lang,
    lower,
    matform,
    parse,
    ratfun,
    render,
    rules,
    shape,
    simplify,
    sym
);

pub use builder::{BuildError, Builder};
pub use codegen::Float;
pub use derive::{derive, Derivation, Request};
pub use diag::{Error, Result};
pub use ir::Dim;
pub use render::Syntax;
pub use rules::assume::Fact;
pub use shape::Shape;
pub use shape::FUNCTIONS;
pub use simplify::{Limits, RunStats};
