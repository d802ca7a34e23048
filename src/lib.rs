//! symdiff: exact n-th order derivatives in index notation, simplified with
//! egg, evaluated or compiled.
//!
//! The pipeline, one module per stage:
//! `grammar/symdiff.pest` → [`parse`] → [`shape`] → [`lower`] (index IR,
//! [`ir`]) → [`diff`] (with [`sym`] for symmetry classes) → [`simplify`]
//! ([`lang`], [`rules`]) → [`render`] | [`eval`].
#![warn(missing_docs)]

pub mod ast;
pub mod builder;
pub mod codegen;
pub mod derive;
pub mod diag;
pub mod diff;
pub mod eval;
pub mod ir;
pub mod lang;
pub mod lower;
pub mod matform;
pub mod parse;
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
