//! A crate whose softmax cross-entropy kernels come from symdiff at build
//! time: `build.rs` calls `symdiff::Builder`, and the module it writes to
//! `OUT_DIR` is included here.
#![deny(warnings)]

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
