//! `afterburner verify` on burnt objects made independently of the burner: the text padder
//! (`asm_pad`) pads GNU `as` input the way the L4Ka afterburner did, `as` assembles original and
//! padded text. Good pairs must pass; every broken variant must fail and name the place.
//!
//! Needs GNU `as` and gcc (binutils/gcc are required to build anything here).

use afterburner::asm_pad::{self, Assembler, Layout, Padded};
use afterburner::verify::{self, Difference, Options, Report};
use annotations::{SensitiveKind, FLAG_ALTINSTR, FLAG_PAIR};
use object::read::elf::{ElfFile64, SectionHeader as _};
use object::{Object as _, ObjectSection as _};
use std::path::{Path, PathBuf};
use std::process::Command;

fn input(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/inputs/verify")
        .join(name)
}

fn kinds_s() -> String {
    std::fs::read_to_string(input("kinds.s")).unwrap()
}

/// `gcc -S` of kernelish.c with kernel-like flags plus `extra`.
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
    assert!(st.success(), "gcc -S failed");
    std::fs::read_to_string(out).unwrap()
}

struct Pair {
    _dir: tempfile::TempDir,
    orig: PathBuf,
    burnt: PathBuf,
    padded: Padded,
}

/// Assembles `src` as the original and its padded text (after `edit`) as the burnt object.
fn pair_edited(src: &str, layout: Layout, edit: impl Fn(&str) -> String) -> Pair {
    let dir = tempfile::tempdir().unwrap();
    let orig = dir.path().join("orig.o");
    let burnt = dir.path().join("burnt.o");
    let asm = Assembler::default();
    asm.assemble(src, &orig).expect("original assembles");
    let padded = asm_pad::pad(
        src,
        &asm_pad::Options {
            layout,
            assembler: asm.clone(),
        },
    )
    .expect("pads");
    let text = edit(&padded.text);
    asm.assemble(&text, &burnt)
        .unwrap_or_else(|e| panic!("padded text assembles: {e}\n{text}"));
    Pair {
        _dir: dir,
        orig,
        burnt,
        padded,
    }
}

fn pair(src: &str, layout: Layout) -> Pair {
    pair_edited(src, layout, str::to_string)
}

fn check(p: &Pair, realign: bool) -> Report {
    let opts = Options {
        realign,
        ..Options::default()
    };
    verify::run_with(&p.orig, &p.burnt, &opts).expect("verifier runs")
}

/// Overwrites bytes of section `name` of the object at `path`, at `offset`.
fn patch(path: &Path, name: &str, offset: u64, bytes: &[u8]) {
    let mut data = std::fs::read(path).unwrap();
    let file = ElfFile64::<object::Endianness>::parse(&*data).unwrap();
    let sec = file
        .section_by_name(name)
        .unwrap_or_else(|| panic!("no section {name}"));
    let (start, size) = sec.elf_section_header().file_range(file.endian()).unwrap();
    assert!(offset + bytes.len() as u64 <= size);
    let at = usize::try_from(start + offset).unwrap();
    data[at..at + bytes.len()].copy_from_slice(bytes);
    std::fs::write(path, data).unwrap();
}

fn section_bytes(path: &Path, name: &str) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let file = ElfFile64::<object::Endianness>::parse(&*data).unwrap();
    file.section_by_name(name).unwrap().data().unwrap().to_vec()
}

/// The report must fail, and one of its differences must satisfy `pred`.
fn expect_diff(r: &Report, what: &str, pred: impl Fn(&Difference) -> bool) {
    if std::env::var_os("SHOW_REPORTS").is_some() {
        eprintln!("--- {what}\n{}", r.render(6));
    }
    assert!(
        !r.is_ok(),
        "{what}: the broken pair passed:\n{}",
        r.render(20)
    );
    assert!(
        r.differences.iter().any(pred),
        "{what}: no difference names the place:\n{}",
        r.render(20)
    );
    // The rendered report (what a user reads) names the first few differences.
    let text = r.render(5);
    assert!(text.starts_with("verify: FAILED"), "{text}");
}

fn place_is(d: &Difference, section: &str, sym: &str) -> bool {
    d.section == section
        && d.place
            .as_deref()
            .is_some_and(|p| p == sym || p.starts_with(&format!("{sym}+")))
}

// ---- good pairs ---------------------------------------------------------------------------

#[test]
fn hand_written_pair_passes_in_both_layouts() {
    for layout in [Layout::Realign, Layout::Preserve] {
        let p = pair(&kinds_s(), layout);
        let r = check(&p, false);
        assert!(r.is_ok(), "{layout:?}:\n{}", r.render(20));
        assert_eq!(r.stats.sites, p.padded.sites.len());
        assert_eq!(r.stats.records, p.padded.sites.len());
        assert!(r.stats.relocations > 0 && r.stats.symbols > 0);
    }
}

#[test]
fn padder_finds_the_tricky_sites() {
    let p = pair(&kinds_s(), Layout::Preserve);
    let sites = &p.padded.sites;
    let has = |k: SensitiveKind| sites.iter().any(|s| s.kind == k);
    // sti;hlt written on one line is one pair site; sti, nop, hlt are two sites.
    let pairs: Vec<_> = sites
        .iter()
        .filter(|s| s.kind == SensitiveKind::StiHlt)
        .collect();
    assert_eq!(pairs.len(), 1);
    assert_eq!((pairs[0].insn_len, pairs[0].flags), (2, FLAG_PAIR));
    assert!(has(SensitiveKind::Sti) && has(SensitiveKind::Hlt));
    // `rep; insb` (prefix on its own statement) is one 2-byte site.
    let ins = sites.iter().find(|s| s.kind == SensitiveKind::Ins).unwrap();
    assert_eq!(ins.insn_len, 2);
    assert!(ins.operands.is_rep());
    // clac written as `.byte` in .text, and clac in .altinstr_replacement (padded, ALTINSTR).
    let clacs: Vec<_> = sites
        .iter()
        .filter(|s| s.kind == SensitiveKind::Clac)
        .collect();
    assert_eq!(clacs.len(), 2);
    assert!(clacs
        .iter()
        .any(|s| s.section == ".text" && s.site_len == 8 && s.flags == 0));
    assert!(clacs.iter().any(|s| s.section == ".altinstr_replacement"
        && s.site_len == 8
        && s.flags == FLAG_ALTINSTR));
    // A site in .text.unlikely.
    assert!(sites
        .iter()
        .any(|s| s.section == ".text.unlikely" && s.kind == SensitiveKind::Hlt));
    // Each site's record matches the text line it came from.
    let src = kinds_s();
    let lines: Vec<&str> = src.lines().collect();
    for s in sites.iter().filter(|s| s.section == ".text") {
        let line = lines[s.line - 1];
        let name = s.kind.name().split('-').next().unwrap();
        let ok = line.contains(name)
            || (s.kind == SensitiveKind::Clac && line.contains("0xca"))
            || (s.kind == SensitiveKind::MovFromSeg && line.contains("%fs"))
            || line.contains("%cr")
            || line.contains("%dr")
            || line.contains("%ds")
            || line.contains("pushf")
            || line.contains("popf")
            || (s.kind == SensitiveKind::Lret && line.contains("lret"))
            || (s.kind == SensitiveKind::IntN && line.contains("int"))
            || (s.kind == SensitiveKind::PushSeg && line.contains("push"))
            || (s.kind == SensitiveKind::PopSeg && line.contains("pop"));
        assert!(
            ok,
            "site {:?} attributed to line {}: {line}",
            s.kind, s.line
        );
    }
    // The short `jmp .Lover` had to widen: burnt .text starts `cli; <7 NOP bytes>; xor; jmp rel32`.
    let text = section_bytes(&p.burnt, ".text");
    assert_eq!(text[0], 0xfa);
    assert_eq!(&text[8..10], &[0x31, 0xc0]);
    assert_eq!(text[10], 0xe9, "jmp widened to rel32");
}

#[test]
fn gcc_output_passes_strict_when_layout_is_preserved() {
    for extra in [&[][..], &["-g"][..], &["-Os"][..]] {
        let src = kernelish_s(extra);
        let p = pair(&src, Layout::Preserve);
        let r = check(&p, false);
        assert!(r.is_ok(), "gcc {extra:?}:\n{}", r.render(20));
        assert!(
            r.stats.sites >= 10,
            "gcc {extra:?}: only {} sites",
            r.stats.sites
        );
        assert!(p
            .padded
            .sites
            .iter()
            .any(|s| s.kind == SensitiveKind::StiHlt));
    }
}

#[test]
fn pic_jump_tables_pass_and_a_wrong_entry_is_reported() {
    // -fPIE: gcc writes jump tables as `.long .Lcase-.Ltable` in .rodata.
    let src = kernelish_s(&["-fPIE", "-mcmodel=small"]);
    let entry = src
        .lines()
        .find(|l| l.trim_start().starts_with(".long\t.L") && l.contains("-.L"))
        .expect("a relative jump-table entry")
        .to_string();
    let p = pair(&src, Layout::Preserve);
    let r = check(&p, false);
    assert!(r.is_ok(), "{}", r.render(10));
    assert!(r.stats.table_entries > 0);
    let bad = pair_edited(&src, Layout::Preserve, |t| {
        t.replacen(&entry, &format!("{entry}+1"), 1)
    });
    expect_diff(&check(&bad, false), "table entry", |d| {
        d.section == ".rodata" && d.what.contains("relocation")
    });
}

#[test]
fn realigned_gcc_output_passes_only_with_realign() {
    let src = kernelish_s(&[]);
    assert!(
        src.contains(".p2align"),
        "gcc aligns functions/loops at -O2"
    );
    let p = pair(&src, Layout::Realign);
    let r = check(&p, true);
    assert!(r.is_ok(), "{}", r.render(20));
    assert!(r.stats.realigned_runs > 0);
    // Strict mode: `as` recomputed alignment, so bytes were inserted outside sites.
    let strict = check(&p, false);
    expect_diff(&strict, "realigned in strict mode", |d| {
        d.section == ".text"
            && (d.original.as_deref().is_some_and(|o| o.contains("nop"))
                || d.burnt.as_deref().is_some_and(|b| b.contains("nop")))
    });
}

// ---- broken pairs -------------------------------------------------------------------------

/// Removes the `.afterburn` record of site `n` from padded text and fixes the header count.
fn drop_record(text: &str, n: usize, total: usize) -> String {
    let start = text
        .find(&format!("\t.long .Lafb_site{n} - .\n"))
        .expect("record present");
    let mut end = start;
    for _ in 0..4 {
        end += text[end..].find('\n').unwrap() + 1;
    }
    let mut t = format!("{}{}", &text[..start], &text[end..]);
    t = t.replacen(
        &format!("\t.long {total}\n"),
        &format!("\t.long {}\n", total - 1),
        1,
    );
    t
}

#[test]
fn dropped_annotation_is_reported() {
    let good = pair(&kinds_s(), Layout::Preserve);
    let n = good.padded.sites.len();
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| drop_record(t, 0, n));
    let r = check(&p, false);
    expect_diff(&r, "dropped record", |d| {
        place_is(d, ".text", "entry")
            && d.orig_offset == Some(0)
            && d.what.contains("no .afterburn record")
    });
}

#[test]
fn wrong_kind_is_reported() {
    let p = pair(&kinds_s(), Layout::Preserve);
    // Record 0 is the cli at entry; make it `sti` (kind field at +6 of the record after the header).
    patch(
        &p.burnt,
        ".afterburn",
        16 + 6,
        &(SensitiveKind::Sti as u16).to_le_bytes(),
    );
    let r = check(&p, false);
    expect_diff(&r, "wrong kind", |d| {
        place_is(d, ".text", "entry") && d.what.contains("kind sti (expected cli)")
    });
}

#[test]
fn wrong_site_len_and_operands_are_reported() {
    let p = pair(&kinds_s(), Layout::Preserve);
    let cr3 = p
        .padded
        .sites
        .iter()
        .position(|s| s.kind == SensitiveKind::MovToCr)
        .unwrap();
    let rec = 16 * (1 + cr3 as u64);
    patch(
        &p.burnt,
        ".afterburn",
        rec + 8,
        &0x0008_0307u32.to_le_bytes(),
    ); // reg 7 instead of 0
    let r = check(&p, false);
    expect_diff(&r, "wrong operands", |d| {
        place_is(d, ".text", "entry") && d.what.contains("operands 0x80307")
    });
}

#[test]
fn non_nop_byte_in_padding_is_reported() {
    let p = pair(&kinds_s(), Layout::Preserve);
    let cli = &p.padded.sites[0];
    assert_eq!((cli.kind, cli.offset), (SensitiveKind::Cli, 0));
    // The cli is the first byte of .text in both objects; its padding follows.
    patch(&p.burnt, ".text", u64::from(cli.insn_len) + 3, &[0xcc]);
    let r = check(&p, false);
    expect_diff(&r, "int3 in padding", |d| {
        place_is(d, ".text", "entry") && d.what.contains("not NOP padding")
    });
}

#[test]
fn changed_instruction_is_reported() {
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("xor\t%eax, %eax", "xor\t%ecx, %ecx", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "changed xor", |d| {
        place_is(d, ".text", "entry")
            && d.what.contains("different instruction")
            && d.original
                .as_deref()
                .is_some_and(|o| o.contains("xor %eax, %eax"))
            && d.burnt
                .as_deref()
                .is_some_and(|b| b.contains("xor %ecx, %ecx"))
    });
}

#[test]
fn moved_branch_target_is_reported() {
    // `.Lcase_dispatch` starts with a 3-byte cmp; +3 is the next instruction (a valid but wrong target).
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("jne\t.Lcase_dispatch", "jne\t.Lcase_dispatch+3", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "moved branch", |d| {
        place_is(d, ".text", "entry")
            && d.what.contains("branch target moved")
            && d.burnt.as_deref().is_some_and(|b| b.contains("jne"))
    });
}

#[test]
fn wrong_relocation_addend_is_reported() {
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("\t.quad\t.Lcase1\n", "\t.quad\t.Lcase1+1\n", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "wrong addend", |d| {
        d.section == ".rodata"
            && d.orig_offset == Some(8)
            && d.what.contains("relocation")
            && d.what.contains("designates")
    });
}

#[test]
fn missing_sensitive_instruction_is_reported() {
    // Keep the label, padding and record, drop the instruction itself.
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("mov\t%rax, %cr3;", ";", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "missing mov cr3", |d| {
        place_is(d, ".text", "entry") && d.original.as_deref().is_some_and(|o| o.contains("%cr3"))
    });
}

#[test]
fn record_pointing_elsewhere_is_reported() {
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen(".long .Lafb_site0 - .", ".long .Lafb_site0+1 - .", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "record +1", |d| {
        d.section == ".text"
            && d.burnt_offset == Some(1)
            && d.what.contains("points where no sensitive")
    });
    expect_diff(&r, "cli without record", |d| {
        place_is(d, ".text", "entry") && d.what.contains("no .afterburn record")
    });
}

#[test]
fn wrong_symbol_size_is_reported() {
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen(".size\thelper, .-helper", ".size\thelper, .-helper-1", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "helper size", |d| {
        d.place.as_deref() == Some("helper") && d.what.contains("size")
    });
}

#[test]
fn wrong_altinstructions_length_is_reported() {
    let p = pair(&kinds_s(), Layout::Preserve);
    let alt = section_bytes(&p.burnt, ".altinstructions");
    assert_eq!(alt.len(), 14, "one 6.x-style alt_instr entry");
    assert_eq!(
        alt[12],
        16 + 1 + 8,
        "instrlen covers the pushfq site, pop and the cli site"
    );
    let wrong = alt[12] - 7;
    patch(&p.burnt, ".altinstructions", 12, &[wrong]);
    let r = check(&p, false);
    expect_diff(&r, "instrlen", |d| {
        d.section == ".altinstructions" && d.what.contains(&format!("instrlen is {wrong}"))
    });
}

#[test]
fn padding_outside_a_site_is_reported() {
    // A NOP inserted after `xor` (not a site) in strict mode.
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("xor\t%eax, %eax", "xor\t%eax, %eax; nop", 1)
    });
    let r = check(&p, false);
    expect_diff(&r, "stray nop", |d| {
        place_is(d, ".text", "entry") && d.burnt.as_deref().is_some_and(|b| b.contains("nop"))
    });
}

#[test]
fn records_out_of_order_are_reported() {
    // Swap the first two records (both in .text): the chunk is no longer sorted by site.
    let p = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        let rec = |n: usize| {
            let start = t.find(&format!("\t.long .Lafb_site{n} - .\n")).unwrap();
            let mut end = start;
            for _ in 0..4 {
                end += t[end..].find('\n').unwrap() + 1;
            }
            (start, end)
        };
        let ((a0, a1), (b0, b1)) = (rec(0), rec(1));
        assert_eq!(a1, b0);
        format!("{}{}{}{}", &t[..a0], &t[b0..b1], &t[a0..a1], &t[b1..])
    });
    let r = check(&p, false);
    expect_diff(&r, "order", |d| {
        d.section == ".afterburn" && d.what.contains("out of order")
    });
}

#[test]
fn already_burnt_and_opted_out_objects_must_stay_unchanged() {
    let p = pair(&kinds_s(), Layout::Preserve);
    let burnt = std::fs::read(&p.burnt).unwrap();
    let r = verify::verify_bytes(&burnt, &burnt, &Options::default()).unwrap();
    assert!(
        r.is_ok() && r.notes.iter().any(|n| n.contains("already has .afterburn")),
        "{}",
        r.render(5)
    );
    let mut changed = burnt.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    let r = verify::verify_bytes(&burnt, &changed, &Options::default()).unwrap();
    expect_diff(&r, "re-burnt", |d| {
        d.what.contains("already burnt object was changed")
    });

    // `.afterburn_noannotate`: no sites expected, the code must be unchanged.
    let src = format!(
        "{}\n\t.section .afterburn_noannotate, \"\", @progbits\n",
        kinds_s()
    );
    let dir = tempfile::tempdir().unwrap();
    let (o, same, padded) = (
        dir.path().join("o.o"),
        dir.path().join("s.o"),
        dir.path().join("p.o"),
    );
    let asm = Assembler::default();
    asm.assemble(&src, &o).unwrap();
    asm.assemble(&src, &same).unwrap();
    let r = verify::run(&o, &same).unwrap();
    assert!(r.is_ok(), "{}", r.render(5));
    // Padding it anyway is a difference.
    let text = asm_pad::pad(
        &kinds_s(),
        &asm_pad::Options {
            layout: Layout::Preserve,
            assembler: asm.clone(),
        },
    )
    .unwrap()
    .text;
    asm.assemble(
        &format!("{text}\n\t.section .afterburn_noannotate, \"\", @progbits\n"),
        &padded,
    )
    .unwrap();
    let r = verify::run(&o, &padded).unwrap();
    assert!(!r.is_ok(), "a padded opted-out object passed");
}

// ---- kernel tables: alternatives growth, jump labels, ORC ----------------------------------

fn special_s() -> String {
    std::fs::read_to_string(input("special.s")).unwrap()
}

/// What an ORC- and jump-label-aware producer (objtool, the burner) would do with the padded
/// text: the 2-byte jump label becomes the kernel's 5-byte NOP, and the ORC entry after the
/// pushf site designates the end of the instruction, before its padding.
fn kernel_aware(t: &str) -> String {
    let t = t.replacen(
        ".byte\t0x66, 0x90\t\t# jump label",
        ".byte\t0x0f, 0x1f, 0x44, 0x00, 0x00",
        1,
    );
    let t: Vec<String> = t
        .lines()
        .map(|l| {
            if l.contains("# orc site") {
                l.replacen("pushfq;", "pushfq; 3:", 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    t.join("\n").replacen("3:\tpop\t%rax", "\tpop\t%rax", 1) + "\n"
}

#[test]
fn alternative_region_growth_jump_labels_and_orc() {
    // As padded by text alone: the jump label is out of rel8 reach, the ORC entry is after the
    // padding. The alternative's original region grew through its `.skip` (0x90 bytes).
    let p = pair(&special_s(), Layout::Preserve);
    let r = check(&p, false);
    expect_diff(&r, "jump label", |d| {
        place_is(d, ".text", "jl_user") && d.what.contains("can no longer reach its target")
    });
    expect_diff(&r, "orc", |d| {
        d.section == ".orc_unwind_ip" && d.orig_offset == Some(4)
    });
    assert_eq!(r.differences.len(), 2, "{}", r.render(10));
    assert_eq!(r.stats.alt_growth, 1);
    // Kernel-aware output passes.
    let good = pair_edited(&special_s(), Layout::Preserve, kernel_aware);
    let r = check(&good, false);
    assert!(r.is_ok(), "{}", r.render(10));
    assert_eq!(r.stats.alt_growth, 1);
    let alt = section_bytes(&good.burnt, ".altinstructions");
    assert_eq!(
        (alt[12], alt[13]),
        (16 + 1, 16 + 1),
        "region grown to the padded pushfq; pop"
    );
    // A jump label widened to some other 5 bytes.
    let bad = pair_edited(&special_s(), Layout::Preserve, |t| {
        kernel_aware(t).replacen(
            "0x0f, 0x1f, 0x44, 0x00, 0x00",
            "0x0f, 0x1f, 0x40, 0x00, 0x90",
            1,
        )
    });
    expect_diff(&check(&bad, false), "bad NOP5", |d| {
        place_is(d, ".text", "jl_user") && d.what.contains("jump-label NOP")
    });
    // Growth bytes that are not NOPs: alt_macro starts .text; cli site (8), the .skip's
    // original 0x90, then the growth.
    let bad = pair_edited(&special_s(), Layout::Preserve, kernel_aware);
    patch(&bad.burnt, ".text", 12, &[0xcc]);
    expect_diff(&check(&bad, false), "bad growth", |d| {
        place_is(d, ".text", "alt_macro") && d.what.contains("must grow by 8 bytes")
    });
}

// ---- the command line ---------------------------------------------------------------------

#[test]
fn main_entry_exit_codes() {
    let good = pair(&kinds_s(), Layout::Preserve);
    let s = |p: &Path| p.display().to_string();
    assert_eq!(verify::main_entry(&[s(&good.orig), s(&good.burnt)]), 0);
    let bad = pair_edited(&kinds_s(), Layout::Preserve, |t| {
        t.replacen("xor\t%eax, %eax", "xor\t%ecx, %ecx", 1)
    });
    assert_eq!(verify::main_entry(&[s(&bad.orig), s(&bad.burnt)]), 1);
    // Not an ELF object, a missing file, a usage error: 2.
    let junk = good._dir.path().join("junk.o");
    std::fs::write(&junk, b"not an object").unwrap();
    assert_eq!(verify::main_entry(&[s(&junk), s(&good.burnt)]), 2);
    assert_eq!(
        verify::main_entry(&[s(&good.orig), s(&junk.with_extension("missing"))]),
        2
    );
    assert_eq!(verify::main_entry(&[s(&good.orig)]), 2);
}

#[test]
fn undecodable_original_is_an_error_naming_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("bad.o");
    // 0xd6 (salc) is invalid in 64-bit mode.
    Assembler::default()
        .assemble("\t.text\nf:\tnop\n\t.byte 0xd6\n\tret\n", &o)
        .unwrap();
    let err = verify::run(&o, &o).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(".text+0x1") && msg.contains("<f+0x1>") && msg.contains("cannot decode"),
        "{msg}"
    );
}

// ---- robustness: corrupted inputs never panic -----------------------------------------------

/// Deterministic xorshift64* so a failure names a reproducible seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

#[test]
fn corrupted_objects_give_reports_or_errors_never_panics() {
    let p = pair(&special_s(), Layout::Preserve);
    let k = pair(&kinds_s(), Layout::Preserve);
    let inputs = [
        (
            std::fs::read(&p.orig).unwrap(),
            std::fs::read(&p.burnt).unwrap(),
        ),
        (
            std::fs::read(&k.orig).unwrap(),
            std::fs::read(&k.burnt).unwrap(),
        ),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let opts = Options::default();
    let (mut reports, mut errors) = (0, 0);
    // AFB_MUTATION_ROUNDS raises the count for a longer hunt (e.g. in release mode).
    let rounds: usize = std::env::var("AFB_MUTATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    for round in 0..rounds {
        let (o, b) = &inputs[round % 2];
        let (mut o, mut b) = (o.clone(), b.clone());
        let target = if round % 3 == 0 { &mut o } else { &mut b };
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(target.len());
            target[at] = match rng.below(4) {
                0 => 0,
                1 => 0xff,
                2 => target[at] ^ (1 << rng.below(8)),
                _ => u8::try_from(rng.below(256)).unwrap(),
            };
        }
        if round % 50 == 49 {
            let cut = rng.below(target.len());
            target.truncate(cut);
        }
        let res = std::panic::catch_unwind(|| verify::verify_bytes(&o, &b, &opts));
        match res {
            Ok(Ok(_)) => reports += 1,
            Ok(Err(e)) => {
                assert!(!e.to_string().is_empty());
                errors += 1
            }
            Err(_) => {
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
                std::fs::write(dir.join("panic-orig.o"), &o).unwrap();
                std::fs::write(dir.join("panic-burnt.o"), &b).unwrap();
                panic!(
                    "verify_bytes panicked in round {round}; inputs saved in {}",
                    dir.display()
                );
            }
        }
    }
    assert!(
        reports > 0 && errors > 0,
        "{reports} reports, {errors} errors"
    );
}
