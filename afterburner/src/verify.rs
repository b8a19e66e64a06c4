//! `afterburner verify ORIGINAL BURNT`: an independent check of a burnt object.
//!
//! The verifier trusts nothing the burner computed. It decodes the original object's code
//! sections, walks original and burnt code in lockstep and derives the offset map from the
//! bytes ([`map::SectionMap`]); then it demands
//!
//! * **same code**: every original instruction is found at its mapped place with the same
//!   bytes, except that (a) fields covered by relocations are compared as relocations, (b) a
//!   near branch or RIP-relative operand resolved inside its section (no relocation) must reach
//!   the mapped target, and (c) a short `jmp`/`jcc` may have become the near form of the same
//!   branch;
//! * **padding only in sites**: every other burnt byte is padding right after a sensitive
//!   instruction, exactly what [`annotations::nop::fill`] writes, and covered by that site's
//!   record;
//! * **a record for every site**: each sensitive instruction ([`crate::sensitive::classify`],
//!   with the `sti; hlt` pair rule of [`crate::sensitive::pairs_with`]) has a `.afterburn`
//!   record at its mapped place with the right kind, `insn_len`, `operands`, flags and
//!   `site_len`, and no record points anywhere else;
//! * **same data**: every other section has the same bytes except relocated fields and the
//!   `.altinstructions` length fields (checked against the map); every relocation is present
//!   at its mapped offset, designating the mapped target; every symbol has the mapped value and
//!   size; no section, relocation or symbol was added except `.afterburn` and its relocations.
//!
//! Sections whose contents are derived from the code layout (`.eh_frame`, `.debug_*`) are not
//! compared here; the report lists them. The GNU-tool oracles in the `afterburn-tests` crate
//! (objdump, addr2line) cover the line tables.
//!
//! With [`Options::realign`], a maximal run of NOP instructions outside sites may change length
//! (objects made by re-assembling padded text, where `.p2align` is recomputed). The burner
//! itself must pass without it.
//!
//! Exit codes of [`main_entry`]: 0 equivalent, 1 differences (the report names the first few),
//! 2 the inputs could not be read or the original cannot be verified.

mod check;
pub(crate) mod decode;
pub(crate) mod elf;
pub mod map;
mod special;

use annotations::{Operands, SensitiveKind, FLAG_PAIR};
use iced_x86::Instruction;
use std::fmt;
use std::path::Path;

/// How to verify.
#[derive(Clone, Debug)]
pub struct Options {
    /// Allow maximal NOP runs outside sites to change length (alignment recomputed by `as`).
    pub realign: bool,
    /// Stop collecting differences after this many (the report says it stopped).
    pub max_diffs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            realign: false,
            max_diffs: 200,
        }
    }
}

/// One difference between original and burnt object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// Section name (of the original, or of the burnt object for burnt-only things).
    pub section: String,
    /// Offset in the original section, when the difference has one.
    pub orig_offset: Option<u64>,
    /// Offset in the burnt section, when the difference has one.
    pub burnt_offset: Option<u64>,
    /// `symbol+offset` of the place (in the original when there is one).
    pub place: Option<String>,
    /// What is wrong.
    pub what: String,
    /// The original instruction or bytes, formatted (`bytes  AT&T text`).
    pub original: Option<String>,
    /// The burnt instruction or bytes, formatted.
    pub burnt: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.orig_offset, self.burnt_offset) {
            (Some(o), Some(b)) => write!(f, "{}+{o:#x} -> burnt +{b:#x}", self.section)?,
            (Some(o), None) => write!(f, "{}+{o:#x}", self.section)?,
            (None, Some(b)) => write!(f, "burnt {}+{b:#x}", self.section)?,
            (None, None) => write!(f, "{}", self.section)?,
        }
        if let Some(p) = &self.place {
            write!(f, " <{p}>")?;
        }
        write!(f, ": {}", self.what)?;
        if let Some(o) = &self.original {
            write!(f, "\n      original: {o}")?;
        }
        if let Some(b) = &self.burnt {
            write!(f, "\n      burnt:    {b}")?;
        }
        Ok(())
    }
}

/// What was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Sections compared (code and data).
    pub sections: usize,
    /// Code sections walked.
    pub code_sections: usize,
    /// Original instructions matched.
    pub instructions: usize,
    /// Sensitive sites expected.
    pub sites: usize,
    /// Site records in the burnt object.
    pub records: usize,
    /// Original relocations checked.
    pub relocations: usize,
    /// Original symbols checked.
    pub symbols: usize,
    /// NOP runs whose length changed (only with [`Options::realign`]).
    pub realigned_runs: usize,
    /// Alternative regions grown with NOP padding so that their replacement still fits.
    pub alt_growth: usize,
    /// Entries of relative tables (`.long target - base`) matched through their base.
    pub table_entries: usize,
}

/// The verdict.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Differences found, in the order found (sections in index order).
    pub differences: Vec<Difference>,
    /// Collection stopped at [`Options::max_diffs`].
    pub truncated: bool,
    /// Counts of what was checked.
    pub stats: Stats,
    /// Sections or checks that were skipped, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the burnt object is equivalent to the original.
    pub fn is_ok(&self) -> bool {
        self.differences.is_empty()
    }

    /// Human-readable report naming at most `limit` differences.
    pub fn render(&self, limit: usize) -> String {
        let s = &self.stats;
        let mut out = String::new();
        if self.is_ok() {
            out.push_str("verify: OK\n");
        } else {
            let more = if self.truncated { " or more" } else { "" };
            out.push_str(&format!(
                "verify: FAILED: {} difference(s){more}\n",
                self.differences.len()
            ));
            for (i, d) in self.differences.iter().take(limit).enumerate() {
                out.push_str(&format!("  {}. {d}\n", i + 1));
            }
            if self.differences.len() > limit {
                out.push_str(&format!(
                    "  ... {} more not shown\n",
                    self.differences.len() - limit
                ));
            }
        }
        out.push_str(&format!(
            "checked: {} sections ({} code), {} instructions, {} sites ({} records), {} relocations, {} symbols",
            s.sections, s.code_sections, s.instructions, s.sites, s.records, s.relocations, s.symbols
        ));
        if s.alt_growth > 0 {
            out.push_str(&format!(", {} alternative regions grown", s.alt_growth));
        }
        if s.realigned_runs > 0 {
            out.push_str(&format!(", {} NOP runs realigned", s.realigned_runs));
        }
        out.push('\n');
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// Why verification could not be carried out (exit code 2).
#[derive(Debug)]
pub enum Error {
    /// A file could not be read.
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a well-formed relocatable ELF64 x86-64 object.
    BadElf {
        /// Which file.
        file: String,
        /// What is wrong.
        what: String,
    },
    /// Well-formed, but something this verifier does not handle.
    Unsupported {
        /// Which file.
        file: String,
        /// What.
        what: String,
    },
    /// Original code that cannot be decoded with confidence.
    Undecodable {
        /// Which file.
        file: String,
        /// Section name.
        section: String,
        /// Offset in the section.
        offset: u64,
        /// `symbol+offset`.
        place: String,
        /// Why.
        why: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::BadElf { file, what } => write!(f, "{file}: not a usable ELF object: {what}"),
            Error::Unsupported { file, what } => write!(f, "{file}: unsupported: {what}"),
            Error::Undecodable {
                file,
                section,
                offset,
                place,
                why,
            } => {
                write!(
                    f,
                    "{file}: {section}+{offset:#x} <{place}>: cannot decode: {why}"
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The record a sensitive instruction (or `sti; hlt` pair) must have, as far as it follows from
/// the instruction bytes. `site_len` and the `FLAG_UNPADDED`/`FLAG_ALTINSTR` flags depend on
/// where the site is and are added by the producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectedSite {
    /// Kind of the site.
    pub kind: SensitiveKind,
    /// Operand details.
    pub operands: Operands,
    /// Length of the original instruction(s).
    pub insn_len: u8,
    /// How many instructions the site covers (2 for `sti; hlt`).
    pub count: usize,
    /// [`FLAG_PAIR`] for a pair, else 0.
    pub flags: u32,
}

/// The site that starts at `insns[0]`, if any. `insns[1]`, when present, must be the
/// instruction that follows `insns[0]` directly in the byte stream (it is only used for the
/// `sti; hlt` pair rule). The one rule shared by the verifier and the assembler front end
/// ([`crate::asm_pad`]); the burner must produce the same records.
pub fn site_at(insns: &[Instruction]) -> Option<ExpectedSite> {
    let first = insns.first()?;
    let class = crate::sensitive::classify(first)?;
    let len0 = u8::try_from(first.len()).ok()?;
    if let Some(next) = insns.get(1) {
        if next.ip() == first.next_ip() && crate::sensitive::pairs_with(&class, next) {
            let len1 = u8::try_from(next.len()).ok()?;
            return Some(ExpectedSite {
                kind: SensitiveKind::StiHlt,
                operands: Operands::NONE,
                insn_len: len0.checked_add(len1)?,
                count: 2,
                flags: FLAG_PAIR,
            });
        }
    }
    Some(ExpectedSite {
        kind: class.kind,
        operands: class.operands,
        insn_len: len0,
        count: 1,
        flags: 0,
    })
}

/// Verifies `burnt` against `original` (both the bytes of relocatable ELF64 x86-64 objects).
pub fn verify_bytes(original: &[u8], burnt: &[u8], opts: &Options) -> Result<Report, Error> {
    check::verify(("original", original), ("burnt", burnt), opts)
}

/// Verifies the object at `burnt` against the one at `original` with default options.
pub fn run(original: &Path, burnt: &Path) -> Result<Report, Error> {
    run_with(original, burnt, &Options::default())
}

/// Verifies the object at `burnt` against the one at `original`.
pub fn run_with(original: &Path, burnt: &Path, opts: &Options) -> Result<Report, Error> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| Error::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let o = read(original)?;
    let b = read(burnt)?;
    let ol = original.display().to_string();
    let bl = burnt.display().to_string();
    check::verify((&ol, &o), (&bl, &b), opts)
}

const USAGE: &str = "usage: afterburner verify [--realign] [--show N] ORIGINAL BURNT\n\
  Checks that BURNT is ORIGINAL with padded, annotated sensitive instructions and nothing else.\n\
  --realign  allow NOP runs outside sites to change length (objects re-assembled by `as`)\n\
  --show N   name at most N differences (default 10)\n\
  exit: 0 equivalent, 1 differences, 2 error";

/// Command-line glue: `args` are the arguments after `verify`. Prints the report to stdout and
/// errors to stderr; returns the exit code (0 equivalent, 1 differences, 2 error).
pub fn main_entry(args: &[String]) -> i32 {
    let mut opts = Options::default();
    let mut show = 10usize;
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--realign" => opts.realign = true,
            "--show" => match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => show = n,
                None => {
                    eprintln!("afterburner verify: --show needs a number\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                eprintln!("afterburner verify: unknown option {s}\n{USAGE}");
                return 2;
            }
            _ => files.push(a),
        }
    }
    let [orig, burnt] = files.as_slice() else {
        eprintln!("afterburner verify: need ORIGINAL and BURNT\n{USAGE}");
        return 2;
    };
    opts.max_diffs = opts.max_diffs.max(show);
    match run_with(Path::new(orig), Path::new(burnt), &opts) {
        Ok(report) => {
            print!("{}", report.render(show));
            if report.is_ok() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("afterburner verify: {e}");
            2
        }
    }
}
