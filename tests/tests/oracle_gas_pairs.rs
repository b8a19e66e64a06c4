//! The GNU-tool oracles (objdump, addr2line) on burnt objects made by the text padder and GNU
//! `as`: good pairs pass, broken pairs are caught. Needs binutils and gcc.

use afterburn_tests::oracle::{self, Diff, Options};
use afterburner::asm_pad::{self, Assembler, Layout};
use std::path::{Path, PathBuf};
use std::process::Command;

fn input(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../afterburner/tests/inputs/verify")
        .join(name)
}

fn kinds_s() -> String {
    std::fs::read_to_string(input("kinds.s")).unwrap()
}

fn kernelish_s(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("k.s");
    let st = Command::new("gcc")
        .args([
            "-O2",
            "-mcmodel=kernel",
            "-fno-pie",
            "-ffreestanding",
            "-fno-stack-protector",
            "-S",
            "-o",
        ])
        .arg(&out)
        .arg(input("kernelish.c"))
        .args(extra)
        .status()
        .expect("gcc is required");
    assert!(st.success());
    std::fs::read_to_string(out).unwrap()
}

struct Pair {
    dir: tempfile::TempDir,
    orig: PathBuf,
    burnt: PathBuf,
}

fn pair_edited(src: &str, layout: Layout, edit: impl Fn(&str) -> String) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig.o");
    let burnt = dir.path().join("burnt.o");
    let asm = Assembler::default();
    asm.assemble(src, &orig).unwrap();
    let padded = asm_pad::pad(
        src,
        &asm_pad::Options {
            layout,
            assembler: asm.clone(),
        },
    )
    .unwrap();
    asm.assemble(&edit(&padded.text), &burnt).unwrap();
    Pair { dir, orig, burnt }
}

fn pair(src: &str, layout: Layout) -> Pair {
    pair_edited(src, layout, str::to_string)
}

/// File offset of section `name` (from `readelf -SW`).
fn section_offset(path: &Path, name: &str) -> u64 {
    let out = Command::new("readelf")
        .arg("-SW")
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once(']') else {
            continue;
        };
        let tok: Vec<&str> = rest.split_whitespace().collect();
        if tok.first() == Some(&name) {
            return u64::from_str_radix(tok[3], 16).unwrap();
        }
    }
    panic!("no section {name}");
}

fn patch(path: &Path, name: &str, offset: u64, bytes: &[u8]) {
    let at = usize::try_from(section_offset(path, name) + offset).unwrap();
    let mut data = std::fs::read(path).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

/// A broken variant: name, text edit of the padded output, what the oracle must report.
type Case = (
    &'static str,
    Box<dyn Fn(&str) -> String>,
    Box<dyn Fn(&Diff) -> bool>,
);

fn expect_caught(res: Result<(), Vec<Diff>>, what: &str, pred: impl Fn(&Diff) -> bool) {
    let diffs = res.expect_err(&format!("{what}: the oracle accepted a broken pair"));
    assert!(
        diffs.iter().any(&pred),
        "{what}: no difference names the place:\n{}",
        oracle::render(&diffs, 10)
    );
}

#[test]
fn objdump_oracle_accepts_good_pairs() {
    for layout in [Layout::Preserve, Layout::Realign] {
        let p = pair(&kinds_s(), layout);
        if let Err(d) = oracle::objdump_equivalent(&p.orig, &p.burnt) {
            panic!("{layout:?}:\n{}", oracle::render(&d, 10));
        }
    }
    for extra in [&[][..], &["-g"][..]] {
        let p = pair(&kernelish_s(extra), Layout::Preserve);
        if let Err(d) = oracle::objdump_equivalent(&p.orig, &p.burnt) {
            panic!("gcc {extra:?}:\n{}", oracle::render(&d, 10));
        }
    }
}

#[test]
fn objdump_oracle_handles_pic_jump_tables() {
    let src = kernelish_s(&["-fPIE", "-mcmodel=small"]);
    let entry = src
        .lines()
        .find(|l| l.trim_start().starts_with(".long\t.L") && l.contains("-.L"))
        .expect("a relative jump-table entry")
        .to_string();
    let p = pair(&src, Layout::Preserve);
    if let Err(d) = oracle::objdump_equivalent(&p.orig, &p.burnt) {
        panic!("{}", oracle::render(&d, 10));
    }
    let bad = pair_edited(&src, Layout::Preserve, |t| {
        t.replacen(&entry, &format!("{entry}+1"), 1)
    });
    expect_caught(
        oracle::objdump_equivalent(&bad.orig, &bad.burnt),
        "table entry",
        |d| d.section == ".rodata",
    );
}

#[test]
fn objdump_oracle_needs_realign_for_realigned_output() {
    let p = pair(&kernelish_s(&[]), Layout::Realign);
    let realign = Options { realign: true };
    if let Err(d) = oracle::objdump_equivalent_with(&p.orig, &p.burnt, &realign) {
        panic!("{}", oracle::render(&d, 10));
    }
    expect_caught(
        oracle::objdump_equivalent(&p.orig, &p.burnt),
        "realigned, strict",
        |d| {
            d.original
                .as_deref()
                .is_some_and(|o| o.starts_with("nop") || o.contains(" nop"))
                || d.burnt.as_deref().is_some_and(|b| {
                    b.starts_with("nop") || b.contains(" nop") || b.starts_with("xchg")
                })
                || d.what.contains("instruction count")
        },
    );
}

#[test]
fn objdump_oracle_catches_broken_pairs() {
    let src = kinds_s();
    let cases: Vec<Case> = vec![
        (
            "changed instruction",
            Box::new(|t: &str| t.replacen("xor\t%eax, %eax", "xor\t%ecx, %ecx", 1)),
            Box::new(|d: &Diff| {
                d.function.as_deref() == Some("entry")
                    && d.burnt.as_deref().is_some_and(|b| b.contains("%ecx"))
            }),
        ),
        (
            "moved branch target",
            Box::new(|t: &str| t.replacen("jne\t.Lcase_dispatch", "jne\t.Lcase_dispatch+3", 1)),
            Box::new(|d: &Diff| {
                d.function.as_deref() == Some("entry")
                    && d.burnt.as_deref().is_some_and(|b| b.starts_with("jne"))
            }),
        ),
        (
            "wrong relocation addend",
            Box::new(|t: &str| t.replacen("\t.quad\t.Lcase1\n", "\t.quad\t.Lcase1+1\n", 1)),
            Box::new(|d: &Diff| d.section == ".rodata" && d.what.contains("relocation")),
        ),
        (
            "missing sensitive instruction",
            Box::new(|t: &str| t.replacen("mov\t%rax, %cr3;", ";", 1)),
            // The record now covers the next instruction as if it were padding.
            Box::new(|d: &Diff| {
                d.function.as_deref() == Some("entry") && d.what.contains("inside site padding")
            }),
        ),
        (
            "dropped annotation",
            Box::new(|t: &str| {
                // Point the first record at the second site: the cli's padding is then not dropped.
                t.replacen(".long .Lafb_site0 - .", ".long .Lafb_site1 - .", 1)
            }),
            Box::new(|d: &Diff| d.function.as_deref() == Some("entry")),
        ),
        (
            "stray NOP outside a site",
            Box::new(|t: &str| t.replacen("xor\t%eax, %eax", "xor\t%eax, %eax; nop", 1)),
            Box::new(|d: &Diff| {
                d.function.as_deref() == Some("entry") && d.burnt.as_deref() == Some("nop")
            }),
        ),
    ];
    for (what, edit, pred) in cases {
        let p = pair_edited(&src, Layout::Preserve, edit);
        expect_caught(oracle::objdump_equivalent(&p.orig, &p.burnt), what, pred);
    }
    // A non-NOP byte inside site padding (the cli at entry is the first byte of .text).
    let p = pair(&src, Layout::Preserve);
    patch(&p.burnt, ".text", 3, &[0xcc]);
    expect_caught(
        oracle::objdump_equivalent(&p.orig, &p.burnt),
        "int3 in padding",
        |d| d.function.as_deref() == Some("entry") && d.what.contains("padding"),
    );
}

#[test]
fn addr2line_oracle_accepts_good_pairs_and_catches_moved_lines() {
    let src = kernelish_s(&["-g"]);
    let p = pair(&src, Layout::Preserve);
    let n = oracle::addr2line_equivalent(&p.orig, &p.burnt)
        .unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)));
    assert!(n >= 50, "only {n} addresses compared");
    // Realigned output passes with the realign option too.
    let r = pair(&src, Layout::Realign);
    let n2 = oracle::addr2line_equivalent_with(&r.orig, &r.burnt, &Options { realign: true })
        .unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)));
    assert!(n2.compared > 0 && n2.skipped.is_empty(), "{n2:?}");
    // A burnt object whose line program says something else for one statement.
    let first_loc = src
        .lines()
        .find(|l| l.trim_start().starts_with(".loc 1 ") && l.contains(" 46 "))
        .expect("a .loc for line 46");
    let moved = first_loc.replacen(" 46 ", " 4600 ", 1);
    let b = pair_edited(&src, Layout::Preserve, |t| t.replacen(first_loc, &moved, 1));
    expect_caught(
        oracle::addr2line_equivalent(&b.orig, &b.burnt).map(|_| ()),
        "moved line",
        |d| {
            d.burnt.as_deref().is_some_and(|x| x.contains(":4600"))
                && d.original.as_deref().is_some_and(|x| x.contains(":46"))
        },
    );
    // No DWARF: nothing to compare, and nothing claimed.
    let nd = pair(&kernelish_s(&[]), Layout::Preserve);
    assert_eq!(
        oracle::addr2line_equivalent(&nd.orig, &nd.burnt).unwrap(),
        0
    );
    drop(p.dir);
}

#[test]
fn cfi_oracle_accepts_good_pairs_and_catches_wrong_rows() {
    let src = kernelish_s(&[]);
    assert!(
        src.contains(".cfi_def_cfa_offset 16"),
        "gcc emits CFI by default"
    );
    cfi_cases(&src);
}

/// The same cases with the CFI in `.debug_frame` (as in a Linux DWARF build: `-g` without
/// asynchronous unwind tables).
#[test]
fn cfi_oracle_reads_debug_frame() {
    let src = kernelish_s(&["-g", "-fno-asynchronous-unwind-tables"]);
    assert!(
        src.contains(".cfi_sections\t.debug_frame") && src.contains(".cfi_def_cfa_offset 16"),
        "gcc puts the CFI in .debug_frame"
    );
    cfi_cases(&src);
}

fn cfi_cases(src: &str) {
    let src = src.to_string();
    for layout in [Layout::Preserve, Layout::Realign] {
        let p = pair(&src, layout);
        let opts = Options {
            realign: layout == Layout::Realign,
        };
        let n = oracle::cfi_equivalent_with(&p.orig, &p.burnt, &opts)
            .unwrap_or_else(|d| panic!("{layout:?}:\n{}", oracle::render(&d, 10)));
        assert!(n.compared >= 10 && n.skipped.is_empty(), "{n:?}");
    }
    // A burnt object whose unwind table says something else for one push.
    let b = pair_edited(&src, Layout::Preserve, |t| {
        t.replacen(".cfi_def_cfa_offset 16", ".cfi_def_cfa_offset 32", 1)
    });
    expect_caught(
        oracle::cfi_equivalent(&b.orig, &b.burnt).map(|_| ()),
        "wrong CFA",
        |d| d.what.contains("row") && d.burnt.as_deref().is_some_and(|x| x.contains("rsp+32")),
    );
    // One where a CFA change happens an instruction late.
    let late = pair_edited(&src, Layout::Preserve, |t| {
        let lines: Vec<&str> = t.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.contains(".cfi_def_cfa_offset 16"))
            .unwrap();
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        // Move the directive below the next instruction line.
        let j = (i + 1..out.len())
            .find(|&j| out[j].starts_with('\t') && !out[j].trim_start().starts_with('.'))
            .unwrap();
        let d = out.remove(i);
        out.insert(j, d);
        out.join("\n") + "\n"
    });
    expect_caught(
        oracle::cfi_equivalent(&late.orig, &late.burnt).map(|_| ()),
        "late CFA",
        |d| d.what.contains("row"),
    );
}

#[test]
fn oracles_skip_and_name_functions_objdump_cannot_decode() {
    // special.s has `lkgs %di` as bytes; binutils 2.40 prints `(bad)` for it.
    let src = std::fs::read_to_string(input("special.s")).unwrap();
    let p = pair(&src, Layout::Preserve);
    let listing = Command::new("objdump")
        .arg("-d")
        .arg(&p.orig)
        .output()
        .unwrap();
    let knows_lkgs = !String::from_utf8_lossy(&listing.stdout).contains("(bad)");
    // realign: the alternative region in special.s grows by NOPs.
    let c = oracle::objdump_equivalent_with(&p.orig, &p.burnt, &Options { realign: true })
        .unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)));
    if knows_lkgs {
        println!("this objdump decodes LKGS; nothing to skip");
        assert!(c.skipped.is_empty());
    } else {
        assert_eq!(c.skipped, vec![".text:lkgs_user".to_string()]);
    }
    assert!(c.compared >= 3, "{c:?}");
}

#[test]
fn oracles_report_tool_failures() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.o");
    std::fs::write(&junk, b"not an object").unwrap();
    let d = oracle::objdump_equivalent(&junk, &junk).unwrap_err();
    assert!(d[0].what.contains("failed"), "{}", oracle::render(&d, 3));
}

/// `all_equivalent` gives what the three oracles give one by one, and reports their
/// differences together; an object without line or frame information gets `None` for those.
#[test]
fn all_oracles_at_once_match_the_single_ones() {
    let src = kernelish_s(&["-g", "-fno-asynchronous-unwind-tables"]);
    let opts = Options { realign: false };
    let p = pair(&src, Layout::Preserve);
    let all = oracle::all_equivalent(&p.orig, &p.burnt, &opts)
        .unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)));
    let one = |r: Result<oracle::Checked, Vec<Diff>>| {
        r.unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)))
    };
    assert_eq!(
        all.objdump,
        one(oracle::objdump_equivalent_with(&p.orig, &p.burnt, &opts))
    );
    assert_eq!(
        all.addr2line,
        Some(one(oracle::addr2line_equivalent_with(
            &p.orig, &p.burnt, &opts
        )))
    );
    assert_eq!(
        all.cfi,
        Some(one(oracle::cfi_equivalent_with(&p.orig, &p.burnt, &opts)))
    );
    assert!(all.objdump.instructions > 10 && all.addr2line.as_ref().unwrap().compared > 10);
    // A wrong unwind row is reported by the combined run as well.
    let b = pair_edited(&src, Layout::Preserve, |t| {
        t.replacen(".cfi_def_cfa_offset 16", ".cfi_def_cfa_offset 32", 1)
    });
    expect_caught(
        oracle::all_equivalent(&b.orig, &b.burnt, &opts).map(|_| ()),
        "wrong CFA (combined)",
        |d| d.what.contains("row") && d.burnt.as_deref().is_some_and(|x| x.contains("rsp+32")),
    );
    // No DWARF, no CFI: only objdump.
    let plain = pair(
        &kernelish_s(&["-fno-asynchronous-unwind-tables"]),
        Layout::Preserve,
    );
    let all = oracle::all_equivalent(&plain.orig, &plain.burnt, &opts)
        .unwrap_or_else(|d| panic!("{}", oracle::render(&d, 10)));
    assert!(all.objdump.compared > 0 && all.addr2line.is_none() && all.cfi.is_none());
    drop(p.dir);
}
