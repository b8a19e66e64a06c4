//! Bad input of every class: a clear error naming file (and section and offset where there is
//! one), exit status 2, no panic, no output file left behind, input untouched.

mod common;
use afterburner::burn::{burn_bytes, Options};
use common::*;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn prog_object(w: &Work) -> std::path::PathBuf {
    let o = w.path("prog.o");
    cc(&input("prog.c"), &o, &["-O2"]);
    o
}

/// Runs `afterburner burn file -o out`, expects exit 2, returns stderr; checks that no
/// output and no temporary file appeared and the input is unchanged.
fn burn_must_fail(w: &Work, file: &Path) -> String {
    let before = std::fs::read(file).unwrap();
    let out = w.path("out.o");
    let _ = std::fs::remove_file(&out);
    let (code, err) = afterburner_fails(&[OsStr::new("burn"), file.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
    assert_eq!(code, 2, "exit status for {}: {err}", file.display());
    assert!(
        err.contains(&file.display().to_string()),
        "error does not name the file: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "output written despite the error");
    let leftovers: Vec<_> = std::fs::read_dir(w.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".afterburner-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    assert_eq!(std::fs::read(file).unwrap(), before, "input changed");
    err
}

#[test]
fn truncated_objects_are_errors_at_every_length() {
    let w = Work::new();
    let o = prog_object(&w);
    let data = std::fs::read(&o).unwrap();
    // every 7th length through the library (no panic, an error every time) ...
    for len in (0..data.len()).step_by(7) {
        let r = std::panic::catch_unwind(|| burn_bytes(&data[..len], &Options::default()));
        match r {
            Ok(Err(e)) => assert!(!e.to_string().is_empty()),
            Ok(Ok(_)) => panic!("truncated object of {len} bytes accepted"),
            Err(_) => panic!("panic on an object truncated to {len} bytes"),
        }
    }
    // ... and some through the binary (exit status 2, file named, nothing written)
    for len in [
        0,
        1,
        4,
        16,
        63,
        64,
        65,
        200,
        data.len() / 3,
        data.len() / 2,
        data.len() - 1,
    ] {
        let t = w.path(&format!("trunc-{len}.o"));
        std::fs::write(&t, &data[..len]).unwrap();
        let err = burn_must_fail(&w, &t);
        assert!(err.contains("ELF"), "{err}");
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let w = Work::new();
    let o = prog_object(&w);
    let data = std::fs::read(&o).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut errors = 0;
    let mut accepted = 0;
    for i in 0..3000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut d = data.clone();
        let pos = (seed as usize) % d.len();
        d[pos] ^= 1 << (i % 8);
        if i % 3 == 0 {
            let pos2 = ((seed >> 32) as usize) % d.len();
            d[pos2] = (seed >> 24) as u8;
        }
        match std::panic::catch_unwind(|| burn_bytes(&d, &Options::default())) {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                errors += 1;
            }
            Err(_) => panic!("panic after flipping byte {pos}"),
        }
    }
    assert!(errors > 100 && accepted > 100, "{errors} errors, {accepted} accepted");
}

#[test]
fn wrong_machine_and_wrong_class_and_not_elf() {
    let w = Work::new();
    let o = prog_object(&w);
    let mut data = std::fs::read(&o).unwrap();
    data[18..20].copy_from_slice(&3u16.to_le_bytes()); // EM_386
    let m = w.path("i386.o");
    std::fs::write(&m, &data).unwrap();
    let err = burn_must_fail(&w, &m);
    assert!(err.contains("e_machine 3") && err.contains("x86-64"), "{err}");

    let s = w.write("x.s", "nop\n");
    let o32 = w.path("x32.o");
    run(Command::new("as").arg("--32").arg(&s).arg("-o").arg(&o32));
    let err = burn_must_fail(&w, &o32);
    assert!(err.contains("not an ELF64 file: 32-bit ELF"), "{err}");

    let txt = w.write("notes.txt", "hello, not an object\n");
    let err = burn_must_fail(&w, &txt);
    assert!(err.contains("not an ELF64 file"), "{err}");

    let (code, err) = afterburner_fails(&[OsStr::new("scan"), txt.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("notes.txt") && err.contains("not an ELF64 file"), "{err}");
}

#[test]
fn executables_are_scanned_but_not_burnt() {
    let w = Work::new();
    let o = prog_object(&w);
    let exe = w.path("prog");
    run(Command::new("gcc").arg(&o).arg("-o").arg(&exe));
    let err = burn_must_fail(&w, &exe);
    assert!(err.contains("not a relocatable object"), "{err}");
    let scan = stdout(afterburner().arg("scan").arg(&exe));
    assert!(scan.contains("rdtsc") && scan.contains("cpuid"), "{scan}");
}

#[test]
fn unknown_relocation_type_is_named() {
    let w = Work::new();
    let o = prog_object(&w);
    let mut data = std::fs::read(&o).unwrap();
    let rela = sections(&o)
        .into_iter()
        .find(|s| s.name == ".rela.text")
        .expect(".rela.text");
    let first = rela.offset as usize;
    let r_offset = u64::from_le_bytes(data[first..first + 8].try_into().unwrap());
    data[first + 8..first + 12].copy_from_slice(&0x77u32.to_le_bytes()); // ELF64_R_TYPE = 119
    let bad = w.path("badrel.o");
    std::fs::write(&bad, &data).unwrap();
    let err = burn_must_fail(&w, &bad);
    assert!(err.contains("unsupported relocation type unknown (119)"), "{err}");
    assert!(err.contains(&format!("section .text offset {r_offset:#x}")), "{err}");
}

#[test]
fn data_in_code_and_undecodable_bytes_name_section_and_offset() {
    let w = Work::new();
    let s = w.write("dic.S", ".text\nf: nop\n.quad f\nret\n");
    let o = w.path("dic.o");
    assemble(&s, &o);
    let err = burn_must_fail(&w, &o);
    assert!(
        err.contains("section .text offset 0x1") && err.contains("data in code") && err.contains("R_X86_64_64"),
        "{err}"
    );

    let s = w.write("undec.S", ".text\nf: nop\nnop\n.byte 0x06\nret\n");
    let o = w.path("undec.o");
    assemble(&s, &o);
    let err = burn_must_fail(&w, &o);
    assert!(err.contains("section .text offset 0x2: undecodable bytes 06"), "{err}");
    let (code, err) = afterburner_fails(&[OsStr::new("scan"), o.as_os_str()]);
    assert_eq!(code, 2);
    assert!(err.contains("undecodable"), "{err}");
}

#[test]
fn in_place_failure_leaves_the_input_alone() {
    let w = Work::new();
    let s = w.write("undec.S", ".text\nf: cli\n.byte 0x06\n");
    let o = w.path("undec.o");
    assemble(&s, &o);
    let before = std::fs::read(&o).unwrap();
    let (code, err) = afterburner_fails(&[OsStr::new("burn"), OsStr::new("--in-place"), o.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read(&o).unwrap(), before);
    // and a good file next to a bad one: the good one is burnt, the status is still 2
    let good = w.path("prog.o");
    cc(&input("prog.c"), &good, &["-O2"]);
    let (code, err) = afterburner_fails(&[
        OsStr::new("burn"),
        OsStr::new("--in-place"),
        o.as_os_str(),
        good.as_os_str(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(!afterburn_sites(&good).is_empty(), "the good object was burnt in place");
    assert_eq!(std::fs::read(&o).unwrap(), before);
}
