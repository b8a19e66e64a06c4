//! `afterburner scan`: every sensitive site of an ELF file (relocatable object, `.ko` module or
//! executable), with its place, bytes and kind. Code that alternatives patch in
//! (`.altinstr_replacement`) is scanned like any other code and flagged.

use crate::decode::{decode_section, hex, insn_text, Decoded, SectionInput};
use crate::elf::Object;
use crate::error::{Error, Result};
use annotations::{FLAG_ALTINSTR, FLAG_PAIR};
use iced_x86::{Decoder, DecoderOptions};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Name of the section whose code the kernel's alternatives patch in.
pub const ALTINSTR_REPLACEMENT: &str = ".altinstr_replacement";

/// A decoded code section of an object.
pub struct CodeSection {
    /// ELF section index.
    pub index: usize,
    /// What decoding found.
    pub decoded: Decoded,
    /// Symbol starts in the section, sorted: `(offset, .symtab index)`.
    pub symbol_starts: Vec<(u64, u32)>,
}

/// Symbol starts of every section (by ELF index): every defined symbol except section and
/// file symbols, sorted by offset.
fn symbol_starts(obj: &Object<'_>) -> Vec<Vec<(u64, u32)>> {
    let mut per = vec![Vec::new(); obj.sections.len()];
    for (i, s) in obj.symbols.iter().enumerate().skip(1) {
        let Some(sec) = s.section else { continue };
        if s.st_type == crate::elf::STT_SECTION || s.st_type == crate::elf::STT_FILE {
            continue;
        }
        // Executables: symbol values are addresses.
        let base = if obj.is_relocatable() {
            0
        } else {
            obj.sections[sec].addr
        };
        let Some(off) = s.value.checked_sub(base) else {
            continue;
        };
        per[sec].push((off, i as u32));
    }
    for v in &mut per {
        v.sort_unstable();
        v.dedup_by_key(|e| e.0);
    }
    per
}

/// Decodes every code section (in parallel).
pub fn decode_code_sections(obj: &Object<'_>) -> Result<Vec<CodeSection>> {
    let starts = symbol_starts(obj);
    let todo: Vec<usize> = (1..obj.sections.len())
        .filter(|&i| obj.sections[i].is_code())
        .collect();
    todo.into_par_iter()
        .map(|index| {
            let sec = &obj.sections[index];
            let len = sec.data.len() as u64;
            let named: Vec<(u64, &[u8])> = starts[index]
                .iter()
                .filter(|e| e.0 < len)
                .map(|&(o, s)| (o, obj.symbols[s as usize].name))
                .collect();
            let input = SectionInput {
                name: &sec.name,
                data: sec.data,
                symbol_starts: &named,
                relocs: obj.relocs[index],
                relocatable: obj.is_relocatable(),
            };
            let decoded = decode_section(&input)?;
            Ok(CodeSection {
                index,
                decoded,
                symbol_starts: starts[index].clone(),
            })
        })
        .collect()
}

/// One site as `scan` reports it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ScanSite {
    /// Section name.
    pub section: String,
    /// Offset in the section.
    pub offset: u64,
    /// Address (`sh_addr + offset`; equals the offset in relocatable objects).
    pub address: u64,
    /// Nearest symbol at or before the site, `name+0xoff`, or the section name.
    pub location: String,
    /// Kind name ([`annotations::SensitiveKind::name`]).
    pub kind: &'static str,
    /// Length of the instruction(s).
    pub insn_len: u8,
    /// Their bytes, hex.
    pub bytes: String,
    /// GNU-syntax text.
    pub text: String,
    /// `FLAG_ALTINSTR` / `FLAG_PAIR` bits.
    pub flags: u32,
}

/// What `scan` found in one file.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanReport {
    /// Every site, by section index then offset.
    pub sites: Vec<ScanSite>,
    /// Sites per kind name.
    pub totals: BTreeMap<&'static str, u64>,
    /// Whether the file already carries `.afterburn`.
    pub burnt: bool,
}

/// Scans an ELF file's bytes.
pub fn scan_bytes(input: &[u8]) -> Result<ScanReport> {
    let obj = Object::parse(input)?;
    let code = decode_code_sections(&obj)?;
    let mut report = ScanReport {
        burnt: obj.section_by_name(annotations::SECTION_NAME).is_some(),
        ..Default::default()
    };
    for cs in &code {
        let sec = &obj.sections[cs.index];
        let alt = sec.name == ALTINSTR_REPLACEMENT;
        for site in &cs.decoded.sites {
            let (a, b) = (site.offset as usize, site.end() as usize);
            let bytes = sec.data.get(a..b).unwrap_or(&[]);
            let mut text = String::new();
            let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
            while d.can_decode() {
                if !text.is_empty() {
                    text.push_str("; ");
                }
                text.push_str(&insn_text(&d.decode()));
            }
            let i = cs.symbol_starts.partition_point(|e| e.0 <= site.offset);
            let location = match i.checked_sub(1).map(|k| cs.symbol_starts[k]) {
                Some((o, s)) => format!(
                    "{}+{:#x}",
                    obj.symbols[s as usize].name_str(),
                    site.offset - o
                ),
                None => format!("{}+{:#x}", sec.name, site.offset),
            };
            let flags = if alt { FLAG_ALTINSTR } else { 0 } | if site.pair { FLAG_PAIR } else { 0 };
            report.sites.push(ScanSite {
                section: sec.name.to_string(),
                offset: site.offset,
                address: if obj.is_relocatable() {
                    site.offset
                } else {
                    sec.addr + site.offset
                },
                location,
                kind: site.kind.name(),
                insn_len: site.insn_len,
                bytes: hex(bytes),
                text,
                flags,
            });
            *report.totals.entry(site.kind.name()).or_default() += 1;
        }
    }
    Ok(report)
}

/// Scans a file.
pub fn scan_file(path: &Path) -> Result<ScanReport> {
    let data = std::fs::read(path).map_err(|e| Error::from(e).with_file(path))?;
    scan_bytes(&data).map_err(|e| e.with_file(path))
}
