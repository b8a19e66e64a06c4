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
use super::{patched, Addr, Ctx, DwarfError, Input, Rebuilt, Result};

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
    /// (list section, offset of a list) → its unit context.
    pub lists: BTreeMap<(usize, u64), ListCtx>,
    /// GCC location views: (location list section, offset of a view list) → offset of the
    /// location list it describes (the view list ends there).
    pub views: BTreeMap<(usize, u64), u64>,
    /// `.debug_info` section → in-place patches (offset, new bytes).
    pub patches: BTreeMap<usize, Vec<(u64, Vec<u8>)>>,
}

/// Applies relocations to section offsets read by gimli (unit headers, `DW_FORM_sec_offset`,
/// `DW_FORM_strp`, ...). Addresses are left raw: they are resolved by field offset instead.
#[derive(Clone, Copy)]
struct Relocator<'a> {
    ctx: &'a Ctx<'a>,
    inp: &'a Input<'a>,
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
        match self.inp.reloc_at(offset as u64) {
            None => Ok(value),
            Some(rel) => {
                let t = self
                    .ctx
                    .reloc_target(self.inp, rel)
                    .map_err(|_| gimli::Error::OffsetOutOfBounds(offset as u64))?;
                usize::try_from(t.off).map_err(|_| gimli::Error::OffsetOutOfBounds(t.off))
            }
        }
    }
}

type Reader<'a> = RelocateReader<EndianSlice<'a, LittleEndian>, Relocator<'a>>;

/// Walks every `.debug_info` section.
pub(super) fn collect(ctx: &Ctx<'_>) -> Result<Facts> {
    let mut facts = Facts::default();
    for inp in ctx.inputs.values().filter(|i| i.name == ".debug_info") {
        walk(ctx, inp, &mut facts)?;
    }
    Ok(facts)
}

/// Applies the patches found by [`collect`] to one `.debug_info` section.
pub(super) fn patch(ctx: &Ctx<'_>, inp: &Input<'_>, facts: &Facts) -> Result<Option<Rebuilt>> {
    let _ = ctx;
    let Some(patches) = facts.patches.get(&inp.index) else {
        return Ok(None);
    };
    let mut data = inp.data.to_vec();
    for (at, bytes) in patches {
        let a = usize::try_from(*at).map_err(|_| inp.err(*at, "offset out of range"))?;
        let dst = data
            .get_mut(a..a + bytes.len())
            .ok_or_else(|| inp.err(*at, "patch out of bounds"))?;
        dst.copy_from_slice(bytes);
    }
    Ok(patched(inp, data))
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

fn walk(ctx: &Ctx<'_>, inp: &Input<'_>, facts: &mut Facts) -> Result<()> {
    let relocator = Relocator { ctx, inp };
    let reader: Reader<'_> =
        RelocateReader::new(EndianSlice::new(inp.data, LittleEndian), relocator);
    let debug_info = gimli::DebugInfo::from(reader);
    let mut units = debug_info.units();
    let mut unit_at = 0u64;
    loop {
        let header = match units.next() {
            Ok(Some(h)) => h,
            Ok(None) => break,
            Err(e) => return Err(gerr(inp, unit_at, e)),
        };
        let unit_off = header.debug_info_offset().map_or(unit_at, |o| o.0 as u64);
        unit_at = unit_off + header.length_including_self() as u64;
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
        let mut entries = header
            .entries_raw(&abbrevs, None)
            .map_err(|e| gerr(inp, unit_off, e))?;

        let mut unit: Option<UnitCtx> = None;
        let mut attrs = Vec::new();
        while !entries.is_empty() {
            let die_at = unit_off + entries.next_offset().0 as u64;
            let abbrev = entries
                .read_abbreviation()
                .map_err(|e| gerr(inp, die_at, e))?;
            let Some(abbrev) = abbrev else { continue };
            attrs.clear();
            for spec in abbrev.attributes() {
                let at = unit_off + entries.next_offset().0 as u64;
                let attr = entries
                    .read_attribute(*spec)
                    .map_err(|e| gerr(inp, at, e))?;
                attrs.push((at, spec.form() == dw::DW_FORM_indirect, attr));
            }
            let u = match unit {
                Some(u) => u,
                None => {
                    let u = unit_ctx(ctx, inp, &attrs, version, addr_size)?;
                    unit = Some(u);
                    u
                }
            };
            let die = Die {
                ctx,
                inp,
                unit: u,
                version,
                addr_size,
                offset_size,
                die_at,
            };
            die.process(&attrs, facts)?;
        }
    }
    Ok(())
}

/// The section a relocated offset field at `at` points into: the relocation's symbol section,
/// or the only section called `default` when there is no relocation.
fn section_of(ctx: &Ctx<'_>, inp: &Input<'_>, at: u64, default: &str) -> Result<usize> {
    match inp.reloc_at(at) {
        Some(rel) => ctx
            .sym(inp, rel)?
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

fn unit_ctx(
    ctx: &Ctx<'_>,
    inp: &Input<'_>,
    attrs: &Attrs<'_>,
    version: u16,
    addr_size: u8,
) -> Result<UnitCtx> {
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
    let _ = version;
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
    version: u16,
    addr_size: u8,
    offset_size: u8,
    die_at: u64,
}

impl Die<'_, '_> {
    fn process(&self, attrs: &Attrs<'_>, facts: &mut Facts) -> Result<()> {
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
                    let Some(off) = attr.offset_value() else {
                        return Err(inp.err(*at, "unexpected form for DW_AT_GNU_locviews"));
                    };
                    let sec = self.list_section(*at, false)?;
                    views = Some((*at, sec, off as u64));
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
                    if let Some(prev) = facts.views.insert((sec, v), l) {
                        if prev != l {
                            return Err(inp.err(at, "view list shared by two location lists"));
                        }
                    }
                }
                _ => return Err(inp.err(at, "DW_AT_GNU_locviews without a location list after it")),
            }
        }
        for (at, attr) in consts {
            self.patch_const(facts, at, attr, low)?;
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

    fn add_list(&self, facts: &mut Facts, at: u64, sec: usize, off: u64) -> Result<()> {
        let lc = ListCtx {
            base: self.unit.base.unwrap_or(Addr::ZERO),
            addr_base: self.unit.addr_base,
            addr_size: self.addr_size,
        };
        match facts.lists.insert((sec, off), lc) {
            Some(prev) if prev != lc => Err(self.inp.err(
                at,
                format!("list at {off:#x} referenced from units with different base addresses"),
            )),
            _ => Ok(()),
        }
    }

    /// A constant-class `DW_AT_high_pc` (length from `low_pc`) or `DW_AT_entry_pc` (offset from
    /// `low_pc`): new value `map(low + v) - map(low)`, patched in the same form and width.
    fn patch_const(
        &self,
        facts: &mut Facts,
        at: u64,
        attr: &gimli::Attribute<Reader<'_>>,
        low: Option<Addr>,
    ) -> Result<()> {
        let inp = self.inp;
        let name = if attr.name() == dw::DW_AT_high_pc {
            "DW_AT_high_pc"
        } else {
            "DW_AT_entry_pc"
        };
        let v = attr
            .udata_value()
            .ok_or_else(|| inp.err(at, format!("{name}: negative constant")))?;
        let Some(low) = low else {
            if v == 0 {
                return Ok(());
            }
            return Err(inp.err(
                at,
                format!(
                    "{name} as a constant in a DIE without DW_AT_low_pc (DIE at {:#x})",
                    self.die_at
                ),
            ));
        };
        let new = self.ctx.map_delta(inp, at, low, v)?;
        if new == v {
            return Ok(());
        }
        let pos = usize::try_from(at).map_err(|_| inp.err(at, "offset out of range"))?;
        let form = attr.form();
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
                    return Err(inp.err(
                        at,
                        format!("{name}: new value {new:#x} does not fit the {len}-byte LEB128"),
                    ));
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
