//! `.debug_info`: constant-class `DW_AT_high_pc` / `DW_AT_entry_pc` (lengths from `low_pc`)
//! patched in place, and the facts other sections need: which unit (and so which base address)
//! each range and location list belongs to.
//!
//! gimli parses units and attributes (with relocations applied to section offsets by a
//! [`gimli::Relocate`] hook); the position of each attribute value is known from
//! [`gimli::read::EntriesRaw::next_offset`], so relocations on address fields are looked up
//! directly.

use std::collections::BTreeMap;
use std::fmt;

use gimli::{constants as dw, AttributeValue, EndianSlice, LittleEndian, RelocateReader};

use super::bytes::{push_sleb, push_uleb, read_uint, uint_bytes, Cursor};
use super::{patched_at, Addr, Change, Ctx, DwarfError, Input, Out, Result};

/// The unit context of one range or location list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ListCtx {
    /// The unit's base address (`DW_AT_low_pc` of the unit DIE, else absolute 0).
    pub base: Addr,
    /// `DW_AT_addr_base` of the unit: (`.debug_addr` section, offset).
    pub addr_base: Option<(usize, u64)>,
    /// Address size of the unit.
    pub addr_size: u8,
}

/// What `.debug_info` tells the other sections.
#[derive(Default)]
pub(super) struct Facts {
    /// (list section, offset of a list) → its unit context; sorted, one entry per key.
    lists: Vec<((usize, u64), ListCtx)>,
    /// GCC location views: (location list section, offset of a view list) → offset of the
    /// location list it describes (the view list ends there); sorted, one entry per key.
    views: Vec<((usize, u64), u64)>,
    /// `.debug_info` section → in-place patches (offset, new bytes).
    pub patches: BTreeMap<usize, Vec<(u64, Vec<u8>)>>,
    /// `.debug_info` section → ULEB128 attribute values that outgrow their bytes: offset →
    /// new value. Their units are re-laid out ([`relayout_unit`]).
    pub grow: BTreeMap<usize, BTreeMap<u64, u64>>,
    /// `.debug_info` section → start offsets of the units to re-lay out.
    pub relayout: BTreeMap<usize, std::collections::BTreeSet<u64>>,
}

impl Facts {
    /// The unit context of the list at `off` in section `sec`, if a unit references it.
    pub fn list(&self, sec: usize, off: u64) -> Option<ListCtx> {
        self.lists
            .binary_search_by_key(&(sec, off), |e| e.0)
            .ok()
            .map(|i| self.lists[i].1)
    }

    /// The end of the view list at `off` in section `sec`, if there is one.
    pub fn view(&self, sec: usize, off: u64) -> Option<u64> {
        self.views
            .binary_search_by_key(&(sec, off), |e| e.0)
            .ok()
            .map(|i| self.views[i].1)
    }

    /// The referenced lists of section `sec` and the view lists of section `sec`, for
    /// lookups at increasing offsets ([`Marks`]).
    pub fn marks(&self, sec: usize) -> Marks<'_> {
        let lo = self.lists.partition_point(|e| e.0 .0 < sec);
        let hi = self.lists.partition_point(|e| e.0 .0 <= sec);
        let vlo = self.views.partition_point(|e| e.0 .0 < sec);
        let vhi = self.views.partition_point(|e| e.0 .0 <= sec);
        Marks {
            lists: &self.lists[lo..hi],
            views: &self.views[vlo..vhi],
            li: 0,
            vi: 0,
        }
    }

    /// Offset of the first referenced list in section `sec`.
    pub fn first_list(&self, sec: usize) -> Option<u64> {
        let i = self.lists.partition_point(|e| e.0 < (sec, 0));
        self.lists.get(i).filter(|e| e.0 .0 == sec).map(|e| e.0 .1)
    }

    /// Offset of the first view list in section `sec`.
    pub fn first_view(&self, sec: usize) -> Option<u64> {
        let i = self.views.partition_point(|e| e.0 < (sec, 0));
        self.views.get(i).filter(|e| e.0 .0 == sec).map(|e| e.0 .1)
    }
}

/// [`Facts::list`] and [`Facts::view`] for one section, at offsets that mostly increase.
pub(super) struct Marks<'f> {
    lists: &'f [((usize, u64), ListCtx)],
    views: &'f [((usize, u64), u64)],
    li: usize,
    vi: usize,
}

/// Moves `i` to the first entry of `v` at or after offset `p` and returns it when it is at `p`.
fn seek<'v, T>(v: &'v [((usize, u64), T)], i: &mut usize, p: u64) -> Option<&'v T> {
    if *i > 0 && v.get(*i - 1).is_some_and(|e| e.0 .1 >= p) {
        *i = v.partition_point(|e| e.0 .1 < p);
    }
    while v.get(*i).is_some_and(|e| e.0 .1 < p) {
        *i += 1;
    }
    v.get(*i).filter(|e| e.0 .1 == p).map(|e| &e.1)
}

impl Marks<'_> {
    /// The unit context of the list at `p`, if a unit references it.
    pub fn list(&mut self, p: u64) -> Option<ListCtx> {
        seek(self.lists, &mut self.li, p).copied()
    }

    /// The end of the view list at `p`, if there is one.
    pub fn view(&mut self, p: u64) -> Option<u64> {
        seek(self.views, &mut self.vi, p).copied()
    }
}

/// A constant-class `DW_AT_high_pc` (length from `low_pc`) or `DW_AT_entry_pc` (offset from
/// `low_pc`), patched by [`resolve`] when the code maps are known.
#[derive(Clone, Copy, Debug)]
struct PcConst {
    /// The `.debug_info` section and the offset of the attribute.
    sec: usize,
    at: u64,
    /// `DW_AT_high_pc` (else `DW_AT_entry_pc`).
    high: bool,
    form: dw::DwForm,
    /// Its value (`None`: negative).
    value: Option<u64>,
    /// The DIE's `DW_AT_low_pc`.
    low: Option<Addr>,
    die_at: u64,
    unit_off: u64,
    /// Walk order (as [`Reference::order`]).
    order: (u32, u32),
}

/// What [`collect`] found in `.debug_info` before the code maps are known.
pub(super) struct Collected {
    facts: Facts,
    consts: Vec<PcConst>,
    /// The first error of a walk in unit order, with its walk order.
    error: Option<((u32, u32), DwarfError)>,
}

/// A reference from `.debug_info` to a list (or view list) of another section.
#[derive(Clone, Copy, Debug)]
struct Reference<T> {
    /// (list section, offset of the list).
    key: (usize, u64),
    /// What the referencing unit says about it.
    value: T,
    /// The `.debug_info` section and the offset of the referencing attribute.
    sec: usize,
    at: u64,
    /// Walk order: (stretch, order in the stretch).
    order: (u32, u32),
}

/// What the walk of a stretch of units found, in walk order (merged by [`collect`]).
#[derive(Default)]
struct Found {
    /// References to lists (with the unit context).
    lists: Vec<Reference<ListCtx>>,
    /// References to view lists (with the offset of the location list they end at).
    views: Vec<Reference<u64>>,
    /// Constant pc attributes, to be patched once the code maps are known.
    consts: Vec<PcConst>,
    /// The stretch (its place among the stretches).
    stretch: u32,
    /// Order of the next list or view reference in the stretch.
    next: u32,
}

/// Applies relocations to section offsets read by gimli (unit headers, `DW_FORM_sec_offset`,
/// `DW_FORM_strp`, ...). Addresses are left raw: they are resolved by field offset instead.
#[derive(Clone)]
struct Relocator<'a> {
    ctx: &'a Ctx<'a>,
    inp: &'a Input<'a>,
    /// Search hint: reads go forward through the section.
    hint: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<'a> Relocator<'a> {
    fn new(ctx: &'a Ctx<'a>, inp: &'a Input<'a>) -> Self {
        Relocator {
            ctx,
            inp,
            hint: Default::default(),
        }
    }
}

impl fmt::Debug for Relocator<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Relocator({})", self.inp.name)
    }
}

impl gimli::read::Relocate<usize> for Relocator<'_> {
    fn relocate_address(&self, _offset: usize, value: u64) -> gimli::Result<u64> {
        Ok(value)
    }

    fn relocate_offset(&self, offset: usize, value: usize) -> gimli::Result<usize> {
        match self.inp.reloc_at_from(offset as u64, &self.hint) {
            None => Ok(value),
            Some(rel) => {
                let t = self
                    .ctx
                    .reloc_target(self.inp, &rel)
                    .map_err(|_| gimli::Error::OffsetOutOfBounds(offset as u64))?;
                usize::try_from(t.off).map_err(|_| gimli::Error::OffsetOutOfBounds(t.off))
            }
        }
    }
}

type Reader<'a> = RelocateReader<EndianSlice<'a, LittleEndian>, Relocator<'a>>;

/// Units walked by one task (about this many bytes of `.debug_info`).
const STRETCH: u64 = 1 << 20;

/// Walks every `.debug_info` section.
///
/// Units are independent, so stretches of them are walked in parallel; the merge replays what
/// they found in unit order, so the facts and the first error reported are those of walking
/// the units one after the other (a list referenced with two different contexts fails at the
/// second reference, unless an error came earlier).
pub(super) fn collect(ctx: &Ctx<'_>) -> Collected {
    use rayon::prelude::*;
    // The units (offsets) of every .debug_info section, cut into stretches.
    let mut stretches: Vec<(&Input<'_>, Vec<u64>)> = Vec::new();
    let mut header_error = None;
    'sections: for inp in ctx.inputs.values().filter(|i| i.name == ".debug_info") {
        let reader: Reader<'_> = RelocateReader::new(
            EndianSlice::new(inp.data, LittleEndian),
            Relocator::new(ctx, inp),
        );
        let mut units = gimli::DebugInfo::from(reader).units();
        let mut unit_at = 0u64;
        let (mut offsets, mut bytes) = (Vec::new(), 0u64);
        loop {
            match units.next() {
                Ok(Some(h)) => {
                    let off = h.debug_info_offset().map_or(unit_at, |o| o.0 as u64);
                    let len = h.length_including_self() as u64;
                    unit_at = off + len;
                    offsets.push(off);
                    bytes += len;
                    if bytes >= STRETCH {
                        stretches.push((inp, std::mem::take(&mut offsets)));
                        bytes = 0;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    header_error = Some(gerr(inp, unit_at, e));
                    if !offsets.is_empty() {
                        stretches.push((inp, offsets));
                    }
                    break 'sections;
                }
            }
        }
        if !offsets.is_empty() {
            stretches.push((inp, offsets));
        }
    }
    let walked: Vec<(Found, Option<DwarfError>)> = stretches
        .par_iter()
        .enumerate()
        .map(|(k, (inp, offsets))| {
            let mut found = Found {
                stretch: u32::try_from(k).unwrap_or(u32::MAX),
                ..Found::default()
            };
            let error = walk(ctx, inp, offsets, &mut found).err();
            (found, error)
        })
        .collect();
    // Nothing after the first error happened.
    let mut error = None;
    let mut all = Vec::with_capacity(walked.len());
    for (found, e) in walked {
        let at = (found.stretch, found.next);
        all.push(found);
        if let Some(e) = e {
            error = Some((at, e));
            break;
        }
    }
    let error = error.or(header_error.map(|e| ((u32::MAX, u32::MAX), e)));
    merge(all, error, |sec| {
        ctx.inputs
            .get(&sec)
            .map_or(".debug_info", |i| i.name.as_str())
    })
}

/// The facts from the stretches' findings (in unit order), and the first error a sequential
/// walk would have met: the earliest reference that disagrees with an earlier one to the same
/// list, or `error` (which ended the walk after everything in `all`).
fn merge<'n>(
    all: Vec<Found>,
    error: Option<((u32, u32), DwarfError)>,
    name: impl Fn(usize) -> &'n str,
) -> Collected {
    let mut facts = Facts::default();
    let mut lists = Vec::with_capacity(all.iter().map(|f| f.lists.len()).sum());
    let mut views = Vec::with_capacity(all.iter().map(|f| f.views.len()).sum());
    let mut consts = Vec::new();
    for mut found in all {
        lists.append(&mut found.lists);
        views.append(&mut found.views);
        consts.append(&mut found.consts);
    }
    let mut first = error;
    let mut note = |order: (u32, u32), e: DwarfError| {
        if first.as_ref().is_none_or(|c| order < c.0) {
            first = Some((order, e));
        }
    };
    facts.lists = dedup(lists, |r| {
        let off = r.key.1;
        note(
            r.order,
            DwarfError::new(
                name(r.sec),
                r.at,
                format!("list at {off:#x} referenced from units with different base addresses"),
            ),
        );
    });
    facts.views = dedup(views, |r| {
        note(
            r.order,
            DwarfError::new(name(r.sec), r.at, "view list shared by two location lists"),
        );
    });
    Collected {
        facts,
        consts,
        error: first,
    }
}

/// The facts, with the constant pc attributes patched through the code maps (now in `ctx`),
/// or the first error of a sequential walk (a constant that cannot be patched counts at its
/// place in the walk).
pub(super) fn resolve(ctx: &Ctx<'_>, collected: Collected) -> Result<Facts> {
    let Collected {
        mut facts,
        consts,
        error,
    } = collected;
    let limit = error.as_ref().map(|e| e.0);
    for c in &consts {
        if limit.is_some_and(|l| c.order >= l) {
            break;
        }
        let inp = ctx
            .inputs
            .get(&c.sec)
            .ok_or_else(|| DwarfError::new(".debug_info", c.at, "internal: section"))?;
        patch_const(ctx, inp, c, &mut facts)?;
    }
    match error {
        Some((_, e)) => Err(e),
        None => Ok(facts),
    }
}

/// One `(key, value)` per key, from the first reference in walk order; `conflict` is called
/// with the first reference of each key whose value differs from the first one's.
fn dedup<T: Copy + PartialEq>(
    refs: Vec<Reference<T>>,
    mut conflict: impl FnMut(&Reference<T>),
) -> Vec<((usize, u64), T)> {
    // Sorted by key through an index (the references are large). The sort is stable and
    // `refs` is in walk order, so references to one list stay in walk order.
    let mut order: Vec<((usize, u64), usize)> =
        refs.iter().enumerate().map(|(i, r)| (r.key, i)).collect();
    order.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(order.len());
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        let first = refs[group[0].1].value;
        if let Some(&(_, i)) = group.iter().find(|e| refs[e.1].value != first) {
            conflict(&refs[i]);
        }
        out.push((group[0].0, first));
    }
    out
}

/// Applies the patches found by [`collect`] to one `.debug_info` section: in place, or, when
/// some unit must grow, by rebuilding the section (units copied or re-laid out).
pub(super) fn patch(ctx: &Ctx<'_>, inp: &Input<'_>, facts: &Facts) -> Result<Option<Change>> {
    let no_patches = Vec::new();
    let patches = facts.patches.get(&inp.index).unwrap_or(&no_patches);
    let Some(relayout) = facts.relayout.get(&inp.index) else {
        return patched_at(inp, patches);
    };
    // Sections holding DIE offsets relative to their unit, without relocations.
    for other in ctx.inputs.values() {
        let name = other.name.as_str();
        if matches!(
            name,
            ".debug_pubnames"
                | ".debug_pubtypes"
                | ".debug_gnu_pubnames"
                | ".debug_gnu_pubtypes"
                | ".debug_names"
        ) && !other.data.is_empty()
        {
            return Err(inp.err(
                relayout.iter().next().copied().unwrap_or(0),
                format!("DIEs must move but {name} holds their offsets"),
            ));
        }
    }
    let grow = facts.grow.get(&inp.index);
    let mut out = Out::new(inp);
    let reader: Reader<'_> = RelocateReader::new(
        EndianSlice::new(inp.data, LittleEndian),
        Relocator::new(ctx, inp),
    );
    let debug_info = gimli::DebugInfo::from(reader);
    let mut units = debug_info.units();
    let mut pos = 0u64;
    loop {
        let header = match units.next() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => return Err(gerr(inp, pos, e)),
        };
        let start = header.debug_info_offset().map_or(pos, |o| o.0 as u64);
        let end = start + header.length_including_self() as u64;
        pos = end;
        let (s, e) = (
            usize::try_from(start).map_err(|_| inp.err(start, "offset out of range"))?,
            usize::try_from(end).map_err(|_| inp.err(start, "offset out of range"))?,
        );
        out.sync(start);
        if relayout.contains(&start) {
            let unit_patches: Vec<&(u64, Vec<u8>)> = patches
                .iter()
                .filter(|(at, _)| (start..end).contains(at))
                .collect();
            relayout_unit(ctx, inp, &header, start, grow, &unit_patches, &mut out)?;
        } else {
            let new_start = out.len();
            out.copy(inp, s, e)?;
            for (at, bytes) in patches.iter().filter(|(at, _)| (start..end).contains(at)) {
                out.patch(inp, new_start + (*at - start) as usize, bytes)?;
            }
        }
    }
    if pos != inp.data.len() as u64 {
        return Err(inp.err(pos, "trailing bytes after the last unit"));
    }
    let mut r = out.finish(inp, false, || false)?;
    // References from the section to itself (DW_FORM_ref_addr, ...) follow its own map.
    if let Some(map) = &r.offset_map {
        for rel in &mut r.relocs {
            let orig = super::Rel {
                offset: rel.offset,
                symbol: rel.symbol,
                r_type: rel.r_type,
                addend: rel.addend,
            };
            let sym = ctx.sym(inp, &orig)?;
            if sym.section == Some(inp.index) {
                rel.addend = map
                    .map_addend(sym.value, rel.addend, 0)
                    .ok_or_else(|| inp.err(rel.offset, "mapped addend overflows"))?;
            }
        }
    }
    Ok(Some(Change::Full(r)))
}

/// One piece of a unit being re-laid out: original bytes `[a, b)` and what becomes of them.
#[derive(Clone, Copy, Debug)]
enum Piece {
    /// Copied with their relocations.
    Copy,
    /// A ULEB128 value that is now `new`.
    Uleb(u64),
    /// A unit-relative DIE reference (`DW_FORM_ref*`) to original unit offset `target`.
    Ref(dw::DwForm, u64),
}

/// Rebuilds one unit whose DIEs move because some ULEB128 values grew: the grown values are
/// re-encoded, unit-relative references (`DW_FORM_ref1/2/4/8/udata`, e.g. `DW_AT_type`,
/// `DW_AT_sibling`) are recomputed (to a fixpoint, as `ref_udata` may grow too), and the unit
/// length is rewritten. Refused: location lists and expressions that name DIEs of the unit
/// (their offsets live in bytes this does not rewrite).
fn relayout_unit(
    ctx: &Ctx<'_>,
    inp: &Input<'_>,
    header: &gimli::UnitHeader<Reader<'_>>,
    start: u64,
    grow: Option<&BTreeMap<u64, u64>>,
    patches: &[&(u64, Vec<u8>)],
    out: &mut Out,
) -> Result<()> {
    let abbrev_field = start
        + u64::from(header.format().initial_length_size())
        + if header.version() >= 5 { 4 } else { 2 };
    let abbrev_sec = section_of(ctx, inp, abbrev_field, ".debug_abbrev")?;
    let abbrev_data = ctx
        .inputs
        .get(&abbrev_sec)
        .map(|i| i.data)
        .ok_or_else(|| inp.err(abbrev_field, "abbreviation section not found"))?;
    let abbrevs = gimli::DebugAbbrev::new(abbrev_data, LittleEndian)
        .abbreviations(header.debug_abbrev_offset())
        .map_err(|e| gerr(inp, abbrev_field, e))?;
    let mut entries = header
        .entries_raw(&abbrevs, None)
        .map_err(|e| gerr(inp, start, e))?;
    let encoding = header.encoding();
    let root = start + entries.next_offset().0 as u64;

    let mut pieces: Vec<(u64, u64, Piece)> = Vec::new();
    let mut die_starts = Vec::new();
    let push_copy = |pieces: &mut Vec<(u64, u64, Piece)>, a: u64, b: u64| match pieces.last_mut() {
        Some((_, pb, Piece::Copy)) if *pb == a => *pb = b,
        _ => pieces.push((a, b, Piece::Copy)),
    };
    while !entries.is_empty() {
        let die_at = start + entries.next_offset().0 as u64;
        die_starts.push(die_at);
        let abbrev = entries
            .read_abbreviation()
            .map_err(|e| gerr(inp, die_at, e))?;
        // A DIE starts a piece of its own (its new offset is needed for references).
        pieces.push((die_at, start + entries.next_offset().0 as u64, Piece::Copy));
        let Some(abbrev) = abbrev else { continue };
        for spec in abbrev.attributes() {
            let at = start + entries.next_offset().0 as u64;
            let attr = entries
                .read_attribute(*spec)
                .map_err(|e| gerr(inp, at, e))?;
            let b = start + entries.next_offset().0 as u64;
            if spec.form() == dw::DW_FORM_indirect {
                return Err(inp.err(at, "DW_FORM_indirect in a unit whose DIEs move"));
            }
            match attr.value() {
                AttributeValue::LocationListsRef(_) | AttributeValue::DebugLocListsIndex(_) => {
                    return Err(inp.err(at, "location list in a unit whose DIEs move"));
                }
                AttributeValue::Exprloc(e) if expr_names_dies(e.clone(), encoding) => {
                    return Err(inp.err(at, "expression naming a DIE in a unit whose DIEs move"));
                }
                _ => {}
            }
            let piece = match (grow.and_then(|g| g.get(&at)), attr.raw_value()) {
                (Some(&new), _) => Piece::Uleb(new),
                (None, AttributeValue::UnitRef(t)) => {
                    Piece::Ref(attr.form(), start.saturating_add(t.0 as u64))
                }
                _ => Piece::Copy,
            };
            match piece {
                Piece::Copy => push_copy(&mut pieces, at, b),
                p => pieces.push((at, b, p)),
            }
        }
    }

    // New layout, to a fixpoint (references only grow).
    let ils = u64::from(header.format().initial_length_size());
    let mut width: Vec<u64> = pieces.iter().map(|&(a, b, _)| b - a).collect();
    let mut new_off: BTreeMap<u64, u64> = BTreeMap::new();
    for _round in 0..64 {
        let mut pos = root - start;
        new_off.clear();
        let mut di = 0;
        for (k, &(a, b, _)) in pieces.iter().enumerate() {
            while di < die_starts.len() && die_starts[di] < a {
                di += 1;
            }
            while di < die_starts.len() && die_starts[di] < b {
                if die_starts[di] != a {
                    return Err(inp.err(die_starts[di], "internal: DIE inside a piece"));
                }
                new_off.insert(die_starts[di], pos);
                di += 1;
            }
            pos += width[k];
        }
        let mut changed = false;
        for (k, &(a, b, piece)) in pieces.iter().enumerate() {
            let need = match piece {
                Piece::Copy => b - a,
                Piece::Uleb(v) => (super::bytes::uleb_len(v) as u64).max(b - a),
                Piece::Ref(form, t) => {
                    let nt = *new_off.get(&t).ok_or_else(|| {
                        inp.err(a, "DIE reference to something that is not a DIE")
                    })?;
                    if form == dw::DW_FORM_ref_udata {
                        (super::bytes::uleb_len(nt) as u64).max(b - a)
                    } else {
                        b - a
                    }
                }
            };
            if need != width[k] {
                width[k] = need;
                changed = true;
            }
        }
        if !changed {
            // Emit.
            let new_start = out.len();
            out.copy(inp, start as usize, root as usize)?;
            let mut placed = Vec::with_capacity(pieces.len());
            for (k, &(a, b, piece)) in pieces.iter().enumerate() {
                if new_off.contains_key(&a) {
                    out.sync(a);
                }
                placed.push(out.len());
                let w = width[k] as usize;
                let (au, bu) = (a as usize, b as usize);
                match piece {
                    Piece::Copy => out.copy(inp, au, bu)?,
                    Piece::Uleb(v) => {
                        let mut bytes = Vec::new();
                        push_uleb(&mut bytes, v, w);
                        out.replace(inp, au, bu, &bytes)?;
                    }
                    Piece::Ref(form, t) => {
                        let nt = new_off[&t];
                        let mut bytes = Vec::new();
                        if form == dw::DW_FORM_ref_udata {
                            push_uleb(&mut bytes, nt, w);
                        } else {
                            bytes = uint_bytes(nt, w).ok_or_else(|| {
                                inp.err(a, format!("moved DIE reference does not fit {form}"))
                            })?;
                        }
                        out.replace(inp, au, bu, &bytes)?;
                    }
                }
            }
            // In-place patches of this unit (fixed-size values) at their new positions.
            for (at, bytes) in patches {
                let k = pieces.partition_point(|&(a, _, _)| a <= *at);
                match k.checked_sub(1).map(|k| (k, pieces[k])) {
                    Some((k, (a, b, Piece::Copy))) if *at + bytes.len() as u64 <= b => {
                        out.patch(inp, placed[k] + (*at - a) as usize, bytes)?;
                    }
                    _ => return Err(inp.err(*at, "internal: patch outside a copied piece")),
                }
            }
            let len = (out.len() - new_start) as u64 - ils;
            let (at, size) = if ils == 12 {
                (new_start + 4, 8)
            } else {
                (new_start, 4)
            };
            let b = uint_bytes(len, size).ok_or_else(|| inp.err(start, "unit length overflows"))?;
            out.patch(inp, at, &b)?;
            return Ok(());
        }
    }
    Err(inp.err(start, "internal: unit layout does not settle"))
}

/// Whether a DWARF expression names a DIE by unit-relative offset (calls, parameter refs,
/// typed stack operations), also inside `DW_OP_entry_value`. Unparsable counts as yes.
fn expr_names_dies(e: gimli::Expression<Reader<'_>>, encoding: gimli::Encoding) -> bool {
    use gimli::Operation as Op;
    let mut ops = e.operations(encoding);
    loop {
        match ops.next() {
            Ok(None) => return false,
            Err(_) => return true,
            Ok(Some(op)) => match op {
                Op::Call {
                    offset: gimli::DieReference::UnitRef(_),
                }
                | Op::ParameterRef { .. } => return true,
                Op::TypedLiteral { base_type, .. }
                | Op::Convert { base_type }
                | Op::Reinterpret { base_type }
                | Op::RegisterOffset { base_type, .. }
                | Op::Deref { base_type, .. }
                    if base_type.0 != 0 =>
                {
                    return true
                }
                Op::EntryValue { expression }
                    if expr_names_dies(gimli::Expression(expression.clone()), encoding) =>
                {
                    return true
                }
                _ => {}
            },
        }
    }
}

/// The unit-wide context taken from the unit DIE.
#[derive(Clone, Copy, Default)]
struct UnitCtx {
    base: Option<Addr>,
    addr_base: Option<(usize, u64)>,
    rnglists_base: Option<(usize, u64)>,
    loclists_base: Option<(usize, u64)>,
}

fn gerr(inp: &Input<'_>, at: u64, e: gimli::Error) -> DwarfError {
    inp.err(at, format!("cannot parse: {e}"))
}

/// Walks the units at `offsets` (unit header offsets) of one `.debug_info` section.
fn walk(ctx: &Ctx<'_>, inp: &Input<'_>, offsets: &[u64], found: &mut Found) -> Result<()> {
    let relocator = Relocator::new(ctx, inp);
    let reader: Reader<'_> =
        RelocateReader::new(EndianSlice::new(inp.data, LittleEndian), relocator);
    let debug_info = gimli::DebugInfo::from(reader);
    for &unit_off in offsets {
        let offset =
            usize::try_from(unit_off).map_err(|_| inp.err(unit_off, "offset out of range"))?;
        let header = debug_info
            .header_from_offset(gimli::DebugInfoOffset(offset))
            .map_err(|e| gerr(inp, unit_off, e))?;
        let version = header.version();
        let addr_size = header.address_size();
        let offset_size = header.format().word_size();

        // The abbreviation table: the section named by the relocation on the header field.
        let abbrev_field = unit_off
            + u64::from(header.format().initial_length_size())
            + if version >= 5 { 4 } else { 2 };
        let abbrev_sec = section_of(ctx, inp, abbrev_field, ".debug_abbrev")?;
        let abbrev_data = ctx
            .inputs
            .get(&abbrev_sec)
            .map(|i| i.data)
            .ok_or_else(|| inp.err(abbrev_field, "abbreviation section not found"))?;
        let abbrevs = gimli::DebugAbbrev::new(abbrev_data, LittleEndian)
            .abbreviations(header.debug_abbrev_offset())
            .map_err(|e| gerr(inp, abbrev_field, e))?;
        let entries = header
            .entries_raw(&abbrevs, None)
            .map_err(|e| gerr(inp, unit_off, e))?;
        let encoding = header.encoding();
        let root = unit_off + entries.next_offset().0 as u64;
        let unit_end = unit_off + header.length_including_self() as u64;
        let end = usize::try_from(unit_end).unwrap_or(usize::MAX);

        let mut unit: Option<UnitCtx> = None;
        let mut attrs = Vec::new();
        let mut plans = Plans::default();
        let mut pos = root;
        while pos < unit_end {
            let die_at = pos;
            if unit.is_some() {
                // Null entries and DIEs with nothing to look at: stepped over in place.
                let next = usize::try_from(die_at)
                    .ok()
                    .and_then(|p| plans.step_over(inp.data, p, end, &abbrevs, encoding));
                if let Some(next) = next {
                    pos = next as u64;
                    continue;
                }
            }
            let start = usize::try_from(die_at - unit_off)
                .map_err(|_| inp.err(die_at, "offset out of range"))?;
            let mut entries = header
                .entries_raw(&abbrevs, Some(gimli::UnitOffset(start)))
                .map_err(|e| gerr(inp, die_at, e))?;
            let abbrev = entries
                .read_abbreviation()
                .map_err(|e| gerr(inp, die_at, e))?;
            pos = unit_off + entries.next_offset().0 as u64;
            let Some(abbrev) = abbrev else { continue };
            attrs.clear();
            let specs = abbrev.attributes();
            if unit.is_some() {
                // Only the attributes `Die::process` looks at are read.
                let reads = plans.reads(abbrev, encoding);
                let mut k = 0;
                for &r in reads {
                    if r > k {
                        entries
                            .skip_attributes(&specs[k..r])
                            .map_err(|e| gerr(inp, die_at, e))?;
                    }
                    let spec = specs[r];
                    let at = unit_off + entries.next_offset().0 as u64;
                    let attr = entries.read_attribute(spec).map_err(|e| gerr(inp, at, e))?;
                    attrs.push((at, spec.form() == dw::DW_FORM_indirect, attr));
                    k = r + 1;
                }
                if k < specs.len() {
                    entries
                        .skip_attributes(&specs[k..])
                        .map_err(|e| gerr(inp, die_at, e))?;
                }
            } else {
                for spec in specs {
                    let at = unit_off + entries.next_offset().0 as u64;
                    let attr = entries
                        .read_attribute(*spec)
                        .map_err(|e| gerr(inp, at, e))?;
                    attrs.push((at, spec.form() == dw::DW_FORM_indirect, attr));
                }
            }
            pos = unit_off + entries.next_offset().0 as u64;
            let u = match unit {
                Some(u) => u,
                None => {
                    // Split DWARF: lengths and list entries of this unit live in a .dwo file
                    // that rewriting this object cannot reach.
                    let split = matches!(
                        header.type_(),
                        gimli::UnitType::Skeleton(_) | gimli::UnitType::SplitCompilation(_)
                    ) || attrs.iter().any(|(_, _, a)| {
                        matches!(
                            a.name(),
                            dw::DW_AT_dwo_name | dw::DW_AT_GNU_dwo_name | dw::DW_AT_GNU_dwo_id
                        )
                    });
                    if split {
                        return Err(inp.err(
                            die_at,
                            "split DWARF unit: its .dwo file holds code offsets this rewrite \
                             cannot reach",
                        ));
                    }
                    let u = unit_ctx(ctx, inp, &attrs, addr_size)?;
                    unit = Some(u);
                    u
                }
            };
            let die = Die {
                ctx,
                inp,
                unit: u,
                unit_off,
                version,
                addr_size,
                offset_size,
                die_at,
            };
            die.process(&attrs, found)?;
        }
    }
    Ok(())
}

/// Which attributes of each abbreviation [`Die::process`] needs (by abbreviation code, for one
/// unit): address and pc attributes, location view lists, and the forms that can name a range
/// or location list. The others are skipped unread, and DIEs with none of them are stepped
/// over in the section's bytes ([`Plans::step_over`]) without gimli.
#[derive(Default)]
struct Plans {
    /// By abbreviation code (codes past 2^16 share slot 0, worked out each time); `None`: not
    /// worked out yet.
    by_code: Vec<Option<Plan>>,
}

/// What to do with the attributes of one abbreviation.
enum Plan {
    /// Read these (indices); skip the others.
    Read(Vec<usize>),
    /// Step over all of them, as these steps.
    Skip(Vec<Step>),
}

/// One step over attribute bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// A fixed number of bytes (consecutive fixed-size attributes together).
    Bytes(u32),
    /// A LEB128 number.
    Leb,
    /// A NUL-terminated string.
    CStr,
    /// A block with a 1-, 2- or 4-byte length, or (0) a ULEB128 length.
    Block(u8),
}

/// The attributes `Die::process` looks at.
fn wanted(s: &gimli::AttributeSpecification) -> bool {
    matches!(
        s.name(),
        dw::DW_AT_low_pc | dw::DW_AT_high_pc | dw::DW_AT_entry_pc | dw::DW_AT_GNU_locviews
    ) || matches!(
        s.form(),
        dw::DW_FORM_sec_offset
            | dw::DW_FORM_data4
            | dw::DW_FORM_data8
            | dw::DW_FORM_rnglistx
            | dw::DW_FORM_loclistx
            | dw::DW_FORM_indirect
    )
}

/// The steps over attributes of these forms (the sizes gimli's `skip_attributes` uses), or
/// `None` when a form has no fixed way to be stepped over here (`DW_FORM_indirect`, unknown
/// forms: gimli reads those DIEs, and reports what is wrong).
fn steps(specs: &[gimli::AttributeSpecification], enc: gimli::Encoding) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut fixed = 0u32;
    for spec in specs {
        let size = match spec.form() {
            dw::DW_FORM_addr => Some(enc.address_size),
            dw::DW_FORM_implicit_const | dw::DW_FORM_flag_present => Some(0),
            dw::DW_FORM_data1
            | dw::DW_FORM_flag
            | dw::DW_FORM_strx1
            | dw::DW_FORM_ref1
            | dw::DW_FORM_addrx1 => Some(1),
            dw::DW_FORM_data2 | dw::DW_FORM_ref2 | dw::DW_FORM_addrx2 | dw::DW_FORM_strx2 => {
                Some(2)
            }
            dw::DW_FORM_addrx3 | dw::DW_FORM_strx3 => Some(3),
            dw::DW_FORM_data4
            | dw::DW_FORM_ref_sup4
            | dw::DW_FORM_ref4
            | dw::DW_FORM_strx4
            | dw::DW_FORM_addrx4 => Some(4),
            dw::DW_FORM_data8 | dw::DW_FORM_ref8 | dw::DW_FORM_ref_sig8 | dw::DW_FORM_ref_sup8 => {
                Some(8)
            }
            dw::DW_FORM_data16 => Some(16),
            dw::DW_FORM_sec_offset
            | dw::DW_FORM_GNU_ref_alt
            | dw::DW_FORM_strp
            | dw::DW_FORM_strp_sup
            | dw::DW_FORM_GNU_strp_alt
            | dw::DW_FORM_line_strp => Some(enc.format.word_size()),
            dw::DW_FORM_ref_addr => Some(if enc.version == 2 {
                enc.address_size
            } else {
                enc.format.word_size()
            }),
            _ => None,
        };
        if let Some(n) = size {
            fixed += u32::from(n);
            continue;
        }
        let step = match spec.form() {
            dw::DW_FORM_block1 => Step::Block(1),
            dw::DW_FORM_block2 => Step::Block(2),
            dw::DW_FORM_block4 => Step::Block(4),
            dw::DW_FORM_block | dw::DW_FORM_exprloc => Step::Block(0),
            dw::DW_FORM_string => Step::CStr,
            dw::DW_FORM_udata
            | dw::DW_FORM_sdata
            | dw::DW_FORM_ref_udata
            | dw::DW_FORM_strx
            | dw::DW_FORM_GNU_str_index
            | dw::DW_FORM_addrx
            | dw::DW_FORM_GNU_addr_index
            | dw::DW_FORM_loclistx
            | dw::DW_FORM_rnglistx => Step::Leb,
            _ => return None,
        };
        if fixed > 0 {
            out.push(Step::Bytes(fixed));
            fixed = 0;
        }
        out.push(step);
    }
    if fixed > 0 {
        out.push(Step::Bytes(fixed));
    }
    Some(out)
}

/// A ULEB128 number at `*pos` in `data` (before `end`), or `None` when it runs past `end` or
/// does not fit 64 bits.
fn raw_uleb(data: &[u8], pos: &mut usize, end: usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        if *pos >= end {
            return None;
        }
        let b = *data.get(*pos)?;
        *pos += 1;
        if shift >= 64 || (shift > 57 && u64::from(b & 0x7f) >> (64 - shift) != 0) {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

/// The position after stepping over attributes by `steps` from `pos`, or `None` when they
/// run past `end`.
fn step(data: &[u8], mut pos: usize, end: usize, steps: &[Step]) -> Option<usize> {
    let end = end.min(data.len());
    for s in steps {
        pos = match *s {
            Step::Bytes(n) => pos.checked_add(n as usize)?,
            Step::Leb => {
                let rest = data.get(pos..end)?;
                pos + rest.iter().position(|b| b & 0x80 == 0)? + 1
            }
            Step::CStr => {
                let rest = data.get(pos..end)?;
                pos + rest.iter().position(|&b| b == 0)? + 1
            }
            Step::Block(0) => {
                let n = raw_uleb(data, &mut pos, end)?;
                pos.checked_add(usize::try_from(n).ok()?)?
            }
            Step::Block(w) => {
                let w = usize::from(w);
                let b = data.get(pos..pos.checked_add(w)?)?;
                let mut v = [0u8; 8];
                v[..w].copy_from_slice(b);
                pos.checked_add(w)?
                    .checked_add(usize::try_from(u64::from_le_bytes(v)).ok()?)?
            }
        };
        if pos > end {
            return None;
        }
    }
    Some(pos)
}

impl Plans {
    fn plan(&mut self, abbrev: &gimli::Abbreviation, enc: gimli::Encoding) -> &Plan {
        let make = || {
            let reads: Vec<usize> = abbrev
                .attributes()
                .iter()
                .enumerate()
                .filter(|(_, s)| wanted(s))
                .map(|(i, _)| i)
                .collect();
            if reads.is_empty() {
                if let Some(steps) = steps(abbrev.attributes(), enc) {
                    return Plan::Skip(steps);
                }
            }
            Plan::Read(reads)
        };
        let code = usize::try_from(abbrev.code()).ok().filter(|&c| c < 1 << 16);
        let c = code.unwrap_or(0);
        if self.by_code.len() <= c {
            self.by_code.resize_with(c + 1, || None);
        }
        if code.is_none() {
            self.by_code[0] = None;
        }
        self.by_code[c].get_or_insert_with(make)
    }

    /// The attributes of `abbrev` to read (all others are skipped).
    fn reads(&mut self, abbrev: &gimli::Abbreviation, enc: gimli::Encoding) -> &[usize] {
        match self.plan(abbrev, enc) {
            Plan::Read(r) => r,
            Plan::Skip(_) => &[],
        }
    }

    /// The end of the DIE at `pos` (before `end`) when it is a null entry or has nothing
    /// `Die::process` looks at; `None` when gimli must read it (or report what is wrong).
    fn step_over(
        &mut self,
        data: &[u8],
        pos: usize,
        end: usize,
        abbrevs: &gimli::Abbreviations,
        enc: gimli::Encoding,
    ) -> Option<usize> {
        let mut p = pos;
        let code = raw_uleb(data, &mut p, end)?;
        if code == 0 {
            return Some(p);
        }
        let known = usize::try_from(code)
            .ok()
            .filter(|&c| c != 0 && c < 1 << 16)
            .and_then(|c| self.by_code.get(c))
            .and_then(Option::as_ref);
        let plan = match known {
            Some(plan) => plan,
            None => self.plan(abbrevs.get(code)?, enc),
        };
        match plan {
            Plan::Skip(steps) => step(data, p, end, steps),
            Plan::Read(_) => None,
        }
    }
}

/// The section a relocated offset field at `at` points into: the relocation's symbol section,
/// or the only section called `default` when there is no relocation.
fn section_of(ctx: &Ctx<'_>, inp: &Input<'_>, at: u64, default: &str) -> Result<usize> {
    match inp.reloc_at(at) {
        Some(rel) => ctx
            .sym(inp, &rel)?
            .section
            .ok_or_else(|| inp.err(at, "section offset relocated against an undefined symbol")),
        None => ctx.unique(default).ok_or_else(|| {
            inp.err(
                at,
                format!("offset without relocation and no single {default} section"),
            )
        }),
    }
}

type Attrs<'a> = [(u64, bool, gimli::Attribute<Reader<'a>>)];

fn unit_ctx(ctx: &Ctx<'_>, inp: &Input<'_>, attrs: &Attrs<'_>, addr_size: u8) -> Result<UnitCtx> {
    let mut u = UnitCtx::default();
    for (at, indirect, attr) in attrs {
        let base_of = |default: &str| -> Result<Option<(usize, u64)>> {
            if *indirect {
                return Err(inp.err(*at, "DW_FORM_indirect on a base attribute"));
            }
            match attr.value() {
                AttributeValue::DebugAddrBase(o) => {
                    Ok(Some((section_of(ctx, inp, *at, default)?, o.0 as u64)))
                }
                AttributeValue::DebugRngListsBase(o) => {
                    Ok(Some((section_of(ctx, inp, *at, default)?, o.0 as u64)))
                }
                AttributeValue::DebugLocListsBase(o) => {
                    Ok(Some((section_of(ctx, inp, *at, default)?, o.0 as u64)))
                }
                _ => Err(inp.err(*at, "unexpected form for a base attribute")),
            }
        };
        match attr.name() {
            dw::DW_AT_addr_base | dw::DW_AT_GNU_addr_base => {
                u.addr_base = base_of(".debug_addr")?;
            }
            dw::DW_AT_rnglists_base => u.rnglists_base = base_of(".debug_rnglists")?,
            dw::DW_AT_loclists_base => u.loclists_base = base_of(".debug_loclists")?,
            _ => {}
        }
    }
    // low_pc after addr_base is known (DW_FORM_addrx needs it).
    for (at, indirect, attr) in attrs {
        if attr.name() == dw::DW_AT_low_pc {
            u.base = Some(address(ctx, inp, *at, *indirect, attr, &u, addr_size)?);
        }
    }
    Ok(u)
}

/// The location held by an address-class attribute.
fn address(
    ctx: &Ctx<'_>,
    inp: &Input<'_>,
    at: u64,
    indirect: bool,
    attr: &gimli::Attribute<Reader<'_>>,
    u: &UnitCtx,
    addr_size: u8,
) -> Result<Addr> {
    if indirect {
        return Err(inp.err(at, "DW_FORM_indirect on an address attribute"));
    }
    match attr.raw_value() {
        AttributeValue::Addr(raw) => Ok(ctx.field(inp, at, raw)?.0),
        AttributeValue::DebugAddrIndex(i) => {
            let (sec, base) = u
                .addr_base
                .ok_or_else(|| inp.err(at, "DW_FORM_addrx without DW_AT_addr_base"))?;
            debug_addr(ctx, sec, base, i.0 as u64, addr_size)
                .map_err(|e| inp.err(at, format!("address index {}: {e}", i.0)))
        }
        _ => Err(inp.err(at, "unexpected form for an address attribute")),
    }
}

/// Entry `index` of the `.debug_addr` table at (`sec`, `base`).
pub(super) fn debug_addr(
    ctx: &Ctx<'_>,
    sec: usize,
    base: u64,
    index: u64,
    addr_size: u8,
) -> Result<Addr> {
    let inp = ctx
        .inputs
        .get(&sec)
        .ok_or_else(|| DwarfError::new(".debug_addr", base, "section not found"))?;
    let at = index
        .checked_mul(u64::from(addr_size))
        .and_then(|o| o.checked_add(base))
        .ok_or_else(|| inp.err(base, "address index overflows"))?;
    let pos = usize::try_from(at).map_err(|_| inp.err(at, "offset out of range"))?;
    let mut c = Cursor::at(inp.data, pos, &inp.name);
    let raw = c.uint(addr_size)?;
    Ok(ctx.field(inp, at, raw)?.0)
}

/// One DIE being processed.
struct Die<'c, 'd> {
    ctx: &'c Ctx<'d>,
    inp: &'c Input<'d>,
    unit: UnitCtx,
    unit_off: u64,
    version: u16,
    addr_size: u8,
    offset_size: u8,
    die_at: u64,
}

impl Die<'_, '_> {
    fn process(&self, attrs: &Attrs<'_>, facts: &mut Found) -> Result<()> {
        let inp = self.inp;
        let mut low = None;
        let mut consts = Vec::new();
        let mut location_list = None;
        let mut views = None;
        for (at, indirect, attr) in attrs {
            match attr.name() {
                dw::DW_AT_low_pc => {
                    low = Some(address(
                        self.ctx,
                        inp,
                        *at,
                        *indirect,
                        attr,
                        &self.unit,
                        self.addr_size,
                    )?)
                }
                // A constant high_pc is a length from DWARF 4 on; a constant entry_pc an
                // offset from DWARF 5 on.
                dw::DW_AT_high_pc | dw::DW_AT_entry_pc => {
                    let min_version = if attr.name() == dw::DW_AT_high_pc {
                        4
                    } else {
                        5
                    };
                    if self.version >= min_version && is_constant(attr.form()) {
                        if *indirect {
                            return Err(inp.err(*at, "DW_FORM_indirect on a pc attribute"));
                        }
                        consts.push((*at, attr));
                    }
                }
                dw::DW_AT_GNU_locviews => {
                    // DW_FORM_sec_offset (relocated by the reader), or DW_FORM_data4/8 in
                    // DWARF 2/3 (read raw: apply the relocation here).
                    let off = match (attr.offset_value(), attr.form()) {
                        (Some(o), _) => o as u64,
                        (None, dw::DW_FORM_data4 | dw::DW_FORM_data8) => match inp.reloc_at(*at) {
                            Some(rel) => self.ctx.reloc_target(inp, &rel)?.off,
                            None => attr.udata_value().unwrap_or(0),
                        },
                        _ => {
                            return Err(inp.err(*at, "unexpected form for DW_AT_GNU_locviews"));
                        }
                    };
                    let sec = self.list_section(*at, false)?;
                    views = Some((*at, sec, off));
                }
                _ => {}
            }
            match attr.value() {
                AttributeValue::RangeListsRef(o) => {
                    let sec = self.list_section(*at, true)?;
                    self.add_list(facts, *at, sec, o.0 as u64)?;
                }
                AttributeValue::LocationListsRef(o) => {
                    let sec = self.list_section(*at, false)?;
                    self.add_list(facts, *at, sec, o.0 as u64)?;
                    location_list = Some((sec, o.0 as u64));
                }
                AttributeValue::DebugRngListsIndex(i) => {
                    let (sec, off) = self.indexed(*at, self.unit.rnglists_base, i.0 as u64)?;
                    self.add_list(facts, *at, sec, off)?;
                }
                AttributeValue::DebugLocListsIndex(i) => {
                    let (sec, off) = self.indexed(*at, self.unit.loclists_base, i.0 as u64)?;
                    self.add_list(facts, *at, sec, off)?;
                    location_list = Some((sec, off));
                }
                _ => {}
            }
        }
        // GCC's location views (DW_AT_GNU_locviews, DWARF 4 and 5 alike): a list of ULEB128
        // view pairs right before the location list of the same DIE.
        if let Some((at, sec, v)) = views {
            match location_list {
                Some((lsec, l)) if lsec == sec && l >= v => {
                    facts.views.push(Reference {
                        key: (sec, v),
                        value: l,
                        sec: inp.index,
                        at,
                        order: (facts.stretch, facts.next),
                    });
                    facts.next += 1;
                }
                _ => return Err(inp.err(at, "DW_AT_GNU_locviews without a location list after it")),
            }
        }
        for (at, attr) in consts {
            facts.consts.push(PcConst {
                sec: inp.index,
                at,
                high: attr.name() == dw::DW_AT_high_pc,
                form: attr.form(),
                value: attr.udata_value(),
                low,
                die_at: self.die_at,
                unit_off: self.unit_off,
                order: (facts.stretch, facts.next),
            });
            facts.next += 1;
        }
        Ok(())
    }

    /// The list section a `DW_FORM_sec_offset` at `at` points into.
    fn list_section(&self, at: u64, ranges: bool) -> Result<usize> {
        let default = match (ranges, self.version >= 5) {
            (true, true) => ".debug_rnglists",
            (true, false) => ".debug_ranges",
            (false, true) => ".debug_loclists",
            (false, false) => ".debug_loc",
        };
        section_of(self.ctx, self.inp, at, default)
    }

    /// Resolves a `DW_FORM_rnglistx` / `DW_FORM_loclistx` index through the offsets table at
    /// the unit's `DW_AT_*lists_base`.
    fn indexed(&self, at: u64, base: Option<(usize, u64)>, index: u64) -> Result<(usize, u64)> {
        let (sec, base) =
            base.ok_or_else(|| self.inp.err(at, "list index without DW_AT_*lists_base"))?;
        let list = self
            .ctx
            .inputs
            .get(&sec)
            .ok_or_else(|| self.inp.err(at, "list section not found"))?;
        let entry = index
            .checked_mul(u64::from(self.offset_size))
            .and_then(|o| o.checked_add(base))
            .ok_or_else(|| self.inp.err(at, "list index overflows"))?;
        let pos = usize::try_from(entry).map_err(|_| self.inp.err(at, "list index overflows"))?;
        let rel = Cursor::at(list.data, pos, &list.name).uint(self.offset_size)?;
        let off = base
            .checked_add(rel)
            .ok_or_else(|| self.inp.err(at, "list offset overflows"))?;
        Ok((sec, off))
    }

    fn add_list(&self, facts: &mut Found, at: u64, sec: usize, off: u64) -> Result<()> {
        let lc = ListCtx {
            base: self.unit.base.unwrap_or(Addr::ZERO),
            addr_base: self.unit.addr_base,
            addr_size: self.addr_size,
        };
        facts.lists.push(Reference {
            key: (sec, off),
            value: lc,
            sec: self.inp.index,
            at,
            order: (facts.stretch, facts.next),
        });
        facts.next += 1;
        Ok(())
    }
}

/// A constant-class `DW_AT_high_pc` (length from `low_pc`) or `DW_AT_entry_pc` (offset from
/// `low_pc`): new value `map(low + v) - map(low)`, patched in the same form and width.
fn patch_const(ctx: &Ctx<'_>, inp: &Input<'_>, pc: &PcConst, facts: &mut Facts) -> Result<()> {
    let at = pc.at;
    let name = if pc.high {
        "DW_AT_high_pc"
    } else {
        "DW_AT_entry_pc"
    };
    let v = pc
        .value
        .ok_or_else(|| inp.err(at, format!("{name}: negative constant")))?;
    let Some(low) = pc.low else {
        if v == 0 {
            return Ok(());
        }
        return Err(inp.err(
            at,
            format!(
                "{name} as a constant in a DIE without DW_AT_low_pc (DIE at {:#x})",
                pc.die_at
            ),
        ));
    };
    let new = ctx.map_delta(inp, at, low, v)?;
    if new == v {
        return Ok(());
    }
    let pos = usize::try_from(at).map_err(|_| inp.err(at, "offset out of range"))?;
    let form = pc.form;
    let bytes = match form {
        dw::DW_FORM_data1 | dw::DW_FORM_data2 | dw::DW_FORM_data4 | dw::DW_FORM_data8 => {
            let size = match form {
                dw::DW_FORM_data1 => 1,
                dw::DW_FORM_data2 => 2,
                dw::DW_FORM_data4 => 4,
                _ => 8,
            };
            let old = inp
                .data
                .get(pos..pos + size)
                .and_then(read_uint)
                .ok_or_else(|| inp.err(at, "truncated attribute"))?;
            if old != v {
                return Err(inp.err(at, format!("{name}: value does not match its bytes")));
            }
            uint_bytes(new, size).ok_or_else(|| {
                inp.err(
                    at,
                    format!("{name}: new value {new:#x} does not fit {size} bytes"),
                )
            })?
        }
        dw::DW_FORM_udata | dw::DW_FORM_sdata => {
            let mut c = Cursor::at(inp.data, pos, &inp.name);
            if form == dw::DW_FORM_udata {
                c.uleb()?;
            } else {
                c.sleb()?;
            }
            let len = c.pos() - pos;
            let mut b = Vec::new();
            if form == dw::DW_FORM_udata {
                push_uleb(&mut b, new, len);
            } else {
                let s = i64::try_from(new)
                    .map_err(|_| inp.err(at, format!("{name}: value overflows")))?;
                push_sleb(&mut b, s, len);
            }
            if b.len() != len {
                if form != dw::DW_FORM_udata {
                    return Err(inp.err(
                        at,
                        format!("{name}: new value {new:#x} does not fit the {len}-byte SLEB128"),
                    ));
                }
                // GNU as writes DW_FORM_udata lengths: the unit is laid out anew.
                facts.grow.entry(inp.index).or_default().insert(at, new);
                facts
                    .relayout
                    .entry(inp.index)
                    .or_default()
                    .insert(pc.unit_off);
                return Ok(());
            }
            b
        }
        _ => {
            return Err(inp.err(
                at,
                format!("{name} in form {form} cannot be patched (shared by the abbreviation)"),
            ))
        }
    };
    inp.no_reloc_in(at, at + bytes.len() as u64, name)?;
    facts
        .patches
        .entry(inp.index)
        .or_default()
        .push((at, bytes));
    Ok(())
}

fn is_constant(form: dw::DwForm) -> bool {
    matches!(
        form,
        dw::DW_FORM_data1
            | dw::DW_FORM_data2
            | dw::DW_FORM_data4
            | dw::DW_FORM_data8
            | dw::DW_FORM_udata
            | dw::DW_FORM_sdata
            | dw::DW_FORM_implicit_const
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lc(base: u64) -> ListCtx {
        ListCtx {
            base: Addr {
                sec: Some(1),
                off: base,
            },
            addr_base: None,
            addr_size: 8,
        }
    }

    fn list(key: u64, base: u64, at: u64, n: u32) -> Reference<ListCtx> {
        Reference {
            key: (7, key),
            value: lc(base),
            sec: 3,
            at,
            order: (0, n),
        }
    }

    fn view(key: u64, end: u64, at: u64, n: u32) -> Reference<u64> {
        Reference {
            key: (8, key),
            value: end,
            sec: 3,
            at,
            order: (0, n),
        }
    }

    /// What stretch `k` found (references numbered in the order given).
    fn found(k: u32, lists: Vec<Reference<ListCtx>>, views: Vec<Reference<u64>>) -> Found {
        let at = |r: (u32, u32)| (k, r.1);
        Found {
            lists: lists
                .into_iter()
                .map(|r| Reference {
                    order: at(r.order),
                    ..r
                })
                .collect(),
            views: views
                .into_iter()
                .map(|r| Reference {
                    order: at(r.order),
                    ..r
                })
                .collect(),
            stretch: k,
            ..Default::default()
        }
    }

    fn name(_: usize) -> &'static str {
        ".debug_info"
    }

    /// [`merge`], with a walk error that came after everything in `all`.
    fn merged(all: Vec<Found>, error: Option<DwarfError>) -> Result<Facts> {
        let c = merge(all, error.map(|e| ((u32::MAX, u32::MAX), e)), name);
        match c.error {
            Some((_, e)) => Err(e),
            None => Ok(c.facts),
        }
    }

    /// Stretches walked in parallel merge into what one walk in unit order finds, and fail
    /// where it would have failed.
    #[test]
    fn merged_stretches_fail_where_a_sequential_walk_would() {
        // Agreeing references, in two stretches: one entry per list, lookups work.
        let facts = merged(
            vec![
                found(
                    0,
                    vec![list(0x40, 0, 0x10, 0), list(0x10, 5, 0x20, 1)],
                    vec![],
                ),
                found(
                    1,
                    vec![list(0x40, 0, 0x90, 0)],
                    vec![view(0x30, 0x40, 0x94, 1)],
                ),
            ],
            None,
        )
        .unwrap();
        assert_eq!(facts.list(7, 0x40), Some(lc(0)));
        assert_eq!(facts.list(7, 0x10), Some(lc(5)));
        assert_eq!(facts.list(7, 0x20), None);
        assert_eq!(facts.view(8, 0x30), Some(0x40));
        assert_eq!(facts.first_list(7), Some(0x10));
        let mut marks = facts.marks(7);
        assert_eq!(marks.list(0x10), Some(lc(5)));
        assert_eq!(marks.list(0x40), Some(lc(0)));
        assert_eq!(marks.list(0x10), Some(lc(5)), "going back still finds it");

        // The second stretch disagrees: the error names its reference.
        let e = merged(
            vec![
                found(0, vec![list(0x40, 0, 0x10, 0)], vec![]),
                found(
                    1,
                    vec![list(0x40, 8, 0x90, 0), list(0x40, 9, 0x98, 1)],
                    vec![],
                ),
            ],
            None,
        )
        .err()
        .unwrap();
        assert_eq!((e.offset, e.section.as_str()), (0x90, ".debug_info"));
        assert!(e.message.contains("list at 0x40"), "{e}");

        // Of two disagreements the earlier in walk order wins, whatever their kind.
        let e = merged(
            vec![
                found(
                    0,
                    vec![list(0x40, 0, 0x10, 0)],
                    vec![view(0x30, 0x40, 0x14, 1)],
                ),
                found(
                    1,
                    vec![list(0x40, 8, 0x98, 1)],
                    vec![view(0x30, 0x50, 0x90, 0)],
                ),
            ],
            None,
        )
        .err()
        .unwrap();
        assert_eq!(e.offset, 0x90);
        assert!(e.message.contains("view list"), "{e}");

        // A walk error comes after everything the walk found: a disagreement found before
        // it is reported first, else the walk error.
        let walk_error = DwarfError::new(".debug_info", 0x200, "bad DIE");
        let e = merged(
            vec![found(
                0,
                vec![list(0x40, 0, 0x10, 0), list(0x40, 1, 0x18, 1)],
                vec![],
            )],
            Some(walk_error.clone()),
        )
        .err()
        .unwrap();
        assert_eq!(e.offset, 0x18);
        let e = merged(
            vec![found(0, vec![list(0x40, 0, 0x10, 0)], vec![])],
            Some(walk_error.clone()),
        )
        .err()
        .unwrap();
        assert_eq!(e, walk_error);
    }

    /// Every DIE of `obj`'s `.debug_info` (no relocations applied: only positions matter) is
    /// stepped over both by gimli's `skip_attributes` and by [`steps`]/[`step`]; returns how
    /// many DIEs were compared.
    fn compare_steps(obj: &[u8]) -> usize {
        use object::{Object, ObjectSection};
        let file = object::File::parse(obj).unwrap();
        let section = |name: &str| {
            file.section_by_name(name)
                .and_then(|s| s.data().ok())
                .unwrap_or(&[])
        };
        let info = section(".debug_info");
        let abbrev = gimli::DebugAbbrev::new(section(".debug_abbrev"), LittleEndian);
        let mut units = gimli::DebugInfo::new(info, LittleEndian).units();
        let mut compared = 0;
        while let Some(header) = units.next().unwrap() {
            let unit_off = header.debug_info_offset().unwrap().0;
            let end = unit_off + header.length_including_self();
            let abbrevs = header.abbreviations(&abbrev).unwrap();
            let mut entries = header.entries_raw(&abbrevs, None).unwrap();
            while !entries.is_empty() {
                let Some(abbrev) = entries.read_abbreviation().unwrap() else {
                    continue;
                };
                let at = unit_off + entries.next_offset().0;
                entries.skip_attributes(abbrev.attributes()).unwrap();
                let gimli_end = unit_off + entries.next_offset().0;
                if let Some(steps) = steps(abbrev.attributes(), header.encoding()) {
                    assert_eq!(
                        step(info, at, end, &steps),
                        Some(gimli_end),
                        "DIE attributes at {at:#x}: {:?}",
                        abbrev.attributes()
                    );
                    compared += 1;
                }
            }
        }
        compared
    }

    /// [`Plans::step_over`] steps over DIEs exactly as gimli does, for every form gcc writes
    /// (DWARF 2 to 5) and for the kernel's objects when the Linux corpus is there.
    #[test]
    fn raw_steps_match_gimli() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("t.c");
        std::fs::write(
            &c,
            r#"
            struct s { int a : 3; char name[16]; union { long l; double d; } u; };
            static const char *names[] = { "a", "bc" };
            __int128 wide = 1; _Complex double z;
            int f(struct s *p, int n, ...) {
                int vla[n]; for (int i = 0; i < n; i++) vla[i] = p->a + i;
                if (n > 3) goto out; return vla[n - 1] + (int)p->u.l;
                out: return names[n & 1][0];
            }
            static inline int g(int x) { return x * 3; }
            int h(int y) { return g(y) + g(y + 1); }
            "#,
        )
        .unwrap();
        let mut compared = 0;
        for flags in [
            &["-O2", "-gdwarf-5"][..],
            &["-O2", "-gdwarf-4"],
            &["-O0", "-gdwarf-3"],
            &["-O1", "-gdwarf-2", "-gstrict-dwarf"],
            &["-O2", "-gdwarf-5", "-gsplit-dwarf"],
        ] {
            let o = dir.path().join("t.o");
            let out = std::process::Command::new("gcc")
                .args(flags)
                .arg("-c")
                .arg(&c)
                .arg("-o")
                .arg(&o)
                .current_dir(dir.path())
                .output()
                .expect("gcc is required");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            compared += compare_steps(&std::fs::read(&o).unwrap());
        }
        let tree = std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".cache/afterburn/linux-6.12/build-dwarf"))
            .filter(|t| t.is_dir());
        match tree {
            Some(t) => {
                for o in ["kernel/sched/core.o", "mm/memory.o", "fs/namei.o"] {
                    if let Ok(data) = std::fs::read(t.join(o)) {
                        compared += compare_steps(&data);
                    }
                }
            }
            None => {
                eprintln!("SKIPPED: kernel objects (no ~/.cache/afterburn/linux-6.12/build-dwarf)")
            }
        }
        assert!(compared > 100, "only {compared} DIEs compared");
    }
}
