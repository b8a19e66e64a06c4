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
//! Each input is preceded by a line marker naming it as `as` would (and gcc's empty-name
//! markers are given that name, [`name_empty_markers`]), so that `as -g` records the input's
//! name and lines, never the temporary file's.
//!
//! Not padded, without a word: output `/dev/null` (toolchain probes) and outputs matching
//! `AFTERBURNER_AS_SKIP` (code that is not part of the kernel image: boot code, real-mode
//! trampoline, vDSO); these run the real `as` with the original arguments. An input that
//! selects the `.afterburn_noannotate` section gets no padding and no records, as in
//! `afterburner burn`. Input the padder refuses ([`crate::asm_pad`]: `.code32`, ...) is
//! assembled unpadded with a `WARNING` line on standard error naming the input and line, or
//! refused when `AFTERBURNER_AS_STRICT=1`.

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
    let output = parsed
        .output
        .clone()
        .unwrap_or_else(|| OsString::from("a.out"));
    if let Some(pattern) = skipped(&output) {
        // Deliberately not afterburnt (docs/kernel-builds.md): exactly plain `as`.
        if verbose() {
            eprintln!(
                "afterburner as: {}: not padded (AFTERBURNER_AS_SKIP pattern {pattern})",
                Path::new(&output).display()
            );
        }
        return run_real(&real, args);
    }
    // Read the input text. Each input starts with a line marker naming it as `as` would (the
    // path as given, `{standard input}` for `-`): the text `as` finally reads is a temporary
    // file, and without the marker `as -g` would record that file's path in DWARF.
    let mut source = Vec::new();
    let inputs: Vec<OsString> = if parsed.inputs.is_empty() {
        vec!["-".into()]
    } else {
        parsed.inputs.clone()
    };
    let mut names = Vec::new();
    for input in &inputs {
        let name = if input == "-" {
            STDIN_NAME.to_string()
        } else {
            Path::new(input).display().to_string()
        };
        if !source.is_empty() && !source.ends_with(b"\n") {
            source.push(b'\n');
        }
        source.extend_from_slice(asm_pad::line_marker(&name).as_bytes());
        let mut content = Vec::new();
        let res = if input == "-" {
            std::io::stdin().read_to_end(&mut content).map(|_| ())
        } else {
            std::fs::read(input).map(|b| content = b)
        };
        if let Err(e) = res {
            eprintln!("afterburner as: {}: {e}", Path::new(input).display());
            return 1;
        }
        source.extend_from_slice(&name_empty_markers(&content, &name));
        names.push(name);
    }
    let name = if names.len() == 1 {
        names[0].clone()
    } else {
        STDIN_NAME.to_string()
    };
    let dir = match tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("afterburner as: {e}");
            return 1;
        }
    };
    let code = assemble(&real, &parsed, &source, &names[0], &name, &dir.0);
    drop(dir);
    code
}

/// Rewrites each line marker with an empty file name (`# 0 "" 2`, which gcc writes after
/// inline assembly) into one naming the input and the line that follows, `# P "NAME" 2`. For
/// `as` an empty name means "back to the file being read, at its own line number", and the file
/// being read is the wrapper's temporary copy, one line longer (its first line is the marker
/// naming the input): `-g` line tables would name that copy and be off by one.
pub fn name_empty_markers(content: &[u8], name: &str) -> Vec<u8> {
    if !content.windows(3).any(|w| w == b" \"\"") {
        return content.to_vec();
    }
    let quoted = asm_pad::line_marker(name);
    // `# 1 "NAME"\n` -> `"NAME"`
    let quoted = &quoted.as_bytes()[4..quoted.len() - 1];
    let mut out = Vec::with_capacity(content.len() + 64);
    for (i, line) in content.split_inclusive(|&c| c == b'\n').enumerate() {
        let marker = (|| {
            let rest = line.strip_prefix(b"#")?;
            let digits = rest.iter().take_while(|c| c.is_ascii_whitespace()).count();
            let rest = &rest[digits..];
            let n = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return None;
            }
            let rest = &rest[n..];
            let blank = rest.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
            if blank == 0 {
                return None;
            }
            rest[blank..].strip_prefix(b"\"\"")
        })();
        match marker {
            Some(flags) => {
                out.extend_from_slice(format!("# {} ", i + 2).as_bytes());
                out.extend_from_slice(quoted);
                out.extend_from_slice(flags);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// How `as` names standard input.
const STDIN_NAME: &str = "{standard input}";

/// Why `output` is not padded, if it is not: it is `/dev/null`, or it matches an
/// `AFTERBURNER_AS_SKIP` pattern (blank- or colon-separated shell patterns with `*` and `?`,
/// matched against the output path as given to `-o`, without a leading `./`).
fn skipped(output: &OsStr) -> Option<String> {
    if output == "/dev/null" {
        // A toolchain probe (kbuild's `as-instr`): nothing is kept, so nothing is padded.
        return Some("/dev/null".into());
    }
    let list = std::env::var("AFTERBURNER_AS_SKIP").ok()?;
    let out = output.to_string_lossy();
    let out = out.strip_prefix("./").unwrap_or(&out);
    list.split(|c: char| c == ':' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .find(|p| glob_match(p.as_bytes(), out.as_bytes()))
        .map(str::to_string)
}

/// Shell-style match of `text` against `pat` (`*` any run of characters, `/` included; `?`
/// one character).
pub fn glob_match(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

fn verbose() -> bool {
    std::env::var_os("AFTERBURNER_AS_VERBOSE").is_some_and(|v| v == "1")
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

/// Falls back to the unpadded text (with a WARNING), or fails with `AFTERBURNER_AS_STRICT=1`.
fn unpadded(at: &str, why: &str, parsed: &AsArgs, source: &[u8]) -> Result<Vec<u8>, i32> {
    if strict() {
        eprintln!("afterburner as: {at}: error: not padded: {why} (AFTERBURNER_AS_STRICT=1)");
        return Err(1);
    }
    warn(
        at,
        &format!("{why}; assembled UNPADDED, no .afterburn records"),
        parsed.output.as_ref(),
    );
    Ok(source.to_vec())
}

fn assemble(
    real: &Path,
    parsed: &AsArgs,
    source: &[u8],
    file: &str,
    name: &str,
    dir: &Path,
) -> i32 {
    let mut final_args = parsed.options.clone();
    if let Some(o) = &parsed.output {
        final_args.push("-o".into());
        final_args.push(o.clone());
    }
    let text_in = dir.join(
        Path::new(file)
            .file_name()
            .filter(|_| file != STDIN_NAME)
            .unwrap_or(OsStr::new("stdin.s")),
    );
    let padded: Result<Vec<u8>, i32> = match std::str::from_utf8(source) {
        Err(e) => unpadded(name, &format!("input is not UTF-8 ({e})"), parsed, source),
        Ok(text) => {
            let opts = asm_pad::Options {
                layout: Layout::Realign,
                assembler: Assembler {
                    program: real.to_path_buf(),
                    args: probe_options(&parsed.options),
                },
            };
            match asm_pad::pad_named(text, name, &opts) {
                Ok(p) => Ok(p.text.into_bytes()),
                Err(PadError::Unsupported { line, what }) => {
                    let at = if line == 0 {
                        name.to_string()
                    } else {
                        source_position(text, name, line)
                    };
                    unpadded(&at, &what, parsed, source)
                }
                Err(e @ (PadError::Assembler { .. } | PadError::Invalid { .. })) => {
                    // The input itself is probably wrong: let the real `as` report it.
                    if let Err(e) = write_file(&text_in, source) {
                        eprintln!("afterburner as: {e}");
                        return 1;
                    }
                    final_args.push(text_in.into_os_string());
                    let code = run_real(real, &final_args);
                    if code == 0 {
                        // `as` accepts it: our own limitation, and the object is already there
                        // (unpadded).
                        let why = match e {
                            PadError::Invalid { line, what } => format!(
                                "the macro expander refuses {}: {what}",
                                source_position(text, name, line)
                            ),
                            _ => "as accepts the input but not the padder's probe of it".into(),
                        };
                        if strict() {
                            eprintln!(
                                "afterburner as: {name}: error: not padded: {why} (AFTERBURNER_AS_STRICT=1)"
                            );
                            if let Some(o) = &parsed.output {
                                let _ = std::fs::remove_file(o);
                            }
                            return 1;
                        }
                        warn(
                            name,
                            &format!("{why}; assembled UNPADDED, no .afterburn records"),
                            parsed.output.as_ref(),
                        );
                    }
                    return code;
                }
                Err(PadError::Probe(e)) => {
                    // Bytes the decoder refuses (data in code, ...): `afterburner burn` refuses
                    // such an object too.
                    unpadded(name, &e.to_string(), parsed, source)
                }
                Err(e) => {
                    eprintln!("afterburner as: {name}: error: {e}");
                    return 1;
                }
            }
        }
    };
    let padded = match padded {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Err(e) = write_file(&text_in, &padded) {
        eprintln!("afterburner as: {e}");
        return 1;
    }
    keep_copy(&text_in, "", &padded);
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

/// With `AFTERBURNER_AS_KEEP=DIR`, writes `bytes` to `DIR/NAME` or `DIR/NAME.TAG` (debugging
/// aid).
fn keep_copy(text_in: &Path, tag: &str, bytes: &[u8]) {
    if let Some(keep) = std::env::var_os("AFTERBURNER_AS_KEEP").filter(|k| !k.is_empty()) {
        let _ = std::fs::create_dir_all(&keep);
        let mut name = text_in.file_name().unwrap_or_default().to_owned();
        if !tag.is_empty() {
            name.push(".");
            name.push(tag);
        }
        let _ = std::fs::write(Path::new(&keep).join(name), bytes);
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
        assert_eq!(
            name_empty_markers(b"nop\n# 0 \"\" 2\nret\n# 5 \"a.h\"\n", "/t/x.s"),
            b"nop\n# 3 \"/t/x.s\" 2\nret\n# 5 \"a.h\"\n"
        );
        assert!(glob_match(b"arch/x86/boot/*", b"arch/x86/boot/compressed/head_64.o"));
        assert!(glob_match(b"*/vdso/v?lock*.o", b"arch/x86/entry/vdso/vclock_gettime.o"));
        assert!(!glob_match(b"arch/x86/boot/*", b"arch/x86/kernel/head_64.o"));
    }
}
