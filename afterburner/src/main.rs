//! The `afterburner` command line.
//!
//! ```text
//! afterburner scan [--json] FILE...
//! afterburner burn [--json] INPUT... (-o OUTPUT | --in-place)
//! ```
//!
//! Exit status: 0 when every file succeeded, 2 when any failed (each failure is printed with
//! its file, section and offset), 2 also for usage errors.

use afterburner::burn::Options;
use afterburner::error::Error;
use afterburner::report::{Report, Summary};
use afterburner::scan::{scan_file, ScanReport};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "afterburner",
    version,
    about = "Scan, pad and annotate virtualization-sensitive instructions in x86-64 ELF objects"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every sensitive site (relocatable objects, .ko modules, executables).
    Scan {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// ELF files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Pad every sensitive site and record it in `.afterburn` (relocatable objects).
    Burn(BurnArgs),
    /// Check that BURNT is ORIGINAL with padded, annotated sensitive instructions and nothing
    /// else (exit 0 equivalent, 1 differences, 2 error). `afterburner verify --help` for options.
    #[command(disable_help_flag = true)]
    Verify {
        /// [--realign] [--show N] ORIGINAL BURNT
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Args)]
struct BurnArgs {
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Output file (one input) or existing directory (several inputs).
    #[arg(
        short,
        long,
        conflicts_with = "in_place",
        required_unless_present = "in_place"
    )]
    output: Option<PathBuf>,
    /// Rewrite each input in place (atomically).
    #[arg(long)]
    in_place: bool,
    /// Relocatable objects (`.o`, `.ko`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::Scan { json, files } => scan(json, &files),
        Command::Burn(args) => burn(&args),
        Command::Verify { args } => {
            let code = afterburner::verify::main_entry(&args);
            ExitCode::from(u8::try_from(code).unwrap_or(2))
        }
    }
}

fn progress(n: usize) -> Option<ProgressBar> {
    if n < 2 || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = ProgressBar::new(n as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        pb.set_style(style);
    }
    Some(pb)
}

#[derive(Serialize)]
struct ScanOut<'a> {
    file: &'a Path,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a ScanReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn scan(json: bool, files: &[PathBuf]) -> ExitCode {
    let results: Vec<Result<ScanReport, Error>> = files.par_iter().map(|f| scan_file(f)).collect();
    let mut failed = false;
    if json {
        let out: Vec<ScanOut<'_>> = files
            .iter()
            .zip(&results)
            .map(|(f, r)| ScanOut {
                file: f,
                report: r.as_ref().ok(),
                error: r.as_ref().err().map(|e| e.to_string()),
            })
            .collect();
        failed = results.iter().any(|r| r.is_err());
        match serde_json::to_string_pretty(&out) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            eprintln!("error: {r}");
        }
    } else {
        let mut totals = std::collections::BTreeMap::<&str, u64>::new();
        for (f, r) in files.iter().zip(&results) {
            match r {
                Ok(rep) => {
                    for s in &rep.sites {
                        println!(
                            "{}: {}+{:#x} {} {:<12} {:<30} {}",
                            f.display(),
                            s.section,
                            s.offset,
                            s.location,
                            s.kind,
                            s.bytes,
                            s.text
                        );
                    }
                    for (k, n) in &rep.totals {
                        *totals.entry(k).or_default() += n;
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
        }
        let total: u64 = totals.values().sum();
        println!("{total} site(s)");
        for (k, n) in &totals {
            println!("  {k:<12} {n}");
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

#[derive(Serialize)]
struct BurnOut {
    input: PathBuf,
    output: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct BurnJson {
    summary: Summary,
    seconds: f64,
    files: Vec<BurnOut>,
}

fn burn(args: &BurnArgs) -> ExitCode {
    let start = Instant::now();
    // Output paths.
    let outputs: Vec<PathBuf> = if args.in_place {
        args.inputs.clone()
    } else {
        let Some(out) = &args.output else {
            eprintln!("error: give -o OUTPUT or --in-place");
            return ExitCode::from(2);
        };
        if args.inputs.len() == 1 && !out.is_dir() {
            vec![out.clone()]
        } else if out.is_dir() {
            let mut v = Vec::with_capacity(args.inputs.len());
            for i in &args.inputs {
                match i.file_name() {
                    Some(n) => v.push(out.join(n)),
                    None => {
                        eprintln!("error: {}: not a file name", i.display());
                        return ExitCode::from(2);
                    }
                }
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = v.iter().find(|p| !seen.insert(p.as_path())) {
                eprintln!(
                    "error: two inputs would both be written to {}",
                    dup.display()
                );
                return ExitCode::from(2);
            }
            v
        } else {
            eprintln!(
                "error: with several inputs, -o must name an existing directory ({} is not one)",
                out.display()
            );
            return ExitCode::from(2);
        }
    };
    let opts = Options::new();
    let pb = progress(args.inputs.len());
    let results: Vec<Result<Report, Error>> = args
        .inputs
        .par_iter()
        .zip(&outputs)
        .map(|(input, output)| {
            let r = burn_one(input, output, &opts);
            if let Some(pb) = &pb {
                pb.inc(1);
                if let Err(e) = &r {
                    pb.println(format!("error: {e}"));
                }
            }
            r
        })
        .collect();
    if let Some(pb) = &pb {
        pb.finish_and_clear();
    }
    let mut summary = Summary::default();
    for (input, r) in args.inputs.iter().zip(&results) {
        match r {
            Ok(rep) => {
                summary.add(rep);
                for n in &rep.notes {
                    eprintln!("warning: {}: {n}", input.display());
                }
            }
            Err(e) => {
                summary.add_failure();
                if pb.is_none() {
                    eprintln!("error: {e}");
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if args.json {
        let files = args
            .inputs
            .iter()
            .zip(&outputs)
            .zip(results)
            .map(|((i, o), r)| {
                let (report, error) = match r {
                    Ok(rep) => (Some(rep), None),
                    Err(e) => (None, Some(e.to_string())),
                };
                BurnOut {
                    input: i.clone(),
                    output: o.clone(),
                    report,
                    error,
                }
            })
            .collect();
        let failed = summary.failed;
        match serde_json::to_string_pretty(&BurnJson {
            summary,
            seconds,
            files,
        }) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        if failed > 0 {
            return ExitCode::from(2);
        }
        return ExitCode::SUCCESS;
    }
    print!("{}", summary.text());
    println!("time: {seconds:.3} s");
    if summary.failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn burn_one(input: &Path, output: &Path, opts: &Options) -> Result<Report, Error> {
    afterburner::burn::burn_file(input, output, opts)
}
