//! The burn path on arbitrary bytes: `burn_bytes` must return an error or an object that the
//! independent verifier accepts, and burning that object again must leave it unchanged.
#![no_main]

use afterburner::burn::{burn_bytes, Options};
use afterburner::verify::{self, verify_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok((out, _report)) = burn_bytes(data, &Options::default()) else { return };
    match verify_bytes(data, &out, &verify::Options::default()) {
        Ok(report) => assert!(report.is_ok(), "burnt output fails verification:\n{}", report.render(5)),
        // The input (or the output) is not a well-formed object: the burner should have said so.
        Err(e @ verify::Error::BadElf { .. }) => panic!("the burner accepted malformed input: {e}"),
        // The verifier declines to judge code it cannot decode with confidence.
        Err(_) => {}
    }
    let (again, _) = burn_bytes(&out, &Options::default()).expect("a burnt object burns again");
    assert!(again == out, "burning a burnt object changed it");
});
