//! The text-level padder: GNU `as` input in, padded text with `.afterburn` records out.
//!
//! This is how the L4Ka afterburner worked (it rewrote gcc's assembly before `as`), the seed of
//! the planned assembler front end (`afterburner as`), and an independent producer of burnt
//! objects for testing [`crate::verify`]: `as` itself then does the relaxation, the relocation
//! and symbol fix-ups and the DWARF/CFI layout.
//!
//! How it finds the sites without parsing x86 assembly:
//!
//! 1. **lex** the text into statements (`;`-separated, `#` and `/* */` comments, strings);
//! 2. **probe**: assemble a copy with a label `__afb_sN:` before every statement N; the probe
//!    object then tells, for every statement, its section and offset. Each code section is
//!    decoded from the bytes exactly as the verifier decodes an original object
//!    (`verify::decode`), and the sites come from [`crate::verify::site_at`] — the same rule
//!    the burner follows, so the records are the same. Sensitive instructions written as
//!    `.byte` lists, prefixes on their own statement (`rep; insb`) and `sti; hlt` pairs all
//!    come out right because the decision is made on bytes;
//! 3. **emit**: a label before the statement that holds the site start, the padding
//!    ([`annotations::nop::fill`]) as a `.byte` list right after the statement that emits the
//!    site's last byte, and at the end of the text one `.afterburn` chunk (header + one record
//!    per site, in section-index then offset order), whose `site` fields are `.long label - .`
//!    (`R_X86_64_PC32`).
//!
//! [`Layout::Realign`] leaves every other directive alone, so `as` recomputes `.p2align` fill
//! after padded code (verify such output with `--realign`). [`Layout::Preserve`] replaces each
//! alignment directive in a code section with the exact bytes it produced in the probe (and
//! keeps the section's alignment with a `.p2align` at offset 0), so the output has the layout
//! the object-level burner produces and must pass the strict verifier.
//!
//! Sites in `.altinstr_replacement` are padded like any other and recorded with
//! `FLAG_ALTINSTR`, as the burner does; `as` recomputes `.altinstructions` lengths written as
//! label differences, and Linux's ALTERNATIVE macros grow the original region with their
//! `.skip ..., 0x90` when the padded replacement outgrows it. (Hand-written alternatives
//! without such a `.skip` are reported by the verifier when the replacement no longer fits.)
//!
//! **Macros** (`.macro`, `.rept`, `.irp`, `.irpc`, conditionals) are expanded first
//! ([`crate::gas_macro`]), so that every statement that emits bytes stands in the text and gets
//! its probe label; the expansion keeps `as`'s line attribution. When it changed the text, the
//! probe object (expanded text) must equal `as`'s object of the input ([`crate::asm_equiv`]:
//! bytes, relocations, symbols, line tables), else the input is refused. An input without
//! sites comes back as it was (not expanded), with a chunk without records, as
//! `afterburner burn` writes one for every object it burns.
//!
//! Not handled (each refused with an error naming the line, [`PadError::Unsupported`]):
//! * what the expander refuses (`.altmacro`, `.include`, `.rept` counts that depend on
//!   symbols, definitions under conditionals that depend on symbols, ...);
//! * `.code16`/`.code32`/`.code16gcc` (decoding is 64-bit only);
//! * subsections (`.subsection`, `.text 1`): statement order is then not section order;
//! * a site that ends inside a statement (e.g. `.byte 0xfa, 0x90`): the `.byte` list would
//!   have to be split;
//! * quoted symbol names (`"a b":`) as labels (they are lexed as instructions and then get a
//!   probe label of their own, which is harmless but untested);
//! * in [`Layout::Preserve`], other layout-dependent directives in code (`.org`, `.skip`/`.fill`
//!   with label-difference sizes, Linux's ALTERNATIVE padding) are left to `as` (not refused).

use crate::verify::decode::{decode_items, sites};
use crate::verify::elf::{Object, Place};
use crate::verify::ExpectedSite;
use annotations::{nop, site_len, Operands, SensitiveKind, FLAG_ALTINSTR, NOANNOTATE_SECTION_NAME};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Prefix of the probe labels (never in the output).
const PROBE: &str = "__afb_s";
/// Prefix of the site labels in the output (`.L`: not kept in the symbol table).
const SITE_LABEL: &str = ".Lafb_site";
/// Section directive of the annotation section.
const SECTION_DIRECTIVE: &str = ".pushsection .afterburn,\"\",@progbits";
/// Section of alternative replacement code (Linux).
const ALTINSTR_REPLACEMENT: &str = ".altinstr_replacement";

/// How to run GNU `as`.
#[derive(Clone, Debug)]
pub struct Assembler {
    /// The program (default `as`).
    pub program: PathBuf,
    /// Arguments before `-o OUT IN` (default `--64`).
    pub args: Vec<OsString>,
}

impl Default for Assembler {
    fn default() -> Self {
        Assembler {
            program: PathBuf::from("as"),
            args: vec!["--64".into()],
        }
    }
}

impl Assembler {
    /// Assembles `source` into the object file `out`.
    pub fn assemble(&self, source: &str, out: &Path) -> Result<(), PadError> {
        let dir = out
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let stem = out
            .file_name()
            .map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
        let src = dir.join(format!(".{stem}.{}.s", std::process::id()));
        std::fs::write(&src, source).map_err(|e| PadError::Io {
            path: src.display().to_string(),
            what: e.to_string(),
        })?;
        let res = Command::new(&self.program)
            .args(&self.args)
            .arg("-o")
            .arg(out)
            .arg(&src)
            .output();
        let _ = std::fs::remove_file(&src);
        let output = res.map_err(|e| PadError::Io {
            path: self.program.display().to_string(),
            what: e.to_string(),
        })?;
        if !output.status.success() {
            return Err(PadError::Assembler {
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

/// What to do with alignment in code sections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Leave alignment directives to `as` (they are recomputed after padding).
    #[default]
    Realign,
    /// Replace alignment directives in code with the bytes they produced before padding.
    Preserve,
}

/// Padder options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Alignment handling.
    pub layout: Layout,
    /// The assembler used for the probe.
    pub assembler: Assembler,
}

/// One padded site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaddedSite {
    /// 1-based line of the statement holding the site start.
    pub line: usize,
    /// Section name.
    pub section: String,
    /// Offset of the site in the unpadded object.
    pub offset: u64,
    /// Kind.
    pub kind: SensitiveKind,
    /// Original instruction length.
    pub insn_len: u8,
    /// Site length (instruction + padding).
    pub site_len: u8,
    /// Operands.
    pub operands: Operands,
    /// Flags.
    pub flags: u32,
}

/// The padder's result.
#[derive(Clone, Debug)]
pub struct Padded {
    /// Padded assembly text.
    pub text: String,
    /// The sites, in record order.
    pub sites: Vec<PaddedSite>,
    /// True when macros, blocks or conditionals were expanded (and the expansion checked).
    pub expanded: bool,
}

/// Why padding failed.
#[derive(Debug)]
pub enum PadError {
    /// A file could not be written or a program not run.
    Io {
        /// The path or program.
        path: String,
        /// What happened.
        what: String,
    },
    /// `as` rejected the input (or the probe).
    Assembler {
        /// Its diagnostics.
        stderr: String,
    },
    /// Input that GNU `as` rejects too (found while expanding macros): let `as` report it.
    Invalid {
        /// 1-based line.
        line: usize,
        /// What.
        what: String,
    },
    /// Input the padder does not handle yet.
    Unsupported {
        /// 1-based line.
        line: usize,
        /// What.
        what: String,
    },
    /// The probe object could not be decoded.
    Probe(crate::verify::Error),
}

impl fmt::Display for PadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PadError::Io { path, what } => write!(f, "{path}: {what}"),
            PadError::Assembler { stderr } => write!(f, "as failed:\n{stderr}"),
            PadError::Invalid { line, what } => write!(f, "line {line}: {what}"),
            PadError::Unsupported { line, what } => {
                write!(f, "line {line}: not supported yet: {what}")
            }
            PadError::Probe(e) => write!(f, "probe object: {e}"),
        }
    }
}

impl std::error::Error for PadError {}

/// What a statement is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only labels (or nothing).
    Empty,
    Instruction,
    /// A directive, lower-cased name with the dot.
    Directive(String),
    /// `symbol = expression`.
    Assignment,
}

/// One statement: byte ranges in the source.
#[derive(Clone, Debug)]
pub(crate) struct Stmt {
    /// 1-based line.
    pub(crate) line: usize,
    /// Start (before any label).
    pub(crate) start: usize,
    /// Start of the body (after labels and blanks).
    pub(crate) body: usize,
    /// End of the body (before trailing blanks, `;` or a comment).
    pub(crate) end: usize,
    pub(crate) kind: Kind,
}

pub(crate) fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'$'
}

/// Splits `src` into statements.
pub(crate) fn lex(src: &str) -> Vec<Stmt> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut in_block = false;
    while i <= b.len() {
        // One statement: from i to the next `;`, newline, `#` comment or end.
        let start = i;
        let mut end = i;
        let mut in_str = false;
        let mut stop_line = false;
        while i < b.len() {
            let c = b[i];
            if in_block {
                if c == b'*' && b.get(i + 1) == Some(&b'/') {
                    in_block = false;
                    i += 2;
                } else {
                    if c == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                continue;
            }
            if in_str {
                if c == b'\\' {
                    i += 2;
                } else {
                    if c == b'"' {
                        in_str = false;
                    }
                    i += 1;
                }
                end = i;
                continue;
            }
            match c {
                b'\n' => break,
                b';' => break,
                b'#' => {
                    stop_line = true;
                    break;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    in_block = true;
                    i += 2;
                }
                b'"' => {
                    in_str = true;
                    i += 1;
                    end = i;
                }
                b'\'' => {
                    // character constant: 'c or '\c, optionally closed by a quote
                    i += if b.get(i + 1) == Some(&b'\\') { 3 } else { 2 };
                    if b.get(i) == Some(&b'\'') {
                        i += 1;
                    }
                    end = i.min(b.len());
                }
                c if c.is_ascii_whitespace() => i += 1,
                _ => {
                    i += 1;
                    end = i;
                }
            }
        }
        let end = end.min(b.len());
        push_stmt(src, start, end, line, &mut out);
        if stop_line {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'\n' {
            line += 1;
        }
        i += 1;
    }
    out
}

fn push_stmt(src: &str, start: usize, end: usize, line: usize, out: &mut Vec<Stmt>) {
    let b = src.as_bytes();
    let mut p = start;
    let skip_ws = |mut p: usize| {
        while p < end && b[p].is_ascii_whitespace() {
            p += 1;
        }
        p
    };
    // Labels: identifier (or number) followed by `:`.
    loop {
        p = skip_ws(p);
        let mut q = p;
        while q < end && is_ident_char(b[q]) {
            q += 1;
        }
        let r = skip_ws(q);
        if q > p && r < end && b[r] == b':' && b.get(r + 1) != Some(&b':') {
            p = r + 1;
        } else {
            break;
        }
    }
    let body = skip_ws(p);
    let text = &src[body..end.max(body)];
    let kind = if text.is_empty() {
        Kind::Empty
    } else if text.starts_with('.') && !text[1..].trim_start().starts_with('=') {
        let name: String = text
            .chars()
            .take_while(|c| !c.is_ascii_whitespace() && *c != ',')
            .collect();
        let rest = text[name.len()..].trim_start();
        if rest.starts_with('=') && !rest.starts_with("==") {
            Kind::Assignment
        } else {
            Kind::Directive(name.to_ascii_lowercase())
        }
    } else {
        let name_len = text.bytes().take_while(|&c| is_ident_char(c)).count();
        let rest = text[name_len..].trim_start();
        if name_len > 0 && rest.starts_with('=') && !rest.starts_with("==") {
            Kind::Assignment
        } else {
            Kind::Instruction
        }
    };
    out.push(Stmt {
        line,
        start,
        body,
        end: end.max(body),
        kind,
    });
}

const ALIGN_DIRECTIVES: &[&str] = &[
    ".align",
    ".p2align",
    ".p2alignw",
    ".p2alignl",
    ".balign",
    ".balignw",
    ".balignl",
];
/// Left after macro expansion ([`crate::gas_macro`]), these cannot be handled.
const UNSUPPORTED_DIRECTIVES: &[&str] = &[
    ".macro",
    ".rept",
    ".irp",
    ".irpc",
    ".endr",
    ".include",
    ".code16",
    ".code32",
    ".code16gcc",
    ".subsection",
];

fn check_supported(src: &str, stmts: &[Stmt]) -> Result<(), PadError> {
    if src.contains(PROBE) || src.contains(SITE_LABEL) {
        return Err(PadError::Unsupported {
            line: 0,
            what: format!("the input already uses {PROBE} or {SITE_LABEL} names"),
        });
    }
    for s in stmts {
        if let Kind::Directive(d) = &s.kind {
            if UNSUPPORTED_DIRECTIVES.contains(&d.as_str()) {
                return Err(PadError::Unsupported {
                    line: s.line,
                    what: format!("directive {d}"),
                });
            }
            let args = src[s.body + d.len()..s.end].trim();
            if (d == ".text" || d == ".data") && !args.is_empty() {
                return Err(PadError::Unsupported {
                    line: s.line,
                    what: format!("subsection `{d} {args}`"),
                });
            }
            if d == ".section" || d == ".pushsection" {
                let name = args
                    .split(|c: char| c == ',' || c.is_ascii_whitespace())
                    .next()
                    .unwrap_or("");
                if name.trim_matches('"') == annotations::SECTION_NAME {
                    return Err(PadError::Unsupported {
                        line: s.line,
                        what: "the input already has .afterburn".into(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Applies insertions `(pos, text)` and replacements `(start, end, text)` to `src`.
fn splice(src: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    // Stable order: by position; at one position, insertions in the order given.
    edits.sort_by_key(|e| (e.0, e.1));
    let mut out = String::with_capacity(src.len() + edits.len() * 16);
    let mut pos = 0;
    for (start, end, text) in edits {
        if start > pos {
            out.push_str(&src[pos..start]);
            pos = start;
        }
        out.push_str(&text);
        pos = pos.max(end);
    }
    out.push_str(&src[pos..]);
    out
}

fn byte_list(bytes: &[u8]) -> String {
    let list: Vec<String> = bytes.iter().map(|b| format!("{b:#04x}")).collect();
    format!(".byte {}", list.join(","))
}

/// Where each statement landed in the probe object.
struct ProbeInfo {
    /// Statement index -> (section, offset).
    at: HashMap<usize, (usize, u64)>,
    /// Per section: statement indices in text order with their offsets.
    by_section: HashMap<usize, Vec<(usize, u64)>>,
}

impl ProbeInfo {
    /// The statement of section `sec` whose emitted bytes contain offset `x`, with the end of its
    /// bytes.
    fn containing(&self, sec: usize, x: u64, size: u64) -> Option<(usize, u64)> {
        let list = self.by_section.get(&sec)?;
        let i = list.partition_point(|&(_, off)| off <= x);
        if i == 0 {
            return None;
        }
        let (k, _) = list[i - 1];
        let end = list.get(i).map_or(size, |&(_, off)| off);
        Some((k, end))
    }

    /// Emitted byte range `[start, end)` of statement `k`.
    fn range(&self, k: usize, size_of: impl Fn(usize) -> u64) -> Option<(usize, u64, u64)> {
        let &(sec, off) = self.at.get(&k)?;
        let list = self.by_section.get(&sec)?;
        let i = list.iter().position(|&(j, _)| j == k)?;
        let end = list.get(i + 1).map_or_else(|| size_of(sec), |&(_, o)| o);
        Some((sec, off, end))
    }
}

/// A line marker naming line 1 of `name` (`as` then records `name`, not the file it reads).
pub(crate) fn line_marker(name: &str) -> String {
    let escaped: String = name
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            '\n' => vec![' '],
            c => vec![c],
        })
        .collect();
    format!("# 1 \"{escaped}\"\n")
}

/// True when a `.section`/`.pushsection` statement names `.afterburn_noannotate`.
fn selects_noannotate(src: &str) -> bool {
    lex(src).iter().any(|s| {
        let Kind::Directive(d) = &s.kind else {
            return false;
        };
        if d != ".section" && d != ".pushsection" {
            return false;
        }
        let name = src[s.body + d.len()..s.end]
            .trim()
            .split(|c: char| c == ',' || c.is_ascii_whitespace())
            .next()
            .unwrap_or("");
        name.trim_matches('"') == NOANNOTATE_SECTION_NAME
    })
}

fn is_conditional(d: &str) -> bool {
    d.starts_with(".if") || d.starts_with(".else") || d == ".endif"
}

/// Pads `source` (GNU `as` syntax, x86-64); see [`pad_named`].
pub fn pad(source: &str, opts: &Options) -> Result<Padded, PadError> {
    pad_named(source, DEFAULT_NAME, opts)
}

/// Name given to an input without one (line markers, `-g` line tables of the check).
const DEFAULT_NAME: &str = "afterburner-input.s";

/// Pads `source`, whose file name as `as` would record it (`-g` line tables, line markers of
/// unrolled blocks) is `name`. Macros, blocks and evaluable conditionals are expanded first
/// ([`crate::gas_macro`]); when that changed the text, the expanded text (the probe) must
/// assemble to the same object as `source` ([`crate::asm_equiv`]), or the input is refused.
pub fn pad_named(source: &str, name: &str, opts: &Options) -> Result<Padded, PadError> {
    // docs/annotation-format.md: an object with `.afterburn_noannotate` is left unchanged, so
    // such input is assembled as it is (whatever else it holds: `.code32`, macros, ...).
    if selects_noannotate(source) {
        return Ok(Padded {
            text: source.to_string(),
            sites: Vec::new(),
            expanded: false,
        });
    }
    let original = source;
    let expanded = crate::gas_macro::expand(source, name).map_err(|e| {
        if e.invalid {
            PadError::Invalid {
                line: e.line,
                what: e.what,
            }
        } else {
            PadError::Unsupported {
                line: e.line,
                what: e.what,
            }
        }
    })?;
    // Lines below are lines of the expanded text; errors name the input's line that holds the
    // same logical line (the invocation, or the body line of an unrolled block).
    let remap = |e: PadError| match e {
        PadError::Unsupported { line, what } if expanded.changed && line > 0 => {
            PadError::Unsupported {
                line: crate::gas_macro::original_line(original, &expanded.text, name, line),
                what,
            }
        }
        e => e,
    };
    pad_expanded(original, &expanded, name, opts).map_err(remap)
}

/// [`pad_named`] after the expansion.
fn pad_expanded(
    original: &str,
    expanded: &crate::gas_macro::Expanded,
    name: &str,
    opts: &Options,
) -> Result<Padded, PadError> {
    let source = expanded.text.as_str();
    let stmts = lex(source);
    check_supported(source, &stmts)?;

    // Probe: a label before every statement (not before conditional directives, which `as`
    // only recognizes while skipping when they start the statement). A leading line marker
    // names the input as `as` would, so that `-g` output does not depend on the temporary
    // file's path (it does not move any line: the marker names line 1).
    let marker = line_marker(name);
    let probe_text = splice(
        source,
        std::iter::once((0, 0, marker.clone()))
            .chain(
                stmts
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.kind != Kind::Empty || s.body > s.start)
                    .filter(|(_, s)| !matches!(&s.kind, Kind::Directive(d) if is_conditional(d)))
                    .map(|(k, s)| (s.start, s.start, format!("{PROBE}{k}: "))),
            )
            .collect(),
    );
    let dir = std::env::temp_dir().join(format!("afb-pad-{}-{}", std::process::id(), unique()));
    std::fs::create_dir_all(&dir).map_err(|e| PadError::Io {
        path: dir.display().to_string(),
        what: e.to_string(),
    })?;
    let probe_o = dir.join("probe.o");
    let res = opts.assembler.assemble(&probe_text, &probe_o);
    let bytes = res.and_then(|()| {
        std::fs::read(&probe_o).map_err(|e| PadError::Io {
            path: probe_o.display().to_string(),
            what: e.to_string(),
        })
    });
    // The expansion must not change what `as` makes of the input.
    let checked = bytes.and_then(|b| {
        if !expanded.changed {
            return Ok(b);
        }
        let orig_o = dir.join("original.o");
        opts.assembler
            .assemble(&format!("{marker}{original}"), &orig_o)
            .map_err(|e| PadError::Unsupported {
                line: 0,
                what: format!("the input alone does not assemble: {e}"),
            })?;
        let ob = std::fs::read(&orig_o).map_err(|e| PadError::Io {
            path: orig_o.display().to_string(),
            what: e.to_string(),
        })?;
        crate::asm_equiv::compare(&ob, &b, PROBE).map_err(|why| PadError::Unsupported {
            line: 0,
            what: format!(
                "the macro expansion does not assemble like the input ({why}); please report it"
            ),
        })?;
        Ok(b)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = checked?;
    let obj = Object::parse("probe object", &bytes).map_err(PadError::Probe)?;

    let mut info = ProbeInfo {
        at: HashMap::new(),
        by_section: HashMap::new(),
    };
    for sym in &obj.symbols {
        let Some(k) = sym
            .name
            .strip_prefix(PROBE)
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if let Place::Section(sec) = sym.place {
            info.at.insert(k, (sec, sym.value));
            info.by_section.entry(sec).or_default().push((k, sym.value));
        }
    }
    for list in info.by_section.values_mut() {
        list.sort_unstable();
    }
    let size_of = |sec: usize| obj.sections[sec].size;
    let noannotate = obj
        .sections
        .iter()
        .any(|s| s.name == NOANNOTATE_SECTION_NAME);

    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut padded_sites = Vec::new();
    let mut records = String::new();
    for sec in 0..obj.sections.len() {
        let s = &obj.sections[sec];
        if !s.is_code() || s.size == 0 {
            continue;
        }
        // Alignment kept as bytes.
        if opts.layout == Layout::Preserve {
            if s.addralign > 1 {
                let first = info
                    .by_section
                    .get(&sec)
                    .and_then(|l| l.iter().find(|&&(_, off)| off == 0));
                let Some(&(k, _)) = first else {
                    return Err(PadError::Unsupported {
                        line: 0,
                        what: format!(
                            "no statement at offset 0 of {} to keep its alignment",
                            s.name
                        ),
                    });
                };
                let log2 = s.addralign.trailing_zeros();
                edits.push((stmts[k].start, stmts[k].start, format!(".p2align {log2}; ")));
            }
            for &(k, _) in info.by_section.get(&sec).map(Vec::as_slice).unwrap_or(&[]) {
                let Kind::Directive(d) = &stmts[k].kind else {
                    continue;
                };
                if !ALIGN_DIRECTIVES.contains(&d.as_str()) {
                    continue;
                }
                let Some((_, start, end)) = info.range(k, size_of) else {
                    continue;
                };
                let fill = crate::verify::decode::slice(s.data, start, end - start);
                let text = if fill.is_empty() {
                    String::new()
                } else {
                    byte_list(fill)
                };
                edits.push((stmts[k].body, stmts[k].end, text));
            }
        }
        if noannotate {
            continue;
        }
        let items = decode_items(&obj, sec, Some(PROBE)).map_err(PadError::Probe)?;
        let in_alt = s.name == ALTINSTR_REPLACEMENT;
        for (off, site) in sites(&items) {
            let n = padded_sites.len();
            let (k0, _) =
                info.containing(sec, off, s.size)
                    .ok_or_else(|| PadError::Unsupported {
                        line: 0,
                        what: format!("{}+{off:#x}: no statement emits this site", s.name),
                    })?;
            let end = off + u64::from(site.insn_len);
            let (k1, k1_end) =
                info.containing(sec, end - 1, s.size)
                    .ok_or_else(|| PadError::Unsupported {
                        line: stmts[k0].line,
                        what: format!(
                            "{}+{off:#x}: no statement emits the end of this site",
                            s.name
                        ),
                    })?;
            let flags = if in_alt {
                site.flags | FLAG_ALTINSTR
            } else {
                site.flags
            };
            let len = site_len(site.kind, site.insn_len);
            let pad = usize::from(len - site.insn_len);
            if pad > 0 {
                if k1_end != end {
                    return Err(PadError::Unsupported {
                        line: stmts[k1].line,
                        what: format!(
                            "{}+{off:#x}: the {} site ends inside this statement",
                            s.name, site.kind
                        ),
                    });
                }
                let mut fill = vec![0u8; pad];
                nop::fill(&mut fill);
                edits.push((
                    stmts[k1].end,
                    stmts[k1].end,
                    format!("; {}", byte_list(&fill)),
                ));
            }
            let delta = off - info.at[&k0].1;
            edits.push((stmts[k0].body, stmts[k0].body, format!("{SITE_LABEL}{n}: ")));
            let target = if delta == 0 {
                format!("{SITE_LABEL}{n}")
            } else {
                format!("{SITE_LABEL}{n}+{delta}")
            };
            records.push_str(&record_text(&target, &site, len, flags));
            padded_sites.push(PaddedSite {
                line: stmts[k0].line,
                section: s.name.clone(),
                offset: off,
                kind: site.kind,
                insn_len: site.insn_len,
                site_len: len,
                operands: site.operands,
                flags,
            });
        }
    }
    if noannotate {
        // Opted out (docs/annotation-format.md): no padding, no records, no chunk.
        return Ok(Padded {
            text: original.to_string(),
            sites: Vec::new(),
            expanded: expanded.changed,
        });
    }
    // Nothing to pad: the input as it was (not its expansion), with an empty chunk, as
    // `afterburner burn` writes one for every object it burns.
    let mut text = if padded_sites.is_empty() {
        original.to_string()
    } else {
        splice(source, edits)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "\t{SECTION_DIRECTIVE}\n\t.balign {}\n\t.long {:#x}\n\t.byte 0, 0\n\t.short {:#x}\n\t.long {}\n\t.short {}, {}\n{records}\t.popsection\n",
        annotations::SECTION_ALIGN,
        annotations::MAGIC,
        annotations::HEADER_KIND,
        padded_sites.len(),
        annotations::VERSION,
        annotations::RECORD_SIZE,
    ));
    Ok(Padded {
        text,
        sites: padded_sites,
        expanded: expanded.changed,
    })
}

fn record_text(target: &str, site: &ExpectedSite, site_len: u8, flags: u32) -> String {
    format!(
        "\t.long {target} - .\n\t.byte {}, {site_len}\n\t.short {}\n\t.long {:#x}, {flags:#x}\n",
        site.insn_len, site.kind as u16, site.operands.0
    )
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(usize, Kind, String)> {
        lex(src)
            .into_iter()
            .map(|s| (s.line, s.kind, src[s.body..s.end].to_string()))
            .collect()
    }

    #[test]
    fn lexer_splits_statements_labels_comments_and_strings() {
        let src = "foo: bar: cli # a; comment\n\tsti; hlt\n.L1:\n\t.ascii \"a;b#c\" /* x; y */ ; x = 3\n\tcmpb $';', %al\n";
        let got = kinds(src);
        assert_eq!(
            got,
            vec![
                (1, Kind::Instruction, "cli".into()),
                (2, Kind::Instruction, "sti".into()),
                (2, Kind::Instruction, "hlt".into()),
                (3, Kind::Empty, "".into()),
                (
                    4,
                    Kind::Directive(".ascii".into()),
                    ".ascii \"a;b#c\"".into()
                ),
                (4, Kind::Assignment, "x = 3".into()),
                (5, Kind::Instruction, "cmpb $';', %al".into()),
                (6, Kind::Empty, "".into()),
            ]
        );
        // Segment overrides are not labels.
        assert_eq!(kinds("mov %fs:0x28, %rax")[0].2, "mov %fs:0x28, %rax");
    }

    #[test]
    fn refusals_after_expansion_name_the_input_line() {
        let src = "\t.text\n.rept 2\n\tnop\n\tnop\n.endr\n\t.code32\n\tcli\n";
        match pad(src, &Options::default()) {
            Err(PadError::Unsupported { line, what }) => {
                assert_eq!((line, what.as_str()), (6, "directive .code32"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn splice_inserts_and_replaces() {
        let s = splice(
            "abcdef",
            vec![(3, 3, "X".into()), (1, 2, "YY".into()), (6, 6, "!".into())],
        );
        assert_eq!(s, "aYYcXdef!");
    }
}
