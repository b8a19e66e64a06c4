//! The compare report as JSON (schema `afterburn-compare/1`) and as Markdown. Both shapes are
//! specified in docs/compare.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::{
    Attempt, BackendResult, Comparison, Figures, Outcome, Ratios, Status, Summary, VariantResult,
    COMPARE_SCHEMA,
};

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so
/// `path` is never half-written.
pub fn write_text_atomically(path: &Path, text: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------------
// JSON

/// A figure as JSON: integral values as integers (counters stay counts), others as floats.
fn n(v: f64) -> Value {
    if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
        json!(v as u64)
    } else {
        json!(v)
    }
}

fn summary_json(s: &Summary) -> Value {
    json!({"min": n(s.min), "median": n(s.median), "max": n(s.max),
           "values": s.values.iter().map(|v| n(*v)).collect::<Vec<_>>()})
}

fn summaries_json(m: &BTreeMap<String, Summary>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, s)| (k.clone(), summary_json(s)))
            .collect::<Map<_, _>>(),
    )
}

fn figures_json(f: &Figures) -> Value {
    json!({
        "wall_time_s": summary_json(&f.wall_time_s),
        "process_time_s": summary_json(&f.process_time_s),
        "serial_bytes": summary_json(&f.serial_bytes),
        "insn_emulation": f.insn_emulation.as_ref().map(summary_json),
        "exits": summaries_json(&f.exits),
        "userspace_exits": summaries_json(&f.userspace_exits),
        "bench": f.bench.iter().map(|(name, s)| {
            let mut o = summary_json(s);
            o["name"] = json!(name);
            o
        }).collect::<Vec<_>>(),
    })
}

fn attempt_json(i: usize, a: &Attempt) -> Value {
    match a {
        Attempt::Ran(r) => json!({
            "run": i + 1,
            "started": true,
            "exit_code": r.exit_code,
            "end_reason": r.end_reason,
            "description": r.end_description,
            "wall_time_s": r.wall_time_s,
            "process_time_s": r.process_time_s,
            "serial_bytes": r.serial_bytes,
            "insn_emulation": r.insn_emulation,
        }),
        Attempt::StartFailed(reason) => json!({
            "run": i + 1,
            "started": false,
            "exit_code": crate::end::EXIT_START_FAILURE,
            "end_reason": "start_failure",
            "description": reason,
            "wall_time_s": null,
            "process_time_s": null,
            "serial_bytes": null,
            "insn_emulation": null,
        }),
    }
}

fn variant_json(v: &VariantResult) -> Value {
    json!({
        "unavailable": v.unavailable,
        "runs": v.attempts.iter().enumerate().map(|(i, a)| attempt_json(i, a)).collect::<Vec<_>>(),
        "figures": v.figures.as_ref().map(figures_json),
    })
}

fn ratios_json(r: &Ratios) -> Value {
    let map = |m: &BTreeMap<String, Option<f64>>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({
        "wall_time_s": r.wall_time_s,
        "process_time_s": r.process_time_s,
        "serial_bytes": r.serial_bytes,
        "insn_emulation": r.insn_emulation,
        "exits": map(&r.exits),
        "userspace_exits": map(&r.userspace_exits),
        "bench": r.bench.iter().map(|(name, v)| json!({"name": name, "ratio": v}))
            .collect::<Vec<_>>(),
    })
}

fn backend_json(b: &BackendResult) -> Value {
    json!({
        "backend": b.backend.name(),
        "status": b.status.name(),
        "skip_reason": b.skip_reason,
        "baseline": b.baseline.map(|x| x.name()),
        "compared_lines": b.compared_lines,
        "differences": b.differences.iter().map(|d| json!({
            "variant": d.variant.name(),
            "run": d.run,
            "kind": d.kind.name(),
            "line": d.line,
            "expected": d.expected,
            "actual": d.actual,
        })).collect::<Vec<_>>(),
        "native": variant_json(&b.native),
        "burnt": variant_json(&b.burnt),
        "ratios": b.ratios.as_ref().map(ratios_json),
    })
}

/// The JSON report (schema `afterburn-compare/1`, docs/compare.md).
pub fn json(c: &Comparison) -> Value {
    json!({
        "schema": COMPARE_SCHEMA,
        "date": c.date,
        "host": c.host,
        "native": c.native.display().to_string(),
        "burnt": c.burnt.display().to_string(),
        "identical_files": c.identical_files,
        "runs": c.runs,
        "timeout_s": c.timeout_s,
        "memory_mib": c.memory_mib,
        "result": c.outcome.name(),
        "exit_code": c.exit_code(),
        "error": match &c.outcome { Outcome::Error(e) => Some(e.as_str()), _ => None },
        "backends": c.backends.iter().map(backend_json).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------------------------------------
// Markdown

/// Guest text as a Markdown code span: control characters as `\xNN`, at most 160 characters,
/// a fence longer than any run of backticks inside, `|` escaped (for table cells).
pub fn code(s: &str) -> String {
    let mut clean = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == 160 {
            clean.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(clean, "\\x{:02x}", u32::from(c));
        } else if c == '|' {
            clean.push_str("\\|");
        } else {
            clean.push(c);
        }
    }
    let mut longest = 0;
    let mut run = 0;
    for c in clean.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if clean.is_empty() {
        return "(empty line)".into();
    }
    let pad = if clean.starts_with('`') || clean.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{clean}{pad}{fence}")
}

/// A figure with thousands separators: integers (and anything of 100 or more, rounded) as
/// integers, smaller fractions with 2 decimals.
pub fn num(v: f64) -> String {
    let v = if v.abs() >= 100.0 { v.round() } else { v };
    if v.fract() == 0.0 && v.abs() < 1e15 {
        let s = format!("{}", v.abs() as u64);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            out.insert(0, '-');
        }
        out
    } else {
        format!("{v:.2}")
    }
}

/// Seconds as milliseconds with 2 decimals.
pub fn ms(s: f64) -> String {
    format!("{:.2}", s * 1000.0)
}

/// A ratio with 2 decimals, or `–`.
pub fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}"))
}

fn exit_codes(v: &VariantResult) -> String {
    if v.unavailable.is_some() {
        return "cannot start".into();
    }
    let codes: Vec<String> = v
        .attempts
        .iter()
        .map(|a| match a {
            Attempt::Ran(r) => r.exit_code.to_string(),
            Attempt::StartFailed(_) => "100".into(),
        })
        .collect();
    if codes.is_empty() {
        return "–".into();
    }
    if codes.iter().all(|c| *c == codes[0]) {
        codes[0].clone()
    } else {
        codes.join(" ")
    }
}

fn median_of(s: Option<&Summary>) -> String {
    s.map_or("–".into(), |s| num(s.median))
}

/// A short name for the compared kernels: the file name, or both when they differ.
pub fn title(c: &Comparison) -> String {
    let n = c.native.file_name().map(|x| x.to_string_lossy());
    let b = c.burnt.file_name().map(|x| x.to_string_lossy());
    match (n, b) {
        (Some(n), Some(b)) if n == b => n.into_owned(),
        (Some(n), Some(b)) => format!("{n} vs {b}"),
        _ => c.native.display().to_string(),
    }
}

/// The Markdown report (shape in docs/compare.md).
pub fn markdown(c: &Comparison) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## compare: {}\n", code(&title(c)));
    let _ = writeln!(
        o,
        "native {} · burnt {} · host `{}` · {} run{} of each per backend, interleaved · {}\n",
        code(&c.native.display().to_string()),
        code(&c.burnt.display().to_string()),
        c.host,
        c.runs,
        if c.runs == 1 { "" } else { "s" },
        c.date
    );
    let verdict = match &c.outcome {
        Outcome::Match => "**match** (exit code 0): identical deterministic output and ends \
                           on every backend that ran"
            .to_string(),
        Outcome::Mismatch => "**MISMATCH** (exit code 1): the kernels behaved differently \
                              (first differing line of each run below)"
            .to_string(),
        Outcome::Error(e) => format!("**ERROR** (exit code 2): {e}"),
    };
    let _ = writeln!(o, "Result: {verdict}.\n");
    if c.identical_files {
        let _ = writeln!(
            o,
            "Note: the two kernel files are identical (no afterburnt build was compared).\n"
        );
    }
    if c.backends.is_empty() {
        return o;
    }
    let _ = writeln!(
        o,
        "| backend | result | baseline | lines | exit native | exit burnt | wall ms native | \
         wall ms burnt | ratio | exits native | exits burnt | ratio | emulated native | \
         emulated burnt | ratio |"
    );
    let _ = writeln!(
        o,
        "|---|---|---|--:|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for b in &c.backends {
        let nf = b.native.figures.as_ref();
        let bf = b.burnt.figures.as_ref();
        let r = b.ratios.as_ref();
        if b.status == Status::Skipped {
            let _ = writeln!(
                o,
                "| {} | skipped | | | | | | | | | | | | | |",
                b.backend.name()
            );
            continue;
        }
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            b.backend.name(),
            if b.status == Status::Mismatch {
                "**MISMATCH**"
            } else {
                "match"
            },
            b.baseline.map_or("–", |x| x.name()),
            b.compared_lines,
            exit_codes(&b.native),
            exit_codes(&b.burnt),
            nf.map_or("–".into(), |f| ms(f.wall_time_s.median)),
            bf.map_or("–".into(), |f| ms(f.wall_time_s.median)),
            ratio(r.and_then(|r| r.wall_time_s)),
            median_of(nf.and_then(|f| f.exits.get("exits"))),
            median_of(bf.and_then(|f| f.exits.get("exits"))),
            ratio(r.and_then(|r| r.exits.get("exits").copied().flatten())),
            median_of(nf.and_then(|f| f.insn_emulation.as_ref())),
            median_of(bf.and_then(|f| f.insn_emulation.as_ref())),
            ratio(r.and_then(|r| r.insn_emulation)),
        );
    }
    let _ = writeln!(
        o,
        "\nMedians over the runs; ratio = burnt / native on the baseline backend (the same \
         backend unless the native kernel cannot start there); `emulated` = `insn_emulation`.\n"
    );
    let skipped: Vec<&BackendResult> = c
        .backends
        .iter()
        .filter(|b| b.status == Status::Skipped)
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(o, "Skipped backends:\n");
        for b in skipped {
            let _ = writeln!(
                o,
                "- `{}`: {}",
                b.backend.name(),
                b.skip_reason.as_deref().unwrap_or("?")
            );
        }
        let _ = writeln!(o);
    }
    let diffs: Vec<(&BackendResult, &super::Difference)> = c
        .backends
        .iter()
        .flat_map(|b| b.differences.iter().map(move |d| (b, d)))
        .collect();
    if !diffs.is_empty() {
        let _ = writeln!(
            o,
            "Differences (the first of each run that differs from the baseline's first native \
             run):\n"
        );
        for (b, d) in diffs {
            let place = match d.line {
                Some(l) => format!(", line {l}"),
                None => String::new(),
            };
            let side = |s: &Option<String>| match s {
                Some(s) if d.kind == super::DifferenceKind::Output => code(s),
                Some(s) => s.clone(),
                None => "(no such line)".into(),
            };
            let _ = writeln!(
                o,
                "- `{}`, {} run {}, {}{}: native {} / {} {}",
                b.backend.name(),
                d.variant.name(),
                d.run,
                d.kind.name(),
                place,
                side(&d.expected),
                d.variant.name(),
                side(&d.actual)
            );
        }
        let _ = writeln!(o);
    }
    let ran: Vec<&BackendResult> = c
        .backends
        .iter()
        .filter(|b| b.status != Status::Skipped)
        .collect();
    bench_table(&mut o, &ran);
    exits_table(&mut o, &ran);
    o
}

fn header(o: &mut String, first: &str, ran: &[&BackendResult]) {
    let _ = write!(o, "| {first} |");
    for b in ran {
        let n = b.backend.name();
        let _ = write!(o, " {n} native | {n} burnt | ratio |");
    }
    let _ = write!(o, "\n|---|");
    for _ in ran {
        let _ = write!(o, "--:|--:|--:|");
    }
    let _ = writeln!(o);
}

fn bench_table(o: &mut String, ran: &[&BackendResult]) {
    let mut names: Vec<&str> = Vec::new();
    for b in ran {
        for f in [&b.native.figures, &b.burnt.figures].into_iter().flatten() {
            for (n, _) in &f.bench {
                if !names.contains(&n.as_str()) {
                    names.push(n);
                }
            }
        }
    }
    if names.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "Timing lines (`bench <name> <value>`, median over the runs; for the microbench \
         kernel: cycles per operation):\n"
    );
    header(o, "bench", ran);
    for n in names {
        let _ = write!(o, "| {} |", code(n));
        for b in ran {
            let get = |f: &Option<Figures>| {
                f.as_ref()
                    .and_then(|f| f.bench.iter().find(|(m, _)| m == n))
                    .map(|(_, s)| num(s.median))
                    .unwrap_or("–".into())
            };
            let r = b
                .ratios
                .as_ref()
                .and_then(|r| r.bench.iter().find(|(m, _)| m == n))
                .and_then(|(_, r)| *r);
            let _ = write!(
                o,
                " {} | {} | {} |",
                get(&b.native.figures),
                get(&b.burnt.figures),
                ratio(r)
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o);
}

fn exits_table(o: &mut String, ran: &[&BackendResult]) {
    // Rows: KVM exit kinds, then the loader's userspace exits; only kinds that are not zero
    // everywhere.
    let mut rows: Vec<(String, bool)> = Vec::new();
    for b in ran {
        for f in [&b.native.figures, &b.burnt.figures].into_iter().flatten() {
            for (m, user) in [(&f.exits, false), (&f.userspace_exits, true)] {
                for (k, s) in m {
                    if s.max != 0.0 && !rows.iter().any(|(r, u)| r == k && *u == user) {
                        rows.push((k.clone(), user));
                    }
                }
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let _ = writeln!(
        o,
        "Exits by kind (median; KVM's counters, then `userspace` = exits the loader handled; \
         kinds that were 0 in every run left out):\n"
    );
    header(o, "exit kind", ran);
    for (k, user) in rows {
        let label = if user {
            format!("userspace {k}")
        } else {
            k.clone()
        };
        let _ = write!(o, "| {label} |");
        for b in ran {
            let get = |f: &Option<Figures>| {
                f.as_ref()
                    .and_then(|f| {
                        if user {
                            f.userspace_exits.get(&k)
                        } else {
                            f.exits.get(&k)
                        }
                    })
                    .map_or("–".into(), |s| num(s.median))
            };
            let r = b.ratios.as_ref().and_then(|r| {
                if user {
                    r.userspace_exits.get(&k).copied().flatten()
                } else {
                    r.exits.get(&k).copied().flatten()
                }
            });
            let _ = write!(
                o,
                " {} | {} | {} |",
                get(&b.native.figures),
                get(&b.burnt.figures),
                ratio(r)
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o);
}
