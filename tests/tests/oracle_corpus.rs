//! The verifier and the GNU-tool oracles over a corpus of (original, burnt) object pairs, e.g.
//! Debian's kernel modules and their burnt copies. Ignored by default (it needs a corpus and a
//! burner run first):
//!
//! ```text
//! AFB_CORPUS_ORIG=dir/of/originals AFB_CORPUS_BURNT=dir/of/burnt \
//!   cargo test --release -p afterburn-tests --test oracle_corpus -- --ignored --nocapture
//! ```
//!
//! Pairs are matched by path relative to the two directories (`*.o` and `*.ko`). Burnt kernel
//! objects may grow alternative regions and widen 2-byte jump labels with NOPs, so the oracles
//! run with `realign` (the verifier checks those rules strictly). `AFB_CORPUS_LIMIT=N` checks
//! only every N-th pair.

use afterburn_tests::oracle::{self, Options};
use afterburner::verify;
use std::path::{Path, PathBuf};

fn objects(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            objects(&p, out);
        } else if p.extension().is_some_and(|e| e == "o" || e == "ko") {
            out.push(p);
        }
    }
}

#[test]
#[ignore = "needs AFB_CORPUS_ORIG and AFB_CORPUS_BURNT"]
fn corpus_pairs_pass_verify_and_oracles() {
    let (Some(orig), Some(burnt)) = (
        std::env::var_os("AFB_CORPUS_ORIG"),
        std::env::var_os("AFB_CORPUS_BURNT"),
    ) else {
        println!("SKIPPED: set AFB_CORPUS_ORIG and AFB_CORPUS_BURNT");
        return;
    };
    let (orig, burnt) = (PathBuf::from(orig), PathBuf::from(burnt));
    let every: usize = std::env::var("AFB_CORPUS_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut files = Vec::new();
    objects(&orig, &mut files);
    let opts = Options { realign: true };
    let (mut pairs, mut sites, mut failures) = (0usize, 0usize, Vec::new());
    let mut skipped: Vec<String> = Vec::new();
    let mut not_burnt = 0usize;
    let mut compared = [0usize; 3];
    for (i, o) in files.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let rel = o.strip_prefix(&orig).expect("under the corpus");
        let b = burnt.join(rel);
        if !b.exists() {
            // The burner refused it (e.g. 32-bit boot code); it says so itself.
            println!("NOT BURNT {}", rel.display());
            not_burnt += 1;
            continue;
        }
        pairs += 1;
        match verify::run(o, &b) {
            Ok(r) if r.is_ok() => sites += r.stats.sites,
            Ok(r) => failures.push(format!("{}: verify\n{}", rel.display(), r.render(3))),
            Err(e) => failures.push(format!("{}: verify error: {e}", rel.display())),
        }
        let results = [
            ("objdump", oracle::objdump_equivalent_with(o, &b, &opts)),
            ("addr2line", oracle::addr2line_equivalent_with(o, &b, &opts)),
            ("cfi", oracle::cfi_equivalent_with(o, &b, &opts)),
        ];
        for (name, res) in results {
            match res {
                Ok(c) => {
                    compared[usize::from(name == "addr2line") + 2 * usize::from(name == "cfi")] +=
                        c.compared;
                    skipped.extend(
                        c.skipped
                            .into_iter()
                            .map(|f| format!("{}: {name}: {f}", rel.display())),
                    );
                }
                Err(d) => failures.push(format!(
                    "{}: {name}\n{}",
                    rel.display(),
                    oracle::render(&d, 3)
                )),
            }
        }
    }
    skipped.sort();
    skipped.dedup();
    for s in &skipped {
        println!("SKIPPED (objdump cannot decode) {s}");
    }
    println!(
        "oracles compared {} functions, {} line lookups, {} CFI rows; {} function checks skipped",
        compared[0],
        compared[1],
        compared[2],
        skipped.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    println!(
        "{pairs} pairs ({not_burnt} originals without a burnt copy), {sites} sites verified, {} failures",
        failures.len()
    );
    assert!(pairs > 0, "no objects under {}", orig.display());
    assert!(
        failures.is_empty(),
        "{}",
        failures
            .iter()
            .take(10)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
