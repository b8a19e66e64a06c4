//! Helpers shared by the loader's integration tests: building the tiny test guests with GNU as
//! and ld, running `afterburn-run` as a user would, and skipping loudly without /dev/kvm.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether /dev/kvm is a working KVM (it opens and answers `KVM_GET_API_VERSION` with 12);
/// prints a loud SKIPPED line naming `test` when not.
pub fn kvm_or_skip(test: &str) -> bool {
    let ok = kvm_ioctls::Kvm::new().is_ok_and(|k| k.get_api_version() == 12);
    if !ok {
        eprintln!("SKIPPED: /dev/kvm not available ({test})");
    }
    ok
}

/// The host kind as the test sees it from /sys/module (the loader's own detection is what is
/// under test).
pub fn host_is_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// The host kind a loaded KVM module names, if one does.
pub fn expected_host() -> Option<&'static str> {
    let m = |name: &str| Path::new("/sys/module").join(name).exists();
    if m("kvm_pvm") {
        Some("pvm")
    } else if m("kvm_intel") {
        Some("vmx")
    } else if m("kvm_amd") {
        Some("svm")
    } else {
        None
    }
}

fn guests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests")
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn run_tool(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (binutils installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Assembles and links `tests/guests/<name>.s` with `--defsym` values; returns the ELF.
pub fn guest(name: &str, defsyms: &[(&str, u64)]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("loader-guests");
    std::fs::create_dir_all(&dir).unwrap();
    let tag: String = defsyms.iter().map(|(k, v)| format!("-{k}{v}")).collect();
    let out = dir.join(format!("{name}{tag}"));
    let unique = format!(
        "{}.{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    );
    let obj = dir.join(format!("{name}{tag}.{unique}.o"));
    let tmp = dir.join(format!("{name}{tag}.{unique}.tmp"));
    let src = guests_dir();
    let mut as_cmd = Command::new("as");
    as_cmd.arg("--64").arg("-I").arg(&src);
    for (k, v) in defsyms {
        as_cmd.arg("--defsym").arg(format!("{k}={v}"));
    }
    as_cmd
        .arg("-o")
        .arg(&obj)
        .arg(src.join(format!("{name}.s")));
    run_tool(&mut as_cmd);
    run_tool(
        Command::new("ld")
            .args([
                "-m",
                "elf_x86_64",
                "-z",
                "noexecstack",
                "--no-warn-rwx-segments",
                "-T",
            ])
            .arg(src.join("guest.ld"))
            .arg("-o")
            .arg(&tmp)
            .arg(&obj),
    );
    std::fs::remove_file(&obj).unwrap();
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// What a run of `afterburn-run` left.
#[derive(Debug)]
pub struct Run {
    /// The exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time of the whole process.
    pub elapsed: Duration,
    /// The stats JSON, if asked for and written.
    pub stats: Option<serde_json::Value>,
}

/// Runs `afterburn-run ARGS`.
pub fn afterburn_run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run_inner(args, false)
}

/// Runs `afterburn-run --stats-json FILE ARGS` and reads the JSON.
pub fn afterburn_run_stats<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    run_inner(args, true)
}

fn run_inner<S: AsRef<std::ffi::OsStr>>(args: &[S], stats: bool) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_afterburn-run"));
    if stats {
        cmd.arg("--stats-json").arg(&json);
    }
    cmd.args(args);
    let t0 = Instant::now();
    let out = cmd.output().expect("cannot run afterburn-run");
    let elapsed = t0.elapsed();
    let stats = if stats && json.exists() {
        let text = std::fs::read_to_string(&json).unwrap();
        Some(serde_json::from_str(&text).expect("the stats file is valid JSON"))
    } else {
        None
    };
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
        stats,
    }
}

impl Run {
    /// The stats JSON (panics with the run's output if missing).
    pub fn json(&self) -> &serde_json::Value {
        self.stats
            .as_ref()
            .unwrap_or_else(|| panic!("no stats JSON; run: {self:#?}"))
    }

    /// A well-known counter of the stats JSON as u64.
    pub fn counter(&self, name: &str) -> u64 {
        self.json()[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name} in {:#}", self.json()))
    }
}
