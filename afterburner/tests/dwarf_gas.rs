//! `dwarf::rewrite` against GNU `as`: the same C file assembled twice, once as gcc wrote it and
//! once with NOP padding after chosen instructions; `as` computes the padded object's DWARF and
//! CFI itself. The rewrite of the original object must decode (gimli, readelf, objdump,
//! addr2line) exactly like the padded one, and most sections must match byte for byte.

mod dwarf_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use dwarf_support::*;

/// Sections whose rewritten bytes and relocations must equal what `as` produced: `as` uses
/// minimal encodings and so does the rewrite (never narrower than the original, which was
/// minimal), so there is exactly one right answer.
const BYTE_EXACT: &[&str] = &[
    ".debug_info",
    ".debug_aranges",
    ".debug_rnglists",
    ".debug_loclists",
    ".debug_ranges",
    ".debug_loc",
    ".eh_frame",
    ".debug_frame",
];

struct Outcome {
    facts: BTreeMap<String, usize>,
    /// Names of the returned sections whose layout changed (they carry an offset map).
    relaid: Vec<String>,
}

/// Writes `bytes` as `<dir>/<sub>/obj.o` and runs `tool args obj.o` there.
fn tool_output(dir: &Path, sub: &str, bytes: &[u8], tool: &str, args: &[&str]) -> String {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("obj.o"), bytes).unwrap();
    run(Command::new(tool).args(args).arg("obj.o").current_dir(&d))
}

fn check(src: &str, flags: &[&str], policy: Policy) -> Outcome {
    let pair = gas_pair(&src_dir().join(src), flags, policy);
    let total: u64 = pair.maps.values().map(|m| m.total()).sum();
    assert!(total > 0, "{src} {flags:?}: nothing was inserted");
    let rewritten = rewrite(&pair.orig, &pair.maps)
        .unwrap_or_else(|e| panic!("{src} {flags:?}: rewrite failed: {e}"));
    let mine = write_burnt(&pair.orig, Some(&pair.padded), &pair.maps, &rewritten);
    if let Ok(keep) = std::env::var("AB_KEEP") {
        // Debugging aid: keep the objects and assembly.
        let d = Path::new(&keep);
        std::fs::create_dir_all(d).unwrap();
        for f in ["orig.s", "padded.s", "orig.o", "padded.o"] {
            let _ = std::fs::copy(pair.dir.path().join(f), d.join(f));
        }
        std::fs::write(d.join("mine.o"), &mine).unwrap();
    }

    // Oracle 1: the DWARF `as` computed for the padded assembly.
    let got = dump(&mine);
    let want = dump(&pair.padded);
    assert_same(&format!("{src} {flags:?} vs as"), &got, &want);
    // Oracle 2: the original's DWARF with every location mapped.
    let mapped = map_facts(&dump(&pair.orig), &pair.maps);
    assert_same(
        &format!("{src} {flags:?} vs mapped original"),
        &got,
        &mapped,
    );

    // Byte-exact sections and relocations.
    let names = section_names(&pair.orig);
    let mut line_bytes_identical = true;
    for (&i, name) in &names {
        if name == ".debug_line" {
            line_bytes_identical &= section_data(&mine, i) == section_data(&pair.padded, i);
        }
        if !BYTE_EXACT.contains(&name.as_str()) {
            continue;
        }
        assert!(
            section_data(&mine, i) == section_data(&pair.padded, i),
            "{src} {flags:?}: {name} differs from as's bytes"
        );
        assert_eq!(
            relocs_of(&mine, i),
            relocs_of(&pair.padded, i),
            "{src} {flags:?}: {name} relocations differ from as's"
        );
    }
    // .debug_line is compared decoded only: after a frozen `.p2align` as computes an advance
    // where, in the original, it had to use DW_LNE_set_address, so the programs differ in form.

    // GNU tools on the written objects: same text for the padded and the rewritten object.
    let dir = pair.dir.path();
    for (tool, args) in [
        ("readelf", &["--debug-dump=decodedline"][..]),
        ("readelf", &["--debug-dump=info,Ranges,loc,aranges"][..]),
        ("objdump", &["--dwarf=frames-interp"][..]),
    ] {
        let a = tool_output(dir, "as", &pair.padded, tool, args);
        let b = tool_output(dir, "rewrite", &mine, tool, args);
        assert!(
            a == b,
            "{src} {flags:?}: `{tool} {}` differs between as and rewrite",
            args.join(" ")
        );
    }
    // addr2line at every original instruction start vs the mapped one.
    let secnames = section_names(&pair.orig);
    for (sec, offs) in &pair.insn_offsets {
        let name = &secnames[sec];
        let addrs = |f: &dyn Fn(u64) -> u64| -> Vec<String> {
            offs.iter().map(|&o| format!("{:#x}", f(o))).collect()
        };
        let orig_args: Vec<String> = addrs(&|o| o);
        let new_args: Vec<String> = addrs(&|o| pair.maps[sec].map(o));
        let mut a1 = vec!["-j", name.as_str()];
        a1.extend(orig_args.iter().map(String::as_str));
        let mut a2 = vec!["-j", name.as_str()];
        a2.extend(new_args.iter().map(String::as_str));
        let d1 = dir.join("a2l-orig");
        let d2 = dir.join("a2l-new");
        std::fs::create_dir_all(&d1).unwrap();
        std::fs::create_dir_all(&d2).unwrap();
        std::fs::write(d1.join("obj.o"), &pair.orig).unwrap();
        std::fs::write(d2.join("obj.o"), &mine).unwrap();
        let o1 = run(Command::new("addr2line")
            .arg("-e")
            .arg("obj.o")
            .args(&a1)
            .current_dir(&d1));
        let o2 = run(Command::new("addr2line")
            .arg("-e")
            .arg("obj.o")
            .args(&a2)
            .current_dir(&d2));
        assert_eq!(o1.lines().count(), offs.len());
        assert!(!o1.contains("??:0") || o1 == o2);
        assert_eq!(o1, o2, "{src} {flags:?}: addr2line differs in {name}");
    }
    if have("llvm-dwarfdump") {
        let out = Command::new("llvm-dwarfdump")
            .args(["--verify", "obj.o"])
            .current_dir(dir.join("rewrite"))
            .output()
            .unwrap();
        let base = Command::new("llvm-dwarfdump")
            .args(["--verify", "obj.o"])
            .current_dir(dir.join("as"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            base.status.success(),
            "{src} {flags:?}: llvm-dwarfdump --verify disagrees:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    } else {
        eprintln!("llvm-dwarfdump not installed: SKIPPED its --verify check");
    }

    let facts = census(&got);
    eprintln!(
        "{src} {flags:?}: {} sites, {} pads, {} bytes inserted; facts {facts:?}; .debug_line bytes identical to as: {line_bytes_identical}",
        pair.sites, pair.pads, total
    );
    let relaid = rewritten
        .iter()
        .filter(|r| r.offset_map.is_some())
        .map(|r| names[&r.index].clone())
        .collect();
    Outcome { facts, relaid }
}

fn policy(seed: u64) -> Policy {
    Policy {
        seed,
        every: 4,
        sizes: DEFAULT_SIZES,
        site_pad: 16,
    }
}

fn assert_covers(o: &Outcome, kinds: &[&str]) {
    for k in kinds {
        assert!(
            o.facts.get(*k).copied().unwrap_or(0) > 0,
            "no {k} facts: {:?}",
            o.facts
        );
    }
}

#[test]
fn dwarf5_o2_matches_as() {
    for seed in 1..=3 {
        let o = check("mix.c", &["-O2", "-g"], policy(seed));
        assert_covers(&o, &["line", "die", "fde", "cfirow", "arange"]);
    }
}

#[test]
fn dwarf4_o2_matches_as() {
    for seed in 1..=3 {
        let o = check("mix.c", &["-O2", "-gdwarf-4"], policy(seed));
        assert_covers(&o, &["line", "die", "fde", "cfirow", "arange"]);
    }
}

#[test]
fn function_sections_match_as() {
    check("mix.c", &["-O2", "-g", "-ffunction-sections"], policy(7));
    check(
        "mix.c",
        &["-O2", "-gdwarf-4", "-ffunction-sections"],
        policy(8),
    );
}

#[test]
fn kernel_flags_debug_frame_match_as() {
    // Linux x86-64 style: no .eh_frame, CFI in .debug_frame, frame pointers.
    let flags = [
        "-O2",
        "-g",
        "-fno-asynchronous-unwind-tables",
        "-mno-red-zone",
        "-mcmodel=kernel",
        "-fno-pic",
        "-fno-omit-frame-pointer",
    ];
    for seed in 11..=12 {
        let o = check("mix.c", &flags, policy(seed));
        assert_covers(&o, &["line", "fde", "cfirow"]);
    }
}

#[test]
fn unoptimized_and_large_deltas_match_as() {
    // -O0: frame-pointer CFI, DW_FORM_data8 high_pc everywhere, no location lists.
    check("mix.c", &["-O0", "-g"], policy(21));
    // Large function, big pads: multi-byte LEB128 and DW_CFA_advance_loc2 growth.
    let heavy = Policy {
        seed: 22,
        every: 3,
        sizes: &[100, 200, 300, 1000],
        site_pad: 200,
    };
    check("big.c", &["-O2", "-g"], heavy);
    check("big.c", &["-O2", "-gdwarf-4"], heavy);
    check(
        "big.c",
        &["-Os", "-g", "-fno-asynchronous-unwind-tables"],
        heavy,
    );
}

#[test]
fn sites_only_like_the_burner() {
    // Only the sensitive instructions are padded, as the afterburner does.
    let sites = Policy {
        seed: 31,
        every: 0,
        sizes: DEFAULT_SIZES,
        site_pad: 12,
    };
    check("mix.c", &["-O2", "-g"], sites);
    check("mix.c", &["-O2", "-gdwarf-4", "-ffunction-sections"], sites);
}

#[test]
fn assembly_source_dwarf_matches_as() {
    // GNU as writes the DWARF of assembly sources itself (DW_FORM_udata high_pc, ref_udata
    // types): large pads make those ULEB128 values grow, so .debug_info is re-laid out.
    for (flags, seed, sizes) in [
        (&["--gdwarf-5"][..], 41, &[100u64, 200][..]),
        (&["--gdwarf-4"][..], 42, &[100, 200][..]),
        (&["--gdwarf-5"][..], 43, &[1, 2, 3][..]),
        (&["--gdwarf-3"][..], 44, &[50, 130][..]),
    ] {
        let p = Policy {
            seed,
            every: 2,
            sizes,
            site_pad: 16,
        };
        let o = check("entry.s", flags, p);
        assert_covers(&o, &["line", "die", "fde", "cfirow", "arange"]);
        if sizes[0] >= 100 {
            assert!(
                o.relaid.iter().any(|n| n == ".debug_info"),
                "{flags:?}: .debug_info was not re-laid out: {:?}",
                o.relaid
            );
        }
    }
}

#[test]
fn other_gcc_encodings_match_as() {
    // gcc writes CFI itself (DW_CFA_advance_loc4 everywhere, .eh_frame and .debug_frame).
    check("mix.c", &["-O2", "-g", "-fno-dwarf2-cfi-asm"], policy(51));
    // gcc writes the line table itself (DW_LNE_set_address per row).
    check("mix.c", &["-O2", "-g", "-gno-as-loc-support"], policy(52));
    // DWARF 2 and 3: address-class high_pc, .debug_loc/.debug_ranges.
    check("mix.c", &["-O2", "-gdwarf-2"], policy(53));
    check("mix.c", &["-O2", "-gdwarf-3"], policy(54));
    // DW_LLE_GNU_view_pair entries instead of separate view lists.
    check(
        "mix.c",
        &["-O2", "-g", "-gvariable-location-views=incompat5"],
        policy(55),
    );
    // Macro information (.debug_macro points into .debug_line).
    check("mix.c", &["-O2", "-g3"], policy(56));
    check("big.c", &["-O1", "-g", "-fno-dwarf2-cfi-asm"], policy(57));
}
