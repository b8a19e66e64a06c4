//! `afterburn-run compare`: runs a native and an afterburnt kernel on every backend, checks that
//! they print the same deterministic output, and reports what the afterburnt one costs.
//!
//! Every run is a separate `afterburn-run` process (this same binary, `current_exe()`) with
//! `--stats-json` into a private temporary directory, exactly as a user would run it. The runs
//! are gathered first ([`collect`]), then judged by pure functions ([`analyze`]) and rendered
//! ([`report`] for JSON and Markdown, [`svg`] for the chart). `docs/compare.md` is the
//! specification of the command, its exit codes and the JSON schema.
//!
//! `afterburn-run bench` ([`bench`]) uses the same machinery on every example kernel and writes
//! `docs/benchmarks.md`.

pub mod bench;
pub mod report;
pub mod svg;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde_json::Value;

use crate::backend::BackendKind;
use crate::builder::DEFAULT_MEMORY_MIB;
use crate::cli::parse_timeout;
use crate::end::EXIT_START_FAILURE;
use crate::report::STATS_SCHEMA;

/// Exit code: every backend that ran gave identical deterministic output and ends.
pub const EXIT_MATCH: u8 = 0;
/// Exit code: some output or end differed between the native and the afterburnt kernel.
pub const EXIT_MISMATCH: u8 = 1;
/// Exit code: compare itself failed (arguments, kernel files, a run that could not be
/// observed, nothing could run, an output file).
pub const EXIT_ERROR: u8 = 2;

/// The `schema` field of the compare JSON.
pub const COMPARE_SCHEMA: &str = "afterburn-compare/1";

/// Timing lines start with this; they are the only lines a comparison leaves out.
pub const BENCH_PREFIX: &str = "bench ";

/// Seconds a run may take beyond `--timeout` before compare kills the process (the loader's
/// own watchdog should have ended it long before).
const KILL_GRACE: Duration = Duration::from_secs(30);

const COMPARE_HELP: &str = "\
Runs both kernels on each backend (--runs times each, native and burnt interleaved), each run
a separate afterburn-run process. Lines starting with `bench ` are timing lines and are left
out of the comparison; everything else, and how each run ended, must be identical.
A backend that cannot start a kernel (afterburn-run exit code 100, e.g. \"not implemented
yet\" or no /dev/kvm) is reported as skipped with the reason.
The Markdown report goes to stdout (and to --markdown FILE); see docs/compare.md.

Exit codes:
  0  every backend that ran gave identical output and ends
  1  some output or end differed (the report shows the first differing line)
  2  error: bad arguments, unreadable kernel, a run that could not be observed,
     no backend could run the kernels, or an output file could not be written";

/// `afterburn-run compare`.
#[derive(Debug, Parser)]
#[command(
    name = "afterburn-run compare",
    bin_name = "afterburn-run compare",
    about = "Compares a native and an afterburnt kernel on every backend",
    after_help = COMPARE_HELP
)]
pub struct CompareArgs {
    /// The native kernel.
    #[arg(long, value_name = "KERNEL")]
    pub native: PathBuf,
    /// The afterburnt kernel (built from the same sources through the afterburner).
    #[arg(long, value_name = "KERNEL")]
    pub burnt: PathBuf,
    /// Backends to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bare,kvm,bt",
        value_name = "LIST"
    )]
    pub backends: Vec<BackendKind>,
    /// Runs of each kernel per backend.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Write the report as JSON (schema afterburn-compare/1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the Markdown report to FILE too.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Draw the per-op cycles (`bench` lines) as an SVG bar chart into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Each run's --timeout (seconds, decimals allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, default_value = "60")]
    pub timeout: Duration,
    /// Guest RAM in MiB for every run.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_MIB)]
    pub memory: u64,
    /// Print nothing on stderr while running.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `afterburn-run compare ARGS` (`args[0]` is `compare`): returns the exit code.
pub fn main(args: &[OsString]) -> u8 {
    let a = match CompareArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_ERROR } else { 0 };
        }
    };
    let loader = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("afterburn-run compare: cannot find the afterburn-run binary: {e}");
            return EXIT_ERROR;
        }
    };
    let opts = Options {
        loader,
        backends: dedup(&a.backends),
        runs: a.runs,
        timeout: a.timeout,
        memory_mib: a.memory,
        progress: !a.quiet,
    };
    let cmp = compare(&a.native, &a.burnt, &opts);
    let md = report::markdown(&cmp);
    print!("{md}");
    let mut code = cmp.exit_code();
    let mut write = |path: &Option<PathBuf>, text: &str| {
        if let Some(p) = path {
            if let Err(e) = report::write_text_atomically(p, text) {
                eprintln!("afterburn-run compare: cannot write {}: {e}", p.display());
                code = EXIT_ERROR;
            }
        }
    };
    write(&a.markdown, &md);
    if a.svg.is_some() {
        write(&a.svg, &svg::chart(&svg::ChartInput::from(&cmp)));
    }
    if let Some(p) = &a.json {
        if let Err(e) = crate::report::write_json_atomically(p, &report::json(&cmp)) {
            eprintln!("afterburn-run compare: cannot write {}: {e}", p.display());
            code = EXIT_ERROR;
        }
    }
    if let Outcome::Error(e) = &cmp.outcome {
        eprintln!("afterburn-run compare: error: {e}");
    }
    code
}

fn dedup(backends: &[BackendKind]) -> Vec<BackendKind> {
    let mut out = Vec::new();
    for b in backends {
        if !out.contains(b) {
            out.push(*b);
        }
    }
    out
}

/// How to run the kernels.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `afterburn-run` binary each run starts.
    pub loader: PathBuf,
    /// Backends, in order.
    pub backends: Vec<BackendKind>,
    /// Runs of each kernel per backend (>= 1).
    pub runs: u32,
    /// `--timeout` of each run.
    pub timeout: Duration,
    /// `--memory` of each run.
    pub memory_mib: u64,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// Which of the two kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The kernel as compiled.
    Native,
    /// The kernel built from afterburnt objects.
    Burnt,
}

impl Variant {
    /// `native` or `burnt`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Native => "native",
            Variant::Burnt => "burnt",
        }
    }
}

/// One `afterburn-run` process that got its guest going, as its stats JSON and stdout tell.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// The process exit code.
    pub exit_code: i32,
    /// `end.reason` of the stats JSON.
    pub end_reason: String,
    /// `end.description`.
    pub end_description: String,
    /// The first line of the run's stderr (the loader's report of an abnormal end), if any.
    pub stderr_first_line: Option<String>,
    /// Output lines that must match: every line not starting with `bench `.
    pub lines: Vec<String>,
    /// `bench <name> <number>` lines, in order (the first of a repeated name).
    pub bench: Vec<(String, f64)>,
    /// `wall_time_s` of the stats JSON (the guest's run time).
    pub wall_time_s: f64,
    /// The whole process, as compare measured it (start, set-up, run, exit).
    pub process_time_s: f64,
    /// `serial_bytes`.
    pub serial_bytes: u64,
    /// `insn_emulation` (absent on hosts whose stats fd lacks it).
    pub insn_emulation: Option<u64>,
    /// Every scalar `kvm_stats` counter named `exits` or `*_exits`.
    pub exits: BTreeMap<String, u64>,
    /// `userspace_exits` of the stats JSON.
    pub userspace_exits: BTreeMap<String, u64>,
    /// `backend_stats.console_flushes` (the kvm backend's console hypercalls), if reported.
    pub console_flushes: Option<u64>,
}

/// One attempt to run a kernel.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempt {
    /// The guest ran (whatever its end).
    Ran(Box<RunRecord>),
    /// afterburn-run could not start it (exit code 100); the loader's description.
    StartFailed(String),
}

/// Every attempt of one kernel on one backend, in order. After a start failure on the first
/// attempt the kernel is not tried again on that backend.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VariantRuns {
    /// The attempts.
    pub attempts: Vec<Attempt>,
}

impl VariantRuns {
    /// Why this kernel cannot run on this backend: its first attempt failed to start.
    pub fn unavailable(&self) -> Option<&str> {
        match self.attempts.first() {
            Some(Attempt::StartFailed(r)) => Some(r),
            _ => None,
        }
    }

    /// The runs whose guest ran.
    pub fn ran(&self) -> impl Iterator<Item = &RunRecord> + Clone {
        self.attempts.iter().filter_map(|a| match a {
            Attempt::Ran(r) => Some(&**r),
            Attempt::StartFailed(_) => None,
        })
    }
}

/// Both kernels on one backend.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendRuns {
    /// The backend.
    pub backend: BackendKind,
    /// The native kernel's attempts.
    pub native: VariantRuns,
    /// The afterburnt kernel's attempts.
    pub burnt: VariantRuns,
}

/// min / median / max of one figure over runs (the median of an even count is the mean of the
/// two middle values).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Smallest value.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// Largest value.
    pub max: f64,
    /// Every value, in run order.
    pub values: Vec<f64>,
}

impl Summary {
    /// The summary of `values`; `None` when empty.
    pub fn of(values: Vec<f64>) -> Option<Summary> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Summary {
            min: sorted[0],
            median,
            max: sorted[n - 1],
            values,
        })
    }
}

/// The figures of one kernel on one backend, over its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// Guest run time (stats `wall_time_s`).
    pub wall_time_s: Summary,
    /// Whole process time.
    pub process_time_s: Summary,
    /// Serial bytes.
    pub serial_bytes: Summary,
    /// Emulated instructions.
    pub insn_emulation: Option<Summary>,
    /// KVM exits by kind (`exits`, `io_exits`, ...).
    pub exits: BTreeMap<String, Summary>,
    /// Exits the loader's run loop handled, by kind.
    pub userspace_exits: BTreeMap<String, Summary>,
    /// The kvm backend's console flushes (exits for serial output).
    pub console_flushes: Option<Summary>,
    /// `bench` figures in the order first printed.
    pub bench: Vec<(String, Summary)>,
}

impl Figures {
    /// The figures of `runs`; `None` when there are none.
    pub fn of<'a>(runs: impl Iterator<Item = &'a RunRecord> + Clone) -> Option<Figures> {
        let f = |get: &dyn Fn(&RunRecord) -> Option<f64>| {
            Summary::of(runs.clone().filter_map(get).collect())
        };
        let wall_time_s = f(&|r| Some(r.wall_time_s))?;
        let map = |get: &dyn Fn(&RunRecord) -> &BTreeMap<String, u64>| {
            let mut keys: Vec<&String> = runs.clone().flat_map(|r| get(r).keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter_map(|k| {
                    let s = Summary::of(
                        runs.clone()
                            .filter_map(|r| get(r).get(k).map(|v| *v as f64))
                            .collect(),
                    )?;
                    Some((k.clone(), s))
                })
                .collect::<BTreeMap<_, _>>()
        };
        let mut names: Vec<&String> = Vec::new();
        for r in runs.clone() {
            for (n, _) in &r.bench {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let bench = names
            .into_iter()
            .filter_map(|n| {
                let s = Summary::of(
                    runs.clone()
                        .filter_map(|r| r.bench.iter().find(|(m, _)| m == n).map(|(_, v)| *v))
                        .collect(),
                )?;
                Some((n.clone(), s))
            })
            .collect();
        Some(Figures {
            wall_time_s,
            process_time_s: f(&|r| Some(r.process_time_s))?,
            serial_bytes: f(&|r| Some(r.serial_bytes as f64))?,
            insn_emulation: f(&|r| r.insn_emulation.map(|v| v as f64)),
            exits: map(&|r| &r.exits),
            userspace_exits: map(&|r| &r.userspace_exits),
            console_flushes: f(&|r| r.console_flushes.map(|v| v as f64)),
            bench,
        })
    }
}

/// Burnt medians divided by the baseline native medians (`None` where the baseline is 0 or
/// either side lacks the figure).
#[derive(Clone, Debug, PartialEq)]
pub struct Ratios {
    /// Guest run time.
    pub wall_time_s: Option<f64>,
    /// Process time.
    pub process_time_s: Option<f64>,
    /// Serial bytes.
    pub serial_bytes: Option<f64>,
    /// Emulated instructions.
    pub insn_emulation: Option<f64>,
    /// KVM exits by kind (the kinds of the burnt figures).
    pub exits: BTreeMap<String, Option<f64>>,
    /// Userspace exits by kind.
    pub userspace_exits: BTreeMap<String, Option<f64>>,
    /// `bench` figures, in the burnt kernel's order.
    pub bench: Vec<(String, Option<f64>)>,
}

fn ratio(a: Option<&Summary>, b: Option<&Summary>) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b.median != 0.0).then(|| a.median / b.median)
}

impl Ratios {
    /// `burnt / native`, median by median.
    pub fn of(burnt: &Figures, native: &Figures) -> Ratios {
        let map = |b: &BTreeMap<String, Summary>, n: &BTreeMap<String, Summary>| {
            b.iter()
                .map(|(k, s)| (k.clone(), ratio(Some(s), n.get(k))))
                .collect()
        };
        Ratios {
            wall_time_s: ratio(Some(&burnt.wall_time_s), Some(&native.wall_time_s)),
            process_time_s: ratio(Some(&burnt.process_time_s), Some(&native.process_time_s)),
            serial_bytes: ratio(Some(&burnt.serial_bytes), Some(&native.serial_bytes)),
            insn_emulation: ratio(
                burnt.insn_emulation.as_ref(),
                native.insn_emulation.as_ref(),
            ),
            exits: map(&burnt.exits, &native.exits),
            userspace_exits: map(&burnt.userspace_exits, &native.userspace_exits),
            bench: burnt
                .bench
                .iter()
                .map(|(k, s)| {
                    let n = native.bench.iter().find(|(m, _)| m == k).map(|(_, s)| s);
                    (k.clone(), ratio(Some(s), n))
                })
                .collect(),
        }
    }
}

/// What differed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DifferenceKind {
    /// A deterministic output line.
    Output,
    /// How the run ended (exit code / end reason).
    End,
    /// One kernel started where the other did not (or a later run failed to start).
    Start,
}

impl DifferenceKind {
    /// `output`, `end` or `start`.
    pub fn name(self) -> &'static str {
        match self {
            DifferenceKind::Output => "output",
            DifferenceKind::End => "end",
            DifferenceKind::Start => "start",
        }
    }
}

/// The first difference of one run from the baseline (the baseline native kernel's first run).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// The run that differs.
    pub variant: Variant,
    /// Its number on this backend, from 1.
    pub run: usize,
    /// What differs.
    pub kind: DifferenceKind,
    /// For `output`: the 1-based index of the line among the deterministic lines.
    pub line: Option<usize>,
    /// The baseline's side (`None`: it had no such line).
    pub expected: Option<String>,
    /// This run's side (`None`: it had no such line).
    pub actual: Option<String>,
}

/// The verdict on one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every run matched the baseline.
    Match,
    /// At least one run differed.
    Mismatch,
    /// Nothing could be compared here.
    Skipped,
}

impl Status {
    /// `match`, `mismatch` or `skipped`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Match => "match",
            Status::Mismatch => "mismatch",
            Status::Skipped => "skipped",
        }
    }
}

/// One kernel on one backend, judged.
#[derive(Clone, Debug, PartialEq)]
pub struct VariantResult {
    /// Why it could not start here, if it could not.
    pub unavailable: Option<String>,
    /// The attempts, in order.
    pub attempts: Vec<Attempt>,
    /// Figures over the runs that ran.
    pub figures: Option<Figures>,
}

/// One backend, judged.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendResult {
    /// The backend.
    pub backend: BackendKind,
    /// The verdict.
    pub status: Status,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// The backend whose native runs this one is compared with: itself, unless the native
    /// kernel could not start here (the kvm backend may need annotations).
    pub baseline: Option<BackendKind>,
    /// Deterministic lines of the baseline output.
    pub compared_lines: usize,
    /// The first difference of every run that differed.
    pub differences: Vec<Difference>,
    /// The native kernel.
    pub native: VariantResult,
    /// The afterburnt kernel.
    pub burnt: VariantResult,
    /// Burnt / baseline native.
    pub ratios: Option<Ratios>,
}

/// The overall verdict.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Every backend that ran matched.
    Match,
    /// Some backend differed.
    Mismatch,
    /// compare could not do its job.
    Error(String),
}

impl Outcome {
    /// `match`, `mismatch` or `error`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::Error(_) => "error",
        }
    }
}

/// A whole comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// When it was made (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub date: String,
    /// The host kind (`vmx`, `svm`, `pvm`, `unknown`).
    pub host: String,
    /// The native kernel as given.
    pub native: PathBuf,
    /// The afterburnt kernel as given.
    pub burnt: PathBuf,
    /// Whether the two files hold the same bytes (a burnt kernel that is not one).
    pub identical_files: bool,
    /// `--runs`.
    pub runs: u32,
    /// `--timeout` in seconds.
    pub timeout_s: f64,
    /// `--memory`.
    pub memory_mib: u64,
    /// The backends, in the order asked for.
    pub backends: Vec<BackendResult>,
    /// The verdict.
    pub outcome: Outcome,
}

impl Comparison {
    /// 0 match, 1 mismatch, 2 error.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Match => EXIT_MATCH,
            Outcome::Mismatch => EXIT_MISMATCH,
            Outcome::Error(_) => EXIT_ERROR,
        }
    }
}

/// Runs and judges one comparison. Errors (unreadable kernels, a run that could not be
/// observed) end up in [`Comparison::outcome`] with whatever was measured before them.
pub fn compare(native: &Path, burnt: &Path, opts: &Options) -> Comparison {
    let (runs, error, identical_files) = match (check_kernel(native), check_kernel(burnt)) {
        (Ok(n), Ok(b)) => {
            let (runs, error) = collect(native, burnt, opts);
            (runs, error, n == b)
        }
        (Err(e), _) | (_, Err(e)) => (Vec::new(), Some(e), false),
    };
    let mut cmp = analyze(&runs, error);
    cmp.date = utc_now();
    cmp.host = crate::host::detect().name().to_string();
    cmp.native = native.to_path_buf();
    cmp.burnt = burnt.to_path_buf();
    cmp.identical_files = identical_files;
    cmp.runs = opts.runs;
    cmp.timeout_s = opts.timeout.as_secs_f64();
    cmp.memory_mib = opts.memory_mib;
    cmp
}

/// Reads a kernel file and checks that afterburn-run could boot it, so that a start failure
/// during the runs can only mean that a backend is not available.
fn check_kernel(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    crate::kernel::inspect(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// Runs both kernels on every backend, interleaved: native run 1, burnt run 1, native run 2,
/// ... A kernel whose first run fails to start is not tried again on that backend. Stops at
/// the first run that cannot be observed and returns what it had with the error.
pub fn collect(native: &Path, burnt: &Path, opts: &Options) -> (Vec<BackendRuns>, Option<String>) {
    let tmp = match TempDir::new() {
        Ok(t) => t,
        Err(e) => {
            return (
                Vec::new(),
                Some(format!("cannot create a temporary directory: {e}")),
            )
        }
    };
    let mut all = Vec::new();
    for &backend in &opts.backends {
        let mut br = BackendRuns {
            backend,
            native: VariantRuns::default(),
            burnt: VariantRuns::default(),
        };
        for i in 0..opts.runs {
            for (variant, kernel) in [(Variant::Native, native), (Variant::Burnt, burnt)] {
                let vr = match variant {
                    Variant::Native => &mut br.native,
                    Variant::Burnt => &mut br.burnt,
                };
                if vr.unavailable().is_some() {
                    continue;
                }
                match run_once(&opts.loader, backend, kernel, opts, &tmp.0) {
                    Ok(a) => vr.attempts.push(a),
                    Err(e) => {
                        let e = format!(
                            "{} on --backend {}, {} run {}: {e}",
                            kernel.display(),
                            backend.name(),
                            variant.name(),
                            i + 1
                        );
                        all.push(br);
                        return (all, Some(e));
                    }
                }
            }
        }
        if opts.progress {
            eprintln!("afterburn-run compare: {}", progress_line(&br));
        }
        all.push(br);
    }
    (all, None)
}

fn progress_line(br: &BackendRuns) -> String {
    let part = |v: &VariantRuns| match v.unavailable() {
        Some(r) => format!("cannot start ({r})"),
        None => {
            let codes: Vec<String> = v
                .attempts
                .iter()
                .map(|a| match a {
                    Attempt::Ran(r) => r.exit_code.to_string(),
                    Attempt::StartFailed(_) => "100".into(),
                })
                .collect();
            format!("{} runs, exit codes {}", codes.len(), codes.join(" "))
        }
    };
    format!(
        "{}: native {}; burnt {}",
        br.backend.name(),
        part(&br.native),
        part(&br.burnt)
    )
}

/// A private temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = base.join(format!("afterburn-compare.{}.{n}", std::process::id()));
            match std::fs::create_dir(&p) {
                Ok(()) => return Ok(TempDir(p)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A kernel path afterburn-run cannot mistake for a subcommand or an option.
fn kernel_arg(kernel: &Path) -> PathBuf {
    if kernel.is_relative() {
        Path::new(".").join(kernel)
    } else {
        kernel.to_path_buf()
    }
}

/// What a finished process left.
struct Finished {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    elapsed: Duration,
}

/// Runs `cmd` with stdin closed and output captured; kills it after `limit`.
fn run_process(mut cmd: Command, limit: Duration) -> Result<Finished, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut v);
            }
            v
        })
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if start.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!(
                    "still running after {:.1} s; killed",
                    limit.as_secs_f64()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => break Err(format!("waiting for the process: {e}")),
        }
    };
    let elapsed = start.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = status?;
    Ok(Finished {
        code: status.code(),
        stdout,
        stderr,
        elapsed,
    })
}

/// One `afterburn-run --backend B --timeout T --memory M --stats-json FILE KERNEL` process.
fn run_once(
    loader: &Path,
    backend: BackendKind,
    kernel: &Path,
    opts: &Options,
    tmp: &Path,
) -> Result<Attempt, String> {
    static N: AtomicU64 = AtomicU64::new(0);
    let stats = tmp.join(format!("run{}.json", N.fetch_add(1, Ordering::Relaxed)));
    let mut cmd = Command::new(loader);
    cmd.arg("--backend")
        .arg(backend.name())
        .arg("--timeout")
        .arg(format!("{}", opts.timeout.as_secs_f64()))
        .arg("--memory")
        .arg(opts.memory_mib.to_string())
        .arg("--stats-json")
        .arg(&stats)
        .arg(kernel_arg(kernel));
    let f = run_process(cmd, opts.timeout + KILL_GRACE)?;
    let stderr = String::from_utf8_lossy(&f.stderr);
    let Some(code) = f.code else {
        return Err(format!(
            "afterburn-run was killed by a signal; stderr: {}",
            stderr.trim()
        ));
    };
    let json = std::fs::read(&stats);
    let _ = std::fs::remove_file(&stats);
    let json: Option<Value> = json.ok().and_then(|b| serde_json::from_slice(&b).ok());
    if code == i32::from(EXIT_START_FAILURE) {
        let reason = json
            .as_ref()
            .and_then(|j| j["end"]["description"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                stderr
                    .trim()
                    .trim_start_matches("afterburn-run: cannot start: ")
                    .to_string()
            });
        return Ok(Attempt::StartFailed(reason));
    }
    let Some(json) = json else {
        return Err(format!(
            "afterburn-run ended with code {code} without a readable stats JSON; stderr: {}",
            stderr.trim()
        ));
    };
    let mut rec = record_from(&json, &f.stdout).map_err(|e| format!("stats JSON: {e}"))?;
    if rec.exit_code != code {
        return Err(format!(
            "the process exit code {code} disagrees with the stats JSON's {}",
            rec.exit_code
        ));
    }
    rec.process_time_s = f.elapsed.as_secs_f64();
    rec.stderr_first_line = stderr.lines().next().map(str::to_string);
    Ok(Attempt::Ran(Box::new(rec)))
}

/// The deterministic lines of guest output and its `bench` figures.
pub fn split_output(stdout: &[u8]) -> (Vec<String>, Vec<(String, f64)>) {
    let text = String::from_utf8_lossy(stdout);
    let mut pieces: Vec<&str> = text.split('\n').collect();
    if pieces.last() == Some(&"") {
        pieces.pop();
    }
    let mut lines = Vec::new();
    let mut bench: Vec<(String, f64)> = Vec::new();
    for p in pieces {
        if let Some(rest) = p.strip_prefix(BENCH_PREFIX) {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(value), None) = (words.next(), words.next(), words.next()) {
                if let Ok(v) = value.parse::<f64>() {
                    if v.is_finite() && !bench.iter().any(|(n, _)| n == name) {
                        bench.push((name.to_string(), v));
                    }
                }
            }
        } else {
            lines.push(p.to_string());
        }
    }
    (lines, bench)
}

/// A [`RunRecord`] from a stats JSON (schema `afterburn-run-stats/1`) and the run's stdout.
pub fn record_from(json: &Value, stdout: &[u8]) -> Result<RunRecord, String> {
    if json["schema"] != STATS_SCHEMA {
        return Err(format!(
            "schema is {}, expected {STATS_SCHEMA}",
            json["schema"]
        ));
    }
    let u = |v: &Value, what: &str| v.as_u64().ok_or_else(|| format!("{what} is not a count"));
    let exit_code = i32::try_from(u(&json["exit_code"], "exit_code")?)
        .map_err(|_| "exit_code out of range".to_string())?;
    let s = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{what} is not a string"))
    };
    let counters = |v: &Value, keep: &dyn Fn(&str) -> bool| -> BTreeMap<String, u64> {
        v.as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| keep(k))
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (lines, bench) = split_output(stdout);
    Ok(RunRecord {
        exit_code,
        end_reason: s(&json["end"]["reason"], "end.reason")?,
        end_description: s(&json["end"]["description"], "end.description")?,
        stderr_first_line: None,
        lines,
        bench,
        wall_time_s: json["wall_time_s"]
            .as_f64()
            .ok_or("wall_time_s is not a number")?,
        process_time_s: 0.0,
        serial_bytes: u(&json["serial_bytes"], "serial_bytes")?,
        insn_emulation: json["insn_emulation"].as_u64(),
        exits: counters(&json["kvm_stats"], &|k| {
            k == "exits" || k.ends_with("_exits")
        }),
        userspace_exits: counters(&json["userspace_exits"], &|_| true),
        console_flushes: json["backend_stats"]["console_flushes"].as_u64(),
    })
}

/// The end of a run as the report prints it.
pub fn end_text(r: &RunRecord) -> String {
    format!("exit code {} ({})", r.exit_code, r.end_reason)
}

/// What [`first_difference`] found: kind, line, expected, actual.
type Found = (
    DifferenceKind,
    Option<usize>,
    Option<String>,
    Option<String>,
);

/// The first difference of `run` from `base`: the first differing deterministic line, else a
/// different end.
fn first_difference(base: &RunRecord, run: &RunRecord) -> Option<Found> {
    let n = base.lines.len().max(run.lines.len());
    let line = (0..n).find(|&i| base.lines.get(i) != run.lines.get(i));
    if let Some(i) = line {
        return Some((
            DifferenceKind::Output,
            Some(i + 1),
            base.lines.get(i).cloned(),
            run.lines.get(i).cloned(),
        ));
    }
    if base.exit_code != run.exit_code || base.end_reason != run.end_reason {
        return Some((
            DifferenceKind::End,
            None,
            Some(end_text(base)),
            Some(end_text(run)),
        ));
    }
    None
}

/// Judges the runs: which backends compare, against which baseline, and what differed.
/// The date, host, paths and options are left empty for [`compare`] to fill in.
pub fn analyze(runs: &[BackendRuns], error: Option<String>) -> Comparison {
    // The reference native run: the first run of the native kernel on the first backend where
    // it started.
    let reference = runs.iter().find_map(|br| {
        br.native.attempts.first().and_then(|a| match a {
            Attempt::Ran(r) => Some((br.backend, &**r)),
            Attempt::StartFailed(_) => None,
        })
    });
    let mut results = Vec::new();
    for br in runs {
        let native_here = match br.native.attempts.first() {
            Some(Attempt::Ran(r)) => Some((br.backend, &**r)),
            _ => None,
        };
        let burnt_ran = br.burnt.ran().next().is_some();
        let baseline = native_here.or(if burnt_ran { reference } else { None });
        let variant = |v: &VariantRuns| VariantResult {
            unavailable: v.unavailable().map(str::to_string),
            attempts: v.attempts.clone(),
            figures: Figures::of(v.ran()),
        };
        let native = variant(&br.native);
        let burnt = variant(&br.burnt);
        let mut differences = Vec::new();
        let (status, skip_reason) =
            match (baseline, br.native.unavailable(), br.burnt.unavailable()) {
                (None, Some(n), Some(b)) => (
                    Status::Skipped,
                    Some(if n == b {
                        n.to_string()
                    } else {
                        format!("native: {n}; burnt: {b}")
                    }),
                ),
                (None, _, _) if br.native.attempts.is_empty() && br.burnt.attempts.is_empty() => (
                    Status::Skipped,
                    Some("not run (an earlier error stopped compare)".into()),
                ),
                (None, Some(n), _) => (
                    Status::Skipped,
                    Some(format!(
                        "the native kernel cannot start here ({n}) and ran on no other backend"
                    )),
                ),
                (None, None, _) => (
                    Status::Skipped,
                    Some("no run finished (an error stopped compare)".into()),
                ),
                (Some((_, base)), _, _) => {
                    let mut check = |variant: Variant, v: &VariantRuns, skip_first: bool| {
                        for (i, a) in v.attempts.iter().enumerate() {
                            if skip_first && i == 0 {
                                continue;
                            }
                            let d = match a {
                                Attempt::Ran(r) => first_difference(base, r),
                                Attempt::StartFailed(reason) => Some((
                                    DifferenceKind::Start,
                                    None,
                                    Some(end_text(base)),
                                    Some(format!("could not start: {reason}")),
                                )),
                            };
                            if let Some((kind, line, expected, actual)) = d {
                                differences.push(Difference {
                                    variant,
                                    run: i + 1,
                                    kind,
                                    line,
                                    expected,
                                    actual,
                                });
                            }
                        }
                    };
                    // The native runs here are checked against the baseline too (only a native
                    // kernel that cannot start here is exempt: that is the backend's business).
                    if br.native.unavailable().is_none() {
                        check(Variant::Native, &br.native, native_here.is_some());
                    }
                    check(Variant::Burnt, &br.burnt, false);
                    if differences.is_empty() {
                        (Status::Match, None)
                    } else {
                        (Status::Mismatch, None)
                    }
                }
            };
        let ratios = match (&baseline, &burnt.figures) {
            (Some((b, _)), Some(bf)) => {
                let nf = if *b == br.backend {
                    native.figures.clone()
                } else {
                    runs.iter()
                        .find(|x| x.backend == *b)
                        .and_then(|x| Figures::of(x.native.ran()))
                };
                nf.map(|nf| Ratios::of(bf, &nf))
            }
            _ => None,
        };
        results.push(BackendResult {
            backend: br.backend,
            status,
            skip_reason,
            baseline: baseline.map(|(b, _)| b),
            compared_lines: baseline.map_or(0, |(_, r)| r.lines.len()),
            differences,
            native,
            burnt,
            ratios,
        });
    }
    let outcome = if let Some(e) = error {
        Outcome::Error(e)
    } else if results.iter().any(|r| r.status == Status::Mismatch) {
        Outcome::Mismatch
    } else if !results.iter().any(|r| r.status == Status::Match) {
        let reasons: Vec<String> = results
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r.backend.name(),
                    r.skip_reason.as_deref().unwrap_or("?")
                )
            })
            .collect();
        Outcome::Error(format!(
            "no backend could run the kernels ({})",
            if reasons.is_empty() {
                "no backend asked for".to_string()
            } else {
                reasons.join("; ")
            }
        ))
    } else {
        Outcome::Match
    };
    Comparison {
        date: String::new(),
        host: String::new(),
        native: PathBuf::new(),
        burnt: PathBuf::new(),
        identical_files: false,
        runs: 0,
        timeout_s: 0.0,
        memory_mib: 0,
        backends: results,
        outcome,
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_from_unix(secs)
}

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
pub fn utc_from_unix(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
