//! Parsing and shape checking of any text: a value or an error, never a
//! panic, a stack overflow or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|src: &str| {
    let _ = symdiff::budget::run(std::time::Duration::from_secs(2), || {
        let program = symdiff::parse::parse_program(src)?;
        symdiff::shape::check_with_hints(&program, &[]).map(|_| ())
    });
});
