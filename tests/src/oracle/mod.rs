//! Oracles built from tools nobody here wrote: GNU objdump, readelf, objcopy and addr2line.
//!
//! They judge an original/burnt object pair without any afterburn code except the
//! `annotations` record parser (the `.afterburn` bytes are dumped by `objcopy`, their site
//! relocations read from `readelf`):
//!
//! * [`objdump_equivalent`]: per function, the same instruction sequence once the NOPs inside
//!   annotated sites are dropped; branch and RIP-relative targets compared as instruction
//!   indices, relocations as type + symbol + target (into code: as an instruction index);
//! * [`addr2line_equivalent`]: every kept instruction start gives the same function/inline
//!   chain and file:line in both objects;
//! * [`cfi_equivalent`]: `readelf -wF`'s interpreted `.eh_frame` rows (CFA and register rules)
//!   are the same per FDE, with addresses compared as instruction indices.
//!
//! [`all_equivalent`] runs all three on one pair, reading each object with the tools once.
//!
//! Each returns `Err(Vec<Diff>)` naming the differences (a failing tool is a `Diff` too).
//! With [`Options::realign`] every NOP outside sites is dropped as well: use it for objects
//! whose alignment `as` recomputed, and for burner output of kernel objects, where
//! alternative regions may grow by NOPs and 2-byte jump-label NOPs may become 5-byte NOPs
//! (the verifier checks those rules strictly).

mod addr2line;
mod cfi;
mod elfinfo;
mod objdump;

pub use addr2line::{addr2line_equivalent, addr2line_equivalent_with};
pub use cfi::{cfi_equivalent, cfi_equivalent_with};
pub use objdump::{objdump_equivalent, objdump_equivalent_with, Checked};

use std::fmt;
use std::path::Path;
use std::process::Command;

/// What [`all_equivalent`] compared, per oracle.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllChecked {
    /// The objdump oracle (functions, instructions).
    pub objdump: Checked,
    /// The addr2line oracle (addresses); `None` when the original has no `.debug_line`.
    pub addr2line: Option<Checked>,
    /// The CFI oracle (rows); `None` when neither object has `.eh_frame` or `.debug_frame`.
    pub cfi: Option<Checked>,
}

/// Runs [`objdump_equivalent_with`], and [`addr2line_equivalent_with`] and
/// [`cfi_equivalent_with`] where they apply, on one pair; each object is read (objdump,
/// readelf, objcopy) once for all three. Differences of all oracles are returned together.
pub fn all_equivalent(orig: &Path, burnt: &Path, opts: &Options) -> Result<AllChecked, Vec<Diff>> {
    let mut diffs = Vec::new();
    let (mut po, lo) =
        objdump::prepare(orig, opts, &mut diffs, "original").map_err(|e| vec![e.into()])?;
    let (mut pb, lb) =
        objdump::prepare(burnt, opts, &mut diffs, "burnt").map_err(|e| vec![e.into()])?;
    objdump::share_bad(&mut po, &mut pb);
    let mut all = AllChecked {
        objdump: objdump::compare_prepared(&po, &lo, &pb, &lb, &mut diffs),
        ..AllChecked::default()
    };
    if addr2line::has_lines(&po) {
        match addr2line::compare_prepared(orig, &po, burnt, &pb, &mut diffs) {
            Ok(c) => all.addr2line = Some(c),
            Err(d) => diffs.extend(d),
        }
    }
    if cfi::has_frames(&po) || cfi::has_frames(&pb) {
        match cfi::compare_prepared(orig, &po, burnt, &pb, &mut diffs) {
            Ok(c) => all.cfi = Some(c),
            Err(d) => diffs.extend(d),
        }
    }
    if diffs.is_empty() {
        Ok(all)
    } else {
        Err(diffs)
    }
}

/// How to compare.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also drop every NOP outside sites (for objects whose alignment `as` recomputed).
    pub realign: bool,
}

/// One difference found by an oracle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// Section name (empty when not about a section).
    pub section: String,
    /// Function (objdump's symbol header) when known.
    pub function: Option<String>,
    /// Index of the instruction within its function (padding dropped).
    pub index: Option<usize>,
    /// What is wrong.
    pub what: String,
    /// The original side, as the tool printed it (normalised).
    pub original: Option<String>,
    /// The burnt side.
    pub burnt: Option<String>,
}

impl Diff {
    pub(crate) fn tool(what: String) -> Diff {
        Diff {
            section: String::new(),
            function: None,
            index: None,
            what,
            original: None,
            burnt: None,
        }
    }
}

/// A tool failed or printed something unexpected (becomes a [`Diff`] at the API boundary).
#[derive(Clone, Debug)]
pub(crate) struct ToolError(pub String);

impl From<ToolError> for Diff {
    fn from(e: ToolError) -> Diff {
        Diff::tool(e.0)
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.section.is_empty() {
            write!(f, "{}", self.section)?;
            if let Some(func) = &self.function {
                write!(f, " <{func}>")?;
            }
            if let Some(i) = self.index {
                write!(f, " #{i}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.what)?;
        if let Some(o) = &self.original {
            write!(f, "\n    original: {o}")?;
        }
        if let Some(b) = &self.burnt {
            write!(f, "\n    burnt:    {b}")?;
        }
        Ok(())
    }
}

/// Renders the first `limit` differences, one per paragraph.
pub fn render(diffs: &[Diff], limit: usize) -> String {
    let mut s = String::new();
    for d in diffs.iter().take(limit) {
        s.push_str(&format!("{d}\n"));
    }
    if diffs.len() > limit {
        s.push_str(&format!("... {} more\n", diffs.len() - limit));
    }
    s
}

/// Runs `program args`, returning stdout; a failure names the command.
pub(crate) fn run(
    program: &str,
    args: &[&std::ffi::OsStr],
    stdin: Option<&str>,
) -> Result<String, ToolError> {
    use std::io::Write;
    let show = || {
        let a: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        format!("{program} {}", a.join(" "))
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(std::process::Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ToolError(format!("cannot run `{}`: {e}", show())))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        // Write on a thread so a large output cannot deadlock against a large input.
        let input = input.to_string();
        let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
        let out = child
            .wait_with_output()
            .map_err(|e| ToolError(format!("`{}`: {e}", show())))?;
        let _ = writer.join();
        return finish(out, show);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| ToolError(format!("`{}`: {e}", show())))?;
    finish(out, show)
}

fn finish(out: std::process::Output, show: impl Fn() -> String) -> Result<String, ToolError> {
    if !out.status.success() {
        return Err(ToolError(format!(
            "`{}` failed: {}",
            show(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn os(p: &Path) -> &std::ffi::OsStr {
    p.as_os_str()
}
