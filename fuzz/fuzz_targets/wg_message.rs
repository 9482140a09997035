#![no_main]
//! Placeholder until the owning issue fills this target.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = data;
});
