//! Hand-written assembly: branch widening, assembler-resolved references, relocations to the
//! instruction after a site, `sti; hlt` pairs, ORC entries, and the kernel special sections
//! (`.altinstructions`, `__ex_table`, `__jump_table`) checked with GNU binutils.

mod common;
use annotations::{SensitiveKind, FLAG_ALTINSTR, FLAG_PAIR};
use common::*;
use std::ffi::OsStr;

fn burn_input(w: &Work, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let orig = w.path(&format!("{name}.o"));
    let burnt = w.path(&format!("{name}.burnt.o"));
    assemble(&input(name), &orig);
    burn(&orig, &burnt);
    (orig, burnt)
}

fn insn_at(v: &[(u64, Vec<u8>, String)], off: u64) -> &(u64, Vec<u8>, String) {
    v.iter()
        .find(|i| i.0 == off)
        .unwrap_or_else(|| panic!("no instruction at {off:#x}"))
}

#[test]
fn short_branches_widen_only_when_needed_and_targets_hold() {
    let w = Work::new();
    let (orig, burnt) = burn_input(&w, "layout.S");
    compare_code(&orig, &burnt, Nops::InSitesOnly);
    let a = raw_insns(&orig, ".text");
    let b = raw_insns(&burnt, ".text");
    // jne rel8 over 30 padded rdtsc became jne rel32 (0f 85)
    assert_eq!(a[0].1[0], 0x75, "input starts with jne rel8");
    assert_eq!(&b[0].1[..2], &[0x0f, 0x85], "jne over padded sites widened: {:?}", b[0]);
    // `jmp 2f` over a nop stays short; `jmp 4f` over 20 padded cpuid widens
    let short: Vec<_> = b.iter().filter(|i| i.2.starts_with("jmp")).map(|i| i.1[0]).collect();
    // (the last is `jmp .Lhlt` in local_fn, backward over one padded hlt: stays short)
    assert_eq!(
        short,
        [0xeb, 0xeb, 0xe9, 0xeb],
        "jmp encodings after burning: {short:x?}"
    );
    let loops: Vec<_> = b.iter().filter(|i| i.2.starts_with("loop")).collect();
    assert_eq!(loops.len(), 1);
}

#[test]
fn sti_hlt_is_one_pair_site_unless_split_or_entered_at_the_hlt() {
    let w = Work::new();
    let (_, burnt) = burn_input(&w, "layout.S");
    let sites = afterburn_sites(&burnt);
    let kinds: Vec<_> = sites
        .iter()
        .filter(|s| s.section == ".text")
        .map(|s| s.record.kind)
        .collect();
    let pair: Vec<_> = sites
        .iter()
        .filter(|s| s.record.kind == SensitiveKind::StiHlt)
        .collect();
    assert_eq!(pair.len(), 1, "{kinds:?}");
    assert_eq!(pair[0].record.insn_len, 2);
    assert_eq!(pair[0].record.site_len, 16);
    assert_ne!(pair[0].record.flags & FLAG_PAIR, 0);
    // `sti; nop; hlt`, and `sti; hlt` whose hlt is a branch target, are two sites each
    assert_eq!(kinds.iter().filter(|k| **k == SensitiveKind::Sti).count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == SensitiveKind::Hlt).count(), 2);
    // and the burnt bytes at the pair are sti, hlt, then padding
    let b = raw_insns(&burnt, ".text");
    let s = insn_at(&b, pair[0].offset);
    assert_eq!(s.2, "sti");
    assert_eq!(insn_at(&b, pair[0].offset + 1).2, "hlt");
}

#[test]
fn relocations_to_the_instruction_after_a_site_follow_it_and_orc_stays_before_padding() {
    let w = Work::new();
    let (_, burnt) = burn_input(&w, "layout.S");
    let b = raw_insns(&burnt, ".text");
    let pushf = b.iter().find(|i| i.2 == "pushf").expect("pushfq in burnt .text");
    let popf = b.iter().find(|i| i.2 == "popf").expect("popfq in burnt .text");
    assert_eq!(popf.0, pushf.0 + 16, "pushfq padded to 16 bytes");
    let rels = relocations(&burnt);
    // .rodata `.quad .Lafter_pushf` → the popfq (after the padding)
    let ro = &rels[".rela.rodata"];
    assert_eq!((ro[0].sym.as_str(), ro[0].addend), (".text", popf.0 as i64));
    // jmp .Lafter_pushf from .text.other (PC32 against .text, addend target - 4)
    let other = &rels[".rela.text.other"];
    let jmp = other.iter().find(|r| r.offset == 1).expect("jmp relocation");
    assert_eq!(
        jmp.addend + 4,
        popf.0 as i64,
        "jmp from another section reaches the instruction after the site"
    );
    // ORC entry right after the pushfq: the state after pushfq holds in its padding too
    let orc = &rels[".rela.orc_unwind_ip"];
    assert_eq!(
        orc[1].addend,
        pushf.0 as i64 + 1,
        "ORC entry maps to the end of the original instruction"
    );
    let local_fn = symbols(&burnt).into_iter().find(|s| s.0 == "local_fn").unwrap();
    assert_eq!(orc[0].addend, local_fn.4 as i64);
}

#[test]
fn alternatives_keep_replacementlen_within_instrlen() {
    let w = Work::new();
    let (orig, burnt) = burn_input(&w, "special.S");
    compare_code(&orig, &burnt, Nops::All);
    let alt = section_bytes(&burnt, ".altinstructions");
    assert_eq!(alt.len(), 3 * 14);
    let lens: Vec<(u8, u8)> = alt.chunks(14).map(|e| (e[12], e[13])).collect();
    // 1: stac padded to 8, original nop3 region grown to 8; 2: cli padded to 8 + xor (2)
    // replaced by a 2-byte xor; 3: empty replacement.
    assert_eq!(lens, [(8, 8), (10, 2), (2, 0)]);
    let rels = &relocations(&burnt)[".rela.altinstructions"];
    let targets: Vec<(u64, &str, i64)> = rels.iter().map(|r| (r.offset, r.sym.as_str(), r.addend)).collect();
    assert_eq!(
        targets,
        [
            (0, ".text", 0),
            (4, ".altinstr_replacement", 0),
            (14, ".text", 8),
            (18, ".altinstr_replacement", 8),
            (28, ".text", 18),
            (32, ".altinstr_replacement", 10),
        ]
    );
    // The grown original region holds the nop3 and NOPs only, then the cli site.
    let t = raw_insns(&burnt, ".text");
    for i in t.iter().take_while(|i| i.0 < 8) {
        assert!(i.2.starts_with("nop"), "original region holds `{}`", i.2);
    }
    assert_eq!(insn_at(&t, 8).2, "cli");
    // The replacement: stac then padding, flagged as alternative code.
    let r = raw_insns(&burnt, ".altinstr_replacement");
    assert_eq!(r[0].2, "stac");
    let sites = afterburn_sites(&burnt);
    let stac = sites.iter().find(|s| s.record.kind == SensitiveKind::Stac).unwrap();
    assert_eq!(stac.section, ".altinstr_replacement");
    assert_ne!(stac.record.flags & FLAG_ALTINSTR, 0);
    let cli = sites.iter().find(|s| s.section == ".text" && s.offset == 8).unwrap();
    assert_eq!(cli.record.flags & FLAG_ALTINSTR, 0);
}

#[test]
fn exception_table_follows_the_faulting_instruction_and_its_fixup() {
    let w = Work::new();
    let (_, burnt) = burn_input(&w, "special.S");
    let t = raw_insns(&burnt, ".text");
    let rdmsr = t.iter().find(|i| i.2 == "rdmsr").unwrap().0;
    let ret = t.iter().find(|i| i.0 > rdmsr && i.2 == "ret").unwrap().0;
    assert_eq!(ret, rdmsr + 8, "rdmsr padded to 8");
    let ex = &relocations(&burnt)[".rela__ex_table"];
    // `.long 1b - .` at 0 and `.long 2b - .` at 4: PC32 against .text, addend = target
    assert_eq!(
        (ex[0].offset, ex[0].sym.as_str(), ex[0].addend),
        (0, ".text", rdmsr as i64)
    );
    assert_eq!(
        (ex[1].offset, ex[1].sym.as_str(), ex[1].addend),
        (4, ".text", ret as i64)
    );
}

#[test]
fn two_byte_jump_labels_widen_to_the_kernel_nop5_when_their_target_leaves_rel8_range() {
    let w = Work::new();
    let (orig, burnt) = burn_input(&w, "special.S");
    compare_code(&orig, &burnt, Nops::All);
    let jt = &relocations(&burnt)[".rela__jump_table"];
    let t = raw_insns(&burnt, ".text");
    let code0 = jt.iter().find(|r| r.offset == 0).unwrap().addend as u64;
    let target0 = jt.iter().find(|r| r.offset == 4).unwrap().addend as u64;
    let code1 = jt.iter().find(|r| r.offset == 16).unwrap().addend as u64;
    let target1 = jt.iter().find(|r| r.offset == 20).unwrap().addend as u64;
    assert_eq!(
        insn_at(&t, code0).1,
        [0x0f, 0x1f, 0x44, 0x00, 0x00],
        "far jump label is the 5-byte NOP now"
    );
    assert_eq!(insn_at(&t, target0).2, "ret");
    assert!(target0 - (code0 + 5) > 127, "target really is out of rel8 range");
    assert_eq!(insn_at(&t, code1).1, [0x66, 0x90], "near jump label stays 2 bytes");
    assert_eq!(insn_at(&t, target1).2, "ret");
}

#[test]
fn loop_that_would_need_widening_is_an_error_naming_the_place() {
    let w = Work::new();
    let src = w.write("loop.S", ".text\nf:\n1:\n.rept 20\ncli\n.endr\nloop 1b\nret\n");
    let obj = w.path("loop.o");
    assemble(&src, &obj);
    let out = w.path("loop.burnt.o");
    let (code, err) = afterburner_fails(&[OsStr::new("burn"), obj.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("loop.o") && err.contains("section .text offset 0x14") && err.contains("loop"),
        "{err}"
    );
    assert!(!out.exists(), "no output after an error");
}

#[test]
fn sites_whose_alternative_would_outgrow_a_byte_stay_unpadded_and_flagged() {
    // A replacement of 40 `cli` (40 bytes) would become 320 bytes when padded: more than
    // `replacementlen` (u8) can say. Its sites stay unpadded (FLAG_UNPADDED, site_len ==
    // insn_len) and the object stays consistent; the warning names them.
    let w = Work::new();
    let src = w.write(
        "big.S",
        ".text\nf:\n661: .skip 40, 0x90\n662:\nret\n\
         .pushsection .altinstructions, \"a\"\n.long 661b - .\n.long 671f - .\n.4byte 0\n.byte 662b - 661b\n.byte 672f - 671f\n.popsection\n\
         .pushsection .altinstr_replacement, \"ax\"\n671: .rept 40\ncli\n.endr\n672:\n.popsection\n",
    );
    let orig = w.path("big.o");
    assemble(&src, &orig);
    let burnt = w.path("big.burnt.o");
    let out = afterburner()
        .arg("burn")
        .arg(&orig)
        .arg("-o")
        .arg(&burnt)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("left unpadded"), "{stderr}");
    let sites = afterburn_sites(&burnt);
    assert_eq!(sites.len(), 40);
    for s in &sites {
        assert_ne!(s.record.flags & annotations::FLAG_UNPADDED, 0);
        assert_ne!(s.record.flags & FLAG_ALTINSTR, 0);
        assert_eq!(s.record.site_len, s.record.insn_len);
    }
    let alt = section_bytes(&burnt, ".altinstructions");
    assert_eq!((alt[12], alt[13]), (40, 40));
    assert_eq!(
        section_bytes(&burnt, ".altinstr_replacement"),
        section_bytes(&orig, ".altinstr_replacement")
    );
}
