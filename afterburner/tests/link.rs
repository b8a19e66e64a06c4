//! `.afterburn` through the GNU linker: `ld -r` keeps one chunk per object with working
//! relocations, a final link resolves every record to its site; burning is idempotent and
//! deterministic.

mod common;
use annotations::{Chunks, Sites};
use common::*;
use std::process::Command;

/// Kind name → the mnemonic objdump prints first.
fn mnemonic_matches(kind: annotations::SensitiveKind, text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    let want = kind.name().split('-').next().unwrap();
    first.starts_with(want)
        || (want == "ljmp" && first.starts_with("rex64"))
        || (want == "lcall" && first.starts_with("rex64"))
}

#[test]
fn ld_r_keeps_every_chunk_and_relocation() {
    let w = Work::new();
    let a = w.path("prog.o");
    let b = w.path("layout.o");
    cc(&input("prog.c"), &a, &["-O2", "-fno-pie"]);
    assemble(&input("layout.S"), &b);
    let (ab, bb) = (w.path("prog.burnt.o"), w.path("layout.burnt.o"));
    burn(&a, &ab);
    burn(&b, &bb);
    let (na, nb) = (afterburn_sites(&ab).len(), afterburn_sites(&bb).len());
    let merged = w.path("merged.o");
    run(Command::new("ld").arg("-r").arg(&ab).arg(&bb).arg("-o").arg(&merged));

    let bytes = section_bytes(&merged, ".afterburn");
    let chunks: Vec<_> = Chunks::new(&bytes).map(|c| c.unwrap().header.count as usize).collect();
    assert_eq!(chunks, [na, nb], "one chunk per input object");
    // every record's relocation resolves to its instruction in the merged object
    let sites = afterburn_sites(&merged);
    assert_eq!(sites.len(), na + nb);
    let mut per_section = std::collections::BTreeMap::new();
    for s in &sites {
        let insns = per_section
            .entry(s.section.clone())
            .or_insert_with(|| raw_insns(&merged, &s.section));
        let i = insns
            .iter()
            .find(|i| i.0 == s.offset)
            .unwrap_or_else(|| panic!("no instruction at {}+{:#x}", s.section, s.offset));
        assert!(
            mnemonic_matches(s.record.kind, &i.2),
            "{}+{:#x}: record {} but `{}`",
            s.section,
            s.offset,
            s.record.kind,
            i.2
        );
    }
    // a merged object that carries .afterburn is left alone by another burn
    let again = w.path("merged.burnt.o");
    let out = burn(&merged, &again);
    assert!(out.contains("1 unchanged"), "{out}");
    assert_eq!(std::fs::read(&merged).unwrap(), std::fs::read(&again).unwrap());
}

#[test]
fn final_link_with_ld_resolves_every_record_to_its_site() {
    let w = Work::new();
    let b = w.path("layout.o");
    let s = w.path("special.o");
    assemble(&input("layout.S"), &b);
    assemble(&input("special.S"), &s);
    let (bb, sb) = (w.path("layout.burnt.o"), w.path("special.burnt.o"));
    burn(&b, &bb);
    burn(&s, &sb);
    let exe = w.path("linked");
    // high-half addresses, as a kernel is linked
    run(Command::new("ld")
        .args(["-e", "widen", "-Ttext=0xffffffff81000000"])
        .arg(&bb)
        .arg(&sb)
        .arg("-o")
        .arg(&exe));
    let secs = sections(&exe);
    let ab = secs
        .iter()
        .find(|s| s.name == ".afterburn")
        .expect(".afterburn kept by the final link");
    let bytes = section_bytes(&exe, ".afterburn");
    let mut n = 0;
    for rec in Sites::new(&bytes) {
        let (off, r) = rec.unwrap();
        let site = r.target(ab.addr + off as u64);
        let text = stdout(
            Command::new("objdump")
                .args(["-d", "--no-show-raw-insn"])
                .arg(format!("--start-address={site:#x}"))
                .arg(format!("--stop-address={:#x}", site + u64::from(r.site_len)))
                .arg(&exe),
        );
        let insn = text
            .lines()
            .filter_map(|l| l.split_once(":\t").map(|(_, t)| t.trim().to_owned()))
            .next();
        let insn = insn.unwrap_or_else(|| panic!("record {off:#x} resolves to {site:#x}, where there is no code"));
        assert!(
            mnemonic_matches(r.kind, &insn),
            "record {off:#x} ({}) resolves to {site:#x}: `{insn}`",
            r.kind
        );
        assert!(site >= 0xffff_ffff_8100_0000, "{site:#x}");
        n += 1;
    }
    assert_eq!(n, afterburn_sites(&bb).len() + afterburn_sites(&sb).len());
}

#[test]
fn burning_is_idempotent_and_deterministic() {
    let w = Work::new();
    let a = w.path("prog.o");
    cc(&input("prog.c"), &a, &["-O2"]);
    let (x, y, z) = (w.path("x.o"), w.path("y.o"), w.path("z.o"));
    burn(&a, &x);
    burn(&a, &y);
    burn(&x, &z);
    let (bx, by, bz) = (
        std::fs::read(&x).unwrap(),
        std::fs::read(&y).unwrap(),
        std::fs::read(&z).unwrap(),
    );
    assert_eq!(bx, by, "two burns of one input differ");
    assert_eq!(bx, bz, "burning a burnt object changed it");
    assert_ne!(bx, std::fs::read(&a).unwrap());
}

#[test]
fn noannotate_objects_are_copied_unchanged() {
    let w = Work::new();
    let s = w.write(
        "opt.S",
        ".text\nf: cli\nret\n.section .afterburn_noannotate,\"\",@progbits\n",
    );
    let o = w.path("opt.o");
    assemble(&s, &o);
    let out = w.path("opt.burnt.o");
    let text = burn(&o, &out);
    assert!(text.contains("1 unchanged"), "{text}");
    assert_eq!(std::fs::read(&o).unwrap(), std::fs::read(&out).unwrap());
}
