//! `afterburner as`: a drop-in GNU `as` that pads and annotates every sensitive instruction of
//! its input ([`crate::asm_pad`]) before the real assembler lays out the code and writes the
//! relocations, symbols and DWARF itself. Installed as `DIR/as` (`afterburner install-as DIR`),
//! `gcc -B DIR/` uses it for every C and `.S` file, inline assembly included.
//!
//! Arguments are those of GNU `as`: the input files (or `-`/none for standard input) are
//! replaced by one padded temporary file, everything else is passed through unchanged. The
//! real assembler is `$AFTERBURNER_AS` or the first `as` in `PATH` that is neither this program
//! nor an installed shim (see docs/kernel-builds.md).
//!
//! Input the padder does not handle (see the TODO list of [`crate::asm_pad`]: `.macro`,
//! `.rept`, `.code32`, ...) is assembled unpadded with a `WARNING` line on standard error naming
//! the input and line, or refused when `AFTERBURNER_AS_STRICT=1`. An input that selects the
//! `.afterburn_noannotate` section gets no padding and no records, as in `afterburner burn`.

use crate::asm_pad::{self, Assembler, Layout, PadError};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Marker line in an installed shim (so that the shim is never taken for the real `as`).
pub const SHIM_MARKER: &str = "afterburner-as-shim";

/// GNU `as` options whose value is the next argument.
const SEPARATE_VALUE: &[&str] = &["-o", "-I", "--defsym", "--debug-prefix-map", "--MD"];

/// Options after which we only run the real `as` (no assembly happens).
const INFO_ONLY: &[&str] = &["--version", "-v", "-version", "--help", "--target-help"];

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AsArgs {
    /// Every argument that is not an input file, `-o` or its value, in order.
    pub options: Vec<OsString>,
    /// The output (`a.out` when absent, as GNU `as` does).
    pub output: Option<OsString>,
    /// Input files (`-` is standard input); empty means standard input.
    pub inputs: Vec<OsString>,
    /// True when the command line only asks for information (`--version`, ...).
    pub info_only: bool,
}

/// Splits an `as` command line.
pub fn parse_args(args: &[OsString]) -> AsArgs {
    let mut out = AsArgs::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let s = a.to_string_lossy();
        if INFO_ONLY.contains(&s.as_ref()) {
            out.info_only = true;
        }
        if s == "-o" {
            out.output = args.get(i + 1).cloned();
            i += 2;
            continue;
        }
        if let Some(o) = s.strip_prefix("-o").filter(|o| !o.is_empty()) {
            // `-oFILE`
            out.output = Some(OsStr::from_bytes(&a.as_bytes()[2..]).to_owned());
            let _ = o;
            i += 1;
            continue;
        }
        if SEPARATE_VALUE.contains(&s.as_ref()) {
            out.options.push(a.clone());
            if let Some(v) = args.get(i + 1) {
                out.options.push(v.clone());
            }
            i += 2;
            continue;
        }
        if s == "-" || !s.starts_with('-') {
            out.inputs.push(a.clone());
        } else {
            out.options.push(a.clone());
        }
        i += 1;
    }
    out
}

/// Options for the probe assembly: without listings or dependency files, which only the real
/// assembly may write.
fn probe_options(options: &[OsString]) -> Vec<OsString> {
    let mut v = Vec::new();
    let mut i = 0;
    while i < options.len() {
        let s = options[i].to_string_lossy();
        if s == "--MD" {
            i += 2;
            continue;
        }
        if s.starts_with("-a") && !s.starts_with("--") || s.starts_with("--MD=") {
            i += 1;
            continue;
        }
        v.push(options[i].clone());
        i += 1;
    }
    v
}

fn is_shim(path: &Path) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    head[..n].starts_with(b"#!")
        && head[..n]
            .windows(SHIM_MARKER.len())
            .any(|w| w == SHIM_MARKER.as_bytes())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds the real GNU `as`: `$AFTERBURNER_AS`, else the first `as` in `PATH` that is neither
/// this executable nor an afterburner shim.
pub fn find_real_as() -> Result<PathBuf, String> {
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    let is_me = |p: &Path| me.is_some() && p.canonicalize().ok() == me;
    if let Some(a) = std::env::var_os("AFTERBURNER_AS").filter(|a| !a.is_empty()) {
        let p = PathBuf::from(&a);
        if is_me(&p) || is_shim(&p) {
            return Err(format!(
                "AFTERBURNER_AS={} is the afterburner itself, not GNU as",
                p.display()
            ));
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let p = dir.join("as");
        if is_executable(&p) && !is_me(&p) && !is_shim(&p) {
            return Ok(p);
        }
    }
    Err("no GNU as found in PATH (set AFTERBURNER_AS to its path)".into())
}

fn run_real(real: &Path, args: &[OsString]) -> i32 {
    match Command::new(real).args(args).status() {
        Ok(st) => st.code().unwrap_or(1),
        Err(e) => {
            eprintln!("afterburner as: cannot run {}: {e}", real.display());
            1
        }
    }
}

/// Runs `afterburner as ARGS`; returns the exit status.
pub fn main_entry(args: &[OsString]) -> i32 {
    let real = match find_real_as() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("afterburner as: {e}");
            return 1;
        }
    };
    let parsed = parse_args(args);
    if parsed.info_only {
        return run_real(&real, args);
    }
    // Read the input text.
    let mut source = Vec::new();
    let inputs: Vec<OsString> = if parsed.inputs.is_empty() {
        vec!["-".into()]
    } else {
        parsed.inputs.clone()
    };
    for input in &inputs {
        let res = if input == "-" {
            std::io::stdin().read_to_end(&mut source).map(|_| ())
        } else {
            std::fs::read(input).map(|b| source.extend_from_slice(&b))
        };
        if let Err(e) = res {
            eprintln!("afterburner as: {}: {e}", Path::new(input).display());
            return 1;
        }
    }
    let name = if inputs.len() == 1 && inputs[0] != "-" {
        Path::new(&inputs[0]).display().to_string()
    } else {
        "{standard input}".into()
    };
    let dir = match tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("afterburner as: {e}");
            return 1;
        }
    };
    let code = assemble(&real, &parsed, &source, &name, &dir.0);
    drop(dir);
    code
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, String> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let d = base.join(format!(
        "afterburner-as-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    Ok(TempDir(d))
}

fn assemble(real: &Path, parsed: &AsArgs, source: &[u8], name: &str, dir: &Path) -> i32 {
    let mut final_args = parsed.options.clone();
    if let Some(o) = &parsed.output {
        final_args.push("-o".into());
        final_args.push(o.clone());
    }
    let text_in = dir.join(
        Path::new(name)
            .file_name()
            .filter(|_| name != "{standard input}")
            .unwrap_or(OsStr::new("stdin.s")),
    );
    let padded: Vec<u8> = match std::str::from_utf8(source) {
        Err(e) => {
            warn(
                name,
                &format!("input is not UTF-8 ({e}); assembled UNPADDED, no .afterburn records"),
                parsed.output.as_ref(),
            );
            source.to_vec()
        }
        Ok(text) => {
            let opts = asm_pad::Options {
                layout: Layout::Realign,
                assembler: Assembler {
                    program: real.to_path_buf(),
                    args: probe_options(&parsed.options),
                },
            };
            match asm_pad::pad(text, &opts) {
                Ok(p) if !p.sites.is_empty() && asm_pad::defines_macros(text) => {
                    // Macro invocations may emit bytes anywhere: check the padded object
                    // against the original with the verifier before using it.
                    match check_padded(real, parsed, source, p.text.as_bytes(), dir) {
                        Ok(()) => p.text.into_bytes(),
                        Err(why) => {
                            if strict() {
                                eprintln!(
                                    "afterburner as: {name}: error: not padded: {why} (AFTERBURNER_AS_STRICT=1)"
                                );
                                return 1;
                            }
                            warn(
                                name,
                                &format!("{why}; assembled UNPADDED, no .afterburn records"),
                                parsed.output.as_ref(),
                            );
                            source.to_vec()
                        }
                    }
                }
                Ok(p) => p.text.into_bytes(),
                Err(PadError::Unsupported { line, what }) => {
                    let at = source_position(text, name, line);
                    if strict() {
                        eprintln!(
                            "afterburner as: {at}: error: not padded: {what} (AFTERBURNER_AS_STRICT=1)"
                        );
                        return 1;
                    }
                    warn(
                        &at,
                        &format!("{what}; assembled UNPADDED, no .afterburn records"),
                        parsed.output.as_ref(),
                    );
                    source.to_vec()
                }
                Err(PadError::Assembler { .. }) => {
                    // The input itself is probably wrong: let the real `as` report it.
                    if let Err(e) = write_file(&text_in, source) {
                        eprintln!("afterburner as: {e}");
                        return 1;
                    }
                    final_args.push(text_in.into_os_string());
                    let code = run_real(real, &final_args);
                    if code == 0 {
                        eprintln!(
                            "afterburner as: {name}: error: as accepts the input but not the \
                             padder's probe of it"
                        );
                        return 1;
                    }
                    return code;
                }
                Err(PadError::Probe(e)) => {
                    // Bytes the decoder refuses (data in code, ...): `afterburner burn` refuses
                    // such an object too.
                    if strict() {
                        eprintln!(
                            "afterburner as: {name}: error: not padded: {e} (AFTERBURNER_AS_STRICT=1)"
                        );
                        return 1;
                    }
                    warn(
                        name,
                        &format!("{e}; assembled UNPADDED, no .afterburn records"),
                        parsed.output.as_ref(),
                    );
                    source.to_vec()
                }
                Err(e) => {
                    eprintln!("afterburner as: {name}: error: {e}");
                    return 1;
                }
            }
        }
    };
    if let Err(e) = write_file(&text_in, &padded) {
        eprintln!("afterburner as: {e}");
        return 1;
    }
    if let Some(keep) = std::env::var_os("AFTERBURNER_AS_KEEP").filter(|k| !k.is_empty()) {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(
            &text_in,
            Path::new(&keep).join(text_in.file_name().unwrap_or_default()),
        );
    }
    final_args.push(text_in.into_os_string());
    run_real(real, &final_args)
}

/// `FILE:LINE` of line `line` of `text`, following the preprocessor's line markers
/// (`# 12 "arch/x86/entry/entry_64.S"`) that gcc leaves in preprocessed `.S` input, plus the
/// assembler input's own name and line when they differ.
pub fn source_position(text: &str, name: &str, line: usize) -> String {
    let mut file: Option<&str> = None;
    // Number (in `file`) of the line being looked at.
    let mut cur = 1usize;
    for (i, l) in text.lines().enumerate() {
        if i + 1 >= line {
            break;
        }
        let marker = l.strip_prefix('#').and_then(|rest| {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix("line").map_or(rest, str::trim_start);
            let num: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let after = rest[num.len()..].trim_start().strip_prefix('"')?;
            let end = after.find('"')?;
            Some((num.parse::<usize>().ok()?, &after[..end]))
        });
        match marker {
            Some((n, f)) => {
                file = Some(f);
                cur = n;
            }
            None => cur += 1,
        }
    }
    match file {
        Some(f) if !f.starts_with('<') => format!("{f}:{cur} ({name}:{line})"),
        _ => format!("{name}:{line}"),
    }
}

/// Assembles the original and the padded text and runs `afterburner verify --realign` on the
/// pair.
fn check_padded(
    real: &Path,
    parsed: &AsArgs,
    original: &[u8],
    padded: &[u8],
    dir: &Path,
) -> Result<(), String> {
    let opts = probe_options(&parsed.options);
    let mut objs = Vec::new();
    for (tag, text) in [("orig", original), ("padded", padded)] {
        let src = dir.join(format!("check-{tag}.s"));
        let obj = dir.join(format!("check-{tag}.o"));
        write_file(&src, text)?;
        let out = Command::new(real)
            .args(&opts)
            .arg("-o")
            .arg(&obj)
            .arg(&src)
            .output()
            .map_err(|e| format!("{}: {e}", real.display()))?;
        if !out.status.success() {
            return Err(format!(
                "as failed on the {tag} text of the check: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        objs.push(obj);
    }
    let vopts = crate::verify::Options {
        realign: true,
        ..Default::default()
    };
    let rep = crate::verify::run_with(&objs[0], &objs[1], &vopts).map_err(|e| e.to_string())?;
    if rep.is_ok() {
        Ok(())
    } else {
        let text = rep.render(3);
        let first = text.lines().take(3).collect::<Vec<_>>().join("; ");
        Err(format!(
            "the padded macro input fails verification ({first})"
        ))
    }
}

fn strict() -> bool {
    std::env::var_os("AFTERBURNER_AS_STRICT").is_some_and(|v| v == "1")
}

fn warn(name: &str, what: &str, output: Option<&OsString>) {
    let out = output.map_or_else(|| "a.out".into(), |o| Path::new(o).display().to_string());
    eprintln!("afterburner as: WARNING: {name}: {what} (output {out})");
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes the shim `DIR/as` that runs `EXE as "$@"` (temp file + rename); returns its path.
pub fn install(dir: &Path, exe: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe_s = exe.to_string_lossy();
    if exe_s.contains('\'') {
        return Err(format!("{}: path contains a quote", exe.display()));
    }
    let shim = dir.join("as");
    let tmp = dir.join(format!(".as.{}.tmp", std::process::id()));
    let body = format!(
        "#!/bin/sh\n# {SHIM_MARKER}: gcc -B {}/ runs this as its assembler\nexec '{exe_s}' as \"$@\"\n",
        dir.display()
    );
    write_file(&tmp, body.as_bytes())?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &shim).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{}: {e}", shim.display())
    })?;
    Ok(shim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_gcc_style_command_lines() {
        let p = parse_args(&v(&[
            "--64",
            "-I",
            "inc",
            "--gdwarf-5",
            "--noexecstack",
            "-o",
            "x.o",
            "/tmp/cc1.s",
        ]));
        assert_eq!(
            p.options,
            v(&["--64", "-I", "inc", "--gdwarf-5", "--noexecstack"])
        );
        assert_eq!(p.output, Some("x.o".into()));
        assert_eq!(p.inputs, v(&["/tmp/cc1.s"]));
        assert!(!p.info_only);
        let p = parse_args(&v(&["-ox.o", "--defsym", "A=1", "-"]));
        assert_eq!(p.output, Some("x.o".into()));
        assert_eq!(p.options, v(&["--defsym", "A=1"]));
        assert_eq!(p.inputs, v(&["-"]));
        assert!(parse_args(&v(&["--version"])).info_only);
        assert_eq!(
            source_position("# 1 \"a.S\"\nx\n# 10 \"inc.h\" 1\ny\nz\n", "t.s", 5),
            "inc.h:11 (t.s:5)"
        );
        assert_eq!(source_position("x\ny\n", "t.s", 2), "t.s:2");
        assert_eq!(
            probe_options(&v(&["-alh=x.lst", "--MD", "d", "--64"])),
            v(&["--64"])
        );
    }
}
