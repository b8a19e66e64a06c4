//! `dwarf::rewrite` on hand-written DWARF and CFI (assembled by GNU `as`) that exercises
//! encodings compilers seldom produce: indexed DWARF 5 forms with offsets tables
//! (`DW_FORM_addrx`, `rnglistx`, `loclistx`, `DW_RLE_base_addressx`, `startx_length`),
//! non-minimal line program encodings (a program that gets shorter must be padded), CFI with a
//! code alignment factor, and the CFI the rewrite must refuse.
//!
//! The oracle is the original's decoded facts (gimli) with every location mapped.

mod dwarf_support;

use afterburner::offset_map::OffsetMap;
use dwarf_support::*;

fn map(points: &[(u64, u64)]) -> OffsetMap {
    let mut m = OffsetMap::new();
    for &(at, n) in points {
        m.insert(at, n);
    }
    m
}

/// Rewrites, writes and checks against the mapped original; returns the rewritten sections.
fn check_mapped(obj: &[u8], maps: &Maps) -> Vec<afterburner::dwarf::RewrittenSection> {
    let r = rewrite(obj, maps).unwrap_or_else(|e| panic!("rewrite failed: {e}"));
    let mine = write_burnt(obj, None, maps, &r);
    let got = dump(&mine);
    let want = map_facts(&dump(obj), maps);
    assert_same("crafted vs mapped original", &got, &want);
    let (gl, _) = line_facts(&mine);
    let (ol, _) = line_facts(obj);
    assert_same("crafted line rows", &gl, &map_facts(&ol, maps));
    r
}

const INDEXED_DWARF5: &str = r#"
	.text
f:
	.rept 300
	nop
	.endr
	ret
.Lf_end:
	.section .text.other,"ax",@progbits
g:
	.rept 120
	nop
	.endr
	ret
.Lg_end:

	.section .debug_abbrev,"",@progbits
.Labbrev:
	.uleb128 1, 0x11
	.byte 1
	.uleb128 0x73, 0x17, 0x74, 0x17, 0x8c, 0x17
	.uleb128 0x11, 0x1b, 0x55, 0x23
	.byte 0, 0
	.uleb128 2, 0x2e
	.byte 1
	.uleb128 0x11, 0x1b, 0x12, 0x0f
	.byte 0, 0
	.uleb128 3, 0x34
	.byte 0
	.uleb128 0x02, 0x22
	.byte 0, 0
	.uleb128 4, 0x0b
	.byte 0
	.uleb128 0x55, 0x23
	.byte 0, 0
	.uleb128 5, 0x2e
	.byte 0
	.uleb128 0x11, 0x1b, 0x12, 0x06
	.byte 0, 0
	.byte 0

	.section .debug_info,"",@progbits
	.long .Linfo_end - .Linfo_start
.Linfo_start:
	.value 5
	.byte 1, 8
	.long .Labbrev
	.uleb128 1
	.long .Laddr_base
	.long .Lrng_base
	.long .Lloc_base
	.uleb128 0
	.uleb128 0
	.uleb128 2
	.uleb128 0
	.uleb128 .Lf_end - f
	.uleb128 3
	.uleb128 0
	.uleb128 4
	.uleb128 1
	.byte 0
	.uleb128 5
	.uleb128 1
	.long .Lg_end - g
	.byte 0
.Linfo_end:

	.section .debug_addr,"",@progbits
	.long .Laddr_end - .Laddr_start
.Laddr_start:
	.value 5
	.byte 8, 0
.Laddr_base:
	.quad f
	.quad g
	.quad f + 100
.Laddr_end:

	.section .debug_rnglists,"",@progbits
	.long .Lrng_end - .Lrng_start
.Lrng_start:
	.value 5
	.byte 8, 0
	.long 2
.Lrng_base:
	.long .Lrl0 - .Lrng_base
	.long .Lrl1 - .Lrng_base
.Lrl0:
	.byte 3
	.uleb128 0, .Lf_end - f
	.byte 3
	.uleb128 1, .Lg_end - g
	.byte 0
.Lrl1:
	.byte 1
	.uleb128 0
	.byte 4
	.uleb128 10, 120
	.byte 4
	.uleb128 200, 250
	.byte 2
	.uleb128 0, 2
	.byte 0
.Lrng_end:

	.section .debug_loclists,"",@progbits
	.long .Lloc_end - .Lloc_start
.Lloc_start:
	.value 5
	.byte 8, 0
	.long 1
.Lloc_base:
	.long .Lll0 - .Lloc_base
.Lll0:
	.byte 4
	.uleb128 0, 50, 1
	.byte 0x50
	.byte 3
	.uleb128 2, 100, 1
	.byte 0x51
	.byte 8
	.quad g
	.uleb128 30, 1
	.byte 0x52
	.byte 0
.Lloc_end:
"#;

#[test]
fn indexed_dwarf5_forms_and_offsets_tables() {
    let obj = assemble(INDEXED_DWARF5, &[]);
    let text = section_index(&obj, ".text").unwrap();
    let other = section_index(&obj, ".text.other").unwrap();
    let maps = Maps::from([
        (text, map(&[(5, 3), (60, 9), (150, 50), (250, 7), (301, 2)])),
        (other, map(&[(30, 20), (121, 4)])),
    ]);
    let r = check_mapped(&obj, &maps);
    let names = section_names(&obj);
    let relaid: Vec<&str> = r
        .iter()
        .filter(|s| s.offset_map.is_some())
        .map(|s| names[&s.index].as_str())
        .collect();
    // g's length (120) and the pair (10, 120) outgrow one ULEB128 byte: the rnglists move, so
    // the offsets table must have been rewritten for gimli to find list 1.
    assert!(relaid.contains(&".debug_rnglists"), "{relaid:?}");
    // f's DW_FORM_udata high_pc (301 → 372) keeps its two bytes; g's data4 is patched.
    assert!(r.iter().any(|s| names[&s.index] == ".debug_info"));
    // The oracle saw what this test is about.
    let facts = dump(&obj);
    let ranges: Vec<_> = facts
        .iter()
        .filter(|(k, _)| k.contains("DW_AT_ranges"))
        .collect();
    assert_eq!(ranges.len(), 2, "{facts:#?}");
    assert_eq!(ranges[0].1.len(), 4, "CU: two ranges");
    assert_eq!(ranges[1].1.len(), 6, "block: three ranges");
    let locs = facts
        .iter()
        .filter(|(k, _)| k.contains("DW_AT_location #"))
        .count();
    assert_eq!(locs, 3, "{facts:#?}");
    let highs = facts
        .iter()
        .filter(|(k, _)| k.contains("(low+const)"))
        .count();
    assert_eq!(highs, 2, "{facts:#?}");
}

const LINE_PROGRAM: &str = r#"
	.text
f:
	.rept 40
	nop
	.endr
	ret

	.section .debug_line,"",@progbits
	.long .Lline_end - .Lline_start
.Lline_start:
	.value 4
	.long .Lprog - .Lhdr
.Lhdr:
	.byte 1, 1, 1
	.byte -5
	.byte 14, 13
	.byte 0,1,1,1,1,0,0,0,1,0,0,1
	.byte 0
	.string "t.c"
	.uleb128 0, 0, 0
	.byte 0
.Lprog:
	.byte 0, 9, 2
	.quad f
	.byte 1
	.byte 9
	.value 3
	.byte 1
	.byte 2, 0x82, 0x80, 0x00
	.byte 3, 2
	.byte 1
	.byte 8
	.byte 13 + 5 + 14*3
	.byte 0, 3, 0x80, 0xaa, 0xbb
	.byte 9
	.value 4
	.byte 0, 1, 1
.Lline_end:
"#;

#[test]
fn line_program_that_gets_shorter_is_padded() {
    let obj = assemble(LINE_PROGRAM, &[]);
    let text = section_index(&obj, ".text").unwrap();
    let line = section_index(&obj, ".debug_line").unwrap();
    let (rows, orig_len) = line_facts(&obj);
    assert_eq!(rows.len(), 5, "{rows:#?}");
    // One byte at f+1: the row at f+3 is now 4 bytes on; `fixed_advance_pc 3; copy` (4 bytes)
    // becomes `advance_pc 4; copy` (3 bytes) and the unit is padded back to its length.
    let maps = Maps::from([(text, map(&[(1, 1)]))]);
    let r = check_mapped(&obj, &maps);
    let s = r
        .iter()
        .find(|s| s.index == line)
        .expect(".debug_line rewritten");
    assert_eq!(s.offset_map, None, "same length, no map");
    let (_, new_len) = line_facts(&write_burnt(&obj, None, &maps, &r));
    assert_eq!(new_len, orig_len);
    // 100 bytes at f+20: `const_add_pc; special` (2 bytes) becomes `advance_pc 120; special`
    // (3 bytes): the unit grows and the section gets an offset map.
    let maps = Maps::from([(text, map(&[(20, 100)]))]);
    let r = check_mapped(&obj, &maps);
    let s = r.iter().find(|s| s.index == line).unwrap();
    let m = s.offset_map.as_ref().expect("grown unit has a map");
    assert_eq!(m.map(0), 0);
    let (_, new_len) = line_facts(&write_burnt(&obj, None, &maps, &r));
    assert!(new_len[0] > orig_len[0]);
}

/// `.debug_frame` with code alignment factor 4 (as on RISC CPUs; legal anywhere).
const CAF4: &str = r#"
	.text
f:
	.rept 64
	nop
	.endr
	ret
.Lf_end:
	.section .debug_frame,"",@progbits
.Lcie:
	.long .Lcie_end - .Lcie_start
.Lcie_start:
	.long 0xffffffff
	.byte 4
	.string ""
	.byte 8, 0
	.uleb128 4
	.sleb128 -8
	.uleb128 16
	.byte 0x0c, 7, 8
	.p2align 3, 0
.Lcie_end:
	.long .Lfde_end - .Lfde_start
.Lfde_start:
	.long .Lcie
	.quad f
	.quad .Lf_end - f
	.byte 0x40 + 2
	.byte 0x0e, 16
	.byte 0x04
	.long 10
	.byte 0x0e, 24
	.byte 0x02, 5
	.byte 0x0e, 8
	.p2align 3, 0
.Lfde_end:
"#;

#[test]
fn cfi_with_a_code_alignment_factor() {
    let obj = assemble(CAF4, &[]);
    let text = section_index(&obj, ".text").unwrap();
    assert_eq!(census(&dump(&obj))["cfirow"], 4);
    // Multiples of 4: fine.
    let maps = Maps::from([(text, map(&[(4, 4), (20, 8), (50, 400)]))]);
    check_mapped(&obj, &maps);
    // 3 bytes before the row at 8: the new advance (11 bytes) is no multiple of 4.
    let maps = Maps::from([(text, map(&[(4, 3)]))]);
    let e = rewrite(&obj, &maps).unwrap_err();
    assert_eq!(e.section, ".debug_frame");
    assert!(e.message.contains("code alignment factor"), "{e}");
}

/// An object with one hand-written `.eh_frame` CIE and FDE, and the maps used on it.
fn eh(fde_body: &str, cie_insns: &str) -> (Vec<u8>, Maps) {
    let text = format!(
        r#"
	.text
f:
	.rept 32
	nop
	.endr
	ret
.Lf_end:
	.section .eh_frame,"a",@progbits
.Lcie:
	.long .Lcie_end - .Lcie_start
.Lcie_start:
	.long 0
	.byte 1
	.string "zR"
	.uleb128 1
	.sleb128 -8
	.byte 16
	.uleb128 1
	.byte 0x1b
	.byte 0x0c, 7, 8
	{cie_insns}
	.p2align 2, 0
.Lcie_end:
	.long .Lfde_end - .Lfde_start
.Lfde_start:
	.long .Lfde_start - .Lcie
	.long f - .
	.long .Lf_end - f
	.uleb128 0
	{fde_body}
	.p2align 2, 0
.Lfde_end:
"#
    );
    let obj = assemble(&text, &[]);
    let idx = section_index(&obj, ".text").unwrap();
    let maps = Maps::from([(idx, map(&[(2, 5)]))]);
    (obj, maps)
}

fn refused(fde_body: &str, cie_insns: &str, want: &str) {
    let (obj, maps) = eh(fde_body, cie_insns);
    let e = rewrite(&obj, &maps).unwrap_err();
    assert_eq!(e.section, ".eh_frame");
    assert!(e.message.contains(want), "{e}");
}

#[test]
fn cfi_the_rewrite_must_refuse() {
    // DW_CFA_set_loc (an absolute location in the program).
    refused(
        ".byte 0x01\n\t.long f + 4 - .\n\t.byte 0x0e, 16",
        "",
        "DW_CFA_set_loc",
    );
    // An advance in the CIE's initial instructions.
    refused(".byte 0x0e, 16", ".byte 0x41", "CIE initial instructions");
    // An unknown CFA opcode.
    refused(".byte 0x3f", "", "unknown CFA instruction");
    // The same record without them is rewritten (so the refusals are about them).
    let (obj, maps) = eh(".byte 0x43\n\t.byte 0x0e, 16", "");
    let c = census(&dump(&obj));
    assert_eq!(c["cfirow"], 2, "{c:?}");
    check_mapped(&obj, &maps);
}

#[test]
fn cfi_64bit_records_are_refused() {
    let text = r#"
	.text
f:	nop
	nop
	ret
.Lf_end:
	.section .debug_frame,"",@progbits
	.long 0xffffffff
	.quad 8
	.quad 0xffffffffffffffff
"#;
    let obj = assemble(text, &[]);
    let idx = section_index(&obj, ".text").unwrap();
    let e = rewrite(&obj, &Maps::from([(idx, map(&[(1, 3)]))])).unwrap_err();
    assert_eq!(e.section, ".debug_frame");
    assert!(e.message.contains("64-bit"), "{e}");
}
