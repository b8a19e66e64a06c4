//! Inputs found by `cargo fuzz` (see fuzz/ and tests/inputs/fuzz-regressions/README.md).
//!
//! * `verifier-*.o`: mutated objects the burner handles but the verifier once misjudged; the
//!   burnt result must verify.
//! * the others: burner bugs (it accepts malformed input or writes a broken object); the
//!   verifier's side is checked here, the burner's side by an ignored test until it is fixed.

use afterburner::burn::{burn_bytes, Options};
use afterburner::verify::{self, verify_bytes};
use std::path::{Path, PathBuf};

fn input(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/inputs/fuzz-regressions")
        .join(name)
}

/// What the fuzz target (fuzz/fuzz_targets/burn.rs) asserts.
fn check(data: &[u8]) -> Result<(), String> {
    let Ok((out, _)) = burn_bytes(data, &Options::default()) else {
        return Ok(());
    };
    match verify_bytes(data, &out, &verify::Options::default()) {
        Ok(r) if r.is_ok() => Ok(()),
        Ok(r) => Err(format!("burnt output fails verification:\n{}", r.render(5))),
        Err(e @ verify::Error::BadElf { .. }) => {
            Err(format!("the burner accepted malformed input: {e}"))
        }
        Err(_) => Ok(()),
    }
}

#[test]
fn verifier_regressions_burn_and_verify() {
    for name in [
        "verifier-null-section.o",        // garbage in the null section header
        "verifier-symbol-order.o",        // same-named symbols reordered by the writer
        "verifier-renamed-replacement.o", // replacement code in a section not named .altinstr_replacement
        "verifier-empty-section-name.o",  // a section whose name is empty
    ] {
        let data = std::fs::read(input(name)).unwrap();
        assert!(
            burn_bytes(&data, &Options::default()).is_ok(),
            "{name}: the burner accepts it"
        );
        check(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn the_verifier_rejects_malformed_inputs_with_a_place() {
    let cases = [
        // a .rela.data entry at .data+0x2000138, past the section's end
        ("reloc-outside-section.o", ".data+0x2000138"),
        // a symbol whose st_shndx names a section that does not exist
        ("symbol-in-missing-section.o", "does not exist"),
    ];
    for (name, place) in cases {
        let p = input(name);
        let err = verify::run(&p, &p).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, verify::Error::BadElf { .. }), "{name}: {msg}");
        assert!(msg.contains(place), "{name}: {msg}");
    }
    // A section symbol with a non-zero value: its records do not land on the sites.
    let p = input("section-symbol-value.o");
    let data = std::fs::read(&p).unwrap();
    if let Ok((out, _)) = burn_bytes(&data, &Options::default()) {
        let r = verify_bytes(&data, &out, &verify::Options::default()).unwrap();
        assert!(
            r.differences
                .iter()
                .any(|d| d.what.contains("no .afterburn record")),
            "{}",
            r.render(5)
        );
    }
}

#[test]
#[ignore = "burner bugs found by fuzzing (see tests/inputs/fuzz-regressions/README.md); \
            huge-output.o makes the current burner allocate ~1 TiB"]
fn burner_rejects_or_burns_every_regression_correctly() {
    let mut failures = Vec::new();
    for name in [
        "reloc-outside-section.o",
        "symbol-in-missing-section.o",
        "section-symbol-value.o",
        "corrupt-output.o",
        "huge-output.o",
    ] {
        if let Err(e) = check(&std::fs::read(input(name)).unwrap()) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
