//! The real test: the objects of a Linux 6.12 tinyconfig build in
//! `$HOME/.cache/afterburn/linux-6.12/build-tiny` (built by the project's kernel helper).
//! Every 64-bit object must burn, except those whose code is not 64-bit code throughout
//! (listed below with the reason), and every burnt object must disassemble (objdump) to the
//! same instruction stream as its original once NOPs are dropped, with branch and relocation
//! targets naming the same instructions. Prints SKIPPED when the tree is not there.

mod common;
use afterburner::burn::{burn_bytes, Options};
use common::*;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Objects that hold code the 64-bit decoder must not guess at: `arch/x86/boot/compressed/
/// head_64.o` starts its `.head.text` with 32-bit code (`.code32`, startup_32) followed by
/// 64-bit code; ELF does not say where the mode changes.
const MIXED_MODE: &[&str] = &["arch/x86/boot/compressed/head_64.o"];

fn tree() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let t = Path::new(&home).join(".cache/afterburn/linux-6.12/build-tiny");
    t.join("vmlinux.o").exists().then_some(t)
}

fn objects(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "o" || x == "ko") {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

fn is_elf64(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|d| d.len() > 5 && &d[..4] == b"\x7fELF" && d[4] == 2)
}

#[test]
fn tiny_kernel_tree_burns_and_disassembles_the_same() {
    let Some(root) = tree() else {
        eprintln!("SKIPPED: no Linux 6.12 tinyconfig build under $HOME/.cache/afterburn/linux-6.12/build-tiny");
        return;
    };
    let all = objects(&root);
    let objs: Vec<PathBuf> = all.iter().filter(|p| is_elf64(p)).cloned().collect();
    let w = Work::new();
    type Outcome = (PathBuf, Result<(usize, PathBuf), String>);
    let results: Vec<Outcome> = objs
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let data = std::fs::read(p).unwrap();
            let r = match burn_bytes(&data, &Options::default()) {
                Ok((out, rep)) => {
                    let o = w.path(&format!("{i}.o"));
                    std::fs::write(&o, out).unwrap();
                    Ok((rep.total_sites as usize, o))
                }
                Err(e) => Err(e.to_string()),
            };
            (p.clone(), r)
        })
        .collect();
    let mut sites = 0;
    let mut failures = Vec::new();
    for (p, r) in &results {
        let rel = p.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
        match r {
            Ok((n, _)) => sites += n,
            Err(e) if MIXED_MODE.contains(&rel.as_str()) => eprintln!("expected failure: {rel}: {e}"),
            Err(e) => failures.push(format!("{rel}: {e}")),
        }
    }
    eprintln!(
        "linux tinyconfig: {} objects ({} not ELF64), {} burnt, {} sites, {} failures",
        all.len(),
        all.len() - objs.len(),
        results.iter().filter(|r| r.1.is_ok()).count(),
        sites,
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "objects that failed to burn:\n{}",
        failures.join("\n")
    );
    assert!(sites > 1000, "only {sites} sites in the whole tree");

    // objdump comparison of every burnt object
    let compared: Vec<Compared> = results
        .par_iter()
        .filter_map(|(p, r)| r.as_ref().ok().map(|(_, o)| (p, o)))
        .map(|(p, o)| {
            let n = std::panic::catch_unwind(|| compare_code(p, o, Nops::All));
            n.unwrap_or_else(|_| panic!("{} differs after burning", p.display()))
        })
        .collect();
    let n: usize = compared.iter().map(|c| c.instructions).sum();
    let skipped: usize = compared.iter().map(|c| c.skipped.len()).sum();
    eprintln!(
        "linux tinyconfig: {n} instructions compared with objdump ({skipped} functions skipped: objdump prints (bad))"
    );
    assert!(n > 100_000);
}

/// Debian's `linux-image-6.12.*-amd64-unsigned` modules, unpacked by `scripts/linux/modules.sh`
/// into `$HOME/.cache/afterburn/modules/<release>/kernel`: thousands of `.ko` files built with
/// the distribution config (ORC, retpolines, return thunks, IBT, jump labels, static calls,
/// paravirt alternatives). Every module must burn; one in `STRIDE` is compared with objdump.
#[test]
fn debian_modules_burn_and_disassemble_the_same() {
    const STRIDE: usize = 16;
    let Some(home) = std::env::var_os("HOME") else { return };
    let base = Path::new(&home).join(".cache/afterburn/modules");
    let Some(dir) = std::fs::read_dir(&base)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path().join("kernel"))))
    else {
        eprintln!("SKIPPED: no Debian modules under $HOME/.cache/afterburn/modules (scripts/linux/modules.sh)");
        return;
    };
    let mods = objects(&dir);
    if mods.is_empty() {
        eprintln!("SKIPPED: no .ko files under {}", dir.display());
        return;
    }
    let w = Work::new();
    type Outcome = (PathBuf, Result<(u64, Option<PathBuf>), String>);
    let results: Vec<Outcome> = mods
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let data = std::fs::read(p).unwrap();
            let r = burn_bytes(&data, &Options::default())
                .map_err(|e| e.to_string())
                .map(|(out, rep)| {
                    let kept = (i % STRIDE == 0).then(|| {
                        let o = w.path(&format!("{i}.ko"));
                        std::fs::write(&o, out).unwrap();
                        o
                    });
                    (rep.total_sites, kept)
                });
            (p.clone(), r)
        })
        .collect();
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(p, r)| r.as_ref().err().map(|e| format!("{}: {e}", p.display())))
        .collect();
    let sites: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok().map(|x| x.0)).sum();
    eprintln!(
        "debian modules: {} modules, {} failures, {sites} sites",
        mods.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "modules that failed to burn:\n{}",
        failures.join("\n")
    );
    let compared: Vec<Compared> = results
        .par_iter()
        .filter_map(|(p, r)| r.as_ref().ok().and_then(|(_, o)| o.as_ref().map(|o| (p, o))))
        .map(|(p, o)| {
            std::panic::catch_unwind(|| compare_code(p, o, Nops::All))
                .unwrap_or_else(|_| panic!("{} differs after burning", p.display()))
        })
        .collect();
    let n: usize = compared.iter().map(|c| c.instructions).sum();
    let skipped: usize = compared.iter().map(|c| c.skipped.len()).sum();
    eprintln!("debian modules: {} compared with objdump, {n} instructions ({skipped} functions skipped: objdump prints (bad))", compared.len());
}
