//! The annotated sites of two burnt objects compared by function and instruction, not address:
//! the check that the object route (`afterburner burn`) and the assembler route
//! (`afterburner as`) annotate the same sensitive instructions of one source.
//!
//! Each `.afterburn` record is resolved through its `R_X86_64_PC32` relocation to a section and
//! offset; the site's key is (code section, enclosing symbol, original instruction bytes,
//! occurrence of those bytes among the symbol's sites). Record fields (kind, lengths,
//! operands, flags) must then agree too.

use crate::verify::elf::{Object, Place};
use annotations::{SiteRecord, Sites, SECTION_NAME};
use object::elf;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Identity of one site, independent of its address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SiteKey {
    /// Code section.
    pub section: String,
    /// Enclosing symbol (nearest named symbol at or below the site), or `?`.
    pub function: String,
    /// Original instruction bytes, hex.
    pub insn: String,
    /// Which occurrence of these bytes among the function's sites (0 first).
    pub occurrence: usize,
}

/// What a record says about its site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteInfo {
    /// Kind name.
    pub kind: String,
    /// Original length.
    pub insn_len: u8,
    /// Padded length.
    pub site_len: u8,
    /// Operands word.
    pub operands: u32,
    /// Flags.
    pub flags: u32,
    /// Section offset in the burnt object (for messages only).
    pub offset: u64,
}

/// The sites of one burnt object.
pub fn sites_of(label: &str, data: &[u8]) -> Result<BTreeMap<SiteKey, SiteInfo>, String> {
    let obj = Object::parse(label, data).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    let mut raw: Vec<(usize, u64, SiteRecord)> = Vec::new();
    for (ai, a) in obj.sections.iter().enumerate() {
        if a.name != SECTION_NAME {
            continue;
        }
        for item in Sites::new(a.data) {
            let (pos, rec) = item.map_err(|e| format!("{label}: {SECTION_NAME}: {e}"))?;
            let pos = pos as u64;
            let r = a.relocs.iter().find(|r| r.offset == pos).ok_or_else(|| {
                format!("{label}: {SECTION_NAME}+{pos:#x}: record without relocation")
            })?;
            if r.r_type != elf::R_X86_64_PC32.0 {
                return Err(format!(
                    "{label}: {SECTION_NAME}+{pos:#x}: relocation type {} is not R_X86_64_PC32",
                    r.r_type
                ));
            }
            let sym = obj.symbols.get(r.sym).ok_or_else(|| {
                format!(
                    "{label}: {SECTION_NAME}+{pos:#x}: bad symbol index {}",
                    r.sym
                )
            })?;
            let Place::Section(sec) = sym.place else {
                return Err(format!(
                    "{label}: {SECTION_NAME}+{pos:#x}: site symbol {} is not defined in a section",
                    sym.name
                ));
            };
            // Field = S + A - P + (value written at P, 0); the site is at P + field = S + A.
            let field = i64::from(rec.site);
            let off = sym
                .value
                .checked_add_signed(r.addend)
                .and_then(|o| o.checked_add_signed(field))
                .ok_or_else(|| format!("{label}: {SECTION_NAME}+{pos:#x}: site out of range"))?;
            let _ = ai;
            raw.push((sec, off, rec));
        }
    }
    raw.sort_by_key(|&(s, o, _)| (s, o));
    let mut seen: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for (sec, off, rec) in raw {
        let s = &obj.sections[sec];
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(usize::from(rec.insn_len))
            .and_then(|end| s.data.get(start..end))
            .ok_or_else(|| format!("{label}: {}+{off:#x}: site outside its section", s.name))?;
        let insn: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let function = enclosing(&obj, sec, off);
        let n = seen
            .entry((s.name.clone(), function.clone(), insn.clone()))
            .or_insert(0);
        let key = SiteKey {
            section: s.name.clone(),
            function,
            insn,
            occurrence: *n,
        };
        *n += 1;
        out.insert(
            key,
            SiteInfo {
                kind: rec.kind.to_string(),
                insn_len: rec.insn_len,
                site_len: rec.site_len,
                operands: rec.operands.0,
                flags: rec.flags,
                offset: off,
            },
        );
    }
    Ok(out)
}

fn enclosing(obj: &Object<'_>, sec: usize, off: u64) -> String {
    obj.symbols
        .iter()
        .filter(|s| {
            s.place == Place::Section(sec)
                && !s.is_section()
                && s.st_type != elf::STT_FILE.0
                && !s.name.is_empty()
                && s.value <= off
        })
        .max_by_key(|s| (s.value, s.st_type == elf::STT_FUNC.0))
        .map_or_else(|| "?".into(), |s| s.name.clone())
}

/// The comparison of two objects.
#[derive(Debug, Default)]
pub struct Diff {
    /// Sites both have, with the same record fields.
    pub same: usize,
    /// Disagreements, one line each.
    pub lines: Vec<String>,
}

impl Diff {
    /// No disagreement.
    pub fn is_same(&self) -> bool {
        self.lines.is_empty()
    }

    /// Text report: one line per disagreement, then a summary line.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "{l}");
        }
        let _ = writeln!(
            s,
            "{} sites agree, {} disagree",
            self.same,
            self.lines.len()
        );
        s
    }
}

fn key_text(k: &SiteKey) -> String {
    format!("{} {} [{}]#{}", k.section, k.function, k.insn, k.occurrence)
}

/// Compares the site maps of A and B.
pub fn diff(a: &BTreeMap<SiteKey, SiteInfo>, b: &BTreeMap<SiteKey, SiteInfo>) -> Diff {
    let mut d = Diff::default();
    for (k, ia) in a {
        match b.get(k) {
            None => d.lines.push(format!(
                "only in A: {} {} (A offset {:#x})",
                key_text(k),
                ia.kind,
                ia.offset
            )),
            Some(ib) => {
                let fa = (&ia.kind, ia.insn_len, ia.site_len, ia.operands, ia.flags);
                let fb = (&ib.kind, ib.insn_len, ib.site_len, ib.operands, ib.flags);
                if fa == fb {
                    d.same += 1;
                } else {
                    d.lines.push(format!(
                        "differ: {}: A {fa:?} B {fb:?} (kind, insn_len, site_len, operands, flags)",
                        key_text(k)
                    ));
                }
            }
        }
    }
    for (k, ib) in b {
        if !a.contains_key(k) {
            d.lines.push(format!(
                "only in B: {} {} (B offset {:#x})",
                key_text(k),
                ib.kind,
                ib.offset
            ));
        }
    }
    d
}

/// Reads and compares two burnt objects.
pub fn diff_files(a: &Path, b: &Path) -> Result<Diff, String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (da, db) = (read(a)?, read(b)?);
    let sa = sites_of(&a.display().to_string(), &da)?;
    let sb = sites_of(&b.display().to_string(), &db)?;
    Ok(diff(&sa, &sb))
}
