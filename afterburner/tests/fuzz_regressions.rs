//! Inputs found by `cargo fuzz` (see fuzz/ and tests/inputs/fuzz-regressions/README.md).
//!
//! * `verifier-*.o`: mutated objects the burner handles but the verifier once misjudged; the
//!   burnt result must verify.
//! * `table-entry-global-symbol.o`, `alt-region-with-widened-branch.o`: objects the burner once
//!   burnt wrongly; they must verify.
//! * the others: malformed objects the burner once accepted (or choked on); it must now refuse
//!   each with an error naming the place, through the library and the CLI (exit status 2,
//!   nothing written).
//! * every file in the directory, including future finds: refused, or burnt into an object
//!   that verifies (what the fuzz target asserts).

mod common;

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
fn burner_regressions_burn_and_verify() {
    for name in [
        // PIC jump-table entries against a global symbol: read as `S + A` by both sides
        "table-entry-global-symbol.o",
        // an alternative region whose branch widens: grown by the shortfall, not more
        "alt-region-with-widened-branch.o",
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
}

/// Malformed inputs the burner once accepted, and the place its error must name (the section
/// and the offset inside it, or the file offset of the section header at fault; readelf shows
/// the same fields). All but [`BURN_ONLY`] are broken ELF structure, which `scan` refuses too.
const BURNER_CASES: [(&str, &str); 15] = [
    // .rela.data entry 23 (at 0x228) patches .data+0x2000138, past the section's end
    (
        "reloc-outside-section.o",
        "section .rela.data offset 0x228:",
    ),
    // the null symbol has st_shndx 256 (there are 43 sections) and a value
    ("symbol-in-missing-section.o", "section .symtab offset 0x0:"),
    // the .text section symbol (entry 2) has value 0xf900000000
    ("section-symbol-value.o", "section .symtab offset 0x30:"),
    // symbol 3 lies at .text+0xffffffffffff00c0
    (
        "symbol-outside-section.o",
        "section .symtab offset 0x48: malformed ELF: symbol 3 `__get_user_handle_exception` at \
         0xffffffffffff00c0 (0xffff bytes) lies outside .text (0xcd bytes)",
    ),
    // .init.text (header 3) has sh_addralign 0: the writer laid the file out wrongly
    (
        "corrupt-output.o",
        "section .init.text: malformed ELF: sh_addralign 0x0",
    ),
    // .note.gnu.build-id (header 22) has sh_addralign 0xc0050000000000: ~1 TiB of padding
    (
        "huge-output.o",
        "section .note.gnu.build-id: malformed ELF: sh_addralign 0xc0050000000000 is not a \
         power of two (section header at file offset 0x50d8)",
    ),
    // __patchable_function_entries became SHT_STRTAB and keeps its relocations
    (
        "relocated-string-table.o",
        "section .rela__patchable_function_entries offset 0x0: malformed ELF: relocations apply \
         to __patchable_function_entries, which is a symbol or string table",
    ),
    // a relocation section with SHF_ALLOC (and an R_X86_64_NONE far past its section)
    (
        "allocated-rela.o",
        "section .relaruntime_ptr_USER_PTR_MAX: malformed ELF: relocation section with SHF_ALLOC",
    ),
    // .strtab starts with `#`, not NUL: the null symbol is named `#`
    (
        "strtab-without-nul.o",
        "section .symtab offset 0x0: malformed ELF: the null symbol (index 0) is not all zeros \
         with an empty name (name `#`",
    ),
    // an R_X86_64_TPOFF64 against .altinstr_replacement
    (
        "tls-offset-into-code.o",
        "section .rela.altinstructions offset 0xa8: malformed ELF: TLS relocation \
         R_X86_64_TPOFF64 against a symbol in .altinstr_replacement",
    ),
    // `list_sort` in .text is an STT_OBJECT: data in code
    (
        "object-symbol-in-code.o",
        "section .text offset 0x71: impossible layout: data object `list_sort`",
    ),
    // .altinstructions entry 9 has no relocation for repl_offset
    (
        "alt-entry-without-replacement.o",
        "section .altinstructions offset 0x7e: malformed ELF: alt_instr without a relocation for \
         repl_offset",
    ),
    // .altinstructions entry 4: its original region .text+0x51..0x54 ends inside an instruction
    (
        "alt-region-inside-instruction.o",
        "section .altinstructions offset 0x38: malformed ELF: the original region .text+0x51..0x54 ends inside an instruction",
    ),
    // .altinstructions entry 16: its original region .text+0x8a..0x8d starts inside `xor`
    (
        "alt-region-starts-inside-instruction.o",
        "section .altinstructions offset 0xe0: malformed ELF: the original region \
         .text+0x8a..0x8d starts inside an instruction",
    ),
    // the first .altinstructions entry has replacementlen 7 > instrlen 3
    (
        "alt-replacement-longer.o",
        "section .altinstructions offset 0x0: malformed ELF: replacementlen 7 exceeds instrlen 3",
    ),
];

/// The cases of [`BURNER_CASES`] that break a rule of the layout, not of ELF: `scan` accepts
/// them.
const BURN_ONLY: [&str; 5] = [
    "object-symbol-in-code.o",
    "alt-entry-without-replacement.o",
    "alt-region-inside-instruction.o",
    "alt-region-starts-inside-instruction.o",
    "alt-replacement-longer.o",
];

#[test]
fn the_burner_rejects_malformed_regressions_naming_the_place() {
    for (name, place) in BURNER_CASES {
        let data = std::fs::read(input(name)).unwrap();
        match burn_bytes(&data, &Options::default()) {
            Ok(_) => panic!("{name}: the burner accepts it"),
            Err(e) => assert!(e.to_string().contains(place), "{name}: {e}"),
        }
    }
}

#[test]
fn every_regression_is_refused_or_burns_into_an_object_that_verifies() {
    let dir = input("");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".o"))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "{names:?}");
    let mut failures = Vec::new();
    for name in &names {
        if let Err(e) = check(&std::fs::read(input(name)).unwrap()) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Through the CLI: `burn` and `scan` exit with status 2, the message names the file and the
/// place, and `burn` leaves neither an output nor a temporary file behind.
#[test]
fn the_cli_refuses_malformed_regressions_with_exit_2_and_the_place() {
    let w = common::Work::new();
    for (name, place) in BURNER_CASES {
        let p = input(name);
        let out = w.path("out.o");
        let r = common::afterburner()
            .arg("burn")
            .arg(&p)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{}: {place}", p.display())),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(!out.exists(), "{name}: output written despite the error");
        let left: Vec<_> = std::fs::read_dir(w.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{name}: files left behind: {left:?}");

        if BURN_ONLY.contains(&name) {
            continue; // layout rules: scan does not lay code out
        }
        let r = common::afterburner().arg("scan").arg(&p).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {err}");
        assert!(
            err.contains(&format!("{}: {place}", p.display())),
            "{name}: {err}"
        );
    }
}
