//! Real gcc-built programs: burn, compare with objdump, link with the system toolchain, run,
//! and demand the same output as the unburnt build; then resolve `.afterburn` in the linked
//! executable and check every record points at its sensitive instruction.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

/// Builds tests/inputs/prog.c with `cflags`, burns it, compares code, links both with
/// `ldflags`, runs both and compares output. Returns the burnt executable's path.
fn build_burn_run(w: &Work, tag: &str, cflags: &[&str], ldflags: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
    let orig = w.path(&format!("prog-{tag}.o"));
    let burnt = w.path(&format!("prog-{tag}.burnt.o"));
    cc(&input("prog.c"), &orig, cflags);
    let summary = burn(&orig, &burnt);
    assert!(summary.contains("1 burnt"), "{summary}");
    let c = compare_code(&orig, &burnt, Nops::InSitesOnly);
    assert!(c.skipped.is_empty(), "objdump could not decode {:?}", c.skipped);
    let n = c.instructions;
    assert!(n > 300, "compared only {n} instructions");

    let native_exe = w.path(&format!("native-{tag}"));
    let burnt_exe = w.path(&format!("burnt-{tag}"));
    run(Command::new("gcc").args(ldflags).arg(&orig).arg("-o").arg(&native_exe));
    run(Command::new("gcc").args(ldflags).arg(&burnt).arg("-o").arg(&burnt_exe));
    let a = stdout(&mut Command::new(&native_exe));
    let b = stdout(&mut Command::new(&burnt_exe));
    assert!(a.lines().count() > 150, "native output too short:\n{a}");
    assert_eq!(a, b, "burnt program ({tag}) prints something else than the native one");
    (burnt, burnt_exe)
}

/// Every `.afterburn` record of a linked executable resolves (record address + `site`) to an
/// address whose instruction is of the record's kind, followed by padding NOPs only.
fn check_linked_records(exe: &Path, expect_records: usize) {
    let secs = sections(exe);
    let ab = secs
        .iter()
        .find(|s| s.name == ".afterburn")
        .expect("executable keeps .afterburn");
    assert_eq!(ab.flags, "", ".afterburn must stay non-alloc");
    let bytes = section_bytes(exe, ".afterburn");
    let mut n = 0;
    for rec in annotations::Sites::new(&bytes) {
        let (off, r) = rec.unwrap();
        let site = r.target(ab.addr + off as u64);
        let text = stdout(
            Command::new("objdump")
                .args(["-d", "--no-show-raw-insn", "-w"])
                .arg(format!("--start-address={site:#x}"))
                .arg(format!("--stop-address={:#x}", site + u64::from(r.site_len)))
                .arg(exe),
        );
        let insns: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(":\t").map(|(_, t)| t.trim()))
            .collect();
        assert!(
            !insns.is_empty(),
            "record at {off:#x} resolves to {site:#x}, where objdump finds no code"
        );
        let first = insns[0].split_whitespace().next().unwrap();
        let want = r.kind.name().split('-').next().unwrap();
        assert!(
            first.starts_with(want),
            "record at {off:#x} ({}) resolves to {site:#x}: `{}`",
            r.kind,
            insns[0]
        );
        let originals = if r.kind == annotations::SensitiveKind::StiHlt {
            2
        } else {
            1
        };
        for t in &insns[originals..] {
            assert!(
                t.starts_with("nop") || *t == "xchg   %ax,%ax",
                "padding at {site:#x} holds `{t}`"
            );
        }
        n += 1;
    }
    assert_eq!(n, expect_records);
}

#[test]
fn prog_o2_no_pie_runs_the_same_and_records_resolve() {
    let w = Work::new();
    let (burnt, exe) = build_burn_run(&w, "o2", &["-O2", "-fno-pie"], &["-no-pie"]);
    let sites = afterburn_sites(&burnt);
    assert!(sites.len() >= 40, "{} sites", sites.len());
    check_linked_records(&exe, sites.len());
}

#[test]
fn prog_o2_pie_jump_tables_keep_their_targets() {
    // PIE: gcc emits `.long .Lcase - .Ltable` jump tables (PC32 with a table-relative addend).
    let w = Work::new();
    let (burnt, exe) = build_burn_run(&w, "pie", &["-O2", "-fpie"], &["-pie"]);
    check_linked_records(&exe, afterburn_sites(&burnt).len());
}

#[test]
fn prog_o0_and_os_and_o3_run_the_same() {
    let w = Work::new();
    build_burn_run(&w, "o0", &["-O0", "-fno-pie"], &["-no-pie"]);
    build_burn_run(&w, "os", &["-Os", "-fpie"], &["-pie"]);
    build_burn_run(&w, "o3", &["-O3", "-funroll-loops", "-fno-pie"], &["-no-pie"]);
}

#[test]
fn prog_with_debug_info_and_function_sections_links_and_runs() {
    // -g adds .debug_* relocations into moved code; -ffunction-sections gives one code
    // section per function (cross-section calls through relocations).
    let w = Work::new();
    build_burn_run(&w, "g", &["-O2", "-g", "-ffunction-sections", "-fno-pie"], &["-no-pie"]);
}

#[test]
fn every_record_matches_scan() {
    // The sites `burn` records are the sites `scan` reports, at mapped offsets.
    let w = Work::new();
    let orig = w.path("p.o");
    let burnt = w.path("p.burnt.o");
    cc(&input("prog.c"), &orig, &["-O2"]);
    burn(&orig, &burnt);
    let scan = stdout(afterburner().args(["scan", "--json"]).arg(&orig));
    let v: serde_json::Value = serde_json::from_str(&scan).unwrap();
    let scanned = v[0]["report"]["sites"].as_array().unwrap();
    let recorded = afterburn_sites(&burnt);
    assert_eq!(scanned.len(), recorded.len());
    for (s, r) in scanned.iter().zip(&recorded) {
        assert_eq!(s["section"].as_str().unwrap(), r.section);
        assert_eq!(s["kind"].as_str().unwrap(), r.record.kind.name());
        assert_eq!(s["insn_len"].as_u64().unwrap(), u64::from(r.record.insn_len));
        assert_eq!(
            r.record.site_len,
            annotations::site_len(r.record.kind, r.record.insn_len)
        );
    }
}

#[test]
fn comdat_groups_survive_with_their_signatures() {
    // -g3 -gdwarf-4 puts each .debug_macro unit in a COMDAT group (SHT_GROUP), which the
    // ELF writer must carry through with the right signature symbol and member sections.
    let w = Work::new();
    let (burnt, _) = build_burn_run(&w, "g3", &["-O2", "-g3", "-gdwarf-4", "-fno-pie"], &["-no-pie"]);
    let orig = w.path("prog-g3.o");
    let groups = |p: &Path| stdout(Command::new("readelf").arg("-gW").arg(p));
    let (a, b) = (groups(&orig), groups(&burnt));
    assert!(a.matches("COMDAT group section").count() > 5, "{a}");
    assert_eq!(a, b, "COMDAT groups changed");
}
