//! The readers on arbitrary bytes: scanning and verifying an object against itself must return
//! a result or an error, never panic.
#![no_main]

use afterburner::scan::scan_bytes;
use afterburner::verify::{self, verify_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scan_bytes(data);
    let _ = verify_bytes(data, data, &verify::Options::default());
    // Two halves as original and burnt: the cross-object paths.
    let (a, b) = data.split_at(data.len() / 2);
    let _ = verify_bytes(a, b, &verify::Options::default());
});
