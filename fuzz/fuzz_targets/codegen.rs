//! `codegen` of any text up to order 3: a module or an error, never a
//! panic or a hang. (Whether the module compiles and agrees with `eval`
//! is the parity test's job, `tests/parity.rs`.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&order, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = symdiff::budget::run(std::time::Duration::from_secs(1), || {
        let mut spec = symdiff::codegen::KernelSpec::new("k", src);
        spec.order = usize::from(order % 4);
        symdiff::codegen::module(&[spec], "fuzz").map(|_| ())
    });
});
