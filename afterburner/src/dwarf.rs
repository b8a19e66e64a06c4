//! Keeping debug and unwind information true after code moves.
//!
//! Burning inserts bytes into code sections; every code section that moved has an
//! [`OffsetMap`]. Relocations carry most addresses, and the burn engine maps their addends with
//! [`OffsetMap::map_addend`]. What no relocation carries is the business of this module:
//! lengths and deltas measured in code bytes inside the debug and unwind sections.
//!
//! | section | what changes here |
//! |---|---|
//! | `.eh_frame`, `.debug_frame` | FDE address range; CFA `advance_loc*` deltas (rebuilt) |
//! | `.debug_line` | address advances of every row (programs re-encoded; units may grow) |
//! | `.debug_info` | constant `DW_AT_high_pc` / `DW_AT_entry_pc` (in place, or units re-laid out) |
//! | `.debug_rnglists`, `.debug_loclists` | offset pairs, lengths (ULEB128 may grow; rebuilt) |
//! | `.debug_ranges`, `.debug_loc` | base-relative pairs (fixed size; patched in place) |
//! | `.debug_aranges` | tuple lengths (patched in place) |
//!
//! # The location rule
//!
//! Every code location is mapped by [`OffsetMap::map`]: a location `L` (a line row, a CFI row,
//! a range start or end, a function end) becomes `map(L)`, so bytes inserted at `L` fall
//! *before* it. Padding after an instruction therefore belongs to that instruction's line row,
//! CFI row and ranges; a range or FDE that ends with a padded instruction grows to cover its
//! padding. A length `n` from `a` becomes `map(a + n) - map(a)`; a delta `d` from a base `b`
//! becomes `map(b + d) - map(b)`. Row and range order are preserved (the map is strictly
//! increasing), so location views (GCC's `DW_AT_GNU_locviews`, numbered by rows at one address)
//! stay valid.
//!
//! This is exactly what GNU `as` computes for assembly padded with `.skip` right after the
//! instruction (the tests use that as their oracle), with one deliberate difference: GCC
//! writes the end of a call-clobbered variable location as `call_label - 1`; padding right
//! after a call would make `as` stretch that location over the padding, while the map keeps it
//! on the call (correct: the register is dead once the call returns). The burner never pads
//! after a call.
//!
//! Addresses in a relocatable object are section offsets named by relocations: a field is a
//! location in section `S` when a relocation against a symbol defined in `S` sits on it, and an
//! absolute value otherwise (not moved). Base-relative fields (offset pairs, advances, lengths)
//! inherit the section of their base.
//!
//! # Output
//!
//! Sections this module returns are complete: their data and all their relocations are final
//! (addends into moved code and into sections whose layout changed here are mapped; references
//! into the section itself are recomputed by its rewriter). Sections it does not return keep
//! their data; their relocations follow the engine's generic rule, using the returned offset
//! maps for sections that were rebuilt. A rebuilt section gets an offset map (points at record,
//! unit, list-entry and DIE starts) when it grew; `.debug_line`, list sections and
//! `.debug_info` never shrink (shorter encodings are padded with LEB128 continuation bytes),
//! CFI sections may lose a few `DW_CFA_nop` bytes (only when nothing else points into them).
//!
//! In-place patches (constant `DW_AT_high_pc`, `.debug_aranges` lengths, DWARF 4 lists) come
//! back from [`rewrite_prepared`] as the changed bytes and the relocations whose addends
//! change, not as copies of the section ([`NewData`], [`NewRelocs`]); [`rewrite`] gives
//! complete sections.
//!
//! # Speed
//!
//! Relocations are read in place when they are sorted; `.debug_info` is walked in parallel
//! stretches of units (their findings merged in unit order, so facts and errors are those of
//! one walk), DIEs with nothing to look at are stepped over in the section bytes, and of the
//! others only the attributes that matter are read; sections are rebuilt in parallel. The walk
//! needs no offset map, so the burn engine runs it ([`prepare`]) while it plans the code.
//!
//! # Refusals
//!
//! Anything the module cannot rewrite with certainty is a [`DwarfError`] naming the section and
//! offset; it never guesses and never panics on malformed input. Refused, among others:
//! compressed or unknown debug sections, split DWARF (skeleton units, `.dwo` sections),
//! functions with an LSDA (`.gcc_except_table` call-site offsets) that moved inside,
//! `DW_CFA_set_loc`, location advances in CIEs, 64-bit CFI, minimum instruction length or
//! code alignment that the new deltas do not fit, REL (implicit-addend) relocations,
//! relocations that cannot be mapped into moved code, and, when DIEs must move, location lists,
//! DIE-naming expressions or name-index sections in the affected unit or object.

use std::collections::BTreeMap;
use std::fmt;

use object::read::elf::ElfFile64;
use object::{Endianness, Object, ObjectSection, ObjectSymbol, SectionFlags};

use crate::offset_map::OffsetMap;

mod aranges;
mod bytes;
mod frame;
mod info;
mod line;
mod lists;

/// New contents of one section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RewrittenSection {
    /// Original section index of the rewritten data section.
    pub index: usize,
    /// Its complete new contents.
    pub data: Vec<u8>,
    /// Its complete new relocation list, sorted by offset, with final addends.
    pub relocs: Vec<NewReloc>,
    /// When this section's own layout changed: the map for relocations in other sections that
    /// point into it (e.g. `.debug_info` → `.debug_line`, `.debug_rnglists`).
    pub offset_map: Option<OffsetMap>,
}

/// One relocation of a rewritten section (RELA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewReloc {
    /// Offset in the new section data.
    pub offset: u64,
    /// Original `.symtab` index.
    pub symbol: u32,
    /// `R_X86_64_*` type.
    pub r_type: u32,
    /// Final addend.
    pub addend: i64,
}

/// Input the rewriter does not understand or cannot rewrite safely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DwarfError {
    /// Section name (or `<file>` for the object as a whole).
    pub section: String,
    /// Offset in that section's original data.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

impl DwarfError {
    fn new(section: &str, offset: u64, message: impl Into<String>) -> Self {
        DwarfError {
            section: section.to_string(),
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for DwarfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}: {}", self.section, self.offset, self.message)
    }
}

impl std::error::Error for DwarfError {}

type Result<T> = std::result::Result<T, DwarfError>;

/// Debug sections known to hold no code offsets other than relocations.
const PASSIVE_DEBUG: &[&str] = &[
    ".debug_abbrev",
    ".debug_str",
    ".debug_line_str",
    ".debug_str_offsets",
    ".debug_addr",
    ".debug_macro",
    ".debug_macinfo",
    ".debug_pubnames",
    ".debug_pubtypes",
    ".debug_gnu_pubnames",
    ".debug_gnu_pubtypes",
    ".debug_types",
    ".debug_names",
];

/// Sections this module rewrites.
const ACTIVE: &[&str] = &[
    ".eh_frame",
    ".debug_frame",
    ".debug_line",
    ".debug_info",
    ".debug_rnglists",
    ".debug_loclists",
    ".debug_ranges",
    ".debug_loc",
    ".debug_aranges",
];

/// Rewrites the debug and unwind sections of `file` for code sections moved by `maps`
/// (original section index → offset map).
///
/// Returns every section whose data must change, with its complete new relocation list.
pub fn rewrite(
    file: &ElfFile64<'_, Endianness>,
    maps: &BTreeMap<usize, OffsetMap>,
) -> std::result::Result<Vec<RewrittenSection>, DwarfError> {
    run(file, maps, |ctx, inp, sc| {
        let data = match sc.data {
            NewData::Bytes(d) => d,
            NewData::Patches(p) => {
                let mut d = inp.data.to_vec();
                for (at, bytes) in p {
                    // (In bounds: checked when the patches were made.)
                    let a = usize::try_from(at).unwrap_or(usize::MAX);
                    if let Some(dst) = d.get_mut(a..a.saturating_add(bytes.len())) {
                        dst.copy_from_slice(&bytes);
                    }
                }
                d
            }
        };
        let relocs = match sc.relocs {
            NewRelocs::List(l) => l,
            NewRelocs::Changes(c) => {
                let mut l: Vec<NewReloc> = inp.relocs.iter().map(NewReloc::from).collect();
                for (i, _, addend) in c {
                    if let Some(r) = l.get_mut(i as usize) {
                        r.addend = addend;
                    }
                }
                l
            }
        };
        let _ = ctx;
        RewrittenSection {
            index: sc.index,
            data,
            relocs,
            offset_map: sc.offset_map,
        }
    })
}

/// What [`rewrite_prepared`] returns for one section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionChange {
    /// Original section index of the rewritten data section.
    pub index: usize,
    /// Its new contents.
    pub data: NewData,
    /// Its relocations.
    pub relocs: NewRelocs,
    /// As [`RewrittenSection::offset_map`].
    pub offset_map: Option<OffsetMap>,
}

/// New contents of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewData {
    /// All of them.
    Bytes(Vec<u8>),
    /// The original contents with these bytes replaced: `(offset, bytes)`, sorted, not
    /// overlapping (the layout did not change).
    Patches(Vec<(u64, Vec<u8>)>),
}

/// New relocations of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewRelocs {
    /// The complete list, sorted by offset, with final addends.
    List(Vec<NewReloc>),
    /// The original relocations (the section's only `SHT_RELA` section, already sorted by
    /// offset), of which these change their addend: `(index in that section, offset, final
    /// addend)`, in index order.
    Changes(Vec<(u32, u64, i64)>),
}

/// The part of the rewrite that needs only the object, not the code maps: its debug sections
/// read and `.debug_info` walked ([`prepare`]), so that it can be done while the code is
/// planned.
pub struct Prepared<'d> {
    state: std::result::Result<(Ctx<'d>, info::Collected), DwarfError>,
}

/// Reads the debug sections of `file` and walks `.debug_info` (see [`Prepared`]). Errors are
/// kept for [`rewrite_prepared`]: they count only if code moved.
pub fn prepare<'d>(file: &ElfFile64<'d, Endianness>) -> Prepared<'d> {
    let state = if !file.is_little_endian() || file.architecture() != object::Architecture::X86_64 {
        Err(DwarfError::new(
            "<file>",
            0,
            "only little-endian x86-64 objects are supported",
        ))
    } else {
        Ctx::new(file).map(|ctx| {
            let collected = info::collect(&ctx);
            (ctx, collected)
        })
    };
    Prepared { state }
}

/// [`rewrite`] of a [`prepare`]d object, without the copies: sections patched in place come
/// back as their patches, and their relocations as the changed addends when the relocation
/// section allows that.
pub fn rewrite_prepared(
    prepared: Prepared<'_>,
    maps: &BTreeMap<usize, OffsetMap>,
) -> std::result::Result<Vec<SectionChange>, DwarfError> {
    finish_run(prepared, maps, |_, _, sc| sc)
}

/// Runs the rewrite and hands each changed section to `finish` (in section order).
fn run<T: Send>(
    file: &ElfFile64<'_, Endianness>,
    maps: &BTreeMap<usize, OffsetMap>,
    finish: impl Fn(&Ctx<'_>, &Input<'_>, SectionChange) -> T + Sync,
) -> std::result::Result<Vec<T>, DwarfError> {
    if maps.values().all(OffsetMap::is_identity) {
        return Ok(Vec::new());
    }
    finish_run(prepare(file), maps, finish)
}

/// The rest of [`run`], once the object is [`prepare`]d.
fn finish_run<'d, T: Send>(
    prepared: Prepared<'d>,
    maps: &'d BTreeMap<usize, OffsetMap>,
    finish: impl Fn(&Ctx<'_>, &Input<'_>, SectionChange) -> T + Sync,
) -> std::result::Result<Vec<T>, DwarfError> {
    if maps.values().all(OffsetMap::is_identity) {
        return Ok(Vec::new());
    }
    use rayon::prelude::*;
    let (ctx, collected) = prepared.state?;
    let ctx = with_maps(ctx, maps);
    let facts = info::resolve(&ctx, collected)?;

    // Rebuild or patch each section (independent of each other: in parallel); addends are
    // still the original ones. Errors are reported as a walk of `.debug_info` followed by the
    // sections in index order would meet them.
    let rebuild = |inp: &Input<'_>| -> Result<Option<Change>> {
        match inp.name.as_str() {
            ".debug_info" => info::patch(&ctx, inp, &facts),
            ".debug_rnglists" | ".debug_loclists" => lists::rewrite_v5(&ctx, inp, &facts),
            ".debug_ranges" | ".debug_loc" => lists::rewrite_v4(&ctx, inp, &facts),
            ".debug_line" => line::rewrite(&ctx, inp),
            ".eh_frame" => frame::rewrite(&ctx, inp, true),
            ".debug_frame" => frame::rewrite(&ctx, inp, false),
            ".debug_aranges" => aranges::rewrite(&ctx, inp),
            _ => Ok(None),
        }
    };
    let inputs: Vec<&Input<'_>> = ctx.inputs.values().collect();
    let mut results: Vec<(usize, Result<Option<Change>>)> = inputs
        .par_iter()
        .map(|inp| (inp.index, rebuild(inp)))
        .collect();
    drop(facts);
    results.sort_by_key(|r| r.0);
    let mut done: Vec<(usize, Change)> = Vec::new();
    for (index, r) in results {
        if let Some(r) = r? {
            done.push((index, r));
        }
    }

    // Final addends: through the code maps and the maps of sections rebuilt here.
    let mut owned_maps: Vec<Option<OffsetMap>> = Vec::new();
    for (i, r) in &done {
        if let Change::Full(Rebuilt {
            offset_map: Some(m),
            ..
        }) = r
        {
            if owned_maps.len() <= *i {
                owned_maps.resize(*i + 1, None);
            }
            owned_maps[*i] = Some(m.clone());
        }
    }
    let debug_maps: Vec<Option<&OffsetMap>> = owned_maps.iter().map(Option::as_ref).collect();
    done.into_par_iter()
        .map(|(index, r)| {
            let inp = &ctx.inputs[&index];
            let sc = match r {
                Change::Full(r) => {
                    let mut relocs = r.relocs;
                    let mut hints = vec![0; ctx.chains.len()];
                    for rel in &mut relocs {
                        rel.addend = ctx.final_addend(inp, rel, &debug_maps, &mut hints)?;
                    }
                    relocs.sort_by_key(|r| r.offset);
                    SectionChange {
                        index,
                        data: NewData::Bytes(r.data),
                        relocs: NewRelocs::List(relocs),
                        offset_map: r.offset_map,
                    }
                }
                Change::Patched(patches) => {
                    // In chunks, in parallel; the first error in relocation order wins.
                    const CHUNK: usize = 1 << 16;
                    let n = inp.relocs.len();
                    let starts: Vec<usize> = (0..n).step_by(CHUNK).collect();
                    let parts: Vec<Result<Vec<(u32, u64, i64)>>> = starts
                        .par_iter()
                        .map(|&lo| {
                            let mut changes = Vec::new();
                            let mut hints = vec![0; ctx.chains.len()];
                            for i in lo..(lo + CHUNK).min(n) {
                                let Some(rel) = inp.relocs.get(i) else { break };
                                let addend =
                                    ctx.final_addend(inp, &rel.into(), &debug_maps, &mut hints)?;
                                if addend != rel.addend {
                                    let i = u32::try_from(i)
                                        .map_err(|_| inp.err(rel.offset, "too many relocations"))?;
                                    changes.push((i, rel.offset, addend));
                                }
                            }
                            Ok(changes)
                        })
                        .collect();
                    let mut changes = Vec::new();
                    for part in parts {
                        changes.extend(part?);
                    }
                    let relocs = if inp.file_order {
                        NewRelocs::Changes(changes)
                    } else {
                        let mut l: Vec<NewReloc> = inp.relocs.iter().map(NewReloc::from).collect();
                        for (i, _, addend) in changes {
                            if let Some(r) = l.get_mut(i as usize) {
                                r.addend = addend;
                            }
                        }
                        NewRelocs::List(l)
                    };
                    SectionChange {
                        index,
                        data: NewData::Patches(patches),
                        relocs,
                        offset_map: None,
                    }
                }
            };
            Ok(finish(&ctx, inp, sc))
        })
        .collect()
}

impl From<Rel> for NewReloc {
    fn from(r: Rel) -> Self {
        NewReloc {
            offset: r.offset,
            symbol: r.symbol,
            r_type: r.r_type,
            addend: r.addend,
        }
    }
}

/// What one of the submodules made of a section.
enum Change {
    /// Rebuilt (addends not yet final).
    Full(Rebuilt),
    /// Patched in place: these bytes (offset, new bytes; sorted, not overlapping) change, the
    /// relocations stay (their addends are not yet final).
    Patched(Vec<(u64, Vec<u8>)>),
}

/// A section rebuilt by one of the submodules (addends not yet final).
struct Rebuilt {
    data: Vec<u8>,
    relocs: Vec<NewReloc>,
    offset_map: Option<OffsetMap>,
}

/// A symbol as relocations see it: its section (when defined in one) and value.
#[derive(Clone, Copy, Debug)]
struct Sym {
    section: Option<usize>,
    value: u64,
}

/// One input relocation (RELA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rel {
    offset: u64,
    symbol: u32,
    r_type: u32,
    addend: i64,
}

/// A code location: offset `off` in section `sec` (known through a relocation), or the
/// absolute value `off` when `sec` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Addr {
    sec: Option<usize>,
    off: u64,
}

impl Addr {
    const ZERO: Addr = Addr { sec: None, off: 0 };
}

/// One section's original data and relocations.
struct Input<'d> {
    index: usize,
    name: String,
    data: &'d [u8],
    /// Sorted by offset, no two at the same offset.
    relocs: Rels<'d>,
    /// Whether `relocs` is the one `SHT_RELA` section of this section in file order (so that
    /// an index in `relocs` is an index in that section).
    file_order: bool,
}

/// The relocations of one section, sorted by offset: read in place when the section's one
/// `SHT_RELA` section is sorted already (as assemblers and `ld -r` write them), else a sorted
/// copy.
enum Rels<'d> {
    InPlace(&'d [u8]),
    Sorted(Vec<Rel>),
}

impl Rels<'_> {
    fn len(&self) -> usize {
        match self {
            Rels::InPlace(d) => d.len() / 24,
            Rels::Sorted(v) => v.len(),
        }
    }

    /// The `i`-th relocation.
    fn get(&self, i: usize) -> Option<Rel> {
        match self {
            Rels::InPlace(d) => d.get(i * 24..i * 24 + 24).map(rela),
            Rels::Sorted(v) => v.get(i).copied(),
        }
    }

    /// Offset of the `i`-th relocation (`i < len`).
    fn offset(&self, i: usize) -> u64 {
        match self {
            Rels::InPlace(d) => d.get(i * 24..i * 24 + 8).map_or(u64::MAX, |b| {
                u64::from_le_bytes(b.try_into().unwrap_or([0xff; 8]))
            }),
            Rels::Sorted(v) => v.get(i).map_or(u64::MAX, |r| r.offset),
        }
    }

    fn iter(&self) -> impl Iterator<Item = Rel> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// First index in `[lo, len)` whose offset is `>= off` (offsets are sorted).
    fn partition_point(&self, lo: usize, off: u64) -> usize {
        let (mut lo, mut hi) = (lo, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.offset(mid) < off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// An identity of the list (for [`Input::hint`]).
    fn key(&self) -> usize {
        match self {
            Rels::InPlace(d) => d.as_ptr() as usize,
            Rels::Sorted(v) => v.as_ptr() as usize,
        }
    }
}

/// A 24-byte `Elf64_Rela` (or a 16-byte `Elf64_Rel`, whose missing addend reads as 0).
fn rela(e: &[u8]) -> Rel {
    let word = |i: usize| {
        let mut b = [0u8; 8];
        if let Some(s) = e.get(i * 8..i * 8 + 8) {
            b.copy_from_slice(s);
        }
        u64::from_le_bytes(b)
    };
    let info = word(1);
    Rel {
        offset: word(0),
        symbol: (info >> 32) as u32,
        r_type: (info & 0xffff_ffff) as u32,
        addend: word(2) as i64,
    }
}

impl Input<'_> {
    fn err(&self, at: u64, message: impl Into<String>) -> DwarfError {
        DwarfError::new(&self.name, at, message)
    }

    fn reloc_at(&self, off: u64) -> Option<Rel> {
        let i = self.first_at_or_after(off, self.hint());
        self.set_hint(i);
        self.relocs.get(i).filter(|r| r.offset == off)
    }

    /// Where this thread's last lookup in this section ended (lookups mostly go forward):
    /// a hint for [`Self::first_at_or_after`].
    fn hint(&self) -> usize {
        let key = self.relocs.key();
        LOOKUP_HINT.with(|h| match h.get() {
            (k, i) if k == key => i,
            _ => usize::MAX,
        })
    }

    fn set_hint(&self, i: usize) {
        let key = self.relocs.key();
        LOOKUP_HINT.with(|h| h.set((key, i)));
    }

    /// [`Self::reloc_at`] for offsets visited mostly in increasing order: `hint` is the index
    /// of the first relocation after the previous lookup, and is updated.
    fn reloc_at_from(&self, off: u64, hint: &std::cell::Cell<usize>) -> Option<Rel> {
        let i = self.first_at_or_after(off, hint.get());
        hint.set(i);
        self.relocs.get(i).filter(|r| r.offset == off)
    }

    /// Index of the first relocation at or after `off`, starting the search at `hint` when
    /// it is close.
    fn first_at_or_after(&self, off: u64, hint: usize) -> usize {
        let r = &self.relocs;
        let n = r.len();
        let ok = |i: usize| i <= n && (i == 0 || r.offset(i - 1) < off);
        if ok(hint) {
            // Forward from the hint (a few steps), else search the rest.
            let mut i = hint;
            for _ in 0..8 {
                if i == n || r.offset(i) >= off {
                    return i;
                }
                i += 1;
            }
            r.partition_point(i, off)
        } else {
            r.partition_point(0, off)
        }
    }

    /// Index range of the relocations with offsets in `[a, b)`.
    fn reloc_range(&self, a: u64, b: u64) -> std::ops::Range<usize> {
        let lo = self.first_at_or_after(a, self.hint());
        let hi = self.first_at_or_after(b, lo);
        self.set_hint(hi);
        lo..hi.max(lo)
    }

    /// Fails when a relocation lies in `[a, b)`: the field there is rewritten as a plain value.
    fn no_reloc_in(&self, a: u64, b: u64, what: &str) -> Result<()> {
        let r = self.reloc_range(a, b);
        if r.is_empty() {
            Ok(())
        } else {
            Err(self.err(
                self.relocs.offset(r.start),
                format!("unexpected relocation in {what}"),
            ))
        }
    }
}

thread_local! {
    /// (Relocation list, index) of this thread's last relocation lookup ([`Input::hint`]).
    static LOOKUP_HINT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

/// Everything the submodules share: maps, symbols and the sections of interest.
struct Ctx<'d> {
    /// The code maps by section index.
    map_by_index: Vec<Option<&'d OffsetMap>>,
    syms: Vec<Option<Sym>>,
    /// Section index → name, for every section.
    names: BTreeMap<usize, String>,
    /// Active and passive debug sections by index.
    inputs: BTreeMap<usize, Input<'d>>,
    /// The relocation sections of each section ([`relocation_chains`]).
    chains: Vec<Vec<RawRelocs<'d>>>,
    /// Sections that relocations in *other* sections point into (worked out when first asked:
    /// it takes a look at every relocation of the file).
    targeted: std::sync::OnceLock<Vec<bool>>,
}

/// The entries of one relocation section, read in place.
struct RawRelocs<'d> {
    data: &'d [u8],
    /// `SHT_REL` (16-byte entries, implicit addends) rather than `SHT_RELA` (24 bytes).
    rel: bool,
}

impl<'d> RawRelocs<'d> {
    fn entry_size(&self) -> usize {
        if self.rel {
            16
        } else {
            24
        }
    }

    fn iter(&self) -> impl Iterator<Item = Rel> + 'd {
        // A 16-byte REL entry has no addend word, which `rela` reads as 0.
        self.data.chunks_exact(self.entry_size()).map(rela)
    }
}

/// The relocation sections of each section (by index), as `object` chains them: `SHT_REL` /
/// `SHT_RELA` sections that use the symbol table and name a section in `sh_info`, in index
/// order. Sections whose entries cannot be read are skipped (as `object` does).
fn relocation_chains<'d>(file: &ElfFile64<'d, Endianness>) -> Result<Vec<Vec<RawRelocs<'d>>>> {
    use object::read::elf::SectionHeader as _;
    let endian = Endianness::Little;
    let table = file.elf_section_table();
    let symtab = file.elf_symbol_table().section();
    let mut chains: Vec<Vec<RawRelocs<'d>>> = (0..table.len()).map(|_| Vec::new()).collect();
    for (i, sh) in table.iter().enumerate() {
        let sh_type = sh.sh_type(endian);
        if sh_type == object::elf::SHT_CREL && sh.link(endian) == symtab {
            return Err(DwarfError::new(
                &format!("section {i}"),
                0,
                "CREL relocations are not supported",
            ));
        }
        let rel = match sh_type {
            object::elf::SHT_REL => true,
            object::elf::SHT_RELA => false,
            _ => continue,
        };
        let target = sh.info_link(endian).0;
        if sh.link(endian) != symtab || target == 0 || target >= table.len() {
            continue;
        }
        let Ok(data) = sh.data(endian, file.data()) else {
            continue;
        };
        if data.len() % if rel { 16 } else { 24 } != 0 {
            continue;
        }
        chains[target].push(RawRelocs { data, rel });
    }
    Ok(chains)
}

/// `ctx` with the code maps (by section index).
fn with_maps<'m>(mut ctx: Ctx<'m>, maps: &'m BTreeMap<usize, OffsetMap>) -> Ctx<'m> {
    let n = ctx.chains.len();
    ctx.map_by_index = vec![None; n];
    for (&i, m) in maps {
        if let Some(slot) = ctx.map_by_index.get_mut(i) {
            *slot = Some(m);
        }
    }
    ctx
}

/// Byte size of the field a relocation of type `r_type` patches (x86-64).
fn reloc_size(r_type: u32) -> Option<u64> {
    match r_type {
        1 | 16 | 17 | 18 | 24 | 25 | 27..=31 | 33 => Some(8),
        2..=4 | 9..=11 | 19..=23 | 26 | 32 | 41 | 42 => Some(4),
        12 | 13 => Some(2),
        14 | 15 => Some(1),
        _ => None,
    }
}

/// Relocation types whose target is an address or section offset (`S + A`, possibly
/// PC-relative): the only kinds whose addend may be mapped when the target moves.
fn reloc_is_mappable(r_type: u32) -> bool {
    matches!(r_type, 1 | 2 | 10 | 11 | 24)
}

impl<'d> Ctx<'d> {
    fn new(file: &ElfFile64<'d, Endianness>) -> Result<Self> {
        let file_err = |m: String| DwarfError::new("<file>", 0, m);
        let mut syms = Vec::new();
        for s in file.symbols() {
            let i = s.index().0;
            if syms.len() <= i {
                syms.resize(i + 1, None);
            }
            syms[i] = Some(Sym {
                section: s.section_index().map(|x| x.0),
                value: s.address(),
            });
        }
        let chains = relocation_chains(file)?;
        let mut names = BTreeMap::new();
        let mut inputs = BTreeMap::new();
        for sec in file.sections() {
            let index = sec.index().0;
            let name = sec
                .name()
                .map_err(|e| file_err(format!("section {index}: bad name: {e}")))?
                .to_string();
            names.insert(index, name.clone());
            let active = ACTIVE.contains(&name.as_str());
            let passive = PASSIVE_DEBUG.contains(&name.as_str());
            if !active && !passive {
                if name.starts_with(".debug_") || name.starts_with(".zdebug_") {
                    return Err(DwarfError::new(
                        &name,
                        0,
                        "unknown debug section: cannot tell whether it holds code offsets",
                    ));
                }
                continue;
            }
            if let SectionFlags::Elf { sh_flags, .. } = sec.flags() {
                if sh_flags.0 & object::elf::SHF_COMPRESSED.0 != 0 {
                    return Err(DwarfError::new(
                        &name,
                        0,
                        "compressed debug sections are not supported",
                    ));
                }
            }
            let data = sec
                .data()
                .map_err(|e| DwarfError::new(&name, 0, format!("cannot read data: {e}")))?;
            let chain = chains.get(index).map_or(&[][..], Vec::as_slice);
            let mut relocs = Vec::new();
            let mut in_place = chain.len() == 1 && !chain[0].rel;
            let mut last = None;
            for raw in chain {
                if raw.rel {
                    if let Some(r) = raw.iter().next() {
                        return Err(DwarfError::new(
                            &name,
                            r.offset,
                            "REL relocations (implicit addends) are not supported",
                        ));
                    }
                }
                for (k, r) in raw.iter().enumerate() {
                    if r.symbol == 0 {
                        return Err(DwarfError::new(
                            &name,
                            r.offset,
                            "relocation without a symbol",
                        ));
                    }
                    if in_place {
                        // Read in place as long as the offsets increase.
                        if last.is_some_and(|l| l >= r.offset) {
                            in_place = false;
                            relocs.extend(raw.iter().take(k));
                        } else {
                            last = Some(r.offset);
                            continue;
                        }
                    }
                    relocs.push(r);
                }
            }
            let file_order = in_place;
            let relocs = if in_place {
                Rels::InPlace(chain.first().map_or(&[][..], |c| c.data))
            } else {
                relocs.sort_by_key(|r| r.offset);
                if let Some(w) = relocs.windows(2).find(|w| w[0].offset == w[1].offset) {
                    return Err(DwarfError::new(
                        &name,
                        w[0].offset,
                        "two relocations at one offset",
                    ));
                }
                Rels::Sorted(relocs)
            };
            inputs.insert(
                index,
                Input {
                    index,
                    name,
                    data,
                    relocs,
                    file_order,
                },
            );
        }
        Ok(Ctx {
            chains,
            targeted: std::sync::OnceLock::new(),
            map_by_index: Vec::new(),
            syms,
            names,
            inputs,
        })
    }

    fn sym(&self, inp: &Input<'_>, rel: &Rel) -> Result<Sym> {
        usize::try_from(rel.symbol)
            .ok()
            .and_then(|i| self.syms.get(i).copied().flatten())
            .ok_or_else(|| {
                inp.err(
                    rel.offset,
                    format!("relocation names missing symbol {}", rel.symbol),
                )
            })
    }

    /// The location a relocation points at.
    fn reloc_target(&self, inp: &Input<'_>, rel: &Rel) -> Result<Addr> {
        let sym = self.sym(inp, rel)?;
        let off = i64::try_from(sym.value)
            .ok()
            .and_then(|v| v.checked_add(rel.addend))
            .and_then(|t| u64::try_from(t).ok())
            .ok_or_else(|| inp.err(rel.offset, "relocation target is before its section"))?;
        Ok(Addr {
            sec: sym.section,
            off,
        })
    }

    /// The location held by the field at `off` whose raw contents are `raw`: the relocation's
    /// target when one sits there, else the absolute value `raw`.
    fn field(&self, inp: &Input<'_>, off: u64, raw: u64) -> Result<(Addr, bool)> {
        match inp.reloc_at(off) {
            Some(rel) => {
                if !reloc_is_mappable(rel.r_type) {
                    return Err(inp.err(
                        off,
                        format!("relocation type {} on an address field", rel.r_type),
                    ));
                }
                Ok((self.reloc_target(inp, &rel)?, true))
            }
            None => Ok((
                Addr {
                    sec: None,
                    off: raw,
                },
                false,
            )),
        }
    }

    fn map_of(&self, a: Addr) -> Option<&OffsetMap> {
        a.sec
            .and_then(|s| self.map_by_index.get(s).copied().flatten())
    }

    /// New offset of location `a` (in its own section).
    fn map(&self, a: Addr) -> u64 {
        self.map_of(a).map_or(a.off, |m| m.map(a.off))
    }

    /// [`Self::map`] for locations looked up mostly in increasing order
    /// ([`OffsetMap::map_near`]).
    fn map_near(&self, a: Addr, hint: &mut usize) -> u64 {
        self.map_of(a).map_or(a.off, |m| m.map_near(a.off, hint))
    }

    /// `a + d` in `a`'s section.
    fn add(&self, inp: &Input<'_>, at: u64, a: Addr, d: u64) -> Result<Addr> {
        let off = a
            .off
            .checked_add(d)
            .ok_or_else(|| inp.err(at, "address arithmetic overflows"))?;
        Ok(Addr { sec: a.sec, off })
    }

    /// New value of a base-relative delta: `map(base + d) - map(base)`.
    fn map_delta(&self, inp: &Input<'_>, at: u64, base: Addr, d: u64) -> Result<u64> {
        let end = self.add(inp, at, base, d)?;
        let mut hint = 0;
        let b = self.map_near(base, &mut hint);
        self.map_near(end, &mut hint)
            .checked_sub(b)
            .ok_or_else(|| inp.err(at, "offset map is not monotone"))
    }

    /// The final addend of `rel` in a returned section: mapped when its symbol lies in a moved
    /// code section or in another debug section rebuilt here.
    fn final_addend(
        &self,
        inp: &Input<'_>,
        rel: &NewReloc,
        debug_maps: &[Option<&OffsetMap>],
        hints: &mut [usize],
    ) -> Result<i64> {
        let orig = Rel {
            offset: rel.offset,
            symbol: rel.symbol,
            r_type: rel.r_type,
            addend: rel.addend,
        };
        let sym = self.sym(inp, &orig)?;
        let Some(sec) = sym.section else {
            return Ok(rel.addend);
        };
        if sec == inp.index {
            // Relocations into the section itself are final as its rewriter wrote them.
            return Ok(rel.addend);
        }
        let code_map = self.map_by_index.get(sec).copied().flatten();
        let Some(map) = code_map.or_else(|| debug_maps.get(sec).copied().flatten()) else {
            return Ok(rel.addend);
        };
        if map.is_identity() {
            return Ok(rel.addend);
        }
        let target = || self.names.get(&sec).map_or("?", String::as_str);
        if !reloc_is_mappable(rel.r_type) {
            return Err(inp.err(
                rel.offset,
                format!(
                    "relocation type {} into moved section {} cannot be mapped",
                    rel.r_type,
                    target()
                ),
            ));
        }
        let mut no_hint = usize::MAX;
        let hint = hints.get_mut(sec).unwrap_or(&mut no_hint);
        map.map_addend_near(sym.value, rel.addend, 0, hint)
            .ok_or_else(|| {
                inp.err(
                    rel.offset,
                    format!("mapped addend into {} overflows", target()),
                )
            })
    }

    /// Whether relocations in other sections point into section `index`.
    fn is_targeted(&self, index: usize) -> bool {
        let flags = self.targeted.get_or_init(|| {
            let mut flags = vec![false; self.chains.len()];
            for (sec, chain) in self.chains.iter().enumerate() {
                for r in chain.iter().flat_map(RawRelocs::iter) {
                    if let Some(Some(Sym {
                        section: Some(t), ..
                    })) = self.syms.get(r.symbol as usize)
                    {
                        if r.symbol != 0 && *t != sec {
                            if let Some(f) = flags.get_mut(*t) {
                                *f = true;
                            }
                        }
                    }
                }
            }
            flags
        });
        // (A symbol's section past the section table: nothing of this file points there.)
        flags.get(index).copied().unwrap_or(false)
    }

    /// The single section named `name`, when there is exactly one.
    fn unique(&self, name: &str) -> Option<usize> {
        let mut it = self
            .inputs
            .values()
            .filter(|i| i.name == name)
            .map(|i| i.index);
        let first = it.next()?;
        it.next().is_none().then_some(first)
    }
}

/// Output of a rebuilt section: bytes, carried relocations, and the original → new positions
/// of record boundaries (for the section's own offset map).
///
/// Copies of adjacent original ranges are gathered and carried out together (one pass over
/// their relocations, one copy of their bytes) when something else is appended, or when the
/// bytes or relocations are looked at (`flush`).
struct Out {
    data: Vec<u8>,
    relocs: Vec<NewReloc>,
    /// `(original offset, new offset)` of each record start, in increasing order.
    sync: Vec<(u64, u64)>,
    /// Index of the first input relocation this output covers (see `consumed`).
    first: usize,
    /// Which input relocations from `first` on were carried or rewritten.
    consumed: Vec<bool>,
    /// Index of the first input relocation after the last copy (a search hint).
    hint: usize,
    /// Original bytes `[a, b)` still to be copied, and the starts of the copies gathered in
    /// them after the first (a relocation may not cross one).
    pending: Option<(usize, usize)>,
    cuts: Vec<usize>,
}

impl Out {
    fn new(inp: &Input<'_>) -> Self {
        Out {
            data: Vec::with_capacity(inp.data.len() + inp.data.len() / 8),
            relocs: Vec::new(),
            sync: Vec::new(),
            first: 0,
            consumed: vec![false; inp.relocs.len()],
            hint: 0,
            pending: None,
            cuts: Vec::new(),
        }
    }

    /// An output for original bytes `[a, b)` only (appended to the section's output later).
    fn for_range(inp: &Input<'_>, a: usize, b: usize) -> Self {
        let r = inp.reloc_range(a as u64, b as u64);
        Out {
            data: Vec::with_capacity(b.saturating_sub(a) + 16),
            relocs: Vec::new(),
            sync: Vec::new(),
            first: r.start,
            consumed: vec![false; r.len()],
            hint: r.start,
            pending: None,
            cuts: Vec::new(),
        }
    }

    /// Length of the output so far.
    fn len(&self) -> usize {
        self.data.len() + self.pending.map_or(0, |(a, b)| b - a)
    }

    fn pos(&self) -> u64 {
        self.len() as u64
    }

    /// Records that original offset `orig` (a record boundary) is at the current position.
    fn sync(&mut self, orig: u64) {
        let new = self.pos();
        self.sync.push((orig, new));
    }

    /// Copies original bytes `[a, b)` with the relocations inside them.
    fn copy(&mut self, inp: &Input<'_>, a: usize, b: usize) -> Result<()> {
        if a > b || b > inp.data.len() {
            return Err(inp.err(a as u64, "copy range out of bounds"));
        }
        match self.pending {
            Some((pa, pb)) if pb == a => {
                self.pending = Some((pa, b));
                self.cuts.push(a);
                Ok(())
            }
            _ => {
                self.flush(inp)?;
                self.pending = Some((a, b));
                Ok(())
            }
        }
    }

    /// Carries out the gathered copies.
    fn flush(&mut self, inp: &Input<'_>) -> Result<()> {
        let Some((a, b)) = self.pending.take() else {
            return Ok(());
        };
        let cuts = std::mem::take(&mut self.cuts);
        let bytes = inp
            .data
            .get(a..b)
            .ok_or_else(|| inp.err(a as u64, "copy range out of bounds"))?;
        let delta = self.data.len() as i128 - a as i128;
        let lo = inp.first_at_or_after(a as u64, self.hint);
        let mut i = lo;
        let mut cut = 0;
        while let Some(r) = inp.relocs.get(i).filter(|r| r.offset < b as u64) {
            i += 1;
            let size = reloc_size(r.r_type).ok_or_else(|| {
                inp.err(
                    r.offset,
                    format!("unsupported relocation type {}", r.r_type),
                )
            })?;
            // The end of the copy this relocation is in.
            while cuts.get(cut).is_some_and(|&c| c as u64 <= r.offset) {
                cut += 1;
            }
            let end = cuts.get(cut).map_or(b, |&c| c) as u64;
            if r.offset + size > end {
                return Err(inp.err(r.offset, "relocation straddles a field boundary"));
            }
            let seen = i
                .checked_sub(1 + self.first)
                .and_then(|k| self.consumed.get_mut(k))
                .ok_or_else(|| inp.err(r.offset, "internal: relocation outside its unit"))?;
            if std::mem::replace(seen, true) {
                return Err(inp.err(r.offset, "relocation copied twice"));
            }
            let offset = u64::try_from(r.offset as i128 + delta)
                .map_err(|_| inp.err(r.offset, "relocation offset out of range"))?;
            self.relocs.push(NewReloc {
                offset,
                symbol: r.symbol,
                r_type: r.r_type,
                addend: r.addend,
            });
        }
        self.hint = i;
        self.data.extend_from_slice(bytes);
        self.cuts = cuts;
        self.cuts.clear();
        Ok(())
    }

    /// Appends bytes that replace original bytes `[a, b)`, which must hold no relocation.
    fn replace(&mut self, inp: &Input<'_>, a: usize, b: usize, bytes: &[u8]) -> Result<()> {
        self.flush(inp)?;
        inp.no_reloc_in(a as u64, b as u64, "a rewritten field")?;
        self.data.extend_from_slice(bytes);
        Ok(())
    }

    /// Overwrites `bytes.len()` bytes at new offset `at` (a length field written late).
    fn patch(&mut self, inp: &Input<'_>, at: usize, bytes: &[u8]) -> Result<()> {
        self.flush(inp)?;
        if let Some(dst) = self.data.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }

    /// Appends another output built from the same input (relocations and sync points shift).
    fn append(&mut self, inp: &Input<'_>, mut other: Out) -> Result<()> {
        self.flush(inp)?;
        other.flush(inp)?;
        let base = self.pos();
        self.data.extend_from_slice(&other.data);
        self.relocs.extend(other.relocs.into_iter().map(|mut r| {
            r.offset += base;
            r
        }));
        self.sync
            .extend(other.sync.into_iter().map(|(o, n)| (o, n + base)));
        let at = other.first.saturating_sub(self.first);
        for (c, o) in self.consumed.iter_mut().skip(at).zip(other.consumed) {
            *c |= o;
        }
        Ok(())
    }

    /// Checks that every input relocation was accounted for and derives the section's own
    /// offset map (`None` when its layout did not change). A layout that shrinks somewhere has
    /// no [`OffsetMap`]; that is an error unless `may_shrink` and no other section points into
    /// this one.
    fn finish(
        mut self,
        inp: &Input<'_>,
        may_shrink: bool,
        targeted: impl Fn() -> bool,
    ) -> Result<Rebuilt> {
        self.flush(inp)?;
        if let Some(i) = self.consumed.iter().position(|c| !c) {
            return Err(inp.err(
                inp.relocs.offset(self.first + i),
                "relocation in a field the rewriter does not understand",
            ));
        }
        let end = self.pos();
        self.sync.push((inp.data.len() as u64, end));
        let mut map = Some(OffsetMap::new());
        let mut prev = 0i128;
        let mut last_orig = 0u64;
        for &(o, n) in &self.sync {
            if o < last_orig {
                return Err(inp.err(o, "internal: record boundaries out of order"));
            }
            last_orig = o;
            let d = i128::from(n) - i128::from(o);
            if d < prev || d < 0 {
                if !may_shrink {
                    return Err(inp.err(o, "internal: rebuilt section would shrink"));
                }
                if targeted() {
                    return Err(inp.err(
                        o,
                        "section got shorter here and other sections point into it",
                    ));
                }
                map = None;
            } else if d > prev {
                if let Some(m) = map.as_mut() {
                    m.insert(o, u64::try_from(d - prev).unwrap_or(0));
                }
            }
            prev = d;
        }
        Ok(Rebuilt {
            data: self.data,
            relocs: self.relocs,
            offset_map: map.filter(|m| !m.is_identity()),
        })
    }
}

/// A section patched in place (same layout, original relocations) into `data`: the runs of
/// bytes that differ, `None` when none do.
fn patched(inp: &Input<'_>, data: &[u8]) -> Option<Change> {
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        if inp.data.get(i) == Some(&data[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < data.len() && inp.data.get(i) != Some(&data[i]) {
            i += 1;
        }
        runs.push((start as u64, data[start..i].to_vec()));
    }
    (!runs.is_empty()).then_some(Change::Patched(runs))
}

/// A section patched in place by `patches` (offset, new bytes), applied in order: the patches
/// that change something, sorted and without overlaps; `None` when none changes anything.
fn patched_at(inp: &Input<'_>, patches: &[(u64, Vec<u8>)]) -> Result<Option<Change>> {
    let mut sorted: Vec<&(u64, Vec<u8>)> = patches.iter().collect();
    sorted.sort_by_key(|p| p.0);
    let mut end = 0u64;
    let mut runs = Vec::with_capacity(sorted.len());
    for &(at, ref bytes) in sorted {
        let old = usize::try_from(at)
            .ok()
            .and_then(|a| inp.data.get(a..a.checked_add(bytes.len())?))
            .ok_or_else(|| inp.err(at, "patch out of bounds"))?;
        if at < end {
            // Overlapping patches: apply them in order to a copy.
            let mut data = inp.data.to_vec();
            for (at, bytes) in patches {
                let a = usize::try_from(*at).map_err(|_| inp.err(*at, "offset out of range"))?;
                if let Some(dst) = data.get_mut(a..a + bytes.len()) {
                    dst.copy_from_slice(bytes);
                }
            }
            return Ok(patched(inp, &data));
        }
        end = at + bytes.len() as u64;
        if old != bytes.as_slice() {
            runs.push((at, bytes.clone()));
        }
    }
    Ok((!runs.is_empty()).then_some(Change::Patched(runs)))
}

/// Result of a rebuild: `None` when nothing changed.
fn unchanged_as_none(inp: &Input<'_>, r: Rebuilt) -> Option<Change> {
    (r.data != inp.data).then_some(Change::Full(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::read::elf::SectionHeader as _;

    /// Gathered copies carry relocations as separate copies would: at their new offsets, and
    /// a relocation across the boundary of two copied ranges is still refused.
    #[test]
    fn gathered_copies_keep_relocations_and_boundaries() {
        let data: Vec<u8> = (0u8..16).collect();
        let inp = Input {
            index: 3,
            name: ".debug_x".into(),
            data: &data,
            relocs: Rels::Sorted(vec![Rel {
                offset: 6,
                symbol: 1,
                r_type: 10, // R_X86_64_32: 4 bytes
                addend: 0,
            }]),
            file_order: false,
        };
        // [0, 4) [4, 12) [12, 16) after two inserted bytes.
        let mut out = Out::new(&inp);
        out.replace(&inp, 0, 0, &[0xaa, 0xbb]).unwrap();
        out.copy(&inp, 0, 4).unwrap();
        out.copy(&inp, 4, 12).unwrap();
        assert_eq!(out.len(), 14);
        out.copy(&inp, 12, 16).unwrap();
        let r = out.finish(&inp, false, || false).unwrap();
        assert_eq!(&r.data[..2], &[0xaa, 0xbb]);
        assert_eq!(&r.data[2..], &data[..]);
        assert_eq!(r.relocs.len(), 1);
        assert_eq!(r.relocs[0].offset, 8);

        // [0, 8) [8, 16): the relocation at 6..10 crosses the boundary at 8.
        let mut out = Out::new(&inp);
        out.copy(&inp, 0, 8).unwrap();
        out.copy(&inp, 8, 16).unwrap();
        let e = out.finish(&inp, false, || false).err().unwrap();
        assert!(e.message.contains("straddles"), "{e}");
        assert_eq!(e.offset, 6);

        // Copied twice.
        let mut out = Out::new(&inp);
        out.copy(&inp, 4, 12).unwrap();
        out.replace(&inp, 12, 12, &[]).unwrap();
        out.copy(&inp, 4, 12).unwrap();
        assert!(out.flush(&inp).is_err());
    }

    /// Relocations read in place (sorted, as gcc writes them) and relocations that must be
    /// sorted first (the same ones, reversed) give the same rewrite.
    #[test]
    fn relocation_order_does_not_matter() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("t.c");
        std::fs::write(
            &c,
            "int g; static int h(int x) { return x * g; }\n\
             int f(int a) { int s = 0; for (int i = 0; i < a; i++) s += h(i); return s; }\n\
             int k(int a) { return a ? f(a - 1) + h(a) : 0; }\n",
        )
        .unwrap();
        let o = dir.path().join("t.o");
        let out = std::process::Command::new("gcc")
            .args(["-O2", "-g", "-c"])
            .arg(&c)
            .arg("-o")
            .arg(&o)
            .output()
            .expect("gcc is required");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sorted = std::fs::read(&o).unwrap();

        // The same object with the entries of every .rela.debug_* section reversed.
        let mut reversed = sorted.clone();
        let file = ElfFile64::<Endianness>::parse(&sorted[..]).unwrap();
        let table = file.elf_section_table();
        let mut code = Vec::new();
        for (i, sh) in table.iter().enumerate() {
            let name = table.section_name(Endianness::Little, sh).unwrap();
            let (off, size) = (
                sh.sh_offset(Endianness::Little) as usize,
                sh.sh_size(Endianness::Little) as usize,
            );
            if name.starts_with(b".rela.debug_") {
                let entries: Vec<Vec<u8>> = sorted[off..off + size]
                    .chunks(24)
                    .map(<[u8]>::to_vec)
                    .collect();
                for (k, e) in entries.iter().rev().enumerate() {
                    reversed[off + k * 24..off + k * 24 + 24].copy_from_slice(e);
                }
            }
            if sh.sh_flags(Endianness::Little).0 & object::elf::SHF_EXECINSTR.0 != 0 && size > 0 {
                code.push((i, size as u64));
            }
        }
        assert_ne!(sorted, reversed);

        // Bytes inserted all over the code.
        let mut maps = BTreeMap::new();
        for (i, size) in code {
            let mut m = OffsetMap::new();
            for at in (1..size).step_by(7) {
                m.insert(at, 3);
            }
            maps.insert(i, m);
        }
        let run = |data: &[u8]| {
            let file = ElfFile64::<Endianness>::parse(data).unwrap();
            rewrite(&file, &maps).unwrap()
        };
        let (a, b) = (run(&sorted), run(&reversed));
        assert!(a.len() >= 3, "{} sections rewritten", a.len());
        assert_eq!(a, b);
    }
}
