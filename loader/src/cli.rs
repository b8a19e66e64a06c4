//! The `afterburn-run` command line and its top level: parse, build, run, report, exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::backend::BackendKind;
use crate::builder::{build, VmConfig, DEFAULT_MEMORY_MIB};
use crate::end::EXIT_START_FAILURE;
use crate::host;
use crate::report::{
    start_failure_json, stats_json, summary_line, write_json_atomically, write_report,
    ReportContext,
};
use crate::run::{run, RunOptions};

const EXIT_CODES: &str = "\
Exit codes:
  0-99  the guest's status, written to port 0xf4 (a status above 99 gives 99)
  100   could not start (bad arguments, bad kernel file, no /dev/kvm, backend not available)
  101   triple fault / shutdown
  102   KVM emulation failure or internal error
  103   other unhandled exit
  104   timeout (--timeout)
  105   the guest broke the hypercall ABI (kvm backend)

Also: `afterburn-run compare --native K --burnt K ...` compares two kernels on every backend
and `afterburn-run bench ...` regenerates docs/benchmarks.md (each has --help; see
docs/compare.md). A kernel file named `compare` or `bench` is given as `./compare`.";

/// Runs a guest kernel on KVM.
#[derive(Debug, Parser)]
#[command(name = "afterburn-run", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// How the kernel runs: as it is (bare), deprivileged with the wedge (kvm), or binary
    /// translated (bt).
    #[arg(long, value_enum, default_value = "bare")]
    pub backend: BackendKind,
    /// Guest RAM in MiB.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MEMORY_MIB)]
    pub memory: u64,
    /// Stop the guest after SECS seconds (decimals allowed) and exit with code 104.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Write run statistics as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Print a one-line summary (end, wall time, exits) to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// The kernel: an ELF with a PVH note, a Linux vmlinux, or a bzImage.
    pub kernel: PathBuf,
    /// The kernel command line (words are joined with spaces).
    #[arg(last = true, value_name = "CMDLINE")]
    pub cmdline: Vec<String>,
}

/// Parses `--timeout`: positive, finite seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{s} is not a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s}: {e}"))
}

/// The whole program: returns the exit code.
pub fn main_with_args<I: IntoIterator<Item = OsString>>(args: I) -> u8 {
    let args: Vec<OsString> = args.into_iter().collect();
    match args.get(1).and_then(|a| a.to_str()) {
        Some("compare") => return crate::compare::main(&args[1..]),
        Some("bench") => return crate::compare::bench::main(&args[1..]),
        _ => {}
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                EXIT_START_FAILURE
            } else {
                0
            };
        }
    };
    let host = host::detect();
    let ctx = |setup_time_s| ReportContext {
        kernel: &cli.kernel,
        backend: cli.backend.name(),
        host,
        memory_mib: cli.memory,
        setup_time_s,
    };
    let config = VmConfig {
        kernel: cli.kernel.clone(),
        memory_mib: cli.memory,
        cmdline: if cli.cmdline.is_empty() {
            None
        } else {
            Some(cli.cmdline.join(" "))
        },
        backend: cli.backend,
    };
    let t0 = Instant::now();
    let machine = match build(&config, std::io::stdout()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("afterburn-run: cannot start: {e}");
            if let Some(p) = &cli.stats_json {
                if let Err(we) =
                    write_json_atomically(p, &start_failure_json(&e.to_string(), &ctx(0.0)))
                {
                    eprintln!("afterburn-run: cannot write {}: {we}", p.display());
                }
            }
            return EXIT_START_FAILURE;
        }
    };
    let setup = t0.elapsed().as_secs_f64();
    let outcome = run(
        machine,
        &RunOptions {
            timeout: cli.timeout,
        },
    );
    let _ = std::io::stdout().flush();
    let mut err = std::io::stderr().lock();
    let _ = write_report(&outcome, &mut err);
    if cli.verbose {
        let _ = writeln!(err, "{}", summary_line(&outcome));
    }
    if let Some(p) = &cli.stats_json {
        if let Err(e) = write_json_atomically(p, &stats_json(&outcome, &ctx(setup))) {
            let _ = writeln!(err, "afterburn-run: cannot write {}: {e}", p.display());
        }
    }
    outcome.end.exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_timeout("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("inf").is_err());
        assert!(parse_timeout("soon").is_err());
    }

    #[test]
    fn arguments() {
        let c = Cli::try_parse_from(["afterburn-run", "--memory", "64", "k", "--", "a=1", "b"])
            .unwrap();
        assert_eq!(c.memory, 64);
        assert_eq!(c.backend, BackendKind::Bare);
        assert_eq!(c.kernel, PathBuf::from("k"));
        assert_eq!(c.cmdline, vec!["a=1", "b"]);
        let c = Cli::try_parse_from(["afterburn-run", "--backend", "kvm", "k"]).unwrap();
        assert_eq!(c.backend, BackendKind::Kvm);
        assert!(Cli::try_parse_from(["afterburn-run"]).is_err());
        assert!(Cli::try_parse_from(["afterburn-run", "--backend", "xen", "k"]).is_err());
    }

    #[test]
    fn bad_arguments_exit_100() {
        assert_eq!(
            main_with_args([
                "afterburn-run".into(),
                "--memory".into(),
                "x".into(),
                "k".into()
            ]),
            100
        );
        assert_eq!(main_with_args(["afterburn-run".into(), "--help".into()]), 0);
    }
}
