//! `dwarf::rewrite` over the objects of a real Linux 6.12 build (DWARF 5, ORC unwinder,
//! `.debug_frame`), when one is present under `$HOME/.cache/afterburn/linux-6.12/`.
//!
//! Maps are synthetic but at real instruction boundaries: each code section is decoded with
//! iced-x86 and padding is inserted after every instruction `sensitive::classify` flags (the
//! burner's sites), and in the dense variant also after a pseudo-random eighth of the others.
//! The rewritten object (written whole, code padded with NOPs, symbols and code relocations
//! mapped as the burn engine would) must decode to exactly the original's DWARF and CFI facts
//! with every code location sent through the maps; `addr2line` must agree at the original and
//! mapped address of every padded instruction.

mod dwarf_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use afterburner::offset_map::OffsetMap;
use dwarf_support::*;
use object::{Object, ObjectSection};

/// The DWARF 5 Linux build directory, if one exists.
fn linux_build() -> Option<PathBuf> {
    let root = Path::new(&std::env::var("HOME").ok()?).join(".cache/afterburn/linux-6.12");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    dirs.into_iter().find(|d| {
        std::fs::read_to_string(d.join(".config"))
            .map(|c| c.lines().any(|l| l == "CONFIG_DEBUG_INFO_DWARF5=y"))
            .unwrap_or(false)
    })
}

fn objects(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_type().map(|t| t.is_symlink()).unwrap_or(true) {
            continue;
        }
        if p.is_dir() {
            objects(&p, out);
        } else if p.extension().is_some_and(|x| x == "o" || x == "ko") {
            out.push(p);
        }
    }
}

/// Insertion plan: per code section, sorted (end of instruction, bytes).
struct Plan {
    maps: Maps,
    sites: usize,
    points: usize,
    /// (section name, original offset of a padded instruction's start).
    padded_insns: Vec<(String, u64)>,
}

fn plan(obj: &[u8], dense: bool, seed: u64) -> Plan {
    let file = object::File::parse(obj).unwrap();
    let mut rng = Rng::new(seed);
    let mut maps = Maps::new();
    let (mut sites, mut points) = (0, 0);
    let mut padded_insns = Vec::new();
    for (idx, size) in code_sections(obj) {
        let sec = file.section_by_index(object::SectionIndex(idx)).unwrap();
        let Ok(data) = sec.data() else { continue };
        if data.len() as u64 != size || size == 0 {
            continue;
        }
        let name = sec.name().unwrap_or("").to_string();
        let mut m = OffsetMap::new();
        let mut dec = iced_x86::Decoder::with_ip(64, data, 0, iced_x86::DecoderOptions::NONE);
        while dec.can_decode() {
            let insn = dec.decode();
            if insn.is_invalid() {
                continue;
            }
            let end = insn.next_ip();
            let pad = if afterburner::sensitive::classify(&insn).is_some() {
                sites += 1;
                12
            } else if dense
                && rng.below(8) == 0
                && !matches!(
                    insn.flow_control(),
                    iced_x86::FlowControl::Call | iced_x86::FlowControl::IndirectCall
                )
            {
                DEFAULT_SIZES[rng.below(DEFAULT_SIZES.len() as u64) as usize]
            } else {
                0
            };
            if pad > 0 {
                points += 1;
                m.insert(end, pad);
                padded_insns.push((name.clone(), insn.ip()));
            }
        }
        maps.insert(idx, m);
    }
    Plan {
        maps,
        sites,
        points,
        padded_insns,
    }
}

#[derive(Default)]
struct Stats {
    objects: usize,
    not_x86_64: usize,
    with_dwarf: usize,
    moved: usize,
    sites: usize,
    points: usize,
    rewritten_sections: usize,
    facts: usize,
    errors: Vec<String>,
    mismatches: Vec<String>,
    addr2line_checked: usize,
}

fn check_object(path: &Path, dense: bool, stats: &Mutex<Stats>, addr2line: bool) {
    let orig = std::fs::read(path).unwrap();
    let Ok(f) = object::File::parse(&*orig) else {
        stats.lock().unwrap().not_x86_64 += 1;
        return;
    };
    if f.architecture() != object::Architecture::X86_64 || !f.is_64() {
        // arch/x86/boot, realmode: 32-bit objects.
        stats.lock().unwrap().not_x86_64 += 1;
        return;
    }
    let has_dwarf = f.section_by_name(".debug_info").is_some();
    let p = plan(&orig, dense, orig.len() as u64);
    let moved = p.maps.values().any(|m| !m.is_identity());
    {
        let mut s = stats.lock().unwrap();
        s.objects += 1;
        s.with_dwarf += usize::from(has_dwarf);
        s.moved += usize::from(moved);
        s.sites += p.sites;
        s.points += p.points;
    }
    if !moved {
        return;
    }
    let rewritten = match rewrite(&orig, &p.maps) {
        Ok(r) => r,
        Err(e) => {
            stats
                .lock()
                .unwrap()
                .errors
                .push(format!("{}: {e}", path.display()));
            return;
        }
    };
    let mine = write_burnt(&orig, None, &p.maps, &rewritten);
    let got = dump(&mine);
    let want = map_facts(&dump(&orig), &p.maps);
    let mismatch = if got == want {
        None
    } else {
        let r = std::panic::catch_unwind(|| assert_same("", &got, &want));
        Some(match r {
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "mismatch".into()),
            Ok(()) => "mismatch".into(),
        })
    };
    let mut checked = 0;
    if addr2line && mismatch.is_none() && has_dwarf {
        checked = addr2line_agrees(path, &orig, &mine, &p);
    }
    let mut s = stats.lock().unwrap();
    s.rewritten_sections += rewritten.len();
    s.facts += got.len();
    s.addr2line_checked += checked;
    if let Some(m) = mismatch {
        s.mismatches.push(format!("{}: {m}", path.display()));
    }
}

/// addr2line at the start of every padded instruction, original vs mapped; returns how many
/// addresses were compared.
fn addr2line_agrees(path: &Path, orig: &[u8], mine: &[u8], p: &Plan) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("obj.o"), orig).unwrap();
    std::fs::write(b.join("obj.o"), mine).unwrap();
    let names = section_names(orig);
    let mut n = 0;
    for (idx, m) in &p.maps {
        let name = &names[idx];
        if m.is_identity() || names.values().filter(|x| *x == name).count() != 1 {
            continue;
        }
        let offs: Vec<u64> = p
            .padded_insns
            .iter()
            .filter(|(s, _)| s == name)
            .map(|&(_, o)| o)
            .take(200)
            .collect();
        if offs.is_empty() {
            continue;
        }
        let q = |dir: &Path, f: &dyn Fn(u64) -> u64| {
            run(Command::new("addr2line")
                .args(["-e", "obj.o", "-j", name])
                .args(offs.iter().map(|&o| format!("{:#x}", f(o))))
                .current_dir(dir))
        };
        let (x, y) = (q(&a, &|o| o), q(&b, &|o| m.map(o)));
        assert_eq!(x, y, "{}: addr2line differs in {name}", path.display());
        n += offs.len();
    }
    n
}

fn run_all(dense: bool) {
    let Some(build) = linux_build() else {
        eprintln!("SKIPPED: no Linux build with CONFIG_DEBUG_INFO_DWARF5=y under ~/.cache/afterburn/linux-6.12");
        return;
    };
    let mut objs = Vec::new();
    objects(&build, &mut objs);
    objs.sort();
    // vmlinux.o (everything linked with ld -r) is large; it has its own test.
    objs.retain(|p| p.file_name().is_some_and(|n| n != "vmlinux.o"));
    let stats = Mutex::new(Stats::default());
    let next = Mutex::new(0usize);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(path) = objs.get(i) else { break };
                check_object(path, dense, &stats, i % 10 == 0);
            });
        }
    });
    let s = stats.into_inner().unwrap();
    eprintln!(
        "Linux {} ({}): {} x86-64 objects ({} others skipped), {} with DWARF, {} moved ({} sites, {} insertion points), \
         {} sections rewritten, {} facts compared, {} addr2line lookups, {} errors, {} mismatches",
        build.display(),
        if dense { "dense" } else { "sites" },
        s.objects,
        s.not_x86_64,
        s.with_dwarf,
        s.moved,
        s.sites,
        s.points,
        s.rewritten_sections,
        s.facts,
        s.addr2line_checked,
        s.errors.len(),
        s.mismatches.len()
    );
    for e in s.errors.iter().take(20) {
        eprintln!("  error: {e}");
    }
    for m in s.mismatches.iter().take(5) {
        eprintln!("  mismatch: {m}");
    }
    assert!(s.objects > 0);
    assert!(
        s.errors.is_empty(),
        "{} objects could not be rewritten",
        s.errors.len()
    );
    assert!(
        s.mismatches.is_empty(),
        "{} objects decode differently",
        s.mismatches.len()
    );
}

#[test]
fn linux_objects_padded_at_sites() {
    run_all(false);
}

#[test]
fn linux_objects_padded_densely() {
    run_all(true);
}

#[test]
fn linux_vmlinux_o() {
    let Some(build) = linux_build() else {
        eprintln!("SKIPPED: no Linux DWARF 5 build");
        return;
    };
    let path = build.join("vmlinux.o");
    if !path.exists() {
        eprintln!("SKIPPED: {} not built", path.display());
        return;
    }
    let stats = Mutex::new(Stats::default());
    check_object(&path, false, &stats, false);
    let s = stats.into_inner().unwrap();
    eprintln!(
        "vmlinux.o: {} sites, {} sections rewritten, {} facts compared, errors {:?}, mismatches {}",
        s.sites,
        s.rewritten_sections,
        s.facts,
        s.errors,
        s.mismatches.len()
    );
    for m in &s.mismatches {
        eprintln!("  mismatch: {}", &m[..m.len().min(3000)]);
    }
    assert!(s.errors.is_empty() && s.mismatches.is_empty());
}
