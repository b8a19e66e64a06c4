//! The verification passes. Each pass says why it comes where:
//!
//! 1. sections are matched by name (and ordinal among equal names);
//! 2. the burnt `.afterburn` records are read (the walk consumes them);
//! 3. every code section is walked in lockstep, which yields its offset map and the deferred
//!    checks that need the maps of all sections (branch targets, relocations);
//! 4. `.altinstructions` length fields are checked against the maps;
//! 5. all other sections are compared byte by byte, masking relocated and length fields;
//! 6. the deferred checks run: branch/RIP-relative targets, relocations, symbols, leftovers.

use super::decode::{
    decode_at, decode_items, hex, is_near_branch, relocs_in, slice, Field, Item, ItemKind,
};
use super::elf::{reloc_info, reloc_name, Object, Place, Reloc, Section};
use super::map::SectionMap;
use super::special::{
    alt_entries, jump_entries, place_of, AltEntry, ALTINSTRUCTIONS, NOP2, NOP5, ORC_IP,
};
use super::{site_at, Difference, Error, ExpectedSite, Options, Report};
use annotations::{
    nop, site_len, SiteRecord, Sites, FLAG_ALTINSTR, FLAG_UNPADDED, NOANNOTATE_SECTION_NAME,
    SECTION_ALIGN, SECTION_NAME,
};
use iced_x86::{Formatter, GasFormatter, Instruction, Mnemonic};
use object::elf as E;
use std::collections::{HashMap, HashSet};

/// Name of the section of alternative replacement code (Linux).
const ALTINSTR_REPLACEMENT: &str = ".altinstr_replacement";

pub(super) fn verify(o: (&str, &[u8]), b: (&str, &[u8]), opts: &Options) -> Result<Report, Error> {
    let orig = Object::parse(o.0, o.1)?;
    let burnt = Object::parse(b.0, b.1)?;
    if orig.sections.iter().any(|s| s.name == SECTION_NAME) {
        // docs/annotation-format.md: an object that already has `.afterburn` is left unchanged.
        let mut report = Report::default();
        report.notes.push(format!(
            "the original already has {SECTION_NAME}: the burnt object must be identical"
        ));
        if o.1 != b.1 {
            let at =
                o.1.iter()
                    .zip(b.1)
                    .position(|(x, y)| x != y)
                    .unwrap_or(o.1.len().min(b.1.len()));
            report.differences.push(Difference {
                section: "<file>".into(),
                orig_offset: Some(at as u64),
                burnt_offset: Some(at as u64),
                place: None,
                what: format!(
                    "an already burnt object was changed (first difference at file offset {at:#x})"
                ),
                original: None,
                burnt: None,
            });
        }
        return Ok(report);
    }
    let mut c = Ctx::new(orig, burnt, opts.clone());
    c.run()?;
    Ok(c.report)
}

/// Sections whose bytes follow from the code layout; not compared here.
fn layout_derived(name: &str) -> bool {
    name == ".eh_frame"
        || name.starts_with(".debug_")
        || name.starts_with(".zdebug_")
        || name.starts_with(".gnu.debuglto_")
        || name == ".stab"
        || name == ".stabstr"
}

/// A relocation check deferred until all maps exist.
#[derive(Clone, Debug)]
struct PendingReloc {
    osec: usize,
    idx: usize,
    bsec: usize,
    boff: u64,
    obias: i64,
    bbias: i64,
}

/// A branch or RIP-relative target check deferred until the section's map is complete.
#[derive(Clone, Debug)]
struct PendingTarget {
    p: u64,
    q: u64,
    orig_target: i64,
    burnt_target: i64,
    what: &'static str,
}

/// A burnt site record.
#[derive(Clone, Debug)]
struct Rec {
    rec_off: usize,
    rec: SiteRecord,
    matched: bool,
}

/// What a relocation designates, in burnt terms.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Designation {
    /// Burnt section and offset of the designated place.
    place: Option<(usize, i64)>,
    /// Name that must be used (global, weak, undefined, common or absolute symbols).
    name: Option<String>,
    /// Addend plus bias that must be preserved (when the place alone does not fix the value).
    adj: Option<i64>,
}

struct Ctx<'a> {
    o: Object<'a>,
    b: Object<'a>,
    opts: Options,
    report: Report,
    /// Original section index -> burnt section index.
    fwd: Vec<Option<usize>>,
    /// Burnt section index -> original section index.
    rev: Vec<Option<usize>>,
    /// Per original section.
    maps: Vec<SectionMap>,
    afterburn: Option<usize>,
    records: HashMap<(usize, u64), Rec>,
    consumed: Vec<Vec<bool>>,
    pending: Vec<PendingReloc>,
    /// Burnt ranges that were skipped after a mismatch: leftovers there are not reported.
    unexamined: Vec<(usize, u64, u64)>,
    /// Burnt (section, offset) ranges masked in the byte comparison (length fields).
    masked: HashSet<(usize, u64)>,
    expect_sites: bool,
    /// Layout-derived sections skipped.
    not_compared: Vec<String>,
    /// Original ranges whose map is unknown (a walk skipped them after a difference).
    unreliable: Vec<(usize, u64, u64)>,
    /// Checks skipped because they depend on an unreliable range.
    suppressed: usize,
    /// `.altinstructions` entries of the original (empty when absent or not recognised).
    alts: Vec<AltEntry>,
    /// Original (section, region end) -> indices into `alts`.
    alt_ends: HashMap<(usize, u64), Vec<usize>>,
    /// `__jump_table` code sites of the original -> their targets.
    jump_sites: HashMap<(usize, u64), (usize, u64)>,
    /// Original (section, boundary) -> burnt offset right after the previous instruction, where
    /// bytes were inserted at the boundary (site padding, alternative growth, realignment).
    before: HashMap<(usize, u64), u64>,
    /// Sections walked so far.
    walked: Vec<bool>,
    /// Places in data sections that code refers to (candidate bases of relative tables).
    code_refs: HashMap<usize, std::collections::BTreeSet<u64>>,
}

fn fmt_insn(insn: &Instruction, bytes: &[u8]) -> String {
    let mut f = GasFormatter::new();
    f.options_mut().set_space_after_operand_separator(true);
    let mut text = String::new();
    f.format(insn, &mut text);
    format!("{:<30} {text}", hex(bytes))
}

/// The instruction at offset `off` of section `sec`, formatted for a report (its bytes when
/// they do not decode). Reports are rare: instructions are formatted only when one is made.
fn fmt_at(obj: &Object<'_>, sec: usize, off: u64) -> String {
    let Some(s) = obj.sections.get(sec) else {
        return String::new();
    };
    match decode_at(s.data, off, s.size) {
        Some((insn, _)) => fmt_insn(&insn, slice(s.data, off, insn.len() as u64)),
        None => hex(slice(s.data, off, 15)),
    }
}

impl<'a> Ctx<'a> {
    fn new(o: Object<'a>, b: Object<'a>, opts: Options) -> Self {
        let maps = o
            .sections
            .iter()
            .map(|s| SectionMap::identity(s.size))
            .collect();
        let consumed = b
            .sections
            .iter()
            .map(|s| vec![false; s.relocs.len()])
            .collect();
        Ctx {
            fwd: vec![None; o.sections.len()],
            rev: vec![None; b.sections.len()],
            maps,
            consumed,
            o,
            b,
            opts,
            report: Report::default(),
            afterburn: None,
            records: HashMap::new(),
            pending: Vec::new(),
            unexamined: Vec::new(),
            masked: HashSet::new(),
            expect_sites: true,
            not_compared: Vec::new(),
            unreliable: Vec::new(),
            suppressed: 0,
            alts: Vec::new(),
            alt_ends: HashMap::new(),
            jump_sites: HashMap::new(),
            before: HashMap::new(),
            walked: vec![false; 0],
            code_refs: HashMap::new(),
        }
    }

    fn push(&mut self, d: Difference) {
        if self.report.differences.len() >= self.opts.max_diffs {
            self.report.truncated = true;
        } else {
            self.report.differences.push(d);
        }
    }

    fn diff_o(&self, osec: usize, p: Option<u64>, q: Option<u64>, what: String) -> Difference {
        Difference {
            section: self.o.sections[osec].name.clone(),
            orig_offset: p,
            burnt_offset: q,
            place: p.map(|p| self.o.describe(osec, p)),
            what,
            original: None,
            burnt: None,
        }
    }

    fn diff_b(&self, bsec: usize, q: Option<u64>, what: String) -> Difference {
        Difference {
            section: self.b.sections[bsec].name.clone(),
            orig_offset: None,
            burnt_offset: q,
            place: q.map(|q| self.b.describe(bsec, q)),
            what,
            original: None,
            burnt: None,
        }
    }

    /// Whether original offset `x` of section `osec` lies where the map is unknown.
    fn is_unreliable(&self, osec: usize, x: i64) -> bool {
        let Ok(x) = u64::try_from(x) else {
            return false;
        };
        self.unreliable
            .iter()
            .any(|&(s, a, e)| s == osec && x >= a && x < e)
    }

    fn is_unexamined(&self, bsec: usize, q: u64) -> bool {
        self.unexamined
            .iter()
            .any(|&(s, a, e)| s == bsec && q >= a && q < e)
    }

    fn run(&mut self) -> Result<(), Error> {
        self.match_sections()?;
        self.read_records();
        self.read_special();
        self.walked = vec![false; self.o.sections.len()];
        // Replacement code first: the growth of original alternative regions depends on it.
        let mut order: Vec<usize> = (0..self.o.sections.len()).collect();
        let repl: std::collections::HashSet<usize> = self.alts.iter().map(|a| a.repl.0).collect();
        order.sort_by_key(|&i| {
            !(repl.contains(&i) || self.o.sections[i].name == ALTINSTR_REPLACEMENT)
        });
        for osec in order {
            let s = &self.o.sections[osec];
            if s.is_code() && self.fwd[osec].is_some() {
                self.walk_code(osec)?;
                self.walked[osec] = true;
            }
        }
        self.altinstructions();
        for osec in 0..self.o.sections.len() {
            self.compare_data_section(osec);
        }
        if !self.not_compared.is_empty() {
            self.report.notes.push(format!(
                "not compared (derived from the code layout; see the GNU-tool oracles): {}",
                self.not_compared.join(" ")
            ));
        }
        self.resolve_relocs();
        self.extra_relocs();
        self.symbols();
        self.groups();
        self.leftover_records();
        if self.suppressed > 0 {
            self.report.notes.push(format!(
                "{} check(s) of targets, relocations or symbols skipped: they lie where a walk stopped after a difference",
                self.suppressed
            ));
        }
        Ok(())
    }

    // ---- pass 1: sections ------------------------------------------------------------------

    fn match_sections(&mut self) -> Result<(), Error> {
        for i in 1..self.o.sections.len() {
            let s = &self.o.sections[i];
            if s.name == NOANNOTATE_SECTION_NAME {
                self.expect_sites = false;
                self.report.notes.push(format!(
                    "original has {NOANNOTATE_SECTION_NAME}: no sites expected"
                ));
            }
            let Some(j) = self.b.find_section(&s.name, s.ordinal) else {
                let d = self.diff_o(i, None, None, "section missing in the burnt object".into());
                self.push(d);
                continue;
            };
            self.fwd[i] = Some(j);
            self.rev[j] = Some(i);
            let (s, t) = (&self.o.sections[i], &self.b.sections[j]);
            let mut what = Vec::new();
            if s.sh_type != t.sh_type {
                what.push(format!("type {:#x} became {:#x}", s.sh_type, t.sh_type));
            }
            let tables = [
                E::SHT_RELA.0,
                E::SHT_SYMTAB.0,
                E::SHT_STRTAB.0,
                E::SHT_SYMTAB_SHNDX.0,
            ];
            if !tables.contains(&s.sh_type) {
                if s.flags != t.flags {
                    what.push(format!("flags {:#x} became {:#x}", s.flags, t.flags));
                }
                if s.addralign != t.addralign {
                    what.push(format!("alignment {} became {}", s.addralign, t.addralign));
                }
                if s.entsize != t.entsize {
                    what.push(format!("entry size {} became {}", s.entsize, t.entsize));
                }
            }
            if !what.is_empty() {
                let d = self.diff_o(
                    i,
                    None,
                    None,
                    format!("section header: {}", what.join(", ")),
                );
                self.push(d);
            }
        }
        for j in 1..self.b.sections.len() {
            if self.rev[j].is_some() {
                continue;
            }
            let t = &self.b.sections[j];
            if t.name == SECTION_NAME && self.afterburn.is_none() {
                self.afterburn = Some(j);
                continue;
            }
            let is_ab_rela = t.sh_type == E::SHT_RELA.0
                && usize::try_from(t.info)
                    .ok()
                    .and_then(|k| self.b.sections.get(k))
                    .is_some_and(|k| k.name == SECTION_NAME);
            if !is_ab_rela {
                let d = self.diff_b(
                    j,
                    None,
                    "section added by the burner (only .afterburn may be)".into(),
                );
                self.push(d);
            }
        }
        Ok(())
    }

    // ---- pass 2: records -------------------------------------------------------------------

    fn read_records(&mut self) {
        let Some(a) = self.afterburn else { return };
        let b = &self.b;
        let sec: &Section<'a> = &b.sections[a];
        let mut problems = Vec::new();
        if sec.sh_type != E::SHT_PROGBITS.0 {
            problems.push(format!("type {:#x} is not PROGBITS", sec.sh_type));
        }
        if sec.addralign < SECTION_ALIGN {
            problems.push(format!(
                "alignment {} is below {SECTION_ALIGN}",
                sec.addralign
            ));
        }
        let mut found = Vec::new();
        let mut dups = Vec::new();
        for item in Sites::new(sec.data) {
            match item {
                Err(e) => {
                    problems.push(format!("bad record: {e}"));
                    break;
                }
                Ok((off, rec)) => found.push((off, rec)),
            }
        }
        let mut last_key: Option<(usize, u64)> = None;
        for (off, rec) in found {
            self.report.stats.records += 1;
            let off64 = off as u64;
            // Relocations are sorted by offset: the first one at the record's offset.
            let first = sec.relocs.partition_point(|r| r.offset < off64);
            let r = Some(first).filter(|&k| sec.relocs.get(k).is_some_and(|r| r.offset == off64));
            let Some(ri) = r else {
                problems.push(format!(
                    "record at +{off:#x} has no relocation on its site field"
                ));
                continue;
            };
            self.consumed[a][ri] = true;
            let rel = sec.relocs[ri];
            if rel.r_type != E::R_X86_64_PC32.0 {
                problems.push(format!(
                    "record at +{off:#x}: site relocation is {}, not R_X86_64_PC32",
                    reloc_name(rel.r_type)
                ));
            }
            let sym = &self.b.symbols[rel.sym];
            let Place::Section(x) = sym.place else {
                problems.push(format!(
                    "record at +{off:#x}: site relocation names {:?}, not a defined symbol",
                    sym.name
                ));
                continue;
            };
            let target = i64::try_from(sym.value)
                .ok()
                .and_then(|v| v.checked_add(rel.addend));
            let Some(target) = target.and_then(|t| u64::try_from(t).ok()) else {
                problems.push(format!("record at +{off:#x}: site lies before its section"));
                continue;
            };
            // docs/annotation-format.md: records sorted by site within a section, sections in
            // section order.
            if last_key.is_some_and(|k| k > (x, target)) {
                problems.push(format!(
                    "record at +{off:#x} is out of order (sites must be sorted by section, then offset)"
                ));
            }
            last_key = Some((x, target));
            if self
                .records
                .insert(
                    (x, target),
                    Rec {
                        rec_off: off,
                        rec,
                        matched: false,
                    },
                )
                .is_some()
            {
                dups.push((x, target));
            }
        }
        for (x, target) in dups {
            let d = self.diff_b(
                x,
                Some(target),
                "two .afterburn records for one site".into(),
            );
            self.push(d);
        }
        if !problems.is_empty() {
            let d = self.diff_b(a, None, problems.join("; "));
            self.push(d);
        }
    }

    fn read_special(&mut self) {
        match alt_entries(&self.o) {
            None => {}
            Some(Err(why)) => self
                .report
                .notes
                .push(format!("{ALTINSTRUCTIONS}: {why}; compared as bytes")),
            Some(Ok((_, alts))) => {
                for (k, a) in alts.iter().enumerate() {
                    self.alt_ends
                        .entry((a.orig.0, a.orig.1 + a.orig_len))
                        .or_default()
                        .push(k);
                }
                self.alts = alts;
            }
        }
        for e in jump_entries(&self.o) {
            self.jump_sites.insert(e.code, e.target);
        }
    }

    /// At original boundary `p` (burnt `q`), the NOP padding by which alternative regions
    /// ending here must grow so that their replacements still fit; checks it and returns its
    /// length.
    fn alt_growth(&mut self, osec: usize, bsec: usize, p: u64, q: u64, map: &SectionMap) -> u64 {
        let Some(ids) = self.alt_ends.get(&(osec, p)) else {
            return 0;
        };
        let mut need = 0u64;
        let mut why = String::new();
        for &id in ids {
            let a = self.alts[id];
            let (rs, ro) = a.repl;
            if !self.walked.get(rs).copied().unwrap_or(false) || rs == osec {
                continue;
            }
            if a.repl_len > a.orig_len {
                // The original already breaks the rule; nothing to keep.
                continue;
            }
            let rm = &self.maps[rs];
            let rl = rm.map(ro + a.repl_len) - rm.map(ro);
            let ol = q.saturating_sub(map.map(a.orig.1));
            if rl > ol && rl - ol > need {
                need = rl - ol;
                why = format!(
                    "{ALTINSTRUCTIONS}+{:#x}: replacement is now {rl} bytes, the region {ol}",
                    a.entry
                );
            }
        }
        if need == 0 {
            return 0;
        }
        let bdata: &'a [u8] = self.b.sections[bsec].data;
        let bytes = slice(bdata, q, need);
        // NOP padding as the burner writes it, or 0x90 as Linux's ALTERNATIVE `.skip` writes it.
        if bytes.len() as u64 == need
            && (nop::is_padding(bytes) || bytes.iter().all(|&b| b == 0x90))
        {
            self.report.stats.alt_growth += 1;
            return need;
        }
        let mut d = self.diff_o(
            osec,
            Some(p),
            Some(q),
            format!(
                "alternative region ends here and must grow by {need} bytes of NOP padding ({why})"
            ),
        );
        d.burnt = Some(hex(slice(bdata, q, need.min(16))));
        self.push(d);
        0
    }

    // ---- pass 3: code ----------------------------------------------------------------------

    /// Next burnt offset after the maximal NOP run at `q`.
    fn skip_burnt_nops(&self, bsec: usize, mut q: u64) -> u64 {
        let bs = &self.b.sections[bsec];
        while let Some((i, _)) = decode_at(bs.data, q, bs.size) {
            if i.mnemonic() != Mnemonic::Nop {
                break;
            }
            q += i.len() as u64;
        }
        q
    }

    fn walk_code(&mut self, osec: usize) -> Result<(), Error> {
        let Some(bsec) = self.fwd[osec] else {
            return Ok(());
        };
        let items = decode_items(&self.o, osec, None)?;
        self.report.stats.code_sections += 1;
        self.report.stats.sections += 1;
        let osize = self.o.sections[osec].size;
        let bsize = self.b.sections[bsec].size;
        let in_alt = self.o.sections[osec].name == ALTINSTR_REPLACEMENT;
        let mut map = SectionMap::building(osize);
        let mut targets: Vec<PendingTarget> = Vec::new();
        let mut q = 0u64;
        let mut i = 0usize;
        // Burnt offset right after the previous original item's bytes.
        let mut prev_end = 0u64;
        let mut reach: Vec<(u64, u64, (usize, u64))> = Vec::new();
        while i < items.len() {
            let p = items[i].off;
            q += self.alt_growth(osec, bsec, p, q, &map);
            if self.opts.realign {
                if items[i].is_nop() {
                    let mut j = i;
                    while j < items.len() && items[j].is_nop() {
                        j += 1;
                    }
                    let p_end = items.get(j).map_or(osize, |it| it.off);
                    map.push(p, q);
                    let q_end = self.skip_burnt_nops(bsec, q);
                    if p_end - p != q_end - q {
                        self.report.stats.realigned_runs += 1;
                    }
                    self.report.stats.instructions += j - i;
                    q = q_end;
                    i = j;
                    continue;
                }
                let q_end = self.skip_burnt_nops(bsec, q);
                if q_end != q {
                    self.report.stats.realigned_runs += 1;
                    q = q_end;
                }
            }
            map.push(p, q);
            if q != prev_end {
                self.before.insert((osec, p), prev_end);
            }
            let ok = match &items[i].kind {
                ItemKind::Data { len } => {
                    let len = *len;
                    let good = self.compare_range(osec, bsec, p, q, len, true);
                    q += len;
                    prev_end = q;
                    i += 1;
                    good
                }
                ItemKind::Insn { .. } => {
                    let pair: Vec<Instruction> = items[i..]
                        .iter()
                        .take(2)
                        .map_while(|it| it.insn().copied())
                        .collect();
                    let site = if self.expect_sites {
                        site_at(&pair)
                    } else {
                        None
                    };
                    match site {
                        None => match self.match_insn(osec, bsec, &items[i], q, &mut targets) {
                            Some(blen) => {
                                if blen == 2 && self.jump_sites.contains_key(&(osec, p)) {
                                    reach.push((p, q, self.jump_sites[&(osec, p)]));
                                }
                                q += blen;
                                prev_end = q;
                                i += 1;
                                true
                            }
                            None => false,
                        },
                        Some(site) => {
                            self.report.stats.sites += 1;
                            let mut qq = q;
                            let mut good = true;
                            for k in 0..site.count {
                                if k > 0 {
                                    map.push(items[i + k].off, qq);
                                }
                                match self.match_insn(osec, bsec, &items[i + k], qq, &mut targets) {
                                    Some(blen) => qq += blen,
                                    None => {
                                        good = false;
                                        break;
                                    }
                                }
                            }
                            if good {
                                let pad = self.check_site(osec, bsec, p, q, qq, &site, in_alt);
                                self.report.stats.instructions += site.count - 1;
                                prev_end = qq;
                                q = qq + pad;
                                i += site.count;
                            }
                            good
                        }
                    }
                }
            };
            if ok {
                self.report.stats.instructions += 1;
                continue;
            }
            // Mismatch: resynchronise at the next symbol both objects have, or give up.
            match self.resync(osec, bsec, &items, i, q) {
                Some((j, bq)) => {
                    self.unexamined.push((bsec, q, bq));
                    self.unreliable.push((osec, p, items[j].off));
                    i = j;
                    q = bq;
                }
                None => {
                    self.unexamined.push((bsec, q, bsize.max(q)));
                    self.unreliable.push((osec, p, u64::MAX));
                    self.report.notes.push(format!(
                        "{}: walk stopped at original +{:#x} after a difference; the rest of the section was not examined",
                        self.o.sections[osec].name, p
                    ));
                    q = bsize;
                    break;
                }
            }
        }
        if i >= items.len() {
            q += self.alt_growth(osec, bsec, osize, q, &map);
            if self.opts.realign {
                q = self.skip_burnt_nops(bsec, q);
            }
            if q != prev_end {
                self.before.insert((osec, osize), prev_end);
            }
            if q != bsize {
                let what = if q < bsize {
                    format!(
                        "burnt section has {} bytes after the image of the original end",
                        bsize - q
                    )
                } else {
                    format!(
                        "burnt section ends {} bytes before the image of the original end",
                        q - bsize
                    )
                };
                let d = self.diff_o(osec, Some(osize), Some(q.min(bsize)), what);
                self.push(d);
            }
        }
        map.finish(q);
        for (p, q, (tsec, toff)) in reach {
            // A 2-byte jump-label site is patched to `jmp rel8` by the kernel.
            let t = i64::try_from(map.map(toff)).unwrap_or(i64::MAX);
            let disp = t - i64::try_from(q + 2).unwrap_or(0);
            if tsec == osec
                && !self.is_unreliable(osec, i64::try_from(toff).unwrap_or(0))
                && !(-128..=127).contains(&disp)
            {
                let d = self.diff_o(
                    osec,
                    Some(p),
                    Some(q),
                    format!("2-byte jump-label site can no longer reach its target +{t:#x} with rel8 (displacement {disp})"),
                );
                self.push(d);
            }
        }
        for t in targets {
            if self.is_unreliable(osec, t.orig_target) {
                self.suppressed += 1;
                continue;
            }
            let want = map.map_signed(t.orig_target);
            if want != t.burnt_target {
                let mut d = self.diff_o(
                    osec,
                    Some(t.p),
                    Some(t.q),
                    format!(
                        "{} target moved: original +{:#x} maps to +{:#x}, burnt reaches +{:#x}",
                        t.what, t.orig_target, want, t.burnt_target
                    ),
                );
                d.original = Some(fmt_at(&self.o, osec, t.p));
                d.burnt = Some(fmt_at(&self.b, bsec, t.q));
                self.push(d);
            }
        }
        self.maps[osec] = map;
        Ok(())
    }

    /// After a mismatch at item `i`, the next item that starts a symbol the burnt object also
    /// defines (same name), and that symbol's burnt offset.
    fn resync(
        &self,
        osec: usize,
        bsec: usize,
        items: &[Item],
        i: usize,
        q: u64,
    ) -> Option<(usize, u64)> {
        for (j, it) in items.iter().enumerate().skip(i + 1) {
            for s in &self.o.symbols {
                if s.place == Place::Section(osec)
                    && s.value == it.off
                    && !s.is_section()
                    && !s.name.is_empty()
                {
                    if let Some(t) = self.b.symbols.iter().find(|t| {
                        t.name == s.name
                            && t.ordinal == s.ordinal
                            && t.place == Place::Section(bsec)
                            && !t.is_section()
                    }) {
                        if t.value >= q {
                            return Some((j, t.value));
                        }
                    }
                }
            }
        }
        None
    }

    /// Matches original item `it` (an instruction) at burnt offset `q`. Returns the burnt length,
    /// or `None` after reporting a difference.
    fn match_insn(
        &mut self,
        osec: usize,
        bsec: usize,
        it: &Item,
        q: u64,
        targets: &mut Vec<PendingTarget>,
    ) -> Option<u64> {
        let ItemKind::Insn {
            insn: oi,
            co,
            relocs,
        } = &it.kind
        else {
            return None;
        };
        let p = it.off;
        let olen = oi.len() as u64;
        let obytes = slice(self.o.sections[osec].data, p, olen).to_vec();
        let bdata: &'a [u8] = self.b.sections[bsec].data;
        let bsize = self.b.sections[bsec].size;
        let Some((bi, bco)) = decode_at(bdata, q, bsize) else {
            let mut d = self.diff_o(
                osec,
                Some(p),
                Some(q),
                "burnt bytes here do not decode as an instruction".into(),
            );
            d.original = Some(fmt_insn(oi, &obytes));
            d.burnt = Some(hex(slice(bdata, q, 15)));
            self.push(d);
            return None;
        };
        let blen = bi.len() as u64;
        let bbytes = slice(bdata, q, blen).to_vec();
        let fail = |this: &mut Self, what: String| {
            let mut d = this.diff_o(osec, Some(p), Some(q), what);
            d.original = Some(fmt_insn(oi, &obytes));
            d.burnt = Some(fmt_insn(&bi, &bbytes));
            this.push(d);
        };

        // A disabled 2-byte jump label may become the kernel's 5-byte NOP.
        if obytes == NOP2 && bbytes != NOP2 && self.jump_sites.contains_key(&(osec, p)) {
            if slice(bdata, q, 5) == NOP5 {
                return Some(5);
            }
            fail(
                self,
                "2-byte jump-label NOP must stay `66 90` or become `0f 1f 44 00 00`".into(),
            );
            return None;
        }
        let branch = is_near_branch(oi);
        let branch_relocated = branch && relocs.iter().any(|r| r.field == Field::Imm);
        if branch && !branch_relocated {
            if oi.code().as_near_branch() != bi.code().as_near_branch() || !is_near_branch(&bi) {
                fail(
                    self,
                    "different instruction (a branch may only change between short and near form)"
                        .into(),
                );
                return None;
            }
            let (mut a, mut b) = (*oi, bi);
            a.set_code(a.code().as_near_branch());
            b.set_code(b.code().as_near_branch());
            a.set_near_branch64(0);
            b.set_near_branch64(0);
            if a != b {
                fail(self, "different branch instruction".into());
                return None;
            }
            if olen == blen {
                // Same form: every byte but the displacement must be equal.
                let imm = co.immediate_offset().min(obytes.len());
                if obytes[..imm] != bbytes[..imm.min(bbytes.len())] {
                    fail(self, "different branch encoding".into());
                    return None;
                }
            } else if oi.code() != oi.code().as_short_branch()
                || bi.code() == bi.code().as_short_branch()
            {
                fail(
                    self,
                    "a branch may only grow from short to near form".into(),
                );
                return None;
            }
            targets.push(PendingTarget {
                p,
                q,
                orig_target: oi.near_branch_target() as i64,
                burnt_target: bi.near_branch_target() as i64,
                what: "branch",
            });
            for r in relocs {
                // Only R_X86_64_NONE can be here (the branch field has no relocation).
                self.pending.push(PendingReloc {
                    osec,
                    idx: r.idx,
                    bsec,
                    boff: q + r.at,
                    obias: 0,
                    bbias: 0,
                });
            }
            return Some(blen);
        }

        if olen != blen {
            fail(self, "different instruction (length differs)".into());
            return None;
        }
        let mut mask = vec![false; obytes.len()];
        let mut mask_field = |at: u64, size: u64| {
            for k in at..at + size {
                if let Some(m) = usize::try_from(k).ok().and_then(|k| mask.get_mut(k)) {
                    *m = true;
                }
            }
        };
        for r in relocs {
            mask_field(r.at, r.size);
        }
        let disp_relocated = relocs.iter().any(|r| r.field == Field::Disp);
        if oi.is_ip_rel_memory_operand() && !disp_relocated {
            if !bi.is_ip_rel_memory_operand() {
                fail(self, "RIP-relative operand became absolute".into());
                return None;
            }
            mask_field(
                bco.displacement_offset() as u64,
                bco.displacement_size() as u64,
            );
            targets.push(PendingTarget {
                p,
                q,
                orig_target: oi.ip_rel_memory_address() as i64,
                burnt_target: bi.ip_rel_memory_address() as i64,
                what: "RIP-relative operand",
            });
        }
        let same = obytes
            .iter()
            .zip(&bbytes)
            .zip(&mask)
            .all(|((x, y), m)| *m || x == y);
        if !same {
            fail(self, "different instruction".into());
            return None;
        }
        for r in relocs {
            let info = reloc_info(self.o.sections[osec].relocs[r.idx].r_type);
            let pc_operand = info.is_some_and(|i| i.pc_relative)
                && ((r.field == Field::Disp && oi.is_ip_rel_memory_operand())
                    || (r.field == Field::Imm && branch));
            let (obias, bbias) = if pc_operand {
                let ob = i64::try_from(olen - r.at).unwrap_or(0);
                (ob, ob)
            } else {
                (0, 0)
            };
            // Remember which data places code refers to: bases of relative tables.
            let rel = self.o.sections[osec].relocs[r.idx];
            if let Some((x, off)) = place_of(
                &self.o,
                &Reloc {
                    addend: rel.addend.saturating_add(obias),
                    ..rel
                },
            ) {
                if !self.o.sections[x].is_code() {
                    self.code_refs.entry(x).or_default().insert(off);
                }
            }
            self.pending.push(PendingReloc {
                osec,
                idx: r.idx,
                bsec,
                boff: q + r.at,
                obias,
                bbias,
            });
        }
        Some(blen)
    }

    /// Checks the record and the padding of a site whose instructions start at burnt `q` and end
    /// at `qq`. Returns the number of padding bytes to step over.
    #[allow(clippy::too_many_arguments)]
    fn check_site(
        &mut self,
        osec: usize,
        bsec: usize,
        p: u64,
        q: u64,
        qq: u64,
        site: &ExpectedSite,
        in_alt: bool,
    ) -> u64 {
        let bdata: &'a [u8] = self.b.sections[bsec].data;
        let bsize = self.b.sections[bsec].size;
        let odata: &'a [u8] = self.o.sections[osec].data;
        let full = u64::from(site_len(site.kind, site.insn_len));
        let expected_pad = full - u64::from(site.insn_len);
        let pad_ok = |n: u64| qq + n <= bsize && nop::is_padding(slice(bdata, qq, n));
        let Some(rec) = self.records.get_mut(&(bsec, q)) else {
            let step = if pad_ok(expected_pad) {
                expected_pad
            } else {
                0
            };
            let mut d = self.diff_o(
                osec,
                Some(p),
                Some(q),
                format!(
                    "sensitive instruction ({}) has no {SECTION_NAME} record",
                    site.kind
                ),
            );
            d.original = Some(hex(slice(odata, p, u64::from(site.insn_len))));
            self.push(d);
            return step;
        };
        rec.matched = true;
        let r = rec.rec;
        let rec_off = rec.rec_off;
        let mut problems = Vec::new();
        if r.kind != site.kind {
            problems.push(format!("kind {} (expected {})", r.kind, site.kind));
        }
        if r.insn_len != site.insn_len {
            problems.push(format!(
                "insn_len {} (expected {})",
                r.insn_len, site.insn_len
            ));
        }
        if r.operands != site.operands {
            problems.push(format!(
                "operands {:#x} (expected {:#x})",
                r.operands.0, site.operands.0
            ));
        }
        let want_flags = site.flags | if in_alt { FLAG_ALTINSTR } else { 0 };
        if r.flags & !FLAG_UNPADDED != want_flags {
            problems.push(format!(
                "flags {:#x} (expected {want_flags:#x}, optionally with UNPADDED)",
                r.flags
            ));
        }
        let unpadded = r.flags & FLAG_UNPADDED != 0;
        let want_len = if unpadded {
            site.insn_len
        } else {
            site_len(site.kind, site.insn_len)
        };
        if r.site_len != want_len {
            problems.push(format!("site_len {} (expected {want_len})", r.site_len));
        }
        let rec_pad = u64::from(r.site_len).saturating_sub(u64::from(site.insn_len));
        let step = if pad_ok(rec_pad) {
            rec_pad
        } else {
            let n = rec_pad.min(bsize.saturating_sub(qq));
            problems.push(format!(
                "the {rec_pad} bytes after the instruction are not NOP padding: {}",
                hex(slice(bdata, qq, n.min(16)))
            ));
            if pad_ok(expected_pad) {
                expected_pad
            } else {
                rec_pad
            }
        };
        if !problems.is_empty() {
            let mut d = self.diff_o(
                osec,
                Some(p),
                Some(q),
                format!(
                    "{SECTION_NAME} record at +{rec_off:#x}: {}",
                    problems.join(", ")
                ),
            );
            d.original = Some(hex(slice(odata, p, u64::from(site.insn_len))));
            d.burnt = Some(hex(slice(bdata, q, u64::from(site.insn_len) + rec_pad)));
            self.push(d);
        }
        step
    }

    // ---- pass 4: .altinstructions ------------------------------------------------------------

    fn altinstructions(&mut self) {
        let Some(osec) = self
            .o
            .sections
            .iter()
            .position(|s| s.name == ALTINSTRUCTIONS)
        else {
            return;
        };
        let Some(bsec) = self.fwd[osec] else { return };
        let bdata: &'a [u8] = self.b.sections[bsec].data;
        let alts = self.alts.clone();
        // The length bytes are checked here, never as plain bytes.
        for a in &alts {
            self.masked.insert((bsec, a.len_off));
            self.masked.insert((bsec, a.len_off + 1));
        }
        for (k, a) in alts.iter().enumerate() {
            let mut new_lens = [0u64; 2];
            let mut ok = true;
            for (f, ((x, start), len)) in [(a.orig, a.orig_len), (a.repl, a.repl_len)]
                .into_iter()
                .enumerate()
            {
                let s = i64::try_from(start).unwrap_or(i64::MAX);
                let e = i64::try_from(start + len).unwrap_or(i64::MAX);
                if self.is_unreliable(x, s) || self.is_unreliable(x, e) {
                    self.suppressed += 1;
                    ok = false;
                    continue;
                }
                let m = &self.maps[x];
                new_lens[f] = m.map(start + len) - m.map(start);
                let len_off = a.len_off + f as u64;
                let got = u64::from(slice(bdata, len_off, 1).first().copied().unwrap_or(0));
                if got != new_lens[f] {
                    let name = if f == 0 { "instrlen" } else { "replacementlen" };
                    let d = self.diff_o(
                        osec,
                        Some(len_off),
                        Some(len_off),
                        format!(
                            "entry {k}: {name} is {got}, the mapped length is {} (original {len})",
                            new_lens[f]
                        ),
                    );
                    self.push(d);
                }
            }
            if !ok {
                continue;
            }
            if a.repl_len <= a.orig_len && new_lens[1] > new_lens[0] {
                let d = self.diff_o(
                    osec,
                    Some(a.entry),
                    Some(a.entry),
                    format!(
                        "entry {k}: replacement ({}) no longer fits the original ({})",
                        new_lens[1], new_lens[0]
                    ),
                );
                self.push(d);
            }
            if new_lens.iter().any(|&l| l > 255) {
                let d = self.diff_o(
                    osec,
                    Some(a.entry),
                    Some(a.entry),
                    format!("entry {k}: a mapped length exceeds 255"),
                );
                self.push(d);
            }
        }
    }

    // ---- pass 5: data ------------------------------------------------------------------------

    fn compare_data_section(&mut self, osec: usize) {
        let Some(bsec) = self.fwd[osec] else { return };
        let s = &self.o.sections[osec];
        let t = s.sh_type;
        if osec == 0
            || s.is_code()
            || [
                E::SHT_RELA.0,
                E::SHT_SYMTAB.0,
                E::SHT_STRTAB.0,
                E::SHT_SYMTAB_SHNDX.0,
                E::SHT_GROUP.0,
                E::SHT_NULL.0,
            ]
            .contains(&t)
        {
            return;
        }
        if layout_derived(&s.name) {
            self.not_compared.push(s.name.clone());
            return;
        }
        self.report.stats.sections += 1;
        let bsize = self.b.sections[bsec].size;
        if s.size != bsize {
            let d = self.diff_o(
                osec,
                None,
                None,
                format!("size {:#x} became {bsize:#x}", s.size),
            );
            self.push(d);
            return;
        }
        if t == E::SHT_NOBITS.0 {
            return;
        }
        let size = s.size;
        self.compare_range(osec, bsec, 0, 0, size, false);
    }

    /// Compares original bytes `[p, p+len)` with burnt `[q, q+len)`, masking relocated fields,
    /// and queues their relocations. Returns whether they matched.
    fn compare_range(
        &mut self,
        osec: usize,
        bsec: usize,
        p: u64,
        q: u64,
        len: u64,
        in_code: bool,
    ) -> bool {
        let s = &self.o.sections[osec];
        let bs = &self.b.sections[bsec];
        let od = slice(s.data, p, len);
        let bd = slice(bs.data, q, len);
        let mut mask = vec![false; od.len()];
        for idx in relocs_in(s, p, p + len) {
            let r = s.relocs[idx];
            let size = reloc_info(r.r_type).map_or(0, |i| u64::from(i.size));
            for k in r.offset..r.offset + size {
                if let Some(m) = usize::try_from(k - p).ok().and_then(|k| mask.get_mut(k)) {
                    *m = true;
                }
            }
            self.pending.push(PendingReloc {
                osec,
                idx,
                bsec,
                boff: q + (r.offset - p),
                obias: 0,
                bbias: 0,
            });
        }
        for idx in relocs_in(bs, q, q + len) {
            let r = bs.relocs[idx];
            let size = reloc_info(r.r_type).map_or(0, |i| u64::from(i.size));
            for k in r.offset..r.offset + size {
                if let Some(m) = usize::try_from(k - q).ok().and_then(|k| mask.get_mut(k)) {
                    *m = true;
                }
            }
        }
        for (k, m) in mask.iter_mut().enumerate() {
            if self.masked.contains(&(bsec, q + k as u64)) {
                *m = true;
            }
        }
        let first = (0..od.len().max(bd.len()))
            .find(|&k| !mask.get(k).copied().unwrap_or(false) && od.get(k) != bd.get(k));
        let Some(k) = first else { return true };
        let count = (0..od.len().max(bd.len()))
            .filter(|&k| !mask.get(k).copied().unwrap_or(false) && od.get(k) != bd.get(k))
            .count();
        let at = k as u64;
        let what = if in_code {
            "data in code differs"
        } else {
            "bytes differ"
        };
        let mut d = self.diff_o(
            osec,
            Some(p + at),
            Some(q + at),
            format!("{what} ({count} byte(s) outside relocated fields)"),
        );
        d.original = Some(hex(slice(od, at, 16)));
        d.burnt = Some(hex(slice(bd, at, 16)));
        self.push(d);
        false
    }

    // ---- pass 6: deferred checks -------------------------------------------------------------

    fn describe_reloc(obj: &Object<'_>, r: &Reloc) -> String {
        let s = &obj.symbols[r.sym];
        let name = if s.is_section() {
            match s.place {
                Place::Section(x) => obj.sections[x].name.clone(),
                _ => "?".into(),
            }
        } else {
            s.name.clone()
        };
        let a = if r.addend < 0 {
            format!("-{:#x}", r.addend.unsigned_abs())
        } else {
            format!("+{:#x}", r.addend)
        };
        format!("{} {name}{a}", reloc_name(r.r_type))
    }

    /// Whether the original place a relocation designates lies where the map is unknown.
    fn reloc_target_unreliable(&self, r: &Reloc, bias: i64) -> bool {
        let s = &self.o.symbols[r.sym];
        let Place::Section(x) = s.place else {
            return false;
        };
        let v = i64::try_from(s.value).unwrap_or(i64::MAX);
        self.is_unreliable(x, v)
            || self.is_unreliable(x, v.saturating_add(r.addend).saturating_add(bias))
    }

    /// What original relocation `r` must designate in the burnt object. `orc`: the relocation
    /// is an `.orc_unwind_ip` entry, which designates the place before bytes inserted there.
    fn designation_orig(&self, r: &Reloc, bias: i64, orc: bool) -> Designation {
        let s = &self.o.symbols[r.sym];
        let direct = reloc_info(r.r_type).is_none_or(|i| i.direct);
        let global = !s.is_local();
        let name = (global || !matches!(s.place, Place::Section(_))).then(|| s.name.clone());
        match s.place {
            Place::Section(x) => {
                let Some(bx) = self.fwd[x] else {
                    return Designation {
                        place: None,
                        name: Some(format!("<section {} missing>", self.o.sections[x].name)),
                        adj: None,
                    };
                };
                let m = &self.maps[x];
                let v = i64::try_from(s.value).unwrap_or(i64::MAX);
                if direct {
                    let t = v.saturating_add(r.addend).saturating_add(bias);
                    let before = u64::try_from(t).ok().and_then(|t| self.before.get(&(x, t)));
                    let mapped = match before {
                        Some(&b) if orc => i64::try_from(b).unwrap_or(i64::MAX),
                        _ => m.map_signed(t),
                    };
                    Designation {
                        place: Some((bx, mapped)),
                        name,
                        adj: None,
                    }
                } else {
                    Designation {
                        place: Some((bx, m.map_signed(v))),
                        name,
                        adj: Some(r.addend.saturating_add(bias)),
                    }
                }
            }
            Place::Absolute => Designation {
                place: None,
                name: Some(format!("{}={:#x}", s.name, s.value)),
                adj: Some(r.addend.saturating_add(bias)),
            },
            _ => Designation {
                place: None,
                name,
                adj: Some(r.addend.saturating_add(bias)),
            },
        }
    }

    fn designation_burnt(&self, r: &Reloc, bias: i64, want_name: bool) -> Designation {
        let s = &self.b.symbols[r.sym];
        let direct = reloc_info(r.r_type).is_none_or(|i| i.direct);
        let name = if !want_name {
            None
        } else if s.place == Place::Absolute {
            Some(format!("{}={:#x}", s.name, s.value))
        } else if s.is_local() && matches!(s.place, Place::Section(_)) {
            Some(format!("{} (local)", s.name))
        } else {
            Some(s.name.clone())
        };
        match s.place {
            Place::Section(x) => {
                let v = i64::try_from(s.value).unwrap_or(i64::MAX);
                if direct {
                    Designation {
                        place: Some((x, v.saturating_add(r.addend).saturating_add(bias))),
                        name,
                        adj: None,
                    }
                } else {
                    Designation {
                        place: Some((x, v)),
                        name,
                        adj: Some(r.addend.saturating_add(bias)),
                    }
                }
            }
            _ => Designation {
                place: None,
                name,
                adj: Some(r.addend.saturating_add(bias)),
            },
        }
    }

    fn resolve_relocs(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for pr in pending {
            self.report.stats.relocations += 1;
            let or = self.o.sections[pr.osec].relocs[pr.idx];
            let brs = &self.b.sections[pr.bsec].relocs;
            let range = relocs_in(&self.b.sections[pr.bsec], pr.boff, pr.boff + 1);
            let pick = range
                .clone()
                .find(|&k| !self.consumed[pr.bsec][k] && brs[k].r_type == or.r_type)
                .or_else(|| range.clone().find(|&k| !self.consumed[pr.bsec][k]));
            let Some(k) = pick else {
                let d = self.diff_o(
                    pr.osec,
                    Some(or.offset),
                    Some(pr.boff),
                    format!(
                        "relocation {} missing in the burnt object",
                        Self::describe_reloc(&self.o, &or)
                    ),
                );
                self.push(d);
                continue;
            };
            self.consumed[pr.bsec][k] = true;
            let br = brs[k];
            if self.reloc_target_unreliable(&or, pr.obias) {
                self.suppressed += 1;
                continue;
            }
            let orc = self.o.sections[pr.osec].name == ORC_IP;
            let want = self.designation_orig(&or, pr.obias, orc);
            let got = self.designation_burnt(&br, pr.bbias, want.name.is_some());
            let mut problems = Vec::new();
            if br.r_type != or.r_type {
                problems.push("type differs".to_string());
            }
            if want != got && self.relative_table_entry(pr.osec, &or, &got) {
                // `.long target - table` in a data table whose base the code refers to.
                self.report.stats.table_entries += 1;
            } else if want != got {
                let show = |d: &Designation, obj: &Object<'_>| {
                    let mut parts = Vec::new();
                    if let Some((x, off)) = d.place {
                        parts.push(format!("{}{:+#x}", obj.sections[x].name, off));
                    }
                    if let Some(n) = &d.name {
                        parts.push(format!("symbol {n}"));
                    }
                    if let Some(a) = d.adj {
                        parts.push(format!("addend+bias {a:#x}"));
                    }
                    parts.join(", ")
                };
                problems.push(format!(
                    "designates {}, expected {}",
                    show(&got, &self.b),
                    show(&want, &self.b)
                ));
            }
            if !problems.is_empty() {
                let mut d = self.diff_o(
                    pr.osec,
                    Some(or.offset),
                    Some(pr.boff),
                    format!("relocation: {}", problems.join("; ")),
                );
                d.original = Some(Self::describe_reloc(&self.o, &or));
                d.burnt = Some(Self::describe_reloc(&self.b, &br));
                self.push(d);
            }
        }
    }

    /// Whether PC-relative data relocation `r` (in original section `osec`) is an entry
    /// `target - base` of a relative table (PIC jump tables: `.long .L5-.L4`) whose burnt form
    /// `got` designates the mapped target. Such an entry's `S + A` is `target + (P - base)`,
    /// where `base` is the nearest place at or before `P` that code refers to.
    fn relative_table_entry(&self, osec: usize, r: &Reloc, got: &Designation) -> bool {
        let pc_direct = reloc_info(r.r_type).is_some_and(|i| i.pc_relative && i.direct);
        if !pc_direct || self.o.sections[osec].is_code() {
            return false;
        }
        let Some(base) = self
            .code_refs
            .get(&osec)
            .and_then(|b| b.range(..=r.offset).next_back())
        else {
            return false;
        };
        let d = i64::try_from(r.offset - base).unwrap_or(i64::MAX);
        let Some((x, t)) = place_of(&self.o, r) else {
            return false;
        };
        let (Some(bx), Ok(t)) = (self.fwd[x], i64::try_from(t)) else {
            return false;
        };
        if !self.o.sections[x].is_code() || d == 0 {
            return false;
        }
        let want = self.maps[x].map_signed(t - d).saturating_add(d);
        got.place == Some((bx, want)) && got.name.is_none()
    }

    fn extra_relocs(&mut self) {
        for j in 0..self.b.sections.len() {
            let skipped = self.rev[j].is_some_and(|i| layout_derived(&self.o.sections[i].name))
                || layout_derived(&self.b.sections[j].name);
            for k in 0..self.b.sections[j].relocs.len() {
                if self.consumed[j][k] || skipped {
                    continue;
                }
                let r = self.b.sections[j].relocs[k];
                if self.is_unexamined(j, r.offset) {
                    continue;
                }
                // Relocations inside code the walk never reached are reported by the walk.
                let mut d = self.diff_b(j, Some(r.offset), "relocation added by the burner".into());
                d.burnt = Some(Self::describe_reloc(&self.b, &r));
                self.push(d);
            }
        }
    }

    fn symbols(&mut self) {
        let mut matched = vec![false; self.b.symbols.len()];
        if !matched.is_empty() {
            matched[0] = true;
        }
        // Burnt symbols by name, in table order (one pass, so large objects stay linear).
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (j, t) in self.b.symbols.iter().enumerate() {
            if j > 0 && !t.is_section() {
                by_name.entry(t.name.clone()).or_default().push(j);
            }
        }
        for i in 1..self.o.symbols.len() {
            let s = self.o.symbols[i].clone();
            if s.is_section() {
                continue;
            }
            self.report.stats.symbols += 1;
            // Among burnt symbols of this name (a writer may reorder a symbol table, e.g. locals
            // first), the unmatched one with the expected kind, section and value; else the
            // one in the same position among equal names.
            let want = match s.place {
                Place::Section(x) => {
                    self.fwd[x].map(|bx| (Place::Section(bx), self.maps[x].map(s.value)))
                }
                other => Some((other, s.value)),
            };
            let same_name: Vec<usize> = by_name
                .get(s.name.as_str())
                .map(|v| v.iter().copied().filter(|&j| !matched[j]).collect())
                .unwrap_or_default();
            let found = same_name
                .iter()
                .copied()
                .find(|&j| {
                    let t = &self.b.symbols[j];
                    want == Some((t.place, t.value)) && (t.st_type, t.bind) == (s.st_type, s.bind)
                })
                .or_else(|| {
                    same_name
                        .iter()
                        .copied()
                        .find(|&j| self.b.symbols[j].ordinal == s.ordinal)
                })
                .or_else(|| same_name.first().copied());
            let Some(j) = found else {
                let d = Difference {
                    section: "symbols".into(),
                    orig_offset: None,
                    burnt_offset: None,
                    place: None,
                    what: format!("symbol {:?} missing in the burnt object", s.name),
                    original: None,
                    burnt: None,
                };
                self.push(d);
                continue;
            };
            matched[j] = true;
            let t = self.b.symbols[j].clone();
            let mut problems = Vec::new();
            if (s.st_type, s.bind, s.other) != (t.st_type, t.bind, t.other) {
                problems.push(format!(
                    "type/binding/visibility {}/{}/{} became {}/{}/{}",
                    s.st_type, s.bind, s.other, t.st_type, t.bind, t.other
                ));
            }
            if let Place::Section(x) = s.place {
                let v = i64::try_from(s.value).unwrap_or(i64::MAX);
                let e = i64::try_from(s.value.saturating_add(s.size)).unwrap_or(i64::MAX);
                if self.is_unreliable(x, v) || self.is_unreliable(x, e) {
                    self.suppressed += 1;
                    continue;
                }
            }
            let (want_place, want_value, want_size) = match s.place {
                Place::Section(x) => {
                    let m = &self.maps[x];
                    let v = m.map(s.value);
                    // An end past the section moves with the section end; an extent that
                    // overflows the address space keeps its size.
                    let size = match s.value.checked_add(s.size) {
                        Some(end) => m.map(end).wrapping_sub(v),
                        None => s.size,
                    };
                    (
                        self.fwd[x].map(Place::Section).unwrap_or(Place::Undefined),
                        v,
                        size,
                    )
                }
                other => (other, s.value, s.size),
            };
            if t.place != want_place {
                problems.push("defined in a different section".into());
            } else {
                if t.value != want_value {
                    problems.push(format!(
                        "value {:#x}, expected {want_value:#x} (original {:#x})",
                        t.value, s.value
                    ));
                }
                if t.size != want_size {
                    problems.push(format!(
                        "size {:#x}, expected {want_size:#x} (original {:#x})",
                        t.size, s.size
                    ));
                }
            }
            if !problems.is_empty() {
                let (section, p) = match s.place {
                    Place::Section(x) => (self.o.sections[x].name.clone(), Some(s.value)),
                    _ => ("symbols".into(), None),
                };
                let d = Difference {
                    section,
                    orig_offset: p,
                    burnt_offset: Some(t.value),
                    place: Some(s.name.clone()),
                    what: format!("symbol: {}", problems.join("; ")),
                    original: None,
                    burnt: None,
                };
                self.push(d);
            }
        }
        let added: Vec<String> = (1..self.b.symbols.len())
            .filter(|&j| !matched[j] && !self.b.symbols[j].is_section())
            .map(|j| self.b.symbols[j].name.clone())
            .collect();
        for name in added {
            let d = Difference {
                section: "symbols".into(),
                orig_offset: None,
                burnt_offset: None,
                place: None,
                what: format!("symbol {name:?} added by the burner"),
                original: None,
                burnt: None,
            };
            self.push(d);
        }
    }

    fn groups(&mut self) {
        for osec in 1..self.o.sections.len() {
            if self.o.sections[osec].sh_type != E::SHT_GROUP.0 {
                continue;
            }
            let Some(bsec) = self.fwd[osec] else { continue };
            let words = |obj: &Object<'_>, sec: usize| -> Vec<String> {
                let d = obj.sections[sec].data;
                d.chunks_exact(4)
                    .enumerate()
                    .map(|(k, w)| {
                        let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                        if k == 0 {
                            format!("flags {v:#x}")
                        } else {
                            usize::try_from(v)
                                .ok()
                                .and_then(|v| obj.sections.get(v))
                                .map_or(format!("<bad index {v}>"), |s| {
                                    format!("{}#{}", s.name, s.ordinal)
                                })
                        }
                    })
                    .collect()
            };
            let (a, b) = (words(&self.o, osec), words(&self.b, bsec));
            if a != b {
                let d = self.diff_o(
                    osec,
                    None,
                    None,
                    format!("group members [{}] became [{}]", a.join(", "), b.join(", ")),
                );
                self.push(d);
            }
        }
    }

    fn leftover_records(&mut self) {
        let mut left: Vec<((usize, u64), usize)> = self
            .records
            .iter()
            .filter(|(_, r)| !r.matched)
            .map(|(k, r)| (*k, r.rec_off))
            .collect();
        left.sort_unstable();
        for ((x, off), rec_off) in left {
            if self.is_unexamined(x, off) {
                continue;
            }
            let mut d = self.diff_b(
                x,
                Some(off),
                format!("{SECTION_NAME} record at +{rec_off:#x} points where no sensitive instruction starts"),
            );
            let bs = &self.b.sections[x];
            if let Some((i, _)) = decode_at(bs.data, off, bs.size) {
                d.burnt = Some(fmt_insn(&i, slice(bs.data, off, i.len() as u64)));
            }
            self.push(d);
        }
    }
}
