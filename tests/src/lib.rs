//! Shared pieces of the end-to-end tests (the tests themselves live in tests/tests/).
//!
//! * [`guests`]: the example kernels, built once per test process.
//! * [`run_with_timeout`]: runs a command with captured output and a hang limit.
//! * [`qemu_command`]: the independent machine (QEMU TCG) for a PVH kernel.
//! * [`afterburn_run`]: the loader binary of this workspace.
//! * [`deterministic`]: output lines that must match between runs and machines.
//! * [`oracle`]: GNU binutils judging burnt objects against their originals.

pub mod oracle;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// QEMU binary name.
pub const QEMU: &str = "qemu-system-x86_64";

/// The example kernels (native builds), built once per test process.
pub fn guests() -> &'static [guests::Built] {
    static BUILT: OnceLock<Result<Vec<guests::Built>, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let root = guests::default_out_root().map_err(|e| e.to_string())?;
        guests::build_all(&guests::BuildOptions::new(root)).map_err(|e| e.to_string())
    });
    match result {
        Ok(b) => b,
        Err(e) => panic!("building the guest kernels failed: {e}"),
    }
}

/// Path of the native build of example kernel `name`.
pub fn native_kernel(name: &str) -> PathBuf {
    let b = guests()
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("kernel {name} was not built"));
    assert!(b.native.is_file(), "{} is missing", b.native.display());
    b.native.clone()
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cmd` with stdin closed and output captured; `None` if it did not end within
/// `timeout` (it is then killed): a hang, not a slow run.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Option<Run> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        match child.try_wait().expect("waiting for child") {
            Some(status) => break Some(status),
            None if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&out_reader.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().expect("stderr reader")).into_owned();
    status.map(|s| Run {
        code: s.code(),
        stdout,
        stderr,
        elapsed,
    })
}

/// Fails the test with install advice when QEMU is missing: it is a hard requirement.
pub fn require_qemu() {
    match Command::new(QEMU)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`{QEMU} --version` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!(
            "{QEMU} could not be started ({e}): these tests need it; install the Debian package \
             qemu-system-x86 (apt-get install -y qemu-system-x86)"
        ),
    }
}

/// The QEMU command line for a PVH kernel: TCG, a PC with 128 MiB, COM1 on stdout, the
/// debug-exit device at 0xf4 (exit code `(status << 1) | 1`), nothing else, no reboot.
pub fn qemu_command(kernel: &Path) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args(["-accel", "tcg", "-machine", "pc", "-m", "128", "-kernel"])
        .arg(kernel)
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-serial", "stdio", "-display", "none", "-monitor", "none"])
        .args(["-nodefaults", "-no-reboot"]);
    cmd
}

/// Directory holding this workspace's binaries for the running test's profile
/// (`target/<profile>/`, the parent of the test executable's `deps/`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Path of a workspace binary, built on demand with cargo if missing.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    if !path.is_file() {
        let profile_release = bin_dir().file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-q", "-p", package, "--bin", name]);
        if profile_release {
            cmd.arg("--release");
        }
        let st = cmd
            .status()
            .unwrap_or_else(|e| panic!("running cargo to build {name}: {e}"));
        assert!(st.success(), "cargo build -p {package} --bin {name} failed");
    }
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// The loader binary, `afterburn-run`.
pub fn afterburn_run() -> PathBuf {
    workspace_bin("afterburn-loader", "afterburn-run")
}

/// Whether `/dev/kvm` can be used; prints a loud SKIPPED line naming `test` when not.
pub fn kvm_or_skip(test: &str) -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !ok {
        eprintln!("SKIPPED: {test}: /dev/kvm not available");
    }
    ok
}

/// The lines that must be identical between runs, machines and backends: everything but the
/// timing lines, which start with `bench `.
pub fn deterministic(out: &str) -> Vec<&str> {
    out.lines().filter(|l| !l.starts_with("bench ")).collect()
}
