//! `derive` of any text at any order (the first byte), under a 1 s
//! deadline: a value or an error, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&order, rest)) = data.split_first() else {
        return;
    };
    let Ok(src) = std::str::from_utf8(rest) else {
        return;
    };
    // Orders 0–7 mostly; 255 stands for an absurd one.
    let order = if order == 255 { usize::MAX } else { usize::from(order % 8) };
    let mut req = symdiff::Request::new(src, order);
    req.deadline = std::time::Duration::from_secs(1);
    let _ = symdiff::derive(&req);
});
