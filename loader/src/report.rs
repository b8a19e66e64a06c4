//! What `afterburn-run` tells the user: the stats JSON (`--stats-json`) and the diagnostic
//! report on stderr. The JSON schema is documented in docs/loader.md.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use crate::end::EndReason;
use crate::host::HostKind;
use crate::run::RunOutcome;

/// The `schema` field of the stats JSON.
pub const STATS_SCHEMA: &str = "afterburn-run-stats/1";

/// Stats-fd counters copied to the top level of the JSON when the host has them.
pub const WELL_KNOWN_STATS: [&str; 5] = [
    "exits",
    "io_exits",
    "halt_exits",
    "insn_emulation",
    "mmio_exits",
];

/// What the report knows besides the run itself.
#[derive(Clone, Debug)]
pub struct ReportContext<'a> {
    /// The kernel file as given.
    pub kernel: &'a Path,
    /// The backend asked for.
    pub backend: &'a str,
    /// The host's kind of KVM.
    pub host: HostKind,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Seconds spent building the machine.
    pub setup_time_s: f64,
}

/// The stats JSON of a run.
pub fn stats_json(o: &RunOutcome, ctx: &ReportContext<'_>) -> Value {
    let mut top = Map::new();
    top.insert("schema".into(), json!(STATS_SCHEMA));
    top.insert("kernel".into(), json!(ctx.kernel.display().to_string()));
    top.insert("backend".into(), json!(o.backend));
    top.insert("boot_protocol".into(), json!(o.boot.protocol.name()));
    top.insert("host".into(), json!(ctx.host.name()));
    top.insert("memory_mib".into(), json!(ctx.memory_mib));
    top.insert("cmdline".into(), json!(o.boot.cmdline));
    top.insert("end".into(), end_json(&o.end));
    top.insert("guest_status".into(), json!(o.end.guest_status()));
    top.insert("exit_code".into(), json!(o.end.exit_code()));
    top.insert("wall_time_s".into(), json!(o.run_time.as_secs_f64()));
    top.insert("setup_time_s".into(), json!(ctx.setup_time_s));
    top.insert("serial_bytes".into(), json!(o.serial_bytes));
    top.insert("serial_bytes_lost".into(), json!(o.serial_lost));
    if !o.backend_stats.is_empty() {
        let b: Map<String, Value> = o
            .backend_stats
            .iter()
            .map(|(k, v)| ((*k).to_string(), json!(v)))
            .collect();
        top.insert("backend_stats".into(), Value::Object(b));
    }
    let mut kvm = Map::new();
    match &o.kvm_stats {
        Ok(stats) => {
            for s in stats {
                let v = if s.values.len() == 1 {
                    json!(s.values[0])
                } else {
                    json!(s.values)
                };
                kvm.insert(s.name.clone(), v);
            }
            for name in WELL_KNOWN_STATS {
                if let Some(v) = kvm.get(name) {
                    top.insert(name.into(), v.clone());
                }
            }
        }
        Err(e) => {
            top.insert("kvm_stats_error".into(), json!(e));
        }
    }
    top.insert(
        "userspace_exits".into(),
        json!({
            "io_in": o.exits.io_in,
            "io_out": o.exits.io_out,
            "mmio_read": o.exits.mmio_read,
            "mmio_write": o.exits.mmio_write,
            "interrupted": o.exits.interrupted,
        }),
    );
    top.insert(
        "unhandled".into(),
        json!({
            "io_reads": o.unhandled.io_reads,
            "io_writes": o.unhandled.io_writes,
            "mmio_reads": o.unhandled.mmio_reads,
            "mmio_writes": o.unhandled.mmio_writes,
            "delay_port_writes": o.unhandled.delay_port_writes,
        }),
    );
    let ports: Map<String, Value> = o
        .unhandled_ports
        .iter()
        .map(|(p, c)| {
            (
                format!("{p:#06x}"),
                json!({"reads": c.reads, "writes": c.writes}),
            )
        })
        .collect();
    top.insert("unhandled_ports".into(), Value::Object(ports));
    top.insert("kvm_stats".into(), Value::Object(kvm));
    top.insert(
        "registers".into(),
        o.registers.as_ref().map_or(Value::Null, |r| r.to_json()),
    );
    Value::Object(top)
}

fn end_json(end: &EndReason) -> Value {
    let mut e = json!({
        "reason": end.name(),
        "description": end.describe(),
        "exit_code": end.exit_code(),
        "guest_status": end.guest_status(),
    });
    if let EndReason::InternalError { suberror, data } = end {
        e["suberror"] = json!(suberror);
        e["data"] = json!(data);
    }
    e
}

/// The stats JSON when the machine could not even be built (exit code 100).
pub fn start_failure_json(error: &str, ctx: &ReportContext<'_>) -> Value {
    json!({
        "schema": STATS_SCHEMA,
        "kernel": ctx.kernel.display().to_string(),
        "backend": ctx.backend,
        "host": ctx.host.name(),
        "memory_mib": ctx.memory_mib,
        "end": {
            "reason": "start_failure",
            "description": error,
            "exit_code": crate::end::EXIT_START_FAILURE,
            "guest_status": null,
        },
        "guest_status": null,
        "exit_code": crate::end::EXIT_START_FAILURE,
    })
}

/// Writes `value` to `path` through a temporary file in the same directory and a rename, so
/// `path` is never half-written.
pub fn write_json_atomically(path: &Path, value: &Value) -> io::Result<()> {
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
        let mut f = fs::File::create(&tmp)?;
        serde_json::to_writer_pretty(&mut f, value)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the diagnostic report of an abnormal end (reason, registers, last serial lines), or
/// the note about a status above 99.
pub fn write_report(o: &RunOutcome, w: &mut dyn Write) -> io::Result<()> {
    if !o.end.is_abnormal() {
        if o.end.guest_status().is_some_and(|s| s > 99) {
            writeln!(w, "afterburn-run: {}", o.end.describe())?;
        }
        return Ok(());
    }
    writeln!(w, "afterburn-run: {}", o.end.describe())?;
    writeln!(
        w,
        "afterburn-run: kernel {} ({}), entry {:#x}, ran {:.3} s",
        o.boot.protocol.name(),
        o.backend,
        o.boot.entry,
        o.run_time.as_secs_f64()
    )?;
    match &o.registers {
        Some(r) => write!(w, "registers:\n{r}")?,
        None => writeln!(w, "registers: (KVM would not tell)")?,
    }
    if o.serial_tail.is_empty() {
        writeln!(w, "last serial output: (none)")?;
    } else {
        writeln!(w, "last serial output ({} lines):", o.serial_tail.len())?;
        for l in &o.serial_tail {
            writeln!(w, "  | {l}")?;
        }
    }
    Ok(())
}

/// The one-line summary printed with `--verbose`.
pub fn summary_line(o: &RunOutcome) -> String {
    let stat = |name: &str| {
        o.kvm_stats
            .as_ref()
            .ok()
            .and_then(|s| s.iter().find(|x| x.name == name))
            .and_then(|s| s.value())
            .map_or("n/a".to_string(), |v| v.to_string())
    };
    format!(
        "afterburn-run: {} (exit code {}); wall {:.6} s; exits {} (io {}, mmio {}, halt {}), insn_emulation {}; serial {} bytes",
        o.end.describe(),
        o.end.exit_code(),
        o.run_time.as_secs_f64(),
        stat("exits"),
        stat("io_exits"),
        stat("mmio_exits"),
        stat("halt_exits"),
        stat("insn_emulation"),
        o.serial_bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::BootInfo;
    use crate::devices::UnhandledCounts;
    use crate::kernel::BootProtocol;
    use crate::run::ExitCounts;
    use crate::stats::Stat;
    use std::time::Duration;

    fn outcome(end: EndReason, stats: Result<Vec<Stat>, String>) -> RunOutcome {
        RunOutcome {
            end,
            registers: None,
            run_time: Duration::from_millis(1500),
            kvm_stats: stats,
            exits: ExitCounts {
                io_out: 3,
                ..Default::default()
            },
            serial_bytes: 12,
            serial_lost: 0,
            serial_tail: vec!["hello".into(), "world".into()],
            unhandled: UnhandledCounts {
                io_reads: 2,
                ..Default::default()
            },
            unhandled_ports: [(
                0x70u16,
                crate::devices::PortCount {
                    reads: 2,
                    writes: 0,
                },
            )]
            .into(),
            boot: BootInfo {
                protocol: BootProtocol::Pvh,
                entry: 0x10_0000,
                kernel_end: 0x10_2000,
                cmdline: "a=b".into(),
                ram_size: 64 << 20,
            },
            backend: "bare",
            backend_stats: Vec::new(),
        }
    }

    fn ctx() -> ReportContext<'static> {
        ReportContext {
            kernel: Path::new("/k/hello"),
            backend: "bare",
            host: HostKind::Pvm,
            memory_mib: 64,
            setup_time_s: 0.25,
        }
    }

    fn stat(name: &str, values: Vec<u64>) -> Stat {
        Stat {
            name: name.into(),
            flags: 0,
            exponent: 0,
            bucket_size: 0,
            values,
        }
    }

    #[test]
    fn json_fields() {
        let stats = vec![
            stat("exits", vec![40]),
            stat("io_exits", vec![30]),
            stat("hist", vec![1, 2]),
        ];
        let v = stats_json(
            &outcome(EndReason::GuestExit { status: 7 }, Ok(stats)),
            &ctx(),
        );
        assert_eq!(v["schema"], STATS_SCHEMA);
        assert_eq!(v["kernel"], "/k/hello");
        assert_eq!(v["host"], "pvm");
        assert_eq!(v["boot_protocol"], "pvh");
        assert_eq!(v["end"]["reason"], "guest_exit");
        assert_eq!(v["end"]["exit_code"], 7);
        assert_eq!(v["guest_status"], 7);
        assert_eq!(v["exit_code"], 7);
        assert_eq!(v["wall_time_s"], 1.5);
        assert_eq!(v["serial_bytes"], 12);
        assert_eq!(v["exits"], 40);
        assert_eq!(v["io_exits"], 30);
        assert!(
            v.get("halt_exits").is_none(),
            "absent counters are left out"
        );
        assert_eq!(v["kvm_stats"]["hist"], json!([1, 2]));
        assert_eq!(v["unhandled"]["io_reads"], 2);
        assert_eq!(v["unhandled_ports"]["0x0070"]["reads"], 2);
        assert_eq!(v["unhandled_ports"]["0x0070"]["reads"], 2);
        assert_eq!(v["userspace_exits"]["io_out"], 3);
        assert_eq!(v["registers"], Value::Null);
    }

    #[test]
    fn json_without_stats_and_for_errors() {
        let end = EndReason::InternalError {
            suberror: 1,
            data: vec![5],
        };
        let v = stats_json(&outcome(end, Err("no stats fd".into())), &ctx());
        assert_eq!(v["kvm_stats_error"], "no stats fd");
        assert_eq!(v["end"]["reason"], "emulation_failure");
        assert_eq!(v["end"]["suberror"], 1);
        assert_eq!(v["exit_code"], 102);
        assert_eq!(v["guest_status"], Value::Null);
        let s = start_failure_json("bad kernel", &ctx());
        assert_eq!(s["exit_code"], 100);
        assert_eq!(s["end"]["reason"], "start_failure");
    }

    #[test]
    fn report_text() {
        let mut out = Vec::new();
        write_report(&outcome(EndReason::Shutdown, Ok(vec![])), &mut out).unwrap();
        let t = String::from_utf8(out).unwrap();
        assert!(t.contains("triple fault"), "{t}");
        assert!(t.contains("  | hello\n  | world\n"), "{t}");
        let mut out = Vec::new();
        write_report(
            &outcome(EndReason::GuestExit { status: 0 }, Ok(vec![])),
            &mut out,
        )
        .unwrap();
        assert!(out.is_empty());
        write_report(
            &outcome(EndReason::GuestExit { status: 250 }, Ok(vec![])),
            &mut out,
        )
        .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("250"));
    }

    #[test]
    fn atomic_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        write_json_atomically(&p, &json!({"a": 1})).unwrap();
        let back: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(back["a"], 1);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        let bad = dir.path().join("missing-dir").join("s.json");
        assert!(write_json_atomically(&bad, &json!({})).is_err());
    }
}
