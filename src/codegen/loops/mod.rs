//! Kernel bodies as loop nests.
//!
//! The simplified index IR is lowered here to a tiny imperative language:
//! temporaries (each compound atom of the IR, computed once over its own
//! free indices), loops, reductions and stores. Three passes then make the
//! nests cost what the formula costs (each pass a file of [`passes`],
//! run in the order [`Body::finish`] lists):
//!
//! * a temporary that is read once, at a place where no extra loop
//!   surrounds it, is inlined there (so `s·p_i − q_i` computes `p_i` in the
//!   output loop instead of storing it);
//! * adjacent loops over the same length are fused when every access they
//!   share stays within one iteration (so the row-wise steps of a batched
//!   softmax all run in one pass over each row, and `max(z)` and `Σq` share
//!   a pass);
//! * a maximum that only shifts exponentials moves into the pass that sums
//!   them, as a [`RedOp::Shift`] (so a softmax reads its logits once before
//!   its output pass, not twice).
//!
//! Contractions never reach this stage as tensors: `H v` arrives as the
//! normal form of `Σ_j H_ij v_j`, which is already `s·(p_i v_i − p_i Σ p v)`.

pub mod build;
pub mod display;
pub mod passes;
pub mod plan;
pub mod schedule;
pub mod walk;

pub use crate::kernel_algebra::merge_sums;
pub(crate) use build::*;
pub use build::{orbit_rows, Body};
pub(crate) use passes::contract::*;
pub(crate) use passes::fuse::*;
pub(crate) use passes::inline::*;
pub use passes::shift::shifted_exp;
pub(crate) use passes::shift::*;
pub use plan::*;
pub(crate) use walk::*;
pub use walk::{costly, temps_read, visit, visit_stmt};
