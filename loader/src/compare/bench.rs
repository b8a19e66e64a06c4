//! `afterburn-run bench`: regenerates docs/benchmarks.md from scratch.
//!
//! It runs [`super::compare`] on every example kernel (native against afterburnt, every
//! backend, `--runs` times each) and, when a Linux build is there, times the afterburner and
//! objtool on the same `vmlinux.o`. Everything in the page comes from that one invocation.
//! `scripts/bench.sh` builds what it needs and calls it; docs/compare.md documents both.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

use super::report::{code, ms, num, ratio, write_text_atomically};
use super::{
    compare, Comparison, Options, Outcome, Status, Summary, TempDir, EXIT_ERROR, EXIT_MISMATCH,
};
use crate::backend::BackendKind;
use crate::builder::DEFAULT_MEMORY_MIB;
use crate::cli::parse_timeout;

const BENCH_HELP: &str = "\
Runs `afterburn-run compare` on every example kernel (DIR/native/<name> against
DIR/burnt/<name>; the native file stands in when no burnt build exists, and the page says so)
and times `afterburner burn` and objtool on Linux's vmlinux.o when both are there. Writes the
whole benchmarks page (Markdown) to --out, or stdout. scripts/bench.sh builds everything and
runs this; see docs/compare.md.

Exit codes: 0 written, 1 written but some kernel's outputs differed, 2 error.";

/// `afterburn-run bench`.
#[derive(Debug, Parser)]
#[command(
    name = "afterburn-run bench",
    bin_name = "afterburn-run bench",
    about = "Regenerates the benchmarks page (docs/benchmarks.md)",
    after_help = BENCH_HELP
)]
pub struct BenchArgs {
    /// Built example kernels: DIR/native/<name> and DIR/burnt/<name>.
    #[arg(long, value_name = "DIR", default_value = "target/guests")]
    pub guests: PathBuf,
    /// Kernels to compare, comma-separated (default: every file in DIR/native, by name).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub kernels: Vec<String>,
    /// Backends, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bare,kvm,bt",
        value_name = "LIST"
    )]
    pub backends: Vec<BackendKind>,
    /// Runs of each kernel per backend.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Each guest run's --timeout.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, default_value = "60")]
    pub timeout: Duration,
    /// Write the page to FILE (default: stdout).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Draw the chart of --chart-kernel into FILE (SVG).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// The kernel whose `bench` lines the chart shows.
    #[arg(long, value_name = "NAME", default_value = "microbench")]
    pub chart_kernel: String,
    /// The afterburner binary, for the throughput section.
    #[arg(long, value_name = "PATH")]
    pub afterburner: Option<PathBuf>,
    /// A Linux build directory holding vmlinux.o and tools/objtool/objtool (default
    /// $HOME/.cache/afterburn/linux-6.12/build-dwarf).
    #[arg(long, value_name = "DIR")]
    pub linux_build: Option<PathBuf>,
    /// Runs of each tool on vmlinux.o.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub burn_runs: u32,
    /// The command line to show as the page's source (scripts/bench.sh passes its own).
    #[arg(long, value_name = "TEXT")]
    pub command: Option<String>,
}

/// One kernel's comparison for the page.
struct KernelResult {
    name: String,
    has_burnt: bool,
    cmp: Comparison,
}

/// `afterburn-run bench ARGS` (`args[0]` is `bench`): returns the exit code.
pub fn main(args: &[OsString]) -> u8 {
    let a = match BenchArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_ERROR } else { 0 };
        }
    };
    match run(&a, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("afterburn-run bench: {e}");
            EXIT_ERROR
        }
    }
}

fn run(a: &BenchArgs, args: &[OsString]) -> Result<u8, String> {
    let loader = std::env::current_exe()
        .map_err(|e| format!("cannot find the afterburn-run binary: {e}"))?;
    let native_dir = a.guests.join("native");
    let names = if a.kernels.is_empty() {
        let mut names: Vec<String> = std::fs::read_dir(&native_dir)
            .map_err(|e| format!("cannot list {}: {e}", native_dir.display()))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.') && !n.contains(".tmp."))
            .collect();
        names.sort();
        names
    } else {
        a.kernels.clone()
    };
    if names.is_empty() {
        return Err(format!("no kernels in {}", native_dir.display()));
    }
    let opts = Options {
        loader,
        backends: super::dedup(&a.backends),
        runs: a.runs,
        timeout: a.timeout,
        memory_mib: DEFAULT_MEMORY_MIB,
        progress: true,
    };
    let mut results = Vec::new();
    for name in &names {
        let native = native_dir.join(name);
        let burnt_path = a.guests.join("burnt").join(name);
        let has_burnt = burnt_path.is_file();
        let burnt = if has_burnt {
            burnt_path
        } else {
            native.clone()
        };
        eprintln!(
            "afterburn-run bench: {name}: {} vs {}",
            native.display(),
            burnt.display()
        );
        let cmp = compare(&native, &burnt, &opts);
        if let Outcome::Error(e) = &cmp.outcome {
            return Err(format!("{name}: {e}"));
        }
        results.push(KernelResult {
            name: name.clone(),
            has_burnt,
            cmp,
        });
    }
    let build = a.linux_build.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".cache/afterburn/linux-6.12/build-dwarf")
    });
    eprintln!("afterburn-run bench: throughput on {}", build.display());
    let throughput = throughput(a.afterburner.as_deref(), &build, a.burn_runs);
    let command = a.command.clone().unwrap_or_else(|| {
        let mut s = String::from("afterburn-run");
        for x in args {
            s.push(' ');
            s.push_str(&x.to_string_lossy());
        }
        s
    });
    if let Some(p) = &a.svg {
        let Some(k) = results.iter().find(|r| r.name == a.chart_kernel) else {
            return Err(format!(
                "--chart-kernel {} was not among the kernels",
                a.chart_kernel
            ));
        };
        let svg = super::svg::chart(&super::svg::ChartInput::from(&k.cmp));
        write_text_atomically(p, &svg).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    let page = page(&results, &throughput, &command, a);
    match &a.out {
        Some(p) => write_text_atomically(p, &page)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        None => print!("{page}"),
    }
    Ok(
        if results.iter().any(|r| r.cmp.outcome == Outcome::Mismatch) {
            EXIT_MISMATCH
        } else {
            0
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Throughput: afterburner burn vs objtool on vmlinux.o

/// What one tool run cost.
#[derive(Clone, Debug)]
pub struct ToolRun {
    /// Wall time.
    pub wall_s: f64,
    /// User + system CPU time.
    pub cpu_s: f64,
    /// Peak resident set size in bytes (`ru_maxrss`).
    pub max_rss: u64,
}

/// Runs `cmd` (stdout discarded, stderr kept) and measures it with `wait4`'s resource usage.
pub fn measure(mut cmd: Command) -> Result<ToolRun, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    let mut err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let pid = libc::pid_t::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` never waits unless
        // asked, and it is not asked); `status` and `usage` are valid, writable locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall_s = t0.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    if r != pid {
        return Err(format!("wait4: {}", std::io::Error::last_os_error()));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!(
            "{} failed (wait status {status:#x}): {}",
            cmd.get_program().to_string_lossy(),
            tail.join(" / ")
        ));
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(ToolRun {
        wall_s,
        cpu_s: tv(usage.ru_utime) + tv(usage.ru_stime),
        // ru_maxrss is in KiB on Linux.
        max_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

/// The throughput section's data.
#[derive(Clone, Debug)]
pub struct Throughput {
    /// The input (`vmlinux.o`) and its size, if found.
    pub input: Option<(PathBuf, u64)>,
    /// The objtool binary used.
    pub objtool: Option<PathBuf>,
    /// afterburner runs, or why there are none.
    pub afterburner: Result<Vec<ToolRun>, String>,
    /// objtool runs, or why there are none.
    pub objtool_runs: Result<Vec<ToolRun>, String>,
    /// The afterburner binary given.
    pub afterburner_path: Option<PathBuf>,
}

fn throughput(afterburner: Option<&Path>, build: &Path, runs: u32) -> Throughput {
    let vmlinux_o = build.join("vmlinux.o");
    let objtool = build.join("tools/objtool/objtool");
    let mut t = Throughput {
        input: None,
        objtool: None,
        afterburner: Err(String::new()),
        objtool_runs: Err(String::new()),
        afterburner_path: afterburner.map(Path::to_path_buf),
    };
    let size = match std::fs::metadata(&vmlinux_o) {
        Ok(m) if m.is_file() => m.len(),
        _ => {
            let why = format!(
                "no Linux build: {} is missing (build it with `scripts/linux/build.sh dwarf`)",
                vmlinux_o.display()
            );
            t.afterburner = Err(why.clone());
            t.objtool_runs = Err(why);
            return t;
        }
    };
    t.input = Some((vmlinux_o.clone(), size));
    let tmp = match TempDir::new() {
        Ok(d) => d,
        Err(e) => {
            let why = format!("cannot create a temporary directory: {e}");
            t.afterburner = Err(why.clone());
            t.objtool_runs = Err(why);
            return t;
        }
    };
    // objtool runs on a copy (it may write the file it checks; this run leaves it unchanged).
    let copy = tmp.0.join("vmlinux.o");
    let objtool_ready = if !objtool.is_file() {
        Err(format!("{} is missing", objtool.display()))
    } else {
        std::fs::copy(&vmlinux_o, &copy)
            .map(|_| ())
            .map_err(|e| format!("cannot copy {}: {e}", vmlinux_o.display()))
    };
    t.objtool = Some(objtool.clone());
    let afterburner_ready = match afterburner {
        None => Err(
            "afterburner not built: no afterburner binary was given (scripts/bench.sh \
                     passes target/release/afterburner once the afterburner crate has its \
                     `afterburner burn` command)"
                .to_string(),
        ),
        Some(p) if !p.is_file() => Err(format!(
            "afterburner not built: {} does not exist",
            p.display()
        )),
        Some(p) => Ok(p.to_path_buf()),
    };
    let mut ab_runs = afterburner_ready.clone().map(|_| Vec::new());
    let mut ot_runs = objtool_ready.clone().map(|_| Vec::new());
    let out = tmp.0.join("vmlinux.burnt.o");
    for _ in 0..runs {
        if let (Ok(p), Ok(v)) = (&afterburner_ready, &mut ab_runs) {
            let mut cmd = Command::new(p);
            cmd.arg("burn").arg(&vmlinux_o).arg("-o").arg(&out);
            match measure(cmd) {
                Ok(r) => v.push(r),
                Err(e) => ab_runs = Err(e),
            }
            let _ = std::fs::remove_file(&out);
        }
        if let (Ok(()), Ok(v)) = (&objtool_ready, &mut ot_runs) {
            let mut cmd = Command::new(&objtool);
            cmd.args(["--noinstr", "--link"]).arg(&copy);
            match measure(cmd) {
                Ok(r) => v.push(r),
                Err(e) => ot_runs = Err(e),
            }
        }
    }
    t.afterburner = ab_runs;
    t.objtool_runs = ot_runs;
    t
}

// ---------------------------------------------------------------------------------------------
// The page

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn mmm(s: &Summary, f: &dyn Fn(f64) -> String) -> (String, String, String) {
    (f(s.min), f(s.median), f(s.max))
}

fn range_ms(s: &Summary) -> String {
    format!("{} ({}–{})", ms(s.median), ms(s.min), ms(s.max))
}

fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

fn page(results: &[KernelResult], t: &Throughput, command: &str, a: &BenchArgs) -> String {
    let mut o = String::new();
    let first = &results[0].cmp;
    let host = &first.host;
    let date = &first.date;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let osrelease = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated on {date} on host kind `{host}` ({}, {cpus} CPUs, host Linux {osrelease}) by \
         the command below (`bash scripts/bench.sh` runs it). Do not edit by hand: run the \
         script again; it rewrites the whole page. Speed goals live here, never in timed \
         tests.\n",
        cpu_model()
    );
    let _ = writeln!(o, "Command:\n\n```\n{command}\n```\n");
    let _ = writeln!(
        o,
        "Every figure on this page comes from that one invocation. Each kernel ran {} times per \
         backend and variant, native and burnt interleaved, each run a separate `afterburn-run` \
         process (`afterburn-run compare`, docs/compare.md); min / median / max are over those \
         runs, and a ratio is burnt median / native median on the same backend.\n",
        a.runs
    );
    // Kernels and backends.
    let _ = writeln!(o, "## Kernels and backends\n");
    let _ = writeln!(o, "| kernel | native | burnt | deterministic output |");
    let _ = writeln!(o, "|---|---|---|---|");
    for r in results {
        let burnt = if r.has_burnt {
            code(&r.cmp.burnt.display().to_string())
        } else {
            "**none** (afterburner not built): the native file stands in".into()
        };
        let verdict = match &r.cmp.outcome {
            Outcome::Match => {
                let lines = r
                    .cmp
                    .backends
                    .iter()
                    .find(|b| b.status == Status::Match)
                    .map_or(0, |b| b.compared_lines);
                format!("identical ({lines} lines)")
            }
            Outcome::Mismatch => "**DIFFERS** (see `afterburn-run compare`)".into(),
            Outcome::Error(e) => format!("error: {e}"),
        };
        let _ = writeln!(
            o,
            "| {} | {} | {burnt} | {verdict} |",
            r.name,
            code(&r.cmp.native.display().to_string())
        );
    }
    let _ = writeln!(o);
    let missing: Vec<&str> = results
        .iter()
        .filter(|r| !r.has_burnt)
        .map(|r| r.name.as_str())
        .collect();
    if missing.len() == results.len() {
        let _ = writeln!(
            o,
            "**No afterburnt kernels were measured** (afterburner not built): the burnt columns \
             below are the native kernel run again (they show the run-to-run noise, not the \
             afterburner's cost).\n"
        );
    } else if !missing.is_empty() {
        let _ = writeln!(
            o,
            "**No afterburnt build of {}**: its burnt columns below are the native kernel run \
             again.\n",
            missing.join(", ")
        );
    }
    for b in &first.backends {
        match b.status {
            Status::Skipped => {
                let _ = writeln!(
                    o,
                    "- backend `{}`: skipped: {}",
                    b.backend.name(),
                    b.skip_reason.as_deref().unwrap_or("?")
                );
            }
            _ => {
                let _ = writeln!(o, "- backend `{}`: ran", b.backend.name());
            }
        }
    }
    let _ = writeln!(o);
    microbench_section(&mut o, results, a);
    wall_section(&mut o, results);
    kvm_section(&mut o, results);
    exits_section(&mut o, results);
    throughput_section(&mut o, t);
    o
}

/// The chart's path relative to the page's directory, when the chart lies below it.
fn image_link(out: Option<&Path>, svg: Option<&Path>) -> Option<String> {
    let dir = out?.parent()?;
    let rel = svg?.strip_prefix(dir).ok()?;
    Some(rel.to_string_lossy().into_owned())
}

fn microbench_section(o: &mut String, results: &[KernelResult], a: &BenchArgs) {
    let Some(mb) = results.iter().find(|r| r.name == a.chart_kernel) else {
        return;
    };
    let _ = writeln!(o, "## Microbench: cycles per operation (`{}`)\n", mb.name);
    let _ = writeln!(
        o,
        "The `microbench` example kernel (docs/examples.md) runs each operation 256 times and \
         prints `bench <op> <TSC cycles per operation>` (the loop's own cost included).\n"
    );
    if mb.cmp.host == "pvm" {
        let _ = writeln!(
            o,
            "On this PVM host every CPL0 instruction of the guest is emulated by the host \
             (~0.5 µs each), so on `--backend bare` these are the costs of the trap-and-emulate \
             path that the kvm backend is meant to avoid. `syscall` is expensive here because \
             PVM's `syscall` from CPL3 does not change privilege: it faults on the kernel's \
             entry page and the example kernels finish the system call from their page-fault \
             handler (docs/examples.md, \"syscall on the PVM host\").\n"
        );
    }
    if let Some(link) = image_link(a.out.as_deref(), a.svg.as_deref()) {
        let _ = writeln!(o, "![cycles per operation]({link})\n");
    }
    for b in &mb.cmp.backends {
        if b.status == Status::Skipped {
            continue;
        }
        let _ = writeln!(o, "### `{}`\n", b.backend.name());
        if let Some(base) = b.baseline.filter(|x| *x != b.backend) {
            let _ = writeln!(
                o,
                "The native kernel cannot start on `{}`; ratios are to the native kernel on \
                 `{}`.\n",
                b.backend.name(),
                base.name()
            );
        }
        let _ = writeln!(
            o,
            "| op | native min | native median | native max | burnt min | burnt median | \
             burnt max | burnt / native |"
        );
        let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|");
        let nf = b.native.figures.as_ref();
        let bf = b.burnt.figures.as_ref();
        let mut names: Vec<&String> = Vec::new();
        for f in [nf, bf].into_iter().flatten() {
            for (n, _) in &f.bench {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        for n in names {
            let get = |f: Option<&super::Figures>| {
                f.and_then(|f| f.bench.iter().find(|(m, _)| m == n))
                    .map_or(("–".into(), "–".into(), "–".into()), |(_, s)| {
                        mmm(s, &num)
                    })
            };
            let (a1, a2, a3) = get(nf);
            let (b1, b2, b3) = get(bf);
            let r = b
                .ratios
                .as_ref()
                .and_then(|r| r.bench.iter().find(|(m, _)| m == n))
                .and_then(|(_, r)| *r);
            let _ = writeln!(
                o,
                "| {n} | {a1} | {a2} | {a3} | {b1} | {b2} | {b3} | {} |",
                ratio(r)
            );
        }
        let _ = writeln!(o);
    }
}

fn wall_section(o: &mut String, results: &[KernelResult]) {
    let _ = writeln!(o, "## Whole kernels: wall time\n");
    let _ = writeln!(
        o,
        "Guest run time (`wall_time_s` of the stats JSON: from the first `KVM_RUN` to the end), \
         in ms: median (min–max).\n"
    );
    let _ = writeln!(
        o,
        "| kernel | backend | native ms | burnt ms | burnt / native | process ms native | \
         process ms burnt |"
    );
    let _ = writeln!(o, "|---|---|--:|--:|--:|--:|--:|");
    for r in results {
        for b in &r.cmp.backends {
            if b.status == Status::Skipped {
                let _ = writeln!(o, "| {} | {} | skipped | | | | |", r.name, b.backend.name());
                continue;
            }
            let nf = b.native.figures.as_ref();
            let bf = b.burnt.figures.as_ref();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.name,
                b.backend.name(),
                nf.map_or("–".into(), |f| range_ms(&f.wall_time_s)),
                bf.map_or("–".into(), |f| range_ms(&f.wall_time_s)),
                ratio(b.ratios.as_ref().and_then(|x| x.wall_time_s)),
                nf.map_or("–".into(), |f| ms(f.process_time_s.median)),
                bf.map_or("–".into(), |f| ms(f.process_time_s.median)),
            );
        }
    }
    let _ = writeln!(
        o,
        "\n`process ms` is the whole `afterburn-run` process (start, reading the kernel, \
         building the VM, the run, exit), median.\n"
    );
}

/// The kvm backend's headline figures: per kernel, native on bare over afterburnt on kvm, and
/// bytes of console output per exit to the loader.
fn kvm_section(o: &mut String, results: &[KernelResult]) {
    fn ran<'a>(r: &'a KernelResult, name: &str) -> Option<&'a super::BackendResult> {
        r.cmp
            .backends
            .iter()
            .find(|b| b.backend.name() == name && b.status != Status::Skipped)
    }
    let rows: Vec<(&str, &super::Figures, &super::Figures)> = results
        .iter()
        .filter_map(|r| {
            let native = ran(r, "bare")?.native.figures.as_ref()?;
            let burnt = ran(r, "kvm")?.burnt.figures.as_ref()?;
            Some((r.name.as_str(), native, burnt))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(o, "## kvm backend: whole-kernel speedup and console exits
");
    let _ = writeln!(
        o,
        "Speedup = wall time of the native kernel on `bare` (at CPL0, where a PVM host emulates \
         every instruction) / wall time of the afterburnt kernel on `kvm` (deprivileged at \
         CPL3, sites rewritten by the wedge), medians. Userspace exits are the exits the loader \
         itself handled (port and MMIO accesses, its hypercalls included: the START hypercall, \
         hidden page faults, system calls, the exit port); console exits are those among them \
         that hand serial output over (the wedge's CONSOLE_FLUSH hypercall: a newline flushes \
         unless one went out in the last 2 ms; the host also drains the ring at every other \
         exit). The console goal is at least 64 serial bytes per console exit. A kernel's speedup is bounded by its \
         exits, which cost the same 35–70 µs on both sides: `hello`, `interrupts`, `paging` \
         and `microbench` each exercise one mechanism (a print, ticks, faults and system calls, \
         sensitive operations in a loop) and spend their time in exits; `workload` spends it \
         in ordinary kernel code, as kernels do (docs/examples.md).\n"
    );
    let _ = writeln!(
        o,
        "| kernel | native on bare ms | afterburnt on kvm ms | speedup | emulated insns bare | \
         emulated insns kvm | userspace exits kvm | console exits kvm | serial bytes | \
         bytes per console exit |"
    );
    let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let (mut all_bytes, mut all_flushes) = (0.0, 0.0);
    for (name, n, b) in rows {
        let speedup = n.wall_time_s.median / b.wall_time_s.median.max(1e-9);
        let emu = |f: &super::Figures| f.insn_emulation.as_ref().map_or("–".into(), |s| num(s.median));
        let user: f64 = ["io_in", "io_out", "mmio_read", "mmio_write"]
            .iter()
            .filter_map(|k| b.userspace_exits.get(*k).map(|s| s.median))
            .sum();
        let bytes = b.serial_bytes.median;
        let flushes = b.console_flushes.as_ref().map(|s| s.median);
        all_bytes += bytes;
        all_flushes += flushes.unwrap_or(0.0);
        let per = match flushes {
            Some(f) if f > 0.0 => format!("{:.0}", bytes / f),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {speedup:.1}× | {} | {} | {} | {} | {} | {per} |",
            ms(n.wall_time_s.median),
            ms(b.wall_time_s.median),
            emu(n),
            emu(b),
            num(user),
            flushes.map_or("–".into(), num),
            num(bytes),
        );
    }
    if all_flushes > 0.0 {
        let _ = writeln!(
            o,
            "\nAll kernels together: {} serial bytes in {} console exits, {:.0} bytes per console \
             exit.",
            num(all_bytes),
            num(all_flushes),
            all_bytes / all_flushes
        );
    }
    let _ = writeln!(o);
}

fn exits_section(o: &mut String, results: &[KernelResult]) {
    let _ = writeln!(o, "## Exits per serial byte\n");
    let _ = writeln!(
        o,
        "KVM exits (`exits` of the vCPU's stats, medians) per byte the guest printed on COM1, \
         and the instructions the host emulated (`insn_emulation`).\n"
    );
    let _ = writeln!(
        o,
        "| kernel | backend | serial bytes | native exits | native exits / byte | burnt exits | \
         burnt exits / byte | native emulated | burnt emulated | emulated burnt / native |"
    );
    let _ = writeln!(o, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in results {
        for b in &r.cmp.backends {
            if b.status == Status::Skipped {
                continue;
            }
            let per = |f: Option<&super::Figures>| -> (String, String) {
                let Some(f) = f else {
                    return ("–".into(), "–".into());
                };
                let e = f.exits.get("exits").map(|s| s.median);
                let bytes = f.serial_bytes.median;
                (
                    e.map_or("–".into(), num),
                    match e {
                        Some(e) if bytes > 0.0 => format!("{:.2}", e / bytes),
                        _ => "–".into(),
                    },
                )
            };
            let nf = b.native.figures.as_ref();
            let bf = b.burnt.figures.as_ref();
            let (ne, nper) = per(nf);
            let (be, bper) = per(bf);
            let emu = |f: Option<&super::Figures>| {
                f.and_then(|f| f.insn_emulation.as_ref())
                    .map_or("–".into(), |s| num(s.median))
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {ne} | {nper} | {be} | {bper} | {} | {} | {} |",
                r.name,
                b.backend.name(),
                bf.or(nf).map_or("–".into(), |f| num(f.serial_bytes.median)),
                emu(nf),
                emu(bf),
                ratio(b.ratios.as_ref().and_then(|x| x.insn_emulation)),
            );
        }
    }
    let _ = writeln!(o);
}

fn tool_row(
    o: &mut String,
    name: &str,
    cmd: &str,
    runs: &Result<Vec<ToolRun>, String>,
    input: u64,
) {
    match runs {
        Ok(v) if !v.is_empty() => {
            let wall = Summary::of(v.iter().map(|r| r.wall_s).collect());
            let cpu = Summary::of(v.iter().map(|r| r.cpu_s).collect());
            let rss = Summary::of(v.iter().map(|r| r.max_rss as f64).collect());
            if let (Some(w), Some(c), Some(m)) = (wall, cpu, rss) {
                let _ = writeln!(
                    o,
                    "| {name} | {cmd} | {:.2} / {:.2} / {:.2} | {:.2} | {} | {:.2} |",
                    w.min,
                    w.median,
                    w.max,
                    c.median,
                    mib(m.median),
                    m.median / input as f64
                );
            }
        }
        Ok(_) => {}
        Err(_) => {
            let _ = writeln!(o, "| {name} | {cmd} | not measured (above) | | | |");
        }
    }
}

fn median_of(runs: &Result<Vec<ToolRun>, String>, f: fn(&ToolRun) -> f64) -> Option<f64> {
    runs.as_ref()
        .ok()
        .and_then(|v| Summary::of(v.iter().map(f).collect()))
        .map(|s| s.median)
}

fn throughput_section(o: &mut String, t: &Throughput) {
    let _ = writeln!(o, "## Afterburner throughput: Linux `vmlinux.o`\n");
    let Some((input, size)) = &t.input else {
        let _ = writeln!(
            o,
            "Not measured: {}.\n",
            t.objtool_runs.as_ref().err().map_or("?", |s| s.as_str())
        );
        return;
    };
    let _ = writeln!(
        o,
        "Input: {} ({} MiB), the whole-kernel object of the `dwarf` configuration \
         (docs/linux-corpus.md). `afterburner burn` rewrites it into a new file; objtool from \
         the same tree runs kbuild's whole-kernel step (`--noinstr --link`, the only objtool \
         pass kbuild runs on vmlinux.o; on a copy, which it leaves unchanged). Both run on the \
         same file, interleaved; peak memory is the child's `ru_maxrss` (wait4).\n",
        code(&input.display().to_string()),
        mib(*size as f64)
    );
    for r in [&t.afterburner, &t.objtool_runs] {
        if let Err(e) = r {
            let _ = writeln!(o, "**{e}.**\n");
        }
    }
    let _ = writeln!(
        o,
        "| tool | command | wall s min / median / max | CPU s (user+sys, median) | max RSS MiB \
         (median) | max RSS / input size |"
    );
    let _ = writeln!(o, "|---|---|--:|--:|--:|--:|");
    tool_row(
        o,
        "afterburner",
        "`afterburner burn vmlinux.o -o OUT`",
        &t.afterburner,
        *size,
    );
    tool_row(
        o,
        "objtool",
        "`objtool --noinstr --link vmlinux.o`",
        &t.objtool_runs,
        *size,
    );
    let _ = writeln!(o);
    let w = (
        median_of(&t.afterburner, |r| r.wall_s),
        median_of(&t.objtool_runs, |r| r.wall_s),
    );
    let m = (
        median_of(&t.afterburner, |r| r.max_rss as f64),
        median_of(&t.objtool_runs, |r| r.max_rss as f64),
    );
    if let ((Some(aw), Some(ow)), (Some(am), Some(om))) = (w, m) {
        let _ = writeln!(
            o,
            "afterburner / objtool: wall time {}, peak memory {} (medians).\n",
            ratio((ow > 0.0).then(|| aw / ow)),
            ratio((om > 0.0).then(|| am / om)),
        );
    }
}
