//! The kvm backend's benchmark: every example kernel, native on `--backend bare` (the guest
//! kernel at CPL0, which a PVM host emulates instruction by instruction) against afterburnt on
//! `--backend kvm` (the kernel deprivileged at CPL3 with the wedge), in one run:
//!
//! 1. the microbench table (cycles per operation, the kernel's own rdtsc figures);
//! 2. each kernel's wall time (the guest's run time from the stats JSON) and the ratio;
//! 3. exits, emulated instructions, and console exits per byte of serial output;
//! 4. the issue's goals, each with the measured figure it is judged on.
//!
//! ```text
//! cargo build --release -p afterburn-loader
//! cargo run -p afterburn-examples --bin afterburn-guests -- --afterburner PATH
//! cargo run --release -p afterburn-wedge --example kvm-bench -- [--runs N]
//!     [--afterburn-run target/release/afterburn-run] [--guests target/guests]
//! ```
//! Medians over the runs (default 5); native and afterburnt runs interleaved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const KERNELS: &[&str] = &["hello", "interrupts", "paging", "microbench", "workload"];

struct Args {
    runs: usize,
    loader: PathBuf,
    guests: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        runs: 5,
        loader: PathBuf::from("target/release/afterburn-run"),
        guests: PathBuf::from("target/guests"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--runs" => {
                a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?;
                if a.runs == 0 {
                    return Err("--runs must be at least 1".into());
                }
            }
            "--afterburn-run" => a.loader = PathBuf::from(value()?),
            "--guests" => a.guests = PathBuf::from(value()?),
            "-h" | "--help" => {
                return Err(
                    "usage: kvm-bench [--runs N] [--afterburn-run PATH] [--guests DIR]".into(),
                )
            }
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    Ok(a)
}

/// One run's results.
struct Run {
    stdout: String,
    stats: serde_json::Value,
}

fn run(loader: &Path, backend: &str, kernel: &Path) -> Result<Run, String> {
    let dir = std::env::temp_dir().join(format!("kvm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let json = dir.join("stats.json");
    let out = Command::new(loader)
        .args(["--backend", backend, "--timeout", "60", "--stats-json"])
        .arg(&json)
        .arg(kernel)
        .output()
        .map_err(|e| format!("{}: {e}", loader.display()))?;
    if out.status.code() != Some(0) {
        return Err(format!(
            "{} --backend {backend} {}: exit {:?}\n{}",
            loader.display(),
            kernel.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stats = std::fs::read_to_string(&json).map_err(|e| e.to_string())?;
    Ok(Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stats: serde_json::from_str(&stats).map_err(|e| e.to_string())?,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn figures(runs: &[Run]) -> BTreeMap<String, Vec<f64>> {
    let mut m: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in runs {
        for line in r.stdout.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if w.len() == 3 && w[0] == "bench" {
                if let Ok(v) = w[2].parse::<f64>() {
                    m.entry(w[1].to_string()).or_default().push(v);
                }
            }
        }
    }
    m
}

fn stat(runs: &[Run], f: impl Fn(&serde_json::Value) -> Option<f64>) -> f64 {
    median(runs.iter().filter_map(|r| f(&r.stats)).collect())
}

fn num(v: &serde_json::Value, path: &[&str]) -> Option<f64> {
    let mut v = v;
    for p in path {
        v = v.get(p)?;
    }
    v.as_f64()
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kvm-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let mut results = Vec::new();
    for k in KERNELS {
        let native = args.guests.join("native").join(k);
        let burnt = args.guests.join("burnt").join(k);
        if !native.is_file() || !burnt.is_file() {
            eprintln!(
                "kvm-bench: {} or {} is missing (build them: cargo run -p afterburn-examples \
                 --bin afterburn-guests -- --afterburner PATH)",
                native.display(),
                burnt.display()
            );
            return ExitCode::from(2);
        }
        let (mut bare, mut kvm) = (Vec::new(), Vec::new());
        for i in 0..args.runs {
            eprintln!("kvm-bench: {k} run {}/{}", i + 1, args.runs);
            match (
                run(&args.loader, "bare", &native),
                run(&args.loader, "kvm", &burnt),
            ) {
                (Ok(b), Ok(v)) => {
                    bare.push(b);
                    kvm.push(v);
                }
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("kvm-bench: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let same = bare.iter().chain(kvm.iter()).all(|r| {
            r.stdout
                .lines()
                .filter(|l| !l.starts_with("bench "))
                .eq(bare[0].stdout.lines().filter(|l| !l.starts_with("bench ")))
        });
        results.push((*k, bare, kvm, same));
    }

    let host = results[0].1[0].stats["host"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    println!(
        "# kvm backend benchmark (host kind `{host}`, {} runs, medians)\n",
        args.runs
    );
    // 1. microbench.
    let (_, bare, kvm, _) = results.iter().find(|r| r.0 == "microbench").unwrap();
    let (fb, fk) = (figures(bare), figures(kvm));
    println!("## microbench: cycles per operation\n");
    println!(
        "| op | native on bare (CPL0, emulated) | afterburnt on kvm (CPL3 + wedge) | bare / kvm |"
    );
    println!("|---|--:|--:|--:|");
    let mut ops = BTreeMap::new();
    for (name, vb) in &fb {
        let b = median(vb.clone());
        let k = median(fk.get(name).cloned().unwrap_or_default());
        ops.insert(name.clone(), (b, k));
        println!("| {name} | {b:.0} | {k:.0} | {:.1} |", b / k.max(1.0));
    }
    // 2 + 3. per kernel.
    println!("\n## whole kernels\n");
    println!(
        "| kernel | same output | wall ms bare | wall ms kvm | bare / kvm | emulated insns bare | kvm \
         | exits bare | kvm | userspace exits bare | kvm | serial bytes | console exits kvm | bytes per console exit |"
    );
    println!("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mut total_bytes = 0.0;
    let mut total_flushes = 0.0;
    let mut ratios = Vec::new();
    for (k, bare, kvm, same) in &results {
        let wall = |r: &[Run]| stat(r, |s| num(s, &["wall_time_s"]).map(|v| v * 1000.0));
        let emu = |r: &[Run]| stat(r, |s| num(s, &["insn_emulation"]));
        let exits = |r: &[Run]| stat(r, |s| num(s, &["exits"]));
        let user = |r: &[Run]| {
            stat(r, |s| {
                let u = s.get("userspace_exits")?;
                Some(
                    ["io_in", "io_out", "mmio_read", "mmio_write"]
                        .iter()
                        .filter_map(|n| u.get(n)?.as_f64())
                        .sum(),
                )
            })
        };
        let bytes = stat(kvm, |s| num(s, &["serial_bytes"]));
        let flushes = stat(kvm, |s| num(s, &["backend_stats", "console_flushes"]));
        let (wb, wk) = (wall(bare), wall(kvm));
        ratios.push((*k, wb / wk));
        total_bytes += bytes;
        total_flushes += flushes;
        println!(
            "| {k} | {} | {wb:.2} | {wk:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {bytes:.0} | {flushes:.0} | {:.0} |",
            if *same { "yes" } else { "**no**" },
            wb / wk,
            emu(bare),
            emu(kvm),
            exits(bare),
            exits(kvm),
            user(bare),
            user(kvm),
            bytes / flushes.max(1.0)
        );
    }
    // 4. goals.
    println!("\n## goals (issue 4)\n");
    let best = ratios
        .iter()
        .map(|r| format!("{} {:.2}x", r.0, r.1))
        .collect::<Vec<_>>()
        .join(", ");
    let all_ratio = results
        .iter()
        .map(|(_, b, _, _)| stat(b, |s| num(s, &["wall_time_s"])))
        .sum::<f64>()
        / results
            .iter()
            .map(|(_, _, k, _)| stat(k, |s| num(s, &["wall_time_s"])))
            .sum::<f64>();
    println!(
        "- whole-kernel wall-time ratio (bare / kvm) >= 100x: {best}; all four together \
         {all_ratio:.2}x"
    );
    let get = |n: &str| ops.get(n).copied().unwrap_or((f64::NAN, f64::NAN));
    let (_, clisti) = get("clisti");
    let (_, pushfpopf) = get("pushfpopf");
    let (_, callret) = get("callret");
    println!(
        "- cli/sti/pushf/popf <= 2x a plain register instruction: cli+sti {clisti:.0} cycles per \
         pair, pushf+pop+push+popf {pushfpopf:.0} cycles (a call+ret loop iteration: \
         {callret:.0}; native pushf+pop+push+popf at CPL3 on this CPU: ~21, popf alone ~20)"
    );
    for op in ["cpuid", "rdtsc", "in"] {
        let (b, k) = get(op);
        println!(
            "- {op} >= 10x cheaper than the trapping path: {b:.0} -> {k:.0} cycles ({:.0}x)",
            b / k.max(1.0)
        );
    }
    println!(
        "- <= 1 userspace exit per 64 bytes of serial output: {total_flushes:.0} console exits \
         for {total_bytes:.0} bytes over the four kernels (one per {:.0} bytes)",
        total_bytes / total_flushes.max(1.0)
    );
    if results.iter().all(|r| r.3) {
        ExitCode::SUCCESS
    } else {
        eprintln!("kvm-bench: some kernel printed different deterministic lines on kvm");
        ExitCode::from(1)
    }
}
