//! Issue 2's acceptance on real Linux: every object of the Linux 6.12 builds and the Debian
//! modules in the corpus cache (`docs/linux-corpus.md`) is burnt with the library
//! ([`afterburner::burn_file`]) into a temporary directory, and the pair (original, burnt) must
//! pass
//!
//! * [`afterburner::verify`] (strict: no realignment allowed), with as many sites as the
//!   burner reported;
//! * the objdump oracle ([`oracle::objdump_equivalent_with`]): per function the same
//!   instruction sequence once NOPs are dropped, branch targets compared as target
//!   instructions;
//! * for objects with `.debug_line`, the addr2line oracle: every kept instruction gives the
//!   same function, inline chain and file:line;
//! * for objects with `.eh_frame` or `.debug_frame`, the CFI oracle: the same interpreted CFA
//!   and register rules per FDE.
//!
//! The oracles run with `realign` (alternative regions may grow by NOPs, 2-byte jump labels may
//! become 5-byte NOPs; the verifier checks those rules strictly).
//!
//! Corpora, under `${AFTERBURN_CACHE:-$HOME/.cache/afterburn}`:
//!
//! * `tiny`: every ELF64 relocatable `.o` of `linux-6.12/build-tiny`, `vmlinux.o` included
//!   (host programs under `scripts/` and `tools/` too: they are x86-64 objects like any
//!   other); 32-bit objects (`arch/x86/boot/*.o`, `arch/x86/realmode/rm/*.o`) are not ELF64
//!   and are counted apart;
//! * `dwarf`: the same for `linux-6.12/build-dwarf` (DWARF 5, ORC, jump labels);
//! * `modules`: the Debian modules under `modules/<release>/kernel`: every module in which
//!   [`afterburner::scan_file`] finds a site, plus every [`MODULE_SAMPLE_STRIDE`]-th of the
//!   others (in path order), and at least [`MIN_MODULES`] in all.
//!
//! Objects that cannot be burnt for a documented reason are listed in [`NOT_BURNABLE`]; each
//! must fail to burn (a listed object that burns fails the test, so the list stays true), and
//! any other failure fails the test. A summary (objects, sites per kind, instructions and
//! lines compared, failures, time) goes to stderr and to `target/linux-corpus-summary.txt`.
//!
//! When the cache is missing the test prints a loud `SKIPPED` line and passes; build it with
//! `scripts/linux/fetch-source.sh && scripts/linux/build.sh tiny && scripts/linux/build.sh
//! dwarf && scripts/linux/modules.sh` (`scripts/test.sh` does that first).
//!
//! How it is meant to run: `cargo test --release -p afterburn-tests --test linux_corpus --
//! --nocapture` for the figures; `cargo test --workspace` (debug, as `scripts/test.sh` and CI
//! run it) runs it too. Measured on the project machine (2 cores, otherwise idle): 73 s in
//! release, 215 s in debug (the unoptimized decoding and text comparison dominate; objdump,
//! readelf and addr2line take about a fifth). The summary file records which profile ran. Set
//! `AFTERBURN_CORPUS_FILTER=substring` to check only the objects whose `corpus/path` contains
//! it (a partial run: the minimum module count is not asserted and the summary says so).

use afterburn_tests::oracle::{self, Options as OracleOptions};
use afterburner::report::Status;
use afterburner::{burn_file, scan_file, verify};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Objects (path relative to the build directory) that cannot be burnt, and why.
const NOT_BURNABLE: &[(&str, &str)] = &[(
    "arch/x86/boot/compressed/head_64.o",
    "mixed 32/64-bit code: .head.text starts with 32-bit code (.code32, startup_32) and \
     switches to 64-bit code later; ELF does not say where, so a 64-bit decode would guess \
     (it is the decompressor, not part of vmlinux)",
)];

/// Every this-many-th module without sites is checked too.
const MODULE_SAMPLE_STRIDE: usize = 20;

/// At least this many modules are checked (issue 2's acceptance).
const MIN_MODULES: usize = 300;

/// The corpus cache.
fn cache() -> Option<PathBuf> {
    if let Some(c) = std::env::var_os("AFTERBURN_CACHE") {
        return Some(PathBuf::from(c));
    }
    Some(Path::new(&std::env::var_os("HOME")?).join(".cache/afterburn"))
}

/// Every file under `dir` whose name ends in `.ext`, sorted (symbolic links not followed).
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for e in rd {
            let e = e.unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            let t = e.file_type().unwrap_or_else(|err| panic!("{err}"));
            let p = e.path();
            if t.is_dir() {
                stack.push(p);
            } else if t.is_file() && p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether `p` is an ELF64 little-endian x86-64 relocatable object (from its header).
fn is_elf64_rel(p: &Path) -> bool {
    use std::io::Read;
    let mut h = [0u8; 20];
    let ok = std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut h));
    ok.is_ok()
        && h[..4] == *b"\x7fELF"
        && h[4] == 2 // ELFCLASS64
        && h[5] == 1 // little-endian
        && u16::from_le_bytes([h[16], h[17]]) == 1 // ET_REL
        && u16::from_le_bytes([h[18], h[19]]) == 62 // EM_X86_64
}

/// One corpus: its objects and what was left out.
struct Corpus {
    name: &'static str,
    root: PathBuf,
    objects: Vec<PathBuf>,
    /// Files found but not checked, with the reason.
    left_out: Vec<(String, usize)>,
}

/// A Linux build directory as a corpus, if it is complete.
fn build_corpus(cache: &Path, name: &'static str, skipped: &mut Vec<String>) -> Option<Corpus> {
    let linux = cache.join("linux-6.12");
    let root = linux.join(format!("build-{name}"));
    if !linux.join(format!(".build-{name}.stamp")).is_file() || !root.join("vmlinux.o").is_file() {
        skipped.push(format!(
            "SKIPPED: corpus {name}: no finished build in {} (run scripts/linux/fetch-source.sh \
             && scripts/linux/build.sh {name})",
            root.display()
        ));
        return None;
    }
    let all = files(&root, "o");
    let n = all.len();
    let objects: Vec<PathBuf> = all.into_iter().filter(|p| is_elf64_rel(p)).collect();
    let left_out = vec![(
        "not ELF64 x86-64 relocatable (32-bit boot/realmode objects)".to_string(),
        n - objects.len(),
    )];
    Some(Corpus {
        name,
        root,
        objects,
        left_out,
    })
}

/// The module corpus: scans every module, keeps those with sites and a sample of the rest.
fn module_corpus(cache: &Path, skipped: &mut Vec<String>) -> Option<(Corpus, ModuleScan)> {
    let base = cache.join("modules");
    let mut releases: Vec<PathBuf> = std::fs::read_dir(&base)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join(".stamp").is_file())
                .collect()
        })
        .unwrap_or_default();
    releases.sort();
    let Some(release) = releases.pop() else {
        skipped.push(format!(
            "SKIPPED: corpus modules: no unpacked Debian modules in {} (run scripts/linux/modules.sh)",
            base.display()
        ));
        return None;
    };
    let root = release.join("kernel");
    let all = files(&root, "ko");
    let start = Instant::now();
    let scans: Vec<Result<u64, String>> = parallel_map(&all, |p| {
        scan_file(p)
            .map(|r| r.sites.len() as u64)
            .map_err(|e| e.to_string())
    });
    let mut scan = ModuleScan {
        modules: all.len(),
        seconds: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let mut objects = Vec::new();
    let mut rest = 0usize;
    for (p, r) in all.iter().zip(&scans) {
        match r {
            Ok(0) => {
                if rest.is_multiple_of(MODULE_SAMPLE_STRIDE) {
                    objects.push(p.clone());
                    scan.sampled += 1;
                }
                rest += 1;
            }
            Ok(n) => {
                objects.push(p.clone());
                scan.with_sites += 1;
                scan.sites += n;
            }
            // A module that cannot even be scanned is checked, so that it fails below.
            Err(e) => {
                objects.push(p.clone());
                scan.errors.push(format!("{}: {e}", p.display()));
            }
        }
    }
    // Fewer than MIN_MODULES so far: take more of the others, in path order.
    if objects.len() < MIN_MODULES {
        for (p, r) in all.iter().zip(&scans) {
            if objects.len() >= MIN_MODULES {
                break;
            }
            if matches!(r, Ok(0)) && !objects.contains(p) {
                objects.push(p.clone());
                scan.sampled += 1;
            }
        }
        objects.sort();
    }
    let left_out = vec![(
        "modules without sites outside the sample".to_string(),
        all.len() - objects.len(),
    )];
    Some((
        Corpus {
            name: "modules",
            root,
            objects,
            left_out,
        },
        scan,
    ))
}

/// What `scan` found over all modules.
#[derive(Default)]
struct ModuleScan {
    modules: usize,
    with_sites: usize,
    sites: u64,
    sampled: usize,
    errors: Vec<String>,
    seconds: f64,
}

/// `f` over `items` on every core, results in order. Big items should come first for balance;
/// the order of work is the order of `items`.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                out.lock().expect("no panics while holding the lock")[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .expect("no panics while holding the lock")
        .into_iter()
        .map(|r| r.expect("every item done"))
        .collect()
}

/// What happened to one object.
#[derive(Default)]
struct Outcome {
    /// Sites per kind (from the burner's report).
    sites: BTreeMap<&'static str, u64>,
    total_sites: u64,
    /// Original instructions the verifier matched.
    verified_instructions: usize,
    /// objdump oracle: functions and instructions compared.
    functions: usize,
    instructions: usize,
    /// addr2line oracle: addresses compared.
    lines: usize,
    /// CFI oracle: rows compared.
    cfi_rows: usize,
    /// Functions an oracle skipped because objdump cannot decode them.
    skipped: Vec<String>,
    /// The listed reason, when the object is in [`NOT_BURNABLE`] and failed to burn.
    not_burnable: Option<String>,
    /// Failures: `stage: message`.
    failures: Vec<String>,
    time: Duration,
}

fn check_object(corpus: &Corpus, path: &Path, out_dir: &Path, id: usize) -> Outcome {
    let start = Instant::now();
    let mut o = Outcome::default();
    let rel = path
        .strip_prefix(&corpus.root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    let listed = NOT_BURNABLE
        .iter()
        .find(|(p, _)| *p == rel && corpus.name != "modules");
    let burnt = out_dir.join(format!("{id}.o"));
    let report = burn_file(path, &burnt, &afterburner::Options::default());
    let report = match (report, listed) {
        (Err(e), Some((_, why))) => {
            o.not_burnable = Some(format!("{why}; burn says: {e}"));
            o.time = start.elapsed();
            return o;
        }
        (Err(e), None) => {
            o.failures.push(format!("burn: {e}"));
            o.time = start.elapsed();
            return o;
        }
        (Ok(_), Some(_)) => {
            o.failures.push(
                "burn: succeeded, but the object is listed in NOT_BURNABLE (remove it there)"
                    .into(),
            );
            let _ = std::fs::remove_file(&burnt);
            o.time = start.elapsed();
            return o;
        }
        (Ok(r), None) => r,
    };
    if report.status != Status::Burnt {
        o.failures
            .push(format!("burn: left unchanged ({:?})", report.status));
    }
    o.sites = report.sites.clone();
    o.total_sites = report.total_sites;

    match verify::run(path, &burnt) {
        Ok(r) if r.is_ok() => {
            o.verified_instructions = r.stats.instructions;
            if r.stats.sites as u64 != report.total_sites {
                o.failures.push(format!(
                    "verify: {} sites expected from the original, the burner reported {}",
                    r.stats.sites, report.total_sites
                ));
            }
        }
        Ok(r) => o.failures.push(r.render(5)),
        Err(e) => o.failures.push(format!("verify: error: {e}")),
    }

    let opts = OracleOptions { realign: true };
    match oracle::all_equivalent(path, &burnt, &opts) {
        Ok(c) => {
            o.functions = c.objdump.compared;
            o.instructions = c.objdump.instructions;
            o.skipped.extend(
                c.objdump
                    .skipped
                    .into_iter()
                    .map(|f| format!("objdump: {f}")),
            );
            if let Some(a) = c.addr2line {
                o.lines = a.compared;
                o.skipped
                    .extend(a.skipped.into_iter().map(|f| format!("addr2line: {f}")));
            }
            if let Some(f) = c.cfi {
                o.cfi_rows = f.compared;
                o.skipped
                    .extend(f.skipped.into_iter().map(|x| format!("cfi: {x}")));
            }
        }
        Err(d) => o
            .failures
            .push(format!("GNU-tool oracles: {}", oracle::render(&d, 5))),
    }
    let _ = std::fs::remove_file(&burnt);
    o.time = start.elapsed();
    o
}

/// Totals of one corpus.
#[derive(Default)]
struct Totals {
    objects: usize,
    burnt: usize,
    sites: BTreeMap<&'static str, u64>,
    total_sites: u64,
    objects_with_sites: usize,
    verified_instructions: usize,
    functions: usize,
    instructions: usize,
    lines: usize,
    objects_with_lines: usize,
    cfi_rows: usize,
    skipped: Vec<String>,
    not_burnable: Vec<String>,
    failures: Vec<String>,
    failed_objects: usize,
    cpu: Duration,
    wall: Duration,
    slowest: Vec<(Duration, String)>,
}

impl Totals {
    fn add(&mut self, rel: &str, o: Outcome) {
        self.objects += 1;
        self.cpu += o.time;
        self.slowest.push((o.time, rel.to_string()));
        if let Some(why) = o.not_burnable {
            self.not_burnable.push(format!("{rel}: {why}"));
            return;
        }
        if o.failures.is_empty() {
            self.burnt += 1;
        } else {
            self.failed_objects += 1;
        }
        for (k, n) in o.sites {
            *self.sites.entry(k).or_default() += n;
        }
        self.total_sites += o.total_sites;
        self.objects_with_sites += usize::from(o.total_sites > 0);
        self.verified_instructions += o.verified_instructions;
        self.functions += o.functions;
        self.instructions += o.instructions;
        self.lines += o.lines;
        self.objects_with_lines += usize::from(o.lines > 0);
        self.cfi_rows += o.cfi_rows;
        self.skipped
            .extend(o.skipped.into_iter().map(|s| format!("{rel}: {s}")));
        self.failures
            .extend(o.failures.into_iter().map(|f| format!("{rel}: {f}")));
    }

    fn render(&self, name: &str, corpus: &Corpus, out: &mut String) {
        let _ = writeln!(
            out,
            "[{name}] {}: {} objects checked, {} passed, {} not burnable as listed, {} failed",
            corpus.root.display(),
            self.objects,
            self.burnt,
            self.not_burnable.len(),
            self.failed_objects,
        );
        for (why, n) in &corpus.left_out {
            let _ = writeln!(out, "[{name}]   left out: {n} ({why})");
        }
        let kinds: Vec<String> = self.sites.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "[{name}]   sites: {} in {} objects ({})",
            self.total_sites,
            self.objects_with_sites,
            kinds.join(", ")
        );
        let _ = writeln!(
            out,
            "[{name}]   verify: {} instructions matched; objdump: {} functions, {} instructions \
             compared; addr2line: {} addresses compared in {} objects; cfi: {} rows compared",
            self.verified_instructions,
            self.functions,
            self.instructions,
            self.lines,
            self.objects_with_lines,
            self.cfi_rows
        );
        let _ = writeln!(
            out,
            "[{name}]   time: {:.1} s wall, {:.1} s summed over objects",
            self.wall.as_secs_f64(),
            self.cpu.as_secs_f64()
        );
        let mut slow = self.slowest.clone();
        slow.sort_by_key(|s| std::cmp::Reverse(s.0));
        let slow: Vec<String> = slow
            .iter()
            .take(3)
            .map(|(t, p)| format!("{p} {:.1} s", t.as_secs_f64()))
            .collect();
        let _ = writeln!(out, "[{name}]   slowest: {}", slow.join(", "));
        for n in &self.not_burnable {
            let _ = writeln!(out, "[{name}]   not burnable (listed): {n}");
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                out,
                "[{name}]   {} function checks skipped (objdump cannot decode them):",
                self.skipped.len()
            );
            for s in self.skipped.iter().take(20) {
                let _ = writeln!(out, "[{name}]     {s}");
            }
            if self.skipped.len() > 20 {
                let _ = writeln!(out, "[{name}]     ... {} more", self.skipped.len() - 20);
            }
        }
        for f in &self.failures {
            let _ = writeln!(out, "[{name}]   FAIL {f}");
        }
    }
}

/// `target/` of this workspace (the parent of `target/<profile>/`).
fn target_dir() -> PathBuf {
    let profile = afterburn_tests::bin_dir();
    profile.parent().map_or(profile.clone(), Path::to_path_buf)
}

#[test]
fn linux_corpus_burns_verifies_and_matches_gnu_tools() {
    let total_start = Instant::now();
    let Some(cache) = cache().filter(|c| c.is_dir()) else {
        eprintln!(
            "SKIPPED: Linux corpus: no cache at ${{AFTERBURN_CACHE:-$HOME/.cache/afterburn}}; \
             run scripts/linux/fetch-source.sh, scripts/linux/build.sh tiny, \
             scripts/linux/build.sh dwarf and scripts/linux/modules.sh to build it"
        );
        return;
    };
    let filter = std::env::var("AFTERBURN_CORPUS_FILTER").ok();
    let mut skipped = Vec::new();
    let mut corpora: Vec<Corpus> = Vec::new();
    let mut module_scan = None;
    for name in ["tiny", "dwarf"] {
        corpora.extend(build_corpus(&cache, name, &mut skipped));
    }
    if let Some((c, s)) = module_corpus(&cache, &mut skipped) {
        corpora.push(c);
        module_scan = Some(s);
    }
    for s in &skipped {
        eprintln!("{s}");
    }
    if corpora.is_empty() {
        return;
    }
    if let Some(f) = &filter {
        for c in &mut corpora {
            let name = c.name;
            let root = c.root.clone();
            c.objects.retain(|p| {
                let rel = p.strip_prefix(&root).unwrap_or(p).to_string_lossy();
                format!("{name}/{rel}").contains(f.as_str())
            });
        }
    }

    let work = tempfile::tempdir().expect("temp dir");
    let mut text = String::new();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _ = writeln!(
        text,
        "Linux corpus acceptance (issue 2): cache {}, {profile} build, {threads} threads{}",
        cache.display(),
        filter
            .as_ref()
            .map_or(String::new(), |f| format!(", PARTIAL RUN (filter `{f}`)"))
    );
    for s in &skipped {
        let _ = writeln!(text, "{s}");
    }
    if let Some(s) = &module_scan {
        let _ = writeln!(
            text,
            "[modules] scan: {} modules, {} with sites ({} sites), {} scan errors, {:.1} s; \
             checked: those {} + {} sampled without sites (every {MODULE_SAMPLE_STRIDE}th)",
            s.modules,
            s.with_sites,
            s.sites,
            s.errors.len(),
            s.seconds,
            s.with_sites,
            s.sampled
        );
        for e in &s.errors {
            let _ = writeln!(text, "[modules]   scan error: {e}");
        }
    }
    let mut grand = Totals::default();
    let mut modules_checked = None;
    for (ci, corpus) in corpora.iter().enumerate() {
        let start = Instant::now();
        // Biggest first, so that the long objects (vmlinux.o) do not end the run alone.
        let mut jobs: Vec<(u64, usize)> = corpus
            .objects
            .iter()
            .enumerate()
            .map(|(i, p)| (std::fs::metadata(p).map_or(0, |m| m.len()), i))
            .collect();
        jobs.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let outcomes = parallel_map(&jobs, |&(_, i)| {
            let id = ci * 1_000_000 + i;
            check_object(corpus, &corpus.objects[i], work.path(), id)
        });
        let mut t = Totals::default();
        for (&(_, i), o) in jobs.iter().zip(outcomes) {
            let p = &corpus.objects[i];
            let rel = p.strip_prefix(&corpus.root).unwrap_or(p).to_string_lossy();
            t.add(&rel, o);
        }
        t.wall = start.elapsed();
        t.render(corpus.name, corpus, &mut text);
        grand.objects += t.objects;
        grand.failed_objects += t.failed_objects;
        grand.total_sites += t.total_sites;
        grand.instructions += t.instructions;
        grand.verified_instructions += t.verified_instructions;
        grand.lines += t.lines;
        grand.cfi_rows += t.cfi_rows;
        grand
            .failures
            .extend(t.failures.iter().map(|f| format!("{}: {f}", corpus.name)));
        if corpus.name == "modules" {
            modules_checked = Some(t.objects);
        }
    }
    let _ = writeln!(
        text,
        "total: {} objects, {} sites, {} instructions verified, {} compared with objdump, {} \
         addresses with addr2line, {} CFI rows, {} objects failed, {:.1} s",
        grand.objects,
        grand.total_sites,
        grand.verified_instructions,
        grand.instructions,
        grand.lines,
        grand.cfi_rows,
        grand.failed_objects,
        total_start.elapsed().as_secs_f64()
    );
    eprint!("{text}");
    let summary = target_dir().join("linux-corpus-summary.txt");
    if let Err(e) = std::fs::write(&summary, &text) {
        eprintln!("cannot write {}: {e}", summary.display());
    }
    if let Some(s) = &module_scan {
        assert!(s.errors.is_empty(), "modules that cannot be scanned");
    }
    if let (Some(n), None) = (modules_checked, &filter) {
        assert!(
            n >= MIN_MODULES,
            "only {n} modules checked (at least {MIN_MODULES} wanted)"
        );
    }
    assert!(
        grand.failures.is_empty(),
        "{} objects failed (summary in {}):\n{}",
        grand.failed_objects,
        summary.display(),
        grand
            .failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
