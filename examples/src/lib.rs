//! Builds the example guest kernels, natively and (given an afterburner) afterburnt.
//!
//! The kernels are C and assembly under this crate's directory (`common/` holds the boot and
//! runtime code they share, one directory per kernel holds its own sources). Building one
//! kernel:
//!
//! 1. compile each source to an object: `target/guests/obj/<kernel>/<stem>.o`;
//! 2. link those objects with `common/kernel.ld`: `target/guests/native/<kernel>`;
//! 3. only with an afterburner: burn each object (`AFTERBURNER burn IN -o OUT`) into
//!    `target/guests/obj-burnt/<kernel>/<stem>.o` and link those, in the same order and with
//!    the same script: `target/guests/burnt/<kernel>`.
//!
//! Every output is written to a temporary name and renamed into place, so a failed or
//! concurrent build never leaves a half-written file under a final name. `docs/examples.md`
//! describes the kernels, the layout and the commands.
//!
//! ```no_run
//! let opts = guests::BuildOptions::new(guests::default_out_root()?);
//! for kernel in guests::build_all(&opts)? {
//!     println!("{}", kernel.native.display());
//! }
//! # Ok::<(), guests::BuildError>(())
//! ```

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

/// One example kernel: its name and its sources (paths relative to [`source_dir`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// File name of the linked kernel and name of its object directory.
    pub name: &'static str,
    /// Directory (under [`source_dir`]) whose headers the sources include besides `common/`.
    pub dir: &'static str,
    /// Sources, in link order. Object file names are the stems, so stems must be unique.
    pub sources: &'static [&'static str],
}

/// Every example kernel, in build order. Each links the boot and console code (`boot32.S`, the
/// 32-bit PVH entry, first), and the trap (`entry.S` .. `pic.c`) and user-mode (`mm.c` ..
/// `usermode.S`) parts of `common/` when it uses them.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "hello",
        dir: "hello",
        sources: &[
            "common/boot32.S",
            "common/head64.S",
            "common/serial.c",
            "common/printf.c",
            "common/lib.c",
            "hello/hello.c",
        ],
    },
    Kernel {
        name: "interrupts",
        dir: "interrupts",
        sources: &[
            "common/boot32.S",
            "common/head64.S",
            "common/serial.c",
            "common/printf.c",
            "common/lib.c",
            "common/entry.S",
            "common/desc.c",
            "common/trap.c",
            "common/pic.c",
            "interrupts/interrupts.c",
        ],
    },
    Kernel {
        name: "paging",
        dir: "paging",
        sources: &[
            "common/boot32.S",
            "common/head64.S",
            "common/serial.c",
            "common/printf.c",
            "common/lib.c",
            "common/entry.S",
            "common/desc.c",
            "common/trap.c",
            "common/pic.c",
            "common/mm.c",
            "common/syscall.c",
            "common/usermode.S",
            "paging/paging.c",
            "paging/usertask.S",
        ],
    },
    Kernel {
        name: "microbench",
        dir: "microbench",
        sources: &[
            "common/boot32.S",
            "common/head64.S",
            "common/serial.c",
            "common/printf.c",
            "common/lib.c",
            "common/entry.S",
            "common/desc.c",
            "common/trap.c",
            "common/pic.c",
            "common/mm.c",
            "common/syscall.c",
            "common/usermode.S",
            "microbench/microbench.c",
            "microbench/usertask.S",
        ],
    },
    Kernel {
        name: "workload",
        dir: "workload",
        sources: &[
            "common/boot32.S",
            "common/head64.S",
            "common/serial.c",
            "common/printf.c",
            "common/lib.c",
            "common/entry.S",
            "common/desc.c",
            "common/trap.c",
            "common/pic.c",
            "workload/workload.c",
        ],
    },
];

/// The kernel with this name.
pub fn kernel(name: &str) -> Option<&'static Kernel> {
    KERNELS.iter().find(|k| k.name == name)
}

/// Compiler flags for every source (C and assembly alike). See docs/examples.md for why.
pub const CFLAGS: &[&str] = &[
    "-std=gnu11",
    "-ffreestanding",
    "-fno-pic",
    "-mcmodel=kernel",
    "-mno-red-zone",
    "-mgeneral-regs-only",
    "-fno-stack-protector",
    "-fcf-protection=none",
    "-fno-strict-aliasing",
    "-fno-common",
    "-nostdlib",
    "-O2",
    "-g",
    "-Wall",
    "-Wextra",
];

/// Linker flags (besides `-T common/kernel.ld` and the objects).
pub const LDFLAGS: &[&str] = &[
    "-nostdlib",
    "-z",
    "noexecstack",
    "-z",
    "max-page-size=0x1000",
];

/// Where the kernel sources are: this crate's directory.
pub fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What to build and where.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Output root, normally `<target dir>/guests` ([`default_out_root`]).
    pub out_root: PathBuf,
    /// The afterburner binary; `None` builds the native kernels only.
    pub afterburner: Option<PathBuf>,
    /// Kernels to build; empty means all of [`KERNELS`].
    pub kernels: Vec<String>,
    /// C compiler (also assembles `.S`): `gcc` unless set.
    pub cc: OsString,
    /// Linker: `ld` unless set.
    pub ld: OsString,
}

impl BuildOptions {
    /// Native build of every kernel under `out_root` with `gcc` and `ld`.
    pub fn new(out_root: impl Into<PathBuf>) -> BuildOptions {
        BuildOptions {
            out_root: out_root.into(),
            afterburner: None,
            kernels: Vec::new(),
            cc: "gcc".into(),
            ld: "ld".into(),
        }
    }
}

/// Paths of one built kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    /// Kernel name.
    pub name: &'static str,
    /// The native kernel: `<out_root>/native/<name>`.
    pub native: PathBuf,
    /// The afterburnt kernel: `<out_root>/burnt/<name>`, when an afterburner was given.
    pub burnt: Option<PathBuf>,
    /// Compiler and linker warnings (stderr of successful steps), if any.
    pub warnings: String,
}

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// A tool could not be started because it is not installed.
    ToolMissing {
        /// The command.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A tool could not be started for another reason.
    Spawn {
        /// The command.
        tool: String,
        /// The error from the operating system.
        source: io::Error,
    },
    /// A tool ran and failed.
    Failed {
        /// What was being done, e.g. `compiling common/boot32.S`.
        step: String,
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its standard output and error.
        output: String,
    },
    /// A file system operation failed.
    Io {
        /// What was being done.
        what: String,
        /// The path involved.
        path: PathBuf,
        /// The error from the operating system.
        source: io::Error,
    },
    /// A kernel name that is not in [`KERNELS`].
    UnknownKernel(String),
    /// Two sources of one kernel share a stem (their objects would collide).
    DuplicateStem {
        /// The kernel.
        kernel: &'static str,
        /// The stem.
        stem: String,
    },
    /// The target directory could not be determined.
    TargetDir(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ToolMissing { tool, package } => write!(
                f,
                "`{tool}` was not found: the guest kernels need it; install the Debian package \
                 `{package}` (apt-get install -y {package})"
            ),
            BuildError::Spawn { tool, source } => write!(f, "could not run `{tool}`: {source}"),
            BuildError::Failed {
                step,
                command,
                status,
                output,
            } => {
                write!(f, "{step} failed ({status})\n  command: {command}")?;
                if !output.trim().is_empty() {
                    write!(f, "\n{}", output.trim_end())?;
                }
                Ok(())
            }
            BuildError::Io { what, path, source } => {
                write!(f, "{what} {}: {source}", path.display())
            }
            BuildError::UnknownKernel(name) => {
                let names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
                write!(
                    f,
                    "unknown guest kernel `{name}` (known: {})",
                    names.join(", ")
                )
            }
            BuildError::DuplicateStem { kernel, stem } => {
                write!(
                    f,
                    "kernel {kernel}: two sources have the object name {stem}.o"
                )
            }
            BuildError::TargetDir(msg) => {
                write!(f, "cannot find the cargo target directory: {msg}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn { source, .. } | BuildError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The workspace root: the parent of this crate's directory.
pub fn workspace_dir() -> PathBuf {
    let dir = source_dir();
    dir.parent().map(Path::to_path_buf).unwrap_or(dir)
}

/// The cargo target directory of this workspace.
///
/// `CARGO_TARGET_DIR` when set (relative to the current directory, as cargo reads it), else
/// the `target_directory` that `cargo metadata` reports (which honours `.cargo/config.toml`),
/// else `<workspace>/target`.
pub fn target_dir() -> Result<PathBuf, BuildError> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        if dir.is_absolute() {
            return Ok(dir);
        }
        let cwd = std::env::current_dir().map_err(|e| {
            BuildError::TargetDir(format!(
                "CARGO_TARGET_DIR is relative and the current directory is unknown: {e}"
            ))
        })?;
        return Ok(cwd.join(dir));
    }
    if let Some(dir) = target_dir_from_metadata() {
        return Ok(dir);
    }
    Ok(workspace_dir().join("target"))
}

/// `<target dir>/guests`.
pub fn default_out_root() -> Result<PathBuf, BuildError> {
    Ok(target_dir()?.join("guests"))
}

fn target_dir_from_metadata() -> Option<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
            "--manifest-path",
        ])
        .arg(workspace_dir().join("Cargo.toml"))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    json_string_field(&String::from_utf8(out.stdout).ok()?, "target_directory").map(PathBuf::from)
}

/// The value of the first `"key": "string"` member in a JSON text (handles the escapes cargo
/// writes in paths; no general JSON parser is needed for this one field).
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\"");
    let rest = json[json.find(&pat)? + pat.len()..].trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                '"' => out.push('"'),
                '\\' => out.push('\\'),
                '/' => out.push('/'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                _ => return None,
            },
            c => out.push(c),
        }
    }
}

/// The Debian package that provides a tool, for error messages.
fn package_of(tool: &Path) -> &'static str {
    match tool.file_name().and_then(|n| n.to_str()) {
        Some("ld" | "ld.bfd" | "as" | "objcopy") => "binutils",
        Some(n) if n.starts_with("gcc") || n == "cc" => "gcc",
        Some("qemu-system-x86_64") => "qemu-system-x86",
        _ => "gcc",
    }
}

fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs a tool; success returns its stderr (warnings).
fn run(step: &str, cmd: &mut Command) -> Result<String, BuildError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out: Output = cmd.output().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            BuildError::ToolMissing {
                package: package_of(Path::new(&tool)),
                tool: tool.clone(),
            }
        } else {
            BuildError::Spawn {
                tool: tool.clone(),
                source,
            }
        }
    })?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        return Err(BuildError::Failed {
            step: step.to_string(),
            command: command_line(cmd),
            status: out.status,
            output: text,
        });
    }
    Ok(text)
}

/// Checks that a tool starts (`TOOL --version`), for a clear error before any work.
fn check_tool(tool: &OsString) -> Result<(), BuildError> {
    run(
        &format!("checking {}", tool.to_string_lossy()),
        Command::new(tool).arg("--version"),
    )
    .map(|_| ())
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(io::Error) -> BuildError {
    let what = what.to_string();
    let path = path.to_path_buf();
    move |source| BuildError::Io { what, path, source }
}

/// A unique temporary path next to `path` (same directory, so rename is atomic).
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tmp.{}.{n}", std::process::id()));
    path.with_file_name(name)
}

/// Runs `produce(temp)` and renames temp to `path` on success; removes temp on failure.
fn write_atomically(
    path: &Path,
    produce: impl FnOnce(&Path) -> Result<String, BuildError>,
) -> Result<String, BuildError> {
    let tmp = temp_path(path);
    match produce(&tmp) {
        Ok(warnings) => {
            std::fs::rename(&tmp, path).map_err(io_err("renaming into place", path))?;
            Ok(warnings)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn stem(source: &str) -> String {
    Path::new(source)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn create_dir(dir: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))
}

fn append_warnings(all: &mut String, step: &str, text: String) {
    if !text.trim().is_empty() {
        all.push_str(step);
        all.push_str(":\n");
        all.push_str(&text);
    }
}

/// Compiles one kernel's sources into `obj_dir`; returns the objects in link order.
fn compile(
    opts: &BuildOptions,
    kernel: &Kernel,
    obj_dir: &Path,
    warnings: &mut String,
) -> Result<Vec<PathBuf>, BuildError> {
    let src = source_dir();
    let mut objects = Vec::new();
    for source in kernel.sources {
        let obj = obj_dir.join(format!("{}.o", stem(source)));
        if objects.contains(&obj) {
            return Err(BuildError::DuplicateStem {
                kernel: kernel.name,
                stem: stem(source),
            });
        }
        let step = format!("compiling {source} for {}", kernel.name);
        let text = write_atomically(&obj, |tmp| {
            run(
                &step,
                Command::new(&opts.cc)
                    .args(CFLAGS)
                    .arg("-I")
                    .arg(src.join("common"))
                    .arg("-I")
                    .arg(src.join(kernel.dir))
                    .arg("-c")
                    .arg(src.join(source))
                    .arg("-o")
                    .arg(tmp),
            )
        })?;
        append_warnings(warnings, &step, text);
        objects.push(obj);
    }
    Ok(objects)
}

fn link(
    opts: &BuildOptions,
    objects: &[PathBuf],
    out: &Path,
    warnings: &mut String,
) -> Result<(), BuildError> {
    let step = format!("linking {}", out.display());
    let text = write_atomically(out, |tmp| {
        run(
            &step,
            Command::new(&opts.ld)
                .args(LDFLAGS)
                .arg("-T")
                .arg(source_dir().join("common/kernel.ld"))
                .arg("-o")
                .arg(tmp)
                .args(objects),
        )
    })?;
    append_warnings(warnings, &step, text);
    Ok(())
}

/// Burns each object with `afterburner burn IN -o OUT` into `burnt_dir`.
fn burn(
    afterburner: &Path,
    objects: &[PathBuf],
    burnt_dir: &Path,
    warnings: &mut String,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut burnt = Vec::new();
    for obj in objects {
        let out = burnt_dir.join(obj.file_name().unwrap_or_default());
        let step = format!("burning {}", obj.display());
        let text = write_atomically(&out, |tmp| {
            run(
                &step,
                Command::new(afterburner)
                    .arg("burn")
                    .arg(obj)
                    .arg("-o")
                    .arg(tmp),
            )
        })?;
        append_warnings(warnings, &step, text);
        burnt.push(out);
    }
    Ok(burnt)
}

/// Builds one kernel (see the crate documentation for the steps and paths).
pub fn build_kernel(opts: &BuildOptions, kernel: &Kernel) -> Result<Built, BuildError> {
    let mut warnings = String::new();
    let obj_dir = opts.out_root.join("obj").join(kernel.name);
    let native_dir = opts.out_root.join("native");
    create_dir(&obj_dir)?;
    create_dir(&native_dir)?;
    let objects = compile(opts, kernel, &obj_dir, &mut warnings)?;
    let native = native_dir.join(kernel.name);
    link(opts, &objects, &native, &mut warnings)?;

    let burnt = match &opts.afterburner {
        None => None,
        Some(afterburner) => {
            let burnt_obj_dir = opts.out_root.join("obj-burnt").join(kernel.name);
            let burnt_dir = opts.out_root.join("burnt");
            create_dir(&burnt_obj_dir)?;
            create_dir(&burnt_dir)?;
            let burnt_objects = burn(afterburner, &objects, &burnt_obj_dir, &mut warnings)?;
            let out = burnt_dir.join(kernel.name);
            link(opts, &burnt_objects, &out, &mut warnings)?;
            Some(out)
        }
    };
    Ok(Built {
        name: kernel.name,
        native,
        burnt,
        warnings,
    })
}

/// Builds the kernels `opts` names (all by default), in parallel, native and (with an
/// afterburner) burnt. Checks first that the compiler, linker and afterburner start.
pub fn build_all(opts: &BuildOptions) -> Result<Vec<Built>, BuildError> {
    let kernels: Vec<&'static Kernel> = if opts.kernels.is_empty() {
        KERNELS.iter().collect()
    } else {
        opts.kernels
            .iter()
            .map(|n| kernel(n).ok_or_else(|| BuildError::UnknownKernel(n.clone())))
            .collect::<Result<_, _>>()?
    };
    check_tool(&opts.cc)?;
    check_tool(&opts.ld)?;
    if let Some(ab) = &opts.afterburner {
        if !ab.exists() {
            return Err(BuildError::Io {
                what: "the afterburner".into(),
                path: ab.clone(),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
    }
    let results: Vec<Result<Built, BuildError>> = std::thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|k| s.spawn(move || build_kernel(opts, k)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_field_reads_escaped_paths() {
        let json = r#"{"packages":[],"target_directory":"/a b/\"q\"\\t\u00e9","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").unwrap(),
            "/a b/\"q\"\\t\u{e9}"
        );
        assert_eq!(json_string_field(json, "missing"), None);
        assert_eq!(
            json_string_field(r#"{"target_directory":"unterminated"#, "target_directory"),
            None
        );
    }

    #[test]
    fn kernel_sources_have_unique_stems_and_exist() {
        for k in KERNELS {
            let mut stems: Vec<_> = k.sources.iter().map(|s| stem(s)).collect();
            let n = stems.len();
            stems.sort();
            stems.dedup();
            assert_eq!(
                stems.len(),
                n,
                "kernel {} has duplicate object names",
                k.name
            );
            for s in k.sources {
                assert!(
                    source_dir().join(s).is_file(),
                    "{}: missing source {s}",
                    k.name
                );
            }
            assert_eq!(
                k.sources[0], "common/boot32.S",
                "{}: the PVH entry object comes first",
                k.name
            );
        }
    }

    #[test]
    fn missing_tool_names_the_debian_package() {
        let dir = std::env::temp_dir().join(format!("guests-missing-tool-{}", std::process::id()));
        let mut opts = BuildOptions::new(&dir);
        opts.cc = "afterburn-no-such-gcc".into();
        let err = build_all(&opts).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, BuildError::ToolMissing { .. }), "{msg}");
        assert!(
            msg.contains("afterburn-no-such-gcc") && msg.contains("`gcc`"),
            "{msg}"
        );
        opts.cc = "gcc".into();
        opts.ld = "/nonexistent/ld".into();
        let msg = build_all(&opts).unwrap_err().to_string();
        assert!(msg.contains("binutils"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unknown_kernel_is_an_error() {
        let mut opts = BuildOptions::new(std::env::temp_dir());
        opts.kernels = vec!["nope".into()];
        let msg = build_all(&opts).unwrap_err().to_string();
        assert!(msg.contains("nope") && msg.contains("hello"), "{msg}");
    }
}
