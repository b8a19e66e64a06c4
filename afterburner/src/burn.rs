//! `afterburner burn`: pad every sensitive site of a relocatable object and annotate it.
//!
//! The passes, in order (each says why it comes where):
//!
//! 1. **Read** the object ([`Object::parse`]); an object that already has `.afterburn` or that
//!    opted out with `.afterburn_noannotate` is returned unchanged.
//! 2. **Decode** every code section ([`crate::scan::decode_code_sections`]): sites, fixups,
//!    the field and bias of every relocation in code. Everything after works on this model.
//! 3. **Special sections** that constrain the layout ([`crate::special`]): 2-byte jump-label
//!    sites become widenable fixups before planning, since they take part in the fixpoint.
//! 4. **Plan** each code section ([`crate::relayout::plan_section`]); then the
//!    `.altinstructions` rule (`replacementlen <= instrlen`, both fit a byte) may ask for NOPs
//!    at the end of original regions, or for sites to stay unpadded: re-plan until it holds.
//! 5. **Encode** the new code bytes ([`crate::encode::encode_section`]).
//! 6. **DWARF/CFI** with the final maps ([`crate::dwarf::rewrite_prepared`]); the part that
//!    needs no map ([`crate::dwarf::prepare`]: the debug relocations read, `.debug_info`
//!    walked) runs beside steps 2–4.
//! 7. **Map** relocation offsets and addends ([`OffsetMap::map_addend`]), symbol values and
//!    sizes, `.altinstructions` lengths.
//! 8. **Annotate**: `.afterburn` (one header + one record per site) and `.rela.afterburn`
//!    (one `R_X86_64_PC32` per record against the site's section symbol, addend = the new site
//!    offset, so that the record's `site` field resolves to the site address).
//! 9. **Write** through [`crate::elf::write`] (a temporary file, synced while it is
//!    written and once more before it is renamed over the output).

use crate::decode::{Fixup, FixupKind};
use crate::dwarf;
use crate::elf::{
    reloc_class, reloc_name, Edits, NewSection, Object, Reloc, RelocClass, RelocPatch, Relocs,
};
use crate::encode::encode_section;
use crate::error::{Error, ErrorKind, Place, Result};
use crate::offset_map::OffsetMap;
use crate::relayout::{plan_section, SectionPlan};
use crate::report::{Report, Status};
use crate::scan::{decode_code_sections, CodeSection, ALTINSTR_REPLACEMENT};
use crate::special::{self, AltEntry, Layout};
use annotations::{
    Header, SiteRecord, FLAG_ALTINSTR, FLAG_PAIR, FLAG_UNPADDED, RECORD_SIZE, SECTION_ALIGN,
    VERSION,
};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Options of [`burn_bytes`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Options {}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Options {}
    }
}

/// Burns an object held in memory: returns the new object and a report.
///
/// Objects that already carry `.afterburn`, or that carry `.afterburn_noannotate`, come back
/// byte for byte unchanged (with [`Status::AlreadyBurnt`] / [`Status::NoAnnotate`]).
///
/// ```no_run
/// let input = std::fs::read("foo.o").unwrap();
/// let (output, report) = afterburner::burn::burn_bytes(&input, &Default::default()).unwrap();
/// println!("{} sites, {} bytes added", report.total_sites, report.bytes_added);
/// # let _ = output;
/// ```
pub fn burn_bytes(input: &[u8], opts: &Options) -> Result<(Vec<u8>, Report)> {
    let obj = Object::parse(input)?;
    match plan(&obj, opts)? {
        Planned::Unchanged(report) => Ok((input.to_vec(), report)),
        Planned::Edits(edits, report) => Ok((crate::elf::write(&obj, edits)?, report)),
    }
}

enum Planned {
    Unchanged(Report),
    Edits(Edits, Report),
}

fn plan(obj: &Object<'_>, opts: &Options) -> Result<Planned> {
    let _ = opts;
    if !obj.is_relocatable() {
        return Err(Error::new(ErrorKind::NotRelocatable(obj.e_type)));
    }
    let unchanged = |status| {
        Ok(Planned::Unchanged(Report {
            status,
            ..Default::default()
        }))
    };
    if obj.section_by_name(annotations::SECTION_NAME).is_some() {
        return unchanged(Status::AlreadyBurnt);
    }
    if obj
        .section_by_name(annotations::NOANNOTATE_SECTION_NAME)
        .is_some()
    {
        return unchanged(Status::NoAnnotate);
    }
    // The debug sections are read and `.debug_info` walked while the code is decoded and
    // planned: that part of the DWARF rewrite needs no offset map.
    let (burner, prepared) = rayon::join(
        || -> Result<Burner<'_, '_>> {
            let mut b = Burner::new(obj)?;
            b.plan_all()?;
            Ok(b)
        },
        || dwarf::prepare(&obj.file),
    );
    let (edits, report) = burner?.run(prepared)?;
    Ok(Planned::Edits(edits, report))
}

/// Burns `input` into `output` (atomically: a temporary file in `output`'s directory renamed
/// over it). `input` may equal `output` (in place). On error nothing is written.
pub fn burn_file(input: &Path, output: &Path, opts: &Options) -> Result<Report> {
    use std::io::Write;
    let data = InputBytes::load(input).map_err(|e| Error::from(e).with_file(input))?;
    let obj = Object::parse(&data).map_err(|e| e.with_file(input))?;
    let planned = plan(&obj, opts).map_err(|e| e.with_file(input))?;
    if let Planned::Unchanged(report) = &planned {
        if same_file(input, output) {
            return Ok(report.clone());
        }
    }
    let io = |e: std::io::Error| Error::from(e).with_file(output);
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".afterburner-")
        .tempfile_in(&dir)
        .map_err(io)?;
    let report = match planned {
        Planned::Unchanged(report) => {
            tmp.write_all(&data).map_err(io)?;
            report
        }
        Planned::Edits(edits, report) => {
            // Data is written back while the rest is being written (the final sync in
            // `finish` then has less to wait for).
            let syncer = tmp.as_file().try_clone().ok();
            let done = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|s| {
                if let Some(f) = &syncer {
                    s.spawn(|| {
                        while !done.load(std::sync::atomic::Ordering::Relaxed) {
                            if f.sync_data().is_err() {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                    });
                }
                let r = crate::elf::write_to_file(&obj, edits, tmp.as_file_mut())
                    .map_err(|e| e.with_file(output));
                done.store(true, std::sync::atomic::Ordering::Relaxed);
                r
            })?;
            report
        }
    };
    finish(tmp, output, input)?;
    Ok(report)
}

/// The bytes of an input file: mapped (no copy) when it is a regular non-empty file, read
/// otherwise.
enum InputBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl InputBytes {
    fn load(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        if meta.is_file() && meta.len() > 0 {
            // SAFETY: the mapping is private and read-only, and it lives (in this value) only
            // while the input is parsed and the output written. Its bytes are shared with the
            // file, so they are valid for as long as no one else truncates or writes the file
            // meanwhile; like `ld` and objtool, the burner assumes its input does not change
            // while it runs (the output goes to a temporary file renamed only on success, so
            // burning in place is safe: the old inode stays mapped).
            #[allow(unsafe_code)]
            let mapped = unsafe { memmap2::MmapOptions::new().map(&file) };
            if let Ok(m) = mapped {
                return Ok(InputBytes::Mapped(m));
            }
        }
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut &file, &mut data)?;
        Ok(InputBytes::Read(data))
    }
}

impl std::ops::Deref for InputBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            InputBytes::Mapped(m) => m,
            InputBytes::Read(v) => v,
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Syncs the temporary file, gives it the permissions of `like` and renames it to `path`.
fn finish(tmp: tempfile::NamedTempFile, path: &Path, like: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::from(e).with_file(path);
    tmp.as_file().sync_all().map_err(io)?;
    if let Ok(meta) = std::fs::metadata(like) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename;
/// the permissions of `like` (the input) are kept.
pub fn write_atomically(path: &Path, bytes: &[u8], like: &Path) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".afterburner-")
        .tempfile_in(&dir)?;
    tmp.write_all(bytes)?;
    finish(tmp, path, like)
}

struct Burner<'o, 'a> {
    obj: &'o Object<'a>,
    code: Vec<CodeSection>,
    /// ELF section index → position in `code`.
    pos_of: Vec<Option<usize>>,
    unpadded: Vec<Vec<bool>>,
    extra: Vec<BTreeMap<u64, u64>>,
    plans: Vec<SectionPlan>,
    alts: Vec<AltEntry>,
    report: Report,
}

impl<'o, 'a> Burner<'o, 'a> {
    fn new(obj: &'o Object<'a>) -> Result<Self> {
        // Code is decoded as one instruction stream; a data object inside it would be padded
        // as if it were code (the verifier compares it as data). No compiler or assembler
        // output for the kernel has one; refuse it.
        for s in &obj.symbols {
            let Some(sec) = s.section else { continue };
            if s.st_type == object::elf::STT_OBJECT.0 && s.size > 0 && obj.sections[sec].is_code() {
                return Err(Error::at(
                    &obj.sections[sec].name,
                    s.value,
                    ErrorKind::Layout(format!(
                        "data object `{}` ({:#x} bytes, STT_OBJECT) inside code cannot be padded as code",
                        s.name_str(),
                        s.size
                    )),
                ));
            }
        }
        let mut code = decode_code_sections(obj)?;
        let mut pos_of = vec![None; obj.sections.len()];
        for (k, c) in code.iter().enumerate() {
            pos_of[c.index] = Some(k);
        }
        // 2-byte jump-label sites take part in planning.
        if let Some(jt) = obj.section_by_name("__jump_table") {
            let mut touched = BTreeSet::new();
            for e in special::read_jump_table(obj, jt)? {
                let Some(k) = pos_of[e.code.section] else {
                    return Err(Error::at(
                        "__jump_table",
                        e.entry,
                        ErrorKind::Malformed("jump_entry code outside code sections".into()),
                    ));
                };
                let data = obj.sections[e.code.section].data;
                let c = e.code.offset;
                let two = usize::try_from(c).ok().and_then(|c| data.get(c..c + 2));
                if code[k].decoded.is_start(c) && two == Some(&[0x66, 0x90][..]) {
                    if e.target.section != e.code.section {
                        return Err(Error::at(
                            "__jump_table",
                            e.entry,
                            ErrorKind::Layout(
                                "2-byte jump-label site with its target in another section".into(),
                            ),
                        ));
                    }
                    code[k].decoded.fixups.push(Fixup {
                        offset: c,
                        len: 2,
                        field: 0,
                        kind: FixupKind::JumpLabelNop2,
                        target: e.target.offset,
                    });
                    touched.insert(k);
                }
            }
            for k in touched {
                let f = &mut code[k].decoded.fixups;
                f.sort_unstable_by_key(|f| f.offset);
                f.dedup_by_key(|f| f.offset);
            }
        }
        let alts = match obj.section_by_name(".altinstructions") {
            Some(i) => special::read_alternatives(obj, i)?,
            None => Vec::new(),
        };
        for a in &alts {
            let bad = pos_of[a.orig.section].is_none()
                || a.repl.is_some_and(|r| pos_of[r.section].is_none());
            if bad {
                return Err(Error::at(
                    ".altinstructions",
                    a.entry,
                    ErrorKind::Malformed("alt_instr points outside code sections".into()),
                ));
            }
            // The rule the layout keeps (`replacementlen <= instrlen`) must hold to begin with:
            // Linux's ALTERNATIVE macros pad the original so that it does, and the kernel
            // copies `replacementlen` bytes over the `instrlen`-byte region.
            if a.repl_len > a.orig_len {
                return Err(Error::at(
                    ".altinstructions",
                    a.entry,
                    ErrorKind::Malformed(format!(
                        "replacementlen {} exceeds instrlen {}: the replacement does not fit its region",
                        a.repl_len, a.orig_len
                    )),
                ));
            }
            // Growth padding goes at the end of the original region, and the new lengths of
            // both regions are measured between their mapped ends: each region must start and
            // end between instructions (they hold whole instructions in every object the
            // assembler writes).
            let regions = [
                Some((a.orig, a.orig_len, "original")),
                a.repl.map(|r| (r, a.repl_len, "replacement")),
            ];
            for (loc, len, what) in regions.into_iter().flatten() {
                let Some(k) = pos_of[loc.section] else {
                    continue;
                };
                let end = loc.offset + u64::from(len);
                let size = obj.sections[loc.section].size;
                for x in [loc.offset, end] {
                    if x == size || code[k].decoded.is_start(x) {
                        continue;
                    }
                    let why = if x > size {
                        format!("lies outside the section ({size:#x} bytes)")
                    } else {
                        format!(
                            "{} inside an instruction",
                            if x == end { "ends" } else { "starts" }
                        )
                    };
                    return Err(Error::at(
                        ".altinstructions",
                        a.entry,
                        ErrorKind::Malformed(format!(
                            "the {what} region {}+{:#x}..{end:#x} {why}",
                            obj.sections[loc.section].name, loc.offset
                        )),
                    ));
                }
            }
        }
        let unpadded = code
            .iter()
            .map(|c| vec![false; c.decoded.sites.len()])
            .collect();
        let extra = vec![BTreeMap::new(); code.len()];
        let report = Report {
            code_sections: code.len() as u64,
            instructions: code.iter().map(|c| c.decoded.insn_count as u64).sum(),
            ..Default::default()
        };
        Ok(Burner {
            obj,
            code,
            pos_of,
            unpadded,
            extra,
            plans: Vec::new(),
            alts,
            report,
        })
    }

    fn name(&self, k: usize) -> &str {
        &self.obj.sections[self.code[k].index].name
    }

    fn plan(&self, k: usize) -> Result<SectionPlan> {
        let c = &self.code[k];
        let extra: Vec<(u64, u64)> = self.extra[k].iter().map(|(&a, &n)| (a, n)).collect();
        plan_section(
            self.name(k),
            &c.decoded.sites,
            &self.unpadded[k],
            &c.decoded.fixups,
            &extra,
        )
    }

    /// New length of the region `[loc, loc + len)` of code section `k`.
    fn new_len(&self, k: usize, start: u64, len: u8) -> u64 {
        let m = &self.plans[k].map;
        m.map(start + u64::from(len)) - m.map(start)
    }

    /// Marks the padded sites of code section `k` inside `[start, end)` unpadded.
    fn unpad_region(&mut self, k: usize, start: u64, end: u64, why: &str) -> bool {
        let mut any = false;
        let sites = &self.code[k].decoded.sites;
        let from = sites.partition_point(|s| s.offset < start);
        for (i, site) in sites.iter().enumerate().skip(from) {
            if site.offset >= end {
                break;
            }
            if !self.unpadded[k][i] {
                self.unpadded[k][i] = true;
                any = true;
                let name = &self.obj.sections[self.code[k].index].name;
                self.report.notes.push(format!(
                    "site {}+{:#x} ({}) left unpadded: {why}",
                    name, site.offset, site.kind
                ));
            }
        }
        any
    }

    /// Plans every section, then enforces the `.altinstructions` rules until they hold.
    fn plan_all(&mut self) -> Result<()> {
        let plans: Result<Vec<_>> = (0..self.code.len())
            .into_par_iter()
            .map(|k| self.plan(k))
            .collect();
        self.plans = plans?;
        for _round in 0..32 {
            let mut replan = BTreeSet::new();
            // The growth each original region end needs: the largest shortfall of the
            // replacements of the regions ending there, measured without that growth. It is
            // recomputed every round (not accumulated), so that a region that grew on its own
            // meanwhile (a branch in it widened) or that shares its end with another entry
            // (ALTERNATIVE_2) gets exactly the padding the verifier expects, not more.
            let mut need: BTreeMap<(usize, u64), u64> = BTreeMap::new();
            let alts = std::mem::take(&mut self.alts);
            for a in &alts {
                let ko = self.pos_of[a.orig.section].ok_or_else(|| Error::internal("alt orig"))?;
                let ol = self.new_len(ko, a.orig.offset, a.orig_len);
                let (kr, rl) = match a.repl {
                    Some(r) => {
                        let kr =
                            self.pos_of[r.section].ok_or_else(|| Error::internal("alt repl"))?;
                        (Some(kr), self.new_len(kr, r.offset, a.repl_len))
                    }
                    None => (None, 0),
                };
                if rl > 255 {
                    let r = a.repl.ok_or_else(|| Error::internal("alt repl"))?;
                    let kr = kr.ok_or_else(|| Error::internal("alt repl"))?;
                    if self.unpad_region(
                        kr,
                        r.offset,
                        r.offset + u64::from(a.repl_len),
                        "its alternative replacement would exceed 255 bytes",
                    ) {
                        replan.insert(kr);
                        continue;
                    }
                }
                if ol > 255 || rl > 255 {
                    let end = a.orig.offset + u64::from(a.orig_len);
                    if self.unpad_region(
                        ko,
                        a.orig.offset,
                        end,
                        "its alternative region would exceed 255 bytes",
                    ) {
                        replan.insert(ko);
                        continue;
                    }
                    return Err(Error::at(
                        ".altinstructions",
                        a.entry,
                        ErrorKind::Layout(format!("alternative lengths {ol}/{rl} no longer fit instrlen/replacementlen (u8)")),
                    ));
                }
                let end = a.orig.offset + u64::from(a.orig_len);
                let grown = self.extra[ko].get(&end).copied().unwrap_or(0);
                let want = rl.saturating_sub(ol.saturating_sub(grown));
                let n = need.entry((ko, end)).or_default();
                *n = (*n).max(want);
            }
            self.alts = alts;
            for ((ko, end), want) in need {
                let grown = self.extra[ko].get(&end).copied().unwrap_or(0);
                if want != grown {
                    if want == 0 {
                        self.extra[ko].remove(&end);
                    } else {
                        self.extra[ko].insert(end, want);
                    }
                    replan.insert(ko);
                }
            }
            if replan.is_empty() {
                self.report.alt_region_padding = self.extra.iter().flat_map(|e| e.values()).sum();
                return Ok(());
            }
            let new: Result<Vec<(usize, SectionPlan)>> = replan
                .into_par_iter()
                .map(|k| Ok((k, self.plan(k)?)))
                .collect();
            for (k, p) in new? {
                self.plans[k] = p;
            }
        }
        Err(Error::in_section(
            ".altinstructions",
            ErrorKind::Layout("alternative regions did not settle".into()),
        ))
    }

    /// The offset map of section `index`, if it moved.
    fn map_of<'m>(
        &'m self,
        index: usize,
        dwarf_maps: &'m BTreeMap<usize, OffsetMap>,
    ) -> Option<&'m OffsetMap> {
        if let Some(k) = self.pos_of.get(index).copied().flatten() {
            let m = &self.plans[k].map;
            return (!m.is_identity()).then_some(m);
        }
        dwarf_maps.get(&index)
    }

    /// Everything that changes, and the report, once the sections are planned.
    fn run(mut self, prepared: dwarf::Prepared<'_>) -> Result<(Edits, Report)> {
        let obj = self.obj;
        let mut edits = Edits::default();

        // Code bytes, and (at the same time: it needs only the maps) DWARF and CFI.
        let code_maps: BTreeMap<usize, OffsetMap> = self
            .code
            .iter()
            .zip(&self.plans)
            .filter(|(_, p)| !p.map.is_identity())
            .map(|(c, p)| (c.index, p.map.clone()))
            .collect();
        let (encoded, rewritten) = rayon::join(
            || -> Result<Vec<(usize, Option<Vec<u8>>)>> {
                (0..self.code.len())
                    .into_par_iter()
                    .map(|k| {
                        let c = &self.code[k];
                        let plan = &self.plans[k];
                        let sec = &obj.sections[c.index];
                        if plan.map.is_identity() && plan.widened_count == 0 {
                            // Fixups keep their displacements when nothing moved.
                            return Ok((c.index, None));
                        }
                        let data = encode_section(
                            &sec.name,
                            sec.data,
                            &c.decoded.sites,
                            &c.decoded.fixups,
                            plan,
                        )?;
                        Ok((c.index, Some(data)))
                    })
                    .collect()
            },
            || -> Result<Vec<dwarf::SectionChange>> {
                if code_maps.is_empty() {
                    return Ok(Vec::new());
                }
                dwarf::rewrite_prepared(prepared, &code_maps).map_err(|e| Error {
                    place: Place {
                        file: None,
                        section: Some(e.section.clone()),
                        offset: Some(e.offset),
                    },
                    kind: ErrorKind::Dwarf(e.message.clone()),
                })
            },
        );
        for (index, data) in encoded? {
            if let Some(d) = data {
                edits.section_data.push((index, d));
            }
        }
        for p in &self.plans {
            self.report.bytes_added += p.map.total();
            self.report.widened_branches += p.widened_count as u64;
        }
        let rewritten = rewritten?;
        let mut dwarf_maps = BTreeMap::new();
        let mut replaced = BTreeSet::new();
        for rs in rewritten {
            if rs.index == 0 || rs.index >= obj.sections.len() || self.pos_of[rs.index].is_some() {
                return Err(Error::internal(format!(
                    "DWARF rewriter returned section {}",
                    rs.index
                )));
            }
            replaced.insert(rs.index);
            match rs.data {
                dwarf::NewData::Bytes(d) => edits.section_data.push((rs.index, d)),
                dwarf::NewData::Patches(p) => edits.section_patches.push((rs.index, p)),
            }
            let has_rela = obj.sections[rs.index].rela.is_some();
            match rs.relocs {
                dwarf::NewRelocs::List(list) => {
                    if has_rela {
                        // (Same layout: the conversion reuses the allocation.)
                        let rels: Vec<Reloc> = list
                            .into_iter()
                            .map(|r| Reloc {
                                offset: r.offset,
                                sym: r.symbol,
                                r_type: r.r_type,
                                addend: r.addend,
                            })
                            .collect();
                        edits.relocs.push((rs.index, rels));
                    } else if !list.is_empty() {
                        return Err(Error::in_section(
                            &obj.sections[rs.index].name,
                            ErrorKind::Internal(
                                "DWARF rewriter added relocations to a section without any".into(),
                            ),
                        ));
                    }
                }
                dwarf::NewRelocs::Changes(changes) => {
                    // Indices into the section's relocations in file order.
                    let rels = obj.relocs[rs.index];
                    for &(i, offset, _) in &changes {
                        if rels.get(i as usize).map(|r| r.offset) != Some(offset) {
                            return Err(Error::internal(format!(
                                "DWARF rewriter changed relocation {i} of section {}, which is not at {offset:#x}",
                                obj.sections[rs.index].name
                            )));
                        }
                    }
                    if !changes.is_empty() {
                        edits.reloc_patches.push((rs.index, changes));
                    }
                }
            }
            if let Some(m) = rs.offset_map {
                dwarf_maps.insert(rs.index, m);
            }
        }
        // Debug sections the DWARF module did not return needed no change: it refuses any
        // debug section it cannot classify (dwarf::rewrite), so nothing is left stale silently.

        // Relocations.
        let refs = self.code_references();
        let todo: Vec<usize> = (0..obj.relocs.len())
            .filter(|&x| !obj.relocs[x].is_empty() && !replaced.contains(&x))
            .collect();
        let patched: Result<Vec<(usize, Vec<RelocPatch>)>> = todo
            .into_par_iter()
            .map(|x| Ok((x, self.map_relocs(x, obj.relocs[x], &dwarf_maps, &refs)?)))
            .collect();
        for (x, patches) in patched? {
            if !patches.is_empty() {
                edits.reloc_patches.push((x, patches));
            }
        }

        // Symbols.
        for (i, s) in obj.symbols.iter().enumerate().skip(1) {
            let Some(sec) = s.section else { continue };
            if s.st_type == crate::elf::STT_SECTION {
                continue;
            }
            let Some(m) = self.map_of(sec, &dwarf_maps) else {
                continue;
            };
            let value = m.map(s.value);
            let size = if s.size == 0 {
                0
            } else {
                m.map(s.value.saturating_add(s.size)) - value
            };
            if (value, size) != (s.value, s.size) {
                edits.symbols.push((i, value, size));
            }
        }

        // .altinstructions lengths.
        if let Some(ai) = obj.section_by_name(".altinstructions") {
            if let Some(Layout::Alternatives {
                orig_len, repl_len, ..
            }) = special::lookup(".altinstructions").map(|s| s.layout)
            {
                let mut data = obj.sections[ai].data.to_vec();
                for a in &self.alts {
                    let ko =
                        self.pos_of[a.orig.section].ok_or_else(|| Error::internal("alt orig"))?;
                    let ol = self.new_len(ko, a.orig.offset, a.orig_len);
                    let rl = match a.repl {
                        Some(r) => self.new_len(
                            self.pos_of[r.section].ok_or_else(|| Error::internal("alt repl"))?,
                            r.offset,
                            a.repl_len,
                        ),
                        None => 0,
                    };
                    let (ol, rl) = (u8::try_from(ol), u8::try_from(rl));
                    let (Ok(ol), Ok(rl)) = (ol, rl) else {
                        return Err(Error::at(
                            ".altinstructions",
                            a.entry,
                            ErrorKind::Internal("alternative lengths overflow".into()),
                        ));
                    };
                    let e = a.entry as usize;
                    data[e + orig_len] = ol;
                    data[e + repl_len] = rl;
                }
                if data != obj.sections[ai].data {
                    edits.section_data.push((ai, data));
                }
            }
        }

        // .afterburn and .rela.afterburn.
        self.annotate(&mut edits)?;
        Ok((edits, self.report))
    }

    /// Places in data sections that code refers to: `S + A + bias` of every address
    /// relocation in code whose symbol lies in a non-code section, by section.
    fn code_references(&self) -> BTreeMap<usize, BTreeSet<u64>> {
        let obj = self.obj;
        let mut refs: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
        for c in &self.code {
            for (i, r) in obj.relocs[c.index].iter().enumerate() {
                if !matches!(reloc_class(r.r_type), Some(RelocClass::Address { .. })) {
                    continue;
                }
                let Some(sym) = obj.symbols.get(r.sym as usize) else {
                    continue;
                };
                let Some(t) = sym.section else { continue };
                if self.pos_of[t].is_some() {
                    continue;
                }
                let bias = i64::from(c.decoded.reloc_bias.get(i).copied().unwrap_or(0));
                let target = i64::try_from(sym.value)
                    .ok()
                    .and_then(|v| v.checked_add(r.addend))
                    .and_then(|v| v.checked_add(bias));
                if let Some(t_off) = target.and_then(|t| u64::try_from(t).ok()) {
                    refs.entry(t).or_default().insert(t_off);
                }
            }
        }
        refs
    }

    /// Biases of the relocations of a data section that are entries of position-independent
    /// jump tables (`.long .Lcase - .Ltable`, as gcc emits for PIC/PIE `switch`).
    ///
    /// The assembler turns such an entry into `R_X86_64_PC32` against the code section with
    /// addend `case + (P - table)`: the target is not `S + A` but `S + A - (P - table)`. A
    /// table is recognised from its base: a place in the section that code refers to (the
    /// `lea` of the table), followed by consecutive 4-byte (`PC32`) or 8-byte (`PC64`) entries
    /// into one code section, each of whose targets under that reading starts an instruction.
    /// Entries of the nearest such base win. Everything else keeps bias 0 (`.long target - .`).
    fn pic_table_bias(&self, rels: Relocs<'_>, bases: Option<&BTreeSet<u64>>) -> Vec<i64> {
        let obj = self.obj;
        let Some(bases) = bases else {
            return Vec::new();
        };
        let mut bias = vec![0i64; rels.len()];
        let list: Vec<Reloc> = rels.iter().collect();
        let rels = &list[..];
        let mut by_off: Vec<u32> = (0..rels.len() as u32).collect();
        by_off.sort_unstable_by_key(|&i| rels[i as usize].offset);
        let at = |off: u64| -> Option<usize> {
            let i = by_off.partition_point(|&i| rels[i as usize].offset < off);
            let k = *by_off.get(i)? as usize;
            (rels[k].offset == off).then_some(k)
        };
        for &b in bases {
            let mut p = b;
            let mut width = 0u64;
            let mut table_section = None;
            while let Some(k) = at(p) {
                let r = rels[k];
                let w = match r.r_type {
                    crate::elf::R_X86_64_PC32 => 4,
                    crate::elf::R_X86_64_PC64 => 8,
                    _ => break,
                };
                if width != 0 && w != width {
                    break;
                }
                let Some(sym) = obj.symbols.get(r.sym as usize) else {
                    break;
                };
                // The assembler writes `.long .Lcase - .Ltable` against a local (section)
                // symbol; an entry against a global symbol is read as `S + A`, as the verifier
                // reads it (a fuzzing find: the two disagreed).
                if sym.bind != object::elf::STB_LOCAL.0 {
                    break;
                }
                let Some(t) = sym.section else { break };
                let Some(kc) = self.pos_of[t] else { break };
                if table_section.is_some_and(|s| s != t) {
                    break;
                }
                let Ok(k_off) = i64::try_from(p - b) else {
                    break;
                };
                let target = i64::try_from(sym.value)
                    .ok()
                    .and_then(|v| v.checked_add(r.addend))
                    .and_then(|v| v.checked_sub(k_off));
                let Some(target) = target.and_then(|t| u64::try_from(t).ok()) else {
                    break;
                };
                if !self.code[kc].decoded.is_start(target) {
                    break;
                }
                bias[k] = -k_off;
                width = w;
                table_section = Some(t);
                p += w;
            }
        }
        bias
    }

    /// New relocation list of section `x`, or `None` when nothing changes.
    fn map_relocs(
        &self,
        x: usize,
        rels: Relocs<'_>,
        dwarf_maps: &BTreeMap<usize, OffsetMap>,
        refs: &BTreeMap<usize, BTreeSet<u64>>,
    ) -> Result<Vec<RelocPatch>> {
        let obj = self.obj;
        let sec_name = &obj.sections[x].name;
        let xmap = self.map_of(x, dwarf_maps);
        let xcode = self.pos_of[x].map(|k| &self.code[k].decoded);
        let orc = special::lookup(sec_name).is_some_and(|s| s.layout == Layout::OrcIp);
        let data_bias = if xcode.is_none() {
            self.pic_table_bias(rels, refs.get(&x))
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        for (i, r) in rels.iter().enumerate() {
            let class = reloc_class(r.r_type).ok_or_else(|| {
                Error::at(
                    sec_name,
                    r.offset,
                    ErrorKind::UnsupportedRelocation {
                        r_type: r.r_type,
                        name: reloc_name(r.r_type),
                    },
                )
            })?;
            let offset = xmap.map_or(r.offset, |m| m.map(r.offset));
            let mut addend = r.addend;
            if let RelocClass::Address { .. } = class {
                let sym = obj.symbols.get(r.sym as usize).ok_or_else(|| {
                    Error::at(
                        sec_name,
                        r.offset,
                        ErrorKind::Malformed("bad symbol index".into()),
                    )
                })?;
                if let Some(t) = sym.section {
                    if let Some(tmap) = self.map_of(t, dwarf_maps) {
                        let bias = match xcode {
                            Some(d) => i64::from(d.reloc_bias[i]),
                            None => data_bias.get(i).copied().unwrap_or(0),
                        };
                        let overflow = || {
                            Error::at(
                                sec_name,
                                r.offset,
                                ErrorKind::Layout("relocation addend overflows".into()),
                            )
                        };
                        addend = match (orc, self.pos_of[t]) {
                            (true, Some(k)) => self
                                .map_after_insn(k, tmap, sym.value, r.addend)
                                .ok_or_else(overflow)?,
                            _ => tmap
                                .map_addend(sym.value, r.addend, bias)
                                .ok_or_else(overflow)?,
                        };
                    }
                }
            }
            if offset != r.offset || addend != r.addend {
                out.push((i as u32, offset, addend));
            }
        }
        Ok(out)
    }

    /// ORC rule: a target at the end of a padded site maps to the end of the original
    /// instruction, before the padding.
    fn map_after_insn(
        &self,
        k: usize,
        map: &OffsetMap,
        sym_value: u64,
        addend: i64,
    ) -> Option<i64> {
        let target = u64::try_from(i64::try_from(sym_value).ok()?.checked_add(addend)?).ok();
        let sites = &self.code[k].decoded.sites;
        if let Some(t) = target {
            let i = sites.partition_point(|s| s.end() < t);
            if let Some(s) = sites.get(i).filter(|s| s.end() == t) {
                let new_target = i64::try_from(map.map(s.offset) + u64::from(s.insn_len)).ok()?;
                return new_target.checked_sub(i64::try_from(map.map(sym_value)).ok()?);
            }
        }
        map.map_addend(sym_value, addend, 0)
    }

    fn annotate(&mut self, edits: &mut Edits) -> Result<()> {
        let obj = self.obj;
        let mut section_sym: Vec<Option<u32>> = vec![None; obj.sections.len()];
        for (i, s) in obj.symbols.iter().enumerate().skip(1) {
            if s.st_type == crate::elf::STT_SECTION {
                if let Some(sec) = s.section {
                    section_sym[sec].get_or_insert(i as u32);
                }
            }
        }
        let total: usize = self.code.iter().map(|c| c.decoded.sites.len()).sum();
        let count = u32::try_from(total).map_err(|_| Error::internal("too many sites"))?;
        let mut data = vec![0u8; RECORD_SIZE * (total + 1)];
        Header {
            count,
            version: VERSION,
        }
        .write(&mut data);
        let mut relocs = Vec::with_capacity(total);
        let mut n = 0usize;
        for (k, c) in self.code.iter().enumerate() {
            if c.decoded.sites.is_empty() {
                continue;
            }
            let sym = match section_sym[c.index] {
                Some(s) => s,
                None => {
                    // index 0 is the null symbol even when there is no table yet
                    let s =
                        u32::try_from(obj.symbols.len().max(1) + edits.new_section_symbols.len())
                            .map_err(|_| Error::internal("symbols"))?;
                    edits.new_section_symbols.push(c.index);
                    s
                }
            };
            let alt = obj.sections[c.index].name == ALTINSTR_REPLACEMENT;
            let map = &self.plans[k].map;
            for (i, site) in c.decoded.sites.iter().enumerate() {
                let unpadded = self.unpadded[k][i];
                let site_len = site.insn_len + self.plans[k].pads[i];
                let flags = if unpadded { FLAG_UNPADDED } else { 0 }
                    | if alt { FLAG_ALTINSTR } else { 0 }
                    | if site.pair { FLAG_PAIR } else { 0 };
                let rec = SiteRecord {
                    site: 0,
                    insn_len: site.insn_len,
                    site_len,
                    kind: site.kind,
                    operands: site.operands,
                    flags,
                };
                n += 1;
                let at = RECORD_SIZE * n;
                rec.write(&mut data[at..]);
                let addend = i64::try_from(map.map(site.offset))
                    .map_err(|_| Error::internal("site offset"))?;
                relocs.push(Reloc {
                    offset: at as u64,
                    sym,
                    r_type: crate::elf::R_X86_64_PC32,
                    addend,
                });
                self.report.add_site(site.kind);
                self.report.unpadded_sites += u64::from(unpadded);
                self.report.altinstr_sites += u64::from(alt);
            }
        }
        edits.new_sections.push(NewSection {
            name: annotations::SECTION_NAME.to_owned(),
            sh_type: crate::elf::SHT_PROGBITS,
            flags: 0,
            align: SECTION_ALIGN,
            data,
            relocs,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Burns `path` with the streaming writer and with `object`'s ELF builder (which wrote the
    /// files before); `None` when the object comes back unchanged.
    fn both_writers(path: &Path) -> Option<(Vec<u8>, Vec<u8>)> {
        let data = std::fs::read(path).unwrap();
        let obj = Object::parse(&data).unwrap();
        match plan(&obj, &Options::new()).unwrap() {
            Planned::Unchanged(_) => None,
            Planned::Edits(edits, _) => Some((
                crate::elf::write(&obj, edits.clone()).unwrap(),
                crate::elf::write_with_builder(&obj, edits).unwrap(),
            )),
        }
    }

    fn gcc(args: &[&std::ffi::OsStr]) {
        let out = Command::new("gcc")
            .args(args)
            .output()
            .expect("gcc is required");
        assert!(
            out.status.success(),
            "gcc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn writer_lays_files_out_as_the_object_builder() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("t.c");
        // DWARF, .bss, .rodata, a COMDAT group (SHT_GROUP: its signature symbol is renumbered
        // when section symbols are added), sensitive instructions in several sections.
        std::fs::write(
            &c,
            r#"
            int counter; static int table[64] = {1, 2, 3};
            __attribute__((section(".text.irq"))) void irq_off(void) { asm volatile("cli"); }
            void irq_on(void) { asm volatile("sti"); counter++; }
            int pick(int i) { switch (i) { case 0: return table[1]; case 1: return counter;
                case 2: return 7; case 3: asm volatile("hlt"); return 9; default: return i; } }
            asm(".section .text.grp,\"axG\",@progbits,grp_sig,comdat\n"
                ".globl grp_sig\ngrp_sig: pushf\n cli\n popf\n ret\n.previous\n");
            "#,
        )
        .unwrap();
        let mut objects = Vec::new();
        for (name, flags) in [
            ("o2.o", &["-O2", "-g"][..]),
            ("fs.o", &["-O1", "-gdwarf-4", "-ffunction-sections"]),
        ] {
            let o = dir.path().join(name);
            let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
            args.extend(["-c".as_ref(), c.as_os_str(), "-o".as_ref(), o.as_os_str()]);
            gcc(&args);
            objects.push(o);
        }
        let inputs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/inputs");
        for s in ["layout.S", "special.S"] {
            let o = dir.path().join(s).with_extension("o");
            gcc(&[
                "-c".as_ref(),
                inputs.join(s).as_os_str(),
                "-o".as_ref(),
                o.as_os_str(),
            ]);
            objects.push(o);
        }
        // Kernel objects when the Linux corpus is there (docs/linux-corpus.md).
        let tree = std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".cache/afterburn/linux-6.12/build-dwarf"))
            .filter(|t| t.is_dir());
        match &tree {
            Some(t) => objects.extend(
                [
                    "kernel/sched/core.o",
                    "arch/x86/kernel/process.o",
                    "mm/memory.o",
                    "lib/once.o",
                ]
                .iter()
                .map(|o| t.join(o))
                .filter(|o| o.is_file()),
            ),
            None => {
                eprintln!("SKIPPED: kernel objects (no ~/.cache/afterburn/linux-6.12/build-dwarf)")
            }
        }
        let mut compared = 0;
        for o in &objects {
            let Some((new, old)) = both_writers(o) else {
                continue;
            };
            let first = new.iter().zip(&old).position(|(a, b)| a != b);
            assert!(
                new == old,
                "{}: writer output differs from the builder's (sizes {} / {}, first at {first:?})",
                o.display(),
                new.len(),
                old.len()
            );
            compared += 1;
        }
        assert!(compared >= 4, "only {compared} objects were burnt");
    }
}
