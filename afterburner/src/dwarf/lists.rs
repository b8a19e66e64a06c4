//! Range and location lists.
//!
//! DWARF 5 (`.debug_rnglists`, `.debug_loclists`): contributions are walked entry by entry and
//! rebuilt. Offset pairs (from the base address) and lengths (from a start address) are
//! ULEB128 and are re-encoded; an encoding never gets shorter than the original, so the
//! section only grows and its own [`OffsetMap`](crate::offset_map::OffsetMap) (entry starts)
//! maps the `DW_FORM_sec_offset` relocations in `.debug_info`. Offsets tables (for
//! `DW_FORM_rnglistx` / `DW_FORM_loclistx`) and unit lengths are recomputed.
//!
//! DWARF 4 (`.debug_ranges`, `.debug_loc`): entries are fixed-size pairs, patched in place. A
//! pair with relocations holds absolute locations (mapped through its relocations); a pair
//! without is relative to the base address.
//!
//! The base address at the start of a list is that of the unit that references it
//! ([`Facts::lists`]); a list nobody references may hold no base-relative entry.

use super::bytes::{push_uleb, uint_bytes, Cursor};
use super::info::{debug_addr, Facts, ListCtx, Marks};
use super::{patched, unchanged_as_none, Addr, Change, Ctx, Input, Out, Result};

/// `DW_RLE_*` / `DW_LLE_*` entry kinds that share encodings.
const END_OF_LIST: u8 = 0x00;
const BASE_ADDRESSX: u8 = 0x01;
const STARTX_ENDX: u8 = 0x02;
const STARTX_LENGTH: u8 = 0x03;
const OFFSET_PAIR: u8 = 0x04;
/// `DW_LLE_default_location` (loclists only).
const DEFAULT_LOCATION: u8 = 0x05;
/// `DW_RLE_base_address` = 5, `DW_LLE_base_address` = 6.
const RLE_BASE_ADDRESS: u8 = 0x05;
const RLE_START_END: u8 = 0x06;
const RLE_START_LENGTH: u8 = 0x07;
const LLE_BASE_ADDRESS: u8 = 0x06;
const LLE_START_END: u8 = 0x07;
const LLE_START_LENGTH: u8 = 0x08;
/// `DW_LLE_GNU_view_pair` (GCC's location views in DWARF 5).
const LLE_GNU_VIEW_PAIR: u8 = 0x09;

/// Rebuilds a `.debug_rnglists` or `.debug_loclists` section.
pub(super) fn rewrite_v5(ctx: &Ctx<'_>, inp: &Input<'_>, facts: &Facts) -> Result<Option<Change>> {
    let is_loc = inp.name == ".debug_loclists";
    let mut out = Out::new(inp);
    let mut marks = facts.marks(inp.index);
    let mut pos = 0usize;
    while pos < inp.data.len() {
        pos = contribution(ctx, inp, &mut marks, is_loc, pos, &mut out)?;
    }
    Ok(unchanged_as_none(inp, out.finish(inp, false, || false)?))
}

/// Unit length field at `pos`: (length, offset size, position after the field).
pub(super) fn unit_length(c: &mut Cursor<'_>) -> Result<(u64, u8)> {
    let at = c.pos();
    let len32 = c.u32()?;
    match len32 {
        0xffff_ffff => Ok((c.uint(8)?, 8)),
        0xffff_fff0.. => Err(c.err_at(at, "reserved unit length")),
        _ => Ok((u64::from(len32), 4)),
    }
}

/// The end of a unit whose length field ends at `after_len`.
pub(super) fn unit_end(inp: &Input<'_>, at: usize, after_len: usize, len: u64) -> Result<usize> {
    usize::try_from(len)
        .ok()
        .and_then(|l| after_len.checked_add(l))
        .filter(|&e| e <= inp.data.len())
        .ok_or_else(|| inp.err(at as u64, "unit extends past the end of the section"))
}

fn contribution(
    ctx: &Ctx<'_>,
    inp: &Input<'_>,
    marks: &mut Marks<'_>,
    is_loc: bool,
    start: usize,
    out: &mut Out,
) -> Result<usize> {
    let mut c = Cursor::at(inp.data, start, &inp.name);
    let (len, osz) = unit_length(&mut c)?;
    let after_len = c.pos();
    let end = unit_end(inp, start, after_len, len)?;
    let data = &inp.data[..end];
    let mut c = Cursor::at(data, after_len, &inp.name);
    let version = c.u16()?;
    if version != 5 {
        return Err(c.err_at(start, format!("list unit version {version} (expected 5)")));
    }
    let addr_size = c.u8()?;
    if addr_size != 4 && addr_size != 8 {
        return Err(c.err_at(start, format!("address size {addr_size}")));
    }
    if c.u8()? != 0 {
        return Err(c.err_at(start, "segment selectors are not supported"));
    }
    let count = c.u32()?;
    let table = c.pos();
    let entries = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(usize::from(osz)))
        .and_then(|n| n.checked_add(table))
        .filter(|&e| e <= end)
        .ok_or_else(|| c.err_at(table, "offsets table runs past the unit"))?;

    out.sync(start as u64);
    let new_start = out.len();
    out.copy(inp, start, table)?;
    let new_table = out.len();
    out.replace(inp, table, entries, &vec![0; entries - table])?;
    let mut old_offsets = Vec::new();
    let mut tc = Cursor::at(data, table, &inp.name);
    for _ in 0..count {
        old_offsets.push(tc.uint(osz)?);
    }

    // (original, new) offset of every entry start, in increasing order.
    let mut starts: Vec<(usize, u64)> = Vec::new();
    let mut list: Option<ListCtx> = None;
    let mut base: Option<Addr> = None;
    let mut p = entries;
    while p < end {
        if let Some(l) = marks.view(p as u64) {
            // A view list (ULEB128 pairs, no relocations): copied as it is.
            let l = usize::try_from(l)
                .ok()
                .filter(|&l| l <= end)
                .ok_or_else(|| inp.err(p as u64, "view list runs past its unit"))?;
            out.sync(p as u64);
            starts.push((p, out.pos()));
            out.copy(inp, p, l)?;
            if l > p {
                p = l;
                continue;
            }
        }
        if let Some(lc) = marks.list(p as u64) {
            list = Some(lc);
            base = Some(lc.base);
        }
        out.sync(p as u64);
        starts.push((p, out.pos()));
        let mut c = Cursor::at(data, p, &inp.name);
        let kind = c.u8()?;
        out.copy(inp, p, p + 1)?;
        let mut e = Entry {
            ctx,
            inp,
            c,
            out: &mut *out,
            addr_size,
        };
        match (kind, is_loc) {
            (END_OF_LIST, _) => {
                list = None;
                base = None;
            }
            (BASE_ADDRESSX, _) => {
                let i = e.uleb_copy()?;
                base = Some(e.indexed(p, list, i)?);
            }
            (STARTX_ENDX, _) => {
                e.uleb_copy()?;
                e.uleb_copy()?;
                e.expr(is_loc)?;
            }
            (STARTX_LENGTH, _) => {
                let i = e.uleb_copy()?;
                let s = e.indexed(p, list, i)?;
                e.uleb_delta(s)?;
                e.expr(is_loc)?;
            }
            (OFFSET_PAIR, _) => {
                let b = base.ok_or_else(|| {
                    inp.err(
                        p as u64,
                        "offset pair with no known base address (list not referenced)",
                    )
                })?;
                e.uleb_delta(b)?;
                e.uleb_delta(b)?;
                e.expr(is_loc)?;
            }
            (DEFAULT_LOCATION, true) => e.expr(true)?,
            (RLE_BASE_ADDRESS, false) | (LLE_BASE_ADDRESS, true) => {
                base = Some(e.addr()?);
            }
            (RLE_START_END, false) | (LLE_START_END, true) => {
                e.addr()?;
                e.addr()?;
                e.expr(is_loc)?;
            }
            (RLE_START_LENGTH, false) | (LLE_START_LENGTH, true) => {
                let s = e.addr()?;
                e.uleb_delta(s)?;
                e.expr(is_loc)?;
            }
            (LLE_GNU_VIEW_PAIR, true) => {
                e.uleb_copy()?;
                e.uleb_copy()?;
            }
            _ => {
                return Err(inp.err(p as u64, format!("unknown list entry kind {kind:#x}")));
            }
        }
        p = e.c.pos();
    }

    // Offsets table and unit length.
    let new_end = out.len();
    for (i, &o) in old_offsets.iter().enumerate() {
        let at = table + i * usize::from(osz);
        let target = usize::try_from(o)
            .ok()
            .and_then(|o| o.checked_add(table))
            .and_then(|t| {
                starts
                    .binary_search_by_key(&t, |e| e.0)
                    .ok()
                    .map(|i| starts[i].1)
            })
            .ok_or_else(|| inp.err(at as u64, "offsets table entry does not point at an entry"))?;
        let new = target - new_table as u64;
        let b = uint_bytes(new, usize::from(osz))
            .ok_or_else(|| inp.err(at as u64, "offsets table entry overflows"))?;
        out.patch(inp, new_table + i * usize::from(osz), &b)?;
    }
    let new_len = (new_end - (new_start + after_len - start)) as u64;
    let (len_at, len_size) = if osz == 8 {
        (new_start + 4, 8)
    } else {
        (new_start, 4)
    };
    let b = uint_bytes(new_len, len_size)
        .ok_or_else(|| inp.err(start as u64, "unit length overflows"))?;
    out.patch(inp, len_at, &b)?;
    Ok(end)
}

/// One entry being copied or re-encoded.
struct Entry<'c, 'd, 'o> {
    ctx: &'c Ctx<'d>,
    inp: &'c Input<'d>,
    c: Cursor<'c>,
    out: &'o mut Out,
    addr_size: u8,
}

impl Entry<'_, '_, '_> {
    /// Copies a ULEB128 operand unchanged.
    fn uleb_copy(&mut self) -> Result<u64> {
        let a = self.c.pos();
        let v = self.c.uleb()?;
        self.out.copy(self.inp, a, self.c.pos())?;
        Ok(v)
    }

    /// A ULEB128 delta from `base`, re-encoded as `map(base + d) - map(base)` in at least its
    /// original width.
    fn uleb_delta(&mut self, base: Addr) -> Result<()> {
        let a = self.c.pos();
        let d = self.c.uleb()?;
        let b = self.c.pos();
        let new = self.ctx.map_delta(self.inp, a as u64, base, d)?;
        if new == d {
            return self.out.copy(self.inp, a, b);
        }
        let mut bytes = Vec::new();
        push_uleb(&mut bytes, new, b - a);
        self.out.replace(self.inp, a, b, &bytes)
    }

    /// Copies an address field (its relocation is mapped later) and returns its location.
    fn addr(&mut self) -> Result<Addr> {
        let a = self.c.pos();
        let raw = self.c.uint(self.addr_size)?;
        let (addr, _) = self.ctx.field(self.inp, a as u64, raw)?;
        self.out.copy(self.inp, a, self.c.pos())?;
        Ok(addr)
    }

    /// The `.debug_addr` entry `i` of the list's unit.
    fn indexed(&self, at: usize, list: Option<ListCtx>, i: u64) -> Result<Addr> {
        let (sec, base) = list.and_then(|l| l.addr_base).ok_or_else(|| {
            self.inp.err(
                at as u64,
                "address index in a list whose unit has no DW_AT_addr_base",
            )
        })?;
        debug_addr(self.ctx, sec, base, i, self.addr_size)
    }

    /// Copies a counted location description (loclists only).
    fn expr(&mut self, is_loc: bool) -> Result<()> {
        if !is_loc {
            return Ok(());
        }
        let a = self.c.pos();
        let n = self.c.uleb()?;
        let n = usize::try_from(n).map_err(|_| self.c.err_at(a, "expression too long"))?;
        self.c.bytes(n)?;
        self.out.copy(self.inp, a, self.c.pos())
    }
}

/// Patches a `.debug_ranges` or `.debug_loc` section in place.
///
/// The section is walked sequentially from the first referenced list: the base address is
/// reset at every referenced list start and by base address selection entries, and it is kept
/// across a `(0, 0)` end-of-list pair. GCC writes an empty range at the base address as
/// `(0, 0)`, which ends the list early for every reader but still has its (dead) successors
/// computed by the assembler; they are remapped like live entries.
pub(super) fn rewrite_v4(ctx: &Ctx<'_>, inp: &Input<'_>, facts: &Facts) -> Result<Option<Change>> {
    let is_loc = inp.name == ".debug_loc";
    let mut data = inp.data.to_vec();
    let Some(first) = facts.first_list(inp.index) else {
        return Ok(None);
    };
    let first_view = facts.first_view(inp.index);
    let mut p = usize::try_from(first_view.map_or(first, |v| v.min(first)))
        .map_err(|_| inp.err(first, "list offset out of range"))?;
    let mut base = Addr::ZERO;
    let mut asz = 8u8;
    while p < inp.data.len() {
        if let Some(l) = facts.view(inp.index, p as u64) {
            let l = usize::try_from(l)
                .ok()
                .filter(|&l| l >= p && l <= inp.data.len())
                .ok_or_else(|| inp.err(p as u64, "view list runs past the section"))?;
            if l > p {
                p = l;
                continue;
            }
        }
        if let Some(lc) = facts.list(inp.index, p as u64) {
            base = lc.base;
            asz = lc.addr_size;
        }
        let size = usize::from(asz);
        let max = if asz == 8 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let mut c = Cursor::at(inp.data, p, &inp.name);
        let at = p;
        let begin = c.uint(asz)?;
        let end = c.uint(asz)?;
        p = c.pos();
        let rb = inp.reloc_at(at as u64).is_some();
        let re = inp.reloc_at((at + size) as u64).is_some();
        if !rb && !re && begin == 0 && end == 0 {
            continue;
        }
        if !rb && begin == max {
            base = ctx.field(inp, (at + size) as u64, end)?.0;
            continue;
        }
        match (rb, re) {
            (true, true) => {
                // Absolute locations through relocations; valid only from base 0.
                if base != Addr::ZERO {
                    return Err(inp.err(
                        at as u64,
                        "relocated list entry relative to a non-zero base address",
                    ));
                }
                ctx.field(inp, at as u64, begin)?;
                ctx.field(inp, (at + size) as u64, end)?;
            }
            (false, false) => {
                for (field, v) in [(at, begin), (at + size, end)] {
                    let new = ctx.map_delta(inp, field as u64, base, v)?;
                    if new != v {
                        let b = uint_bytes(new, size).ok_or_else(|| {
                            inp.err(field as u64, "mapped list offset does not fit")
                        })?;
                        if let Some(dst) = data.get_mut(field..field + size) {
                            dst.copy_from_slice(&b);
                        }
                    }
                }
            }
            _ => {
                return Err(inp.err(
                    at as u64,
                    "list entry with a relocation on only one of its two addresses",
                ))
            }
        }
        if is_loc {
            let n = c.u16()?;
            c.bytes(usize::from(n))?;
            p = c.pos();
        }
    }
    Ok(patched(inp, &data))
}
