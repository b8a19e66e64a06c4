//! `dwarf::rewrite` on input it must refuse, and on corrupted input (it must never panic).

mod dwarf_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use afterburner::offset_map::OffsetMap;
use dwarf_support::*;

/// Compiles `src` (a C or assembly file under tests/dwarf_src, or inline C text) with `flags`.
fn compile(name: &str, text: Option<&str>, flags: &[&str]) -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let src = match text {
        Some(t) => {
            let p = dir.path().join(name);
            std::fs::write(&p, t).unwrap();
            p
        }
        None => src_dir().join(name),
    };
    let out = dir.path().join("out.o");
    run(Command::new("gcc")
        .args(flags)
        .arg("-c")
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .current_dir(dir.path()));
    let obj = std::fs::read(&out).unwrap();
    (dir, obj)
}

/// Maps inserting `n` bytes after every `every`-th instruction of every code section.
fn maps_every(obj: &[u8], every: usize, n: u64) -> Maps {
    let file = object::File::parse(obj).unwrap();
    let mut maps = Maps::new();
    for (idx, _) in code_sections(obj) {
        use object::{Object, ObjectSection};
        let data = file
            .section_by_index(object::SectionIndex(idx))
            .unwrap()
            .data()
            .unwrap();
        let mut m = OffsetMap::new();
        let mut dec = iced_x86::Decoder::with_ip(64, data, 0, iced_x86::DecoderOptions::NONE);
        let mut k = 0;
        while dec.can_decode() {
            let insn = dec.decode();
            k += 1;
            if k % every == 0 {
                m.insert(insn.next_ip(), n);
            }
        }
        maps.insert(idx, m);
    }
    maps
}

#[test]
fn identity_maps_change_nothing() {
    let (_d, obj) = compile("mix.c", None, &["-O2", "-g"]);
    assert_eq!(rewrite(&obj, &BTreeMap::new()).unwrap(), vec![]);
    let identity: Maps = code_sections(&obj)
        .into_keys()
        .map(|i| (i, OffsetMap::new()))
        .collect();
    assert_eq!(rewrite(&obj, &identity).unwrap(), vec![]);
    // Insertions past every location (at the end of code) still change lengths only where a
    // range reaches the end; nothing panics and the result decodes (checked elsewhere).
    let moved = maps_every(&obj, 3, 5);
    assert!(!rewrite(&obj, &moved).unwrap().is_empty());
}

#[test]
fn split_dwarf_is_refused() {
    let (_d, obj) = compile("mix.c", None, &["-O2", "-g", "-gsplit-dwarf"]);
    let e = rewrite(&obj, &maps_every(&obj, 5, 4)).unwrap_err();
    assert!(e.message.contains("split DWARF"), "{e}");
    assert_eq!(e.section, ".debug_info");
}

#[test]
fn dwo_sections_in_the_object_are_refused() {
    // `gcc -S -gsplit-dwarf` assembly keeps the .dwo sections in the object.
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("m.s");
    run(Command::new("gcc")
        .args(["-O2", "-g", "-gsplit-dwarf", "-S", "-o"])
        .arg(&s)
        .arg(src_dir().join("mix.c")));
    let o = dir.path().join("m.o");
    run(Command::new("as").arg("-o").arg(&o).arg(&s));
    let obj = std::fs::read(&o).unwrap();
    let e = rewrite(&obj, &maps_every(&obj, 5, 4)).unwrap_err();
    assert!(e.message.contains("unknown debug section"), "{e}");
    assert!(e.section.ends_with(".dwo"), "{e}");
}

#[test]
fn compressed_debug_sections_are_refused() {
    let (_d, obj) = compile("mix.c", None, &["-O2", "-g", "-gz=zlib"]);
    let e = rewrite(&obj, &maps_every(&obj, 5, 4)).unwrap_err();
    assert!(e.message.contains("compressed"), "{e}");
}

#[test]
fn functions_with_an_lsda_are_refused_only_when_they_move_inside() {
    let text = r#"
        extern void g(int);
        static void undo(int *p) { g(*p); }
        int with_cleanup(int x) {
            int v __attribute__((cleanup(undo))) = x;
            g(x + 1);
            g(x + 2);
            return v;
        }
        int plain(int x) { return x * 3 + 1; }
    "#;
    let (_d, obj) = compile("lsda.c", Some(text), &["-O2", "-g", "-fexceptions"]);
    assert!(section_index(&obj, ".gcc_except_table").is_some());
    let text_idx = section_index(&obj, ".text").unwrap();
    // Symbol offsets.
    let file = object::File::parse(&*obj).unwrap();
    use object::{Object, ObjectSymbol};
    let sym = |n: &str| {
        let s = file.symbols().find(|s| s.name() == Ok(n)).unwrap();
        (s.address(), s.size())
    };
    let (wc, wc_size) = sym("with_cleanup");
    let (plain, plain_size) = sym("plain");
    // Inside with_cleanup: refused, naming .eh_frame.
    let mut m = OffsetMap::new();
    m.insert(wc + wc_size / 2, 8);
    let maps = Maps::from([(text_idx, m)]);
    let e = rewrite(&obj, &maps).unwrap_err();
    assert_eq!(e.section, ".eh_frame", "{e}");
    assert!(e.message.contains("LSDA"), "{e}");
    // Inside plain only (which has no LSDA): fine, and with_cleanup just moves as a whole
    // when it comes after.
    let mut m = OffsetMap::new();
    let first_insn_end = {
        use object::ObjectSection;
        let data = file
            .section_by_index(object::SectionIndex(text_idx))
            .unwrap()
            .data()
            .unwrap();
        let mut dec = iced_x86::Decoder::with_ip(
            64,
            &data[plain as usize..(plain + plain_size) as usize],
            plain,
            iced_x86::DecoderOptions::NONE,
        );
        dec.decode().next_ip()
    };
    m.insert(first_insn_end, 8);
    let maps = Maps::from([(text_idx, m)]);
    assert!(rewrite(&obj, &maps).is_ok());
}

#[test]
fn unknown_debug_sections_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("u.s");
    std::fs::write(
        &s,
        "\t.text\nf:\tnop\n\tret\n\t.section .debug_foo,\"\",@progbits\n\t.quad f\n",
    )
    .unwrap();
    let o = dir.path().join("u.o");
    run(Command::new("as").arg("-o").arg(&o).arg(&s));
    let obj = std::fs::read(&o).unwrap();
    let mut m = OffsetMap::new();
    m.insert(1, 4);
    let e = rewrite(
        &obj,
        &Maps::from([(section_index(&obj, ".text").unwrap(), m)]),
    )
    .unwrap_err();
    assert_eq!(e.section, ".debug_foo");
    assert!(e.message.contains("unknown debug section"), "{e}");
}

/// File ranges of the sections whose names satisfy `pick`.
fn file_ranges(obj: &[u8], pick: impl Fn(&str) -> bool) -> Vec<(String, usize, usize)> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(obj).unwrap();
    file.sections()
        .filter(|s| pick(s.name().unwrap_or("")))
        .filter_map(|s| {
            let (off, size) = s.file_range()?;
            Some((s.name().unwrap().to_string(), off as usize, size as usize))
        })
        .filter(|(_, _, size)| *size > 0)
        .collect()
}

#[test]
fn corrupted_sections_give_errors_not_panics() {
    let inputs: Vec<(&str, Vec<u8>)> = {
        let mut v = Vec::new();
        for flags in [
            &["-O2", "-g"][..],
            &["-O2", "-gdwarf-4"][..],
            &["-O2", "-g", "-fno-asynchronous-unwind-tables"][..],
            &["-O2", "-g", "-fno-dwarf2-cfi-asm"][..],
        ] {
            v.push(("mix.c", compile("mix.c", None, flags).1));
        }
        let dir = tempfile::tempdir().unwrap();
        let o = dir.path().join("e.o");
        run(Command::new("as")
            .args(["--gdwarf-5", "-o"])
            .arg(&o)
            .arg(src_dir().join("entry.s")));
        v.push(("entry.s", std::fs::read(&o).unwrap()));
        v
    };
    let mut rng = Rng::new(0xdead_beef);
    let (mut oks, mut errs) = (0, 0);
    let mut by_section: BTreeMap<String, usize> = BTreeMap::new();
    for (name, obj) in &inputs {
        let maps = maps_every(obj, 4, 37);
        let targets = file_ranges(obj, |n| {
            n.starts_with(".debug_")
                || n == ".eh_frame"
                || n.starts_with(".rela.debug_")
                || n == ".rela.eh_frame"
        });
        let iters: usize = std::env::var("AB_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(400);
        for iter in 0..iters {
            let mut bad = obj.clone();
            let (sec, off, size) = &targets[rng.below(targets.len() as u64) as usize];
            let flips = 1 + rng.below(4);
            for _ in 0..flips {
                let at = off + rng.below(*size as u64) as usize;
                bad[at] = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    2 => bad[at] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
            }
            let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bad) else {
                continue;
            };
            let r = std::panic::catch_unwind(|| afterburner::dwarf::rewrite(&file, &maps));
            match r {
                Ok(Ok(_)) => oks += 1,
                Ok(Err(e)) => {
                    assert!(!e.section.is_empty() && !e.message.is_empty());
                    *by_section.entry(e.section.clone()).or_default() += 1;
                    errs += 1;
                }
                Err(_) => {
                    panic!("{name}: rewrite panicked after corrupting {sec} (iteration {iter})")
                }
            }
        }
    }
    eprintln!(
        "corrupted inputs: {oks} rewritten, {errs} refused; refusals by section: {by_section:?}"
    );
    assert!(errs > 0 && oks > 0);
}

#[test]
fn truncated_sections_give_errors_not_panics() {
    // Shrink each debug section's size in the section header: every reader runs off the end.
    let (_d, obj) = compile("mix.c", None, &["-O2", "-g"]);
    let maps = maps_every(&obj, 4, 37);
    let shoff = u64::from_le_bytes(obj[0x28..0x30].try_into().unwrap()) as usize;
    let names = section_names(&obj);
    let mut refused = 0;
    for (&i, name) in &names {
        if !(name.starts_with(".debug_") || name == ".eh_frame") {
            continue;
        }
        let h = shoff + i * 64 + 32;
        let size = u64::from_le_bytes(obj[h..h + 8].try_into().unwrap());
        for cut in [1u64, 3, size / 2] {
            if cut >= size {
                continue;
            }
            let mut bad = obj.clone();
            bad[h..h + 8].copy_from_slice(&(size - cut).to_le_bytes());
            let Ok(file) = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bad) else {
                continue;
            };
            let r = std::panic::catch_unwind(|| afterburner::dwarf::rewrite(&file, &maps));
            match r {
                Ok(Err(_)) => refused += 1,
                Ok(Ok(_)) => {}
                Err(_) => panic!("rewrite panicked with {name} cut by {cut}"),
            }
        }
    }
    assert!(refused > 0);
    let _ = Path::new("");
}
