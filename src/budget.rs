//! Bounded work: every entry point of the library (`derive`, `codegen`, the
//! [`Builder`](crate::Builder)) runs its whole pipeline through [`run`],
//! which
//!
//! - gives it a thread with a large stack, so the tree walkers (all
//!   recursive, over expressions at most a fixed depth deep)
//!   never overflow, whether the caller is the CLI, a test thread or a build
//!   script's 8 MiB main thread;
//! - sets a wall-clock deadline that the expensive loops check *inside* the
//!   work (`check`, called wherever polynomials are built and loops
//!   emitted), so one slow order or one huge kernel is stopped on time, not
//!   after it finishes.
//!
//! A check that finds the deadline passed unwinds (with
//! `std::panic::resume_unwind`, which skips the panic hook, so nothing is
//! printed) back to [`run`], which turns it into an ordinary [`Error`]: the
//! CLI exits with status 2 and says which limit was hit. Partial results
//! are dropped on the way out; nothing half-built is returned. (This is how
//! rustc raises its fatal errors; it needs `panic = "unwind"`, the default,
//! in the profile the library is built with.)

use std::cell::Cell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::diag::{Error, Result};

/// Stack of the thread the pipeline runs on. Only the pages used are
/// committed, so a large reservation costs nothing for small inputs.
pub(crate) const STACK_BYTES: usize = 512 << 20;

/// Default wall-clock limit for one request.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(8);

thread_local! {
    /// The deadline of the request running on this thread, if any.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The payload that unwinds from `check` to [`run`].
struct Exceeded;

/// Stops the current request if its deadline has passed. Cheap (one clock
/// read); outside [`run`] it does nothing.
pub(crate) fn check() {
    if let Some(deadline) = DEADLINE.with(Cell::get) {
        if Instant::now() > deadline {
            resume_unwind(Box::new(Exceeded));
        }
    }
}

thread_local! {
    /// Calls of `tick` since the clock was last read.
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

/// `check` once every 1024 calls: for the inner loop of a long piece of
/// work (a comparison in a large sort), where reading the clock each time
/// would cost more than the step.
pub(crate) fn tick() {
    let n = TICKS.with(|t| {
        let n = t.get().wrapping_add(1);
        t.set(n);
        n
    });
    if n.is_multiple_of(1024) {
        check();
    }
}

/// Time left before the current request's deadline (`None` outside [`run`]).
pub(crate) fn remaining() -> Option<Duration> {
    DEADLINE
        .with(Cell::get)
        .map(|d| d.saturating_duration_since(Instant::now()))
}

/// Runs `work` on a large-stack thread with a deadline `limit` from now.
/// Called inside another `run`, it runs `work` in place under the outer
/// deadline. A deadline that passes becomes an [`Error`]; any other panic
/// is passed on to the caller unchanged (it is a bug).
pub fn run<T: Send>(limit: Duration, work: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    if DEADLINE.with(Cell::get).is_some() {
        return work();
    }
    let outcome = std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("symdiff".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, move || {
                DEADLINE.with(|d| d.set(Some(Instant::now() + limit)));
                catch_unwind(AssertUnwindSafe(work))
            });
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(Err),
            // No thread to be had (a sandbox's limits): nothing ran.
            Err(e) => Ok(Err(Error::new(format!(
                "could not start the worker thread: {e}"
            )))),
        }
    });
    match outcome {
        Ok(result) => result,
        Err(payload) if payload.is::<Exceeded>() => Err(Error::new(format!(
            "stopped: the work did not finish within {:.0} s, the limit for one request",
            limit.as_secs_f64()
        ))
        .with_note(
            "the result grows too fast at this size or order; try a lower order or a smaller expression",
        )),
        Err(payload) => resume_unwind(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_inside_the_work_becomes_an_error() {
        let e = run(Duration::from_millis(20), || -> Result<()> {
            loop {
                check();
            }
        })
        .unwrap_err();
        assert!(e.message.contains("did not finish within"), "{}", e.message);
    }

    #[test]
    fn nested_runs_share_the_outer_deadline_and_checks_outside_do_nothing() {
        check();
        assert!(remaining().is_none());
        let r = run(Duration::from_secs(5), || {
            assert!(remaining().is_some());
            run(Duration::from_secs(1), || Ok(remaining().unwrap()))
        })
        .unwrap();
        assert!(r > Duration::from_secs(1));
    }

    #[test]
    fn deep_recursion_fits_the_worker_stack() {
        fn depth(n: usize) -> usize {
            let pad = [n as u8; 256];
            if n == 0 {
                0
            } else {
                1 + depth(n - 1) + usize::from(std::hint::black_box(pad)[0] == 255)
            }
        }
        assert!(run(Duration::from_secs(5), || Ok(depth(200_000))).unwrap() >= 200_000);
    }
}
