//! `.eh_frame` and `.debug_frame`: call frame information.
//!
//! CIEs are copied unchanged (their initial instructions may not advance the location). Each
//! FDE is rebuilt: the CIE pointer is recomputed for the new layout, the initial location keeps
//! its relocation (the addend is mapped with the others), the address range becomes
//! `map(start + range) - map(start)` in the same encoding, augmentation data (LSDA pointer) is
//! copied with its relocations, and the CFA program is re-emitted: every `DW_CFA_advance_loc*`
//! is recomputed so that the row it opens starts at `map(L)` for its original location `L`,
//! using the smallest advance form no smaller than the original. Records are padded with
//! `DW_CFA_nop` so that record ends keep the producer's alignment (GNU as aligns them to 4 in
//! `.eh_frame`, to 8 for its last record and in `.debug_frame`; GCC's own CFI to 8). A record can therefore get
//! shorter by a few padding bytes; the section's own offset map (points at record starts) exists
//! only when no record shrank, which is fine because nothing outside the section points into it
//! (checked: otherwise an error). CIE pointers, the only references into the section, are
//! recomputed here.
//!
//! Functions with an LSDA (`.gcc_except_table` call-site tables hold code offsets without
//! relocations) are refused when bytes were inserted inside them.

use std::collections::BTreeMap;

use super::bytes::{uint_bytes, Cursor};
use super::{unchanged_as_none, Change, Ctx, Input, Out, Result};

/// What an FDE needs from its CIE.
#[derive(Clone, Copy, Debug)]
struct Cie {
    code_align: u64,
    /// Pointer encoding of the FDE's initial location and range (`DW_EH_PE_*`).
    fde_enc: u8,
    /// Whether FDEs carry augmentation data (`z`).
    has_aug: bool,
    /// Whether that data holds an LSDA pointer (`L`).
    has_lsda: bool,
    addr_size: u8,
}

/// Rebuilds `.eh_frame` (`is_eh`) or `.debug_frame`.
pub(super) fn rewrite(ctx: &Ctx<'_>, inp: &Input<'_>, is_eh: bool) -> Result<Option<Change>> {
    let data = inp.data;
    let mut out = Out::new(inp);
    let mut cies: BTreeMap<u64, (u64, Cie)> = BTreeMap::new();
    let (record_align, last_align) = alignments(data);
    let mut pos = 0usize;
    while pos < data.len() {
        let start = pos;
        out.sync(start as u64);
        let mut c = Cursor::at(data, start, &inp.name);
        let len = c.u32()?;
        if len == 0xffff_ffff {
            return Err(c.err_at(start, "64-bit CFI records are not supported"));
        }
        if len == 0 {
            // Terminator.
            out.copy(inp, start, start + 4)?;
            pos = start + 4;
            continue;
        }
        let body = start + 4;
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| body.checked_add(l))
            .filter(|&e| e <= data.len())
            .ok_or_else(|| c.err_at(start, "record extends past the end of the section"))?;
        let rec = &data[..end];
        let mut c = Cursor::at(rec, body, &inp.name);
        let id = c.u32()?;
        let is_cie = if is_eh { id == 0 } else { id == 0xffff_ffff };
        if is_cie {
            let cie = parse_cie(&mut c, is_eh)?;
            cies.insert(start as u64, (out.pos(), cie));
            out.copy(inp, start, end)?;
        } else {
            let cie_at = if is_eh {
                (body as u64).checked_sub(u64::from(id))
            } else {
                match inp.reloc_at(body as u64) {
                    Some(rel) => {
                        let t = ctx.reloc_target(inp, &rel)?;
                        (t.sec == Some(inp.index)).then_some(t.off)
                    }
                    None => Some(u64::from(id)),
                }
            };
            let (new_cie, cie) = cie_at
                .and_then(|a| cies.get(&a).copied())
                .ok_or_else(|| c.err_at(body, "CIE pointer does not name an earlier CIE"))?;
            Fde {
                ctx,
                inp,
                cie,
                is_eh,
                start,
                end,
                align: if end == data.len() {
                    last_align
                } else {
                    record_align
                },
            }
            .rewrite(&mut c, new_cie, &mut out)?;
        }
        pos = end;
    }
    Ok(unchanged_as_none(
        inp,
        out.finish(inp, true, || ctx.is_targeted(inp.index))?,
    ))
}

/// How the producer aligned record ends: the largest of 8, 4, 2, 1 dividing every original
/// record end (GCC: 8; GNU as: 4 in `.eh_frame`, 8 in `.debug_frame`), and for the last record
/// the largest dividing its own end (GNU as aligns the end of `.eh_frame` to 8).
fn alignments(data: &[u8]) -> (usize, usize) {
    let best = |end: usize| {
        [8, 4, 2]
            .into_iter()
            .find(|&a| end.is_multiple_of(a))
            .unwrap_or(1)
    };
    let mut all = 8;
    let mut last = 1;
    let mut pos = 0usize;
    while let Some(b) = data.get(pos..pos + 4) {
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if len == 0xffff_ffff {
            break;
        }
        let Some(end) = usize::try_from(len)
            .ok()
            .and_then(|l| (pos + 4).checked_add(l))
        else {
            break;
        };
        if end > data.len() {
            break;
        }
        all = all.min(best(end));
        last = best(end);
        pos = end;
    }
    (all, last.max(all))
}

/// Size of a pointer in encoding `enc` (`None` for LEB128 forms).
fn enc_size(enc: u8, addr_size: u8) -> Option<u8> {
    match enc & 0x0f {
        0x00 => Some(addr_size),
        0x02 | 0x0a => Some(2),
        0x03 | 0x0b => Some(4),
        0x04 | 0x0c => Some(8),
        _ => None,
    }
}

fn parse_cie(c: &mut Cursor<'_>, is_eh: bool) -> Result<Cie> {
    let at = c.pos();
    let version = c.u8()?;
    let ok = if is_eh {
        matches!(version, 1 | 3)
    } else {
        matches!(version, 1 | 3 | 4)
    };
    if !ok {
        return Err(c.err_at(at, format!("CIE version {version}")));
    }
    let aug = c.cstr()?.to_vec();
    let mut addr_size = 8;
    if !is_eh && version >= 4 {
        addr_size = c.u8()?;
        if c.u8()? != 0 {
            return Err(c.err_at(at, "segment selectors are not supported"));
        }
    }
    let code_align = c.uleb()?;
    c.sleb()?; // data alignment
    if version == 1 {
        c.u8()?;
    } else {
        c.uleb()?;
    }
    let mut cie = Cie {
        code_align,
        fde_enc: 0,
        has_aug: false,
        has_lsda: false,
        addr_size,
    };
    if aug.first() == Some(&b'z') {
        cie.has_aug = true;
        let n = c.uleb()?;
        let aug_start = c.pos();
        for &ch in &aug[1..] {
            match ch {
                b'L' => {
                    c.u8()?;
                    cie.has_lsda = true;
                }
                b'R' => cie.fde_enc = c.u8()?,
                b'P' => {
                    let enc = c.u8()?;
                    match enc_size(enc, addr_size) {
                        Some(s) => {
                            c.uint(s)?;
                        }
                        None if enc & 0x0f == 0x01 => {
                            c.uleb()?;
                        }
                        None if enc & 0x0f == 0x09 => {
                            c.sleb()?;
                        }
                        None => return Err(c.err_at(at, "bad personality encoding")),
                    }
                }
                b'S' | b'B' | b'G' => {}
                _ => {
                    return Err(c.err_at(
                        at,
                        format!(
                            "unknown CIE augmentation {:?}",
                            String::from_utf8_lossy(&aug)
                        ),
                    ))
                }
            }
        }
        if (c.pos() - aug_start) as u64 > n {
            return Err(c.err_at(aug_start, "CIE augmentation data overruns its length"));
        }
        let skip = usize::try_from(n).map_err(|_| c.err_at(aug_start, "bad length"))?;
        c.set_pos(aug_start);
        c.bytes(skip)?;
    } else if !aug.is_empty() {
        return Err(c.err_at(
            at,
            format!(
                "unknown CIE augmentation {:?}",
                String::from_utf8_lossy(&aug)
            ),
        ));
    }
    // Initial instructions: must not move the location.
    let mut loc_free = true;
    while let Some(insn) = next_insn(c)? {
        if !matches!(insn.kind, InsnKind::Other | InsnKind::Nop) {
            loc_free = false;
        }
    }
    if !loc_free {
        return Err(c.err_at(at, "CIE initial instructions advance the location"));
    }
    Ok(cie)
}

/// One CFA instruction: original byte range and what it does to the location.
#[derive(Clone, Copy, Debug)]
struct Insn {
    a: usize,
    b: usize,
    kind: InsnKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InsnKind {
    Nop,
    /// `DW_CFA_advance_loc*`: delta in code units and form (0: 6-bit, 1: u8, 2: u16, 3: u32).
    Advance(u64, u8),
    SetLoc,
    Other,
}

/// Parses the next CFA instruction; `None` at the end of the record.
fn next_insn(c: &mut Cursor<'_>) -> Result<Option<Insn>> {
    let a = c.pos();
    let Ok(op) = c.u8() else {
        return Ok(None);
    };
    let low = op & 0x3f;
    let kind = match op >> 6 {
        1 => InsnKind::Advance(u64::from(low), 0),
        2 => {
            c.uleb()?;
            InsnKind::Other
        }
        3 => InsnKind::Other,
        _ => match low {
            0x00 => InsnKind::Nop,
            0x01 => InsnKind::SetLoc,
            0x02 => InsnKind::Advance(u64::from(c.u8()?), 1),
            0x03 => InsnKind::Advance(u64::from(c.u16()?), 2),
            0x04 => InsnKind::Advance(u64::from(c.u32()?), 3),
            // restore_extended, undefined, same_value, def_cfa_register, def_cfa_offset,
            // GNU_args_size
            0x06 | 0x07 | 0x08 | 0x0d | 0x0e | 0x2e => {
                c.uleb()?;
                InsnKind::Other
            }
            // offset_extended, register, def_cfa, val_offset, GNU_negative_offset_extended
            0x05 | 0x09 | 0x0c | 0x14 | 0x2f => {
                c.uleb()?;
                c.uleb()?;
                InsnKind::Other
            }
            // remember_state, restore_state, GNU_window_save
            0x0a | 0x0b | 0x2d => InsnKind::Other,
            // def_cfa_expression
            0x0f => {
                block(c)?;
                InsnKind::Other
            }
            // expression, val_expression
            0x10 | 0x16 => {
                c.uleb()?;
                block(c)?;
                InsnKind::Other
            }
            // offset_extended_sf, def_cfa_sf, val_offset_sf
            0x11 | 0x12 | 0x15 => {
                c.uleb()?;
                c.sleb()?;
                InsnKind::Other
            }
            // def_cfa_offset_sf
            0x13 => {
                c.sleb()?;
                InsnKind::Other
            }
            _ => return Err(c.err_at(a, format!("unknown CFA instruction {op:#04x}"))),
        },
    };
    Ok(Some(Insn {
        a,
        b: c.pos(),
        kind,
    }))
}

fn block(c: &mut Cursor<'_>) -> Result<()> {
    let at = c.pos();
    let n = c.uleb()?;
    let n = usize::try_from(n).map_err(|_| c.err_at(at, "block too long"))?;
    c.bytes(n)?;
    Ok(())
}

/// One FDE being rebuilt.
struct Fde<'c, 'd> {
    ctx: &'c Ctx<'d>,
    inp: &'c Input<'d>,
    cie: Cie,
    is_eh: bool,
    start: usize,
    end: usize,
    /// Alignment of the record's end in the new section.
    align: usize,
}

impl Fde<'_, '_> {
    /// `c` is positioned after the CIE pointer.
    fn rewrite(&self, c: &mut Cursor<'_>, new_cie: u64, out: &mut Out) -> Result<()> {
        let (ctx, inp, cie) = (self.ctx, self.inp, self.cie);
        let start = self.start;
        let body = start + 4;
        let new_start = out.len();
        out.replace(inp, start, body, &[0; 4])?;
        // CIE pointer.
        if self.is_eh {
            let v = (new_start as u64 + 4)
                .checked_sub(new_cie)
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| inp.err(body as u64, "CIE pointer out of range"))?;
            out.replace(inp, body, body + 4, &v.to_le_bytes())?;
        } else if let Some(rel) = inp.reloc_at(body as u64) {
            // Relocated against this section: the addend names the CIE's new offset.
            let sym = ctx.sym(inp, &rel)?;
            let addend = i64::try_from(new_cie)
                .ok()
                .zip(i64::try_from(sym.value).ok())
                .map(|(c, v)| c - v)
                .ok_or_else(|| inp.err(body as u64, "CIE pointer out of range"))?;
            out.copy(inp, body, body + 4)?;
            out.flush(inp)?;
            if let Some(r) = out.relocs.last_mut() {
                r.addend = addend;
            }
        } else {
            let v = u32::try_from(new_cie)
                .map_err(|_| inp.err(body as u64, "CIE pointer out of range"))?;
            out.replace(inp, body, body + 4, &v.to_le_bytes())?;
        }

        // Initial location and address range.
        let enc = if self.is_eh { cie.fde_enc } else { 0 };
        let size = enc_size(enc, cie.addr_size)
            .ok_or_else(|| c.err(format!("FDE pointer encoding {enc:#x} is not supported")))?;
        if enc & 0x70 > 0x10 || enc & 0x80 != 0 {
            return Err(c.err(format!("FDE pointer application {enc:#x} is not supported")));
        }
        let signed = enc & 0x08 != 0;
        let pc_at = c.pos();
        let raw = c.uint(size)?;
        let (begin, relocated) = ctx.field(inp, pc_at as u64, raw)?;
        if !relocated && enc & 0x70 == 0x10 {
            return Err(c.err_at(pc_at, "PC-relative initial location without a relocation"));
        }
        out.copy(inp, pc_at, c.pos())?;
        let range_at = c.pos();
        let range = c.uint(size)?;
        let limit = if signed {
            1u64 << (u32::from(size) * 8 - 1)
        } else {
            u64::MAX
        };
        if range >= limit {
            return Err(c.err_at(range_at, "negative FDE address range"));
        }
        let new_range = ctx.map_delta(inp, range_at as u64, begin, range)?;
        let range_bytes = uint_bytes(new_range, usize::from(size))
            .filter(|_| new_range < limit)
            .ok_or_else(|| c.err_at(range_at, "new FDE address range does not fit"))?;
        out.replace(inp, range_at, c.pos(), &range_bytes)?;

        // Augmentation data (LSDA pointer).
        if cie.has_aug {
            let a = c.pos();
            let n = c.uleb()?;
            let n = usize::try_from(n).map_err(|_| c.err_at(a, "bad augmentation length"))?;
            let data_at = c.pos();
            let aug = c.bytes(n)?;
            let lsda = cie.has_lsda
                && (aug.iter().any(|&b| b != 0)
                    || !inp.reloc_range(data_at as u64, c.pos() as u64).is_empty());
            if lsda && new_range != range {
                return Err(c.err_at(
                    pc_at,
                    "bytes inserted inside a function with an LSDA: its .gcc_except_table \
                     call-site offsets cannot be rewritten",
                ));
            }
            out.copy(inp, a, c.pos())?;
        }

        // CFA program.
        let mut insns = Vec::new();
        while let Some(i) = next_insn(c)? {
            insns.push(i);
        }
        let body_end = insns
            .iter()
            .rposition(|i| i.kind != InsnKind::Nop)
            .map_or(0, |k| k + 1);
        let mut loc = begin;
        let mut new_loc = ctx.map(begin);
        for i in &insns[..body_end] {
            match i.kind {
                InsnKind::Advance(units, form) => {
                    let d = units
                        .checked_mul(cie.code_align)
                        .ok_or_else(|| inp.err(i.a as u64, "advance overflows"))?;
                    loc = ctx.add(inp, i.a as u64, loc, d)?;
                    let target = ctx.map(loc);
                    let nd = target.checked_sub(new_loc).ok_or_else(|| {
                        inp.err(i.a as u64, "CFA rows go backwards after mapping")
                    })?;
                    let align = cie.code_align.max(1);
                    if nd % align != 0 {
                        return Err(inp.err(
                            i.a as u64,
                            "mapped advance is not a multiple of the code alignment factor",
                        ));
                    }
                    let nunits = nd / align;
                    if nunits == units {
                        out.copy(inp, i.a, i.b)?;
                    } else {
                        let b = encode_advance(nunits, form)
                            .ok_or_else(|| inp.err(i.a as u64, "mapped advance exceeds 32 bits"))?;
                        out.replace(inp, i.a, i.b, &b)?;
                    }
                    new_loc = target;
                }
                InsnKind::SetLoc => {
                    return Err(inp.err(i.a as u64, "DW_CFA_set_loc is not supported"));
                }
                InsnKind::Nop | InsnKind::Other => out.copy(inp, i.a, i.b)?,
            }
        }
        // Trailing DW_CFA_nop padding: the record's end keeps the producer's alignment.
        let pad_from = insns.get(body_end).map_or(self.end, |i| i.a);
        out.replace(inp, pad_from, self.end, &[])?;
        let align = self.align;
        out.flush(inp)?;
        let new_end = out.data.len().div_ceil(align) * align;
        out.data.resize(new_end, 0);
        let total = new_end - new_start;
        let len = u32::try_from(total - 4)
            .map_err(|_| inp.err(start as u64, "record length overflows"))?;
        out.patch(inp, new_start, &len.to_le_bytes())?;
        Ok(())
    }
}

/// `DW_CFA_advance_loc*` for `units`, in the smallest form no smaller than `min_form`.
fn encode_advance(units: u64, min_form: u8) -> Option<Vec<u8>> {
    let units32 = u32::try_from(units).ok()?;
    if min_form == 0 && units < 0x40 {
        let u = u8::try_from(units).ok()?;
        return Some(vec![0x40 | u]);
    }
    if min_form <= 1 {
        if let Ok(u) = u8::try_from(units) {
            return Some(vec![0x02, u]);
        }
    }
    if min_form <= 2 {
        if let Ok(u) = u16::try_from(units) {
            let b = u.to_le_bytes();
            return Some(vec![0x03, b[0], b[1]]);
        }
    }
    let b = units32.to_le_bytes();
    Some(vec![0x04, b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_never_take_a_smaller_form() {
        assert_eq!(encode_advance(5, 0), Some(vec![0x45]));
        assert_eq!(encode_advance(63, 0), Some(vec![0x7f]));
        assert_eq!(encode_advance(64, 0), Some(vec![0x02, 64]));
        // An advance_loc1 stays advance_loc1 even when 6 bits would do.
        assert_eq!(encode_advance(5, 1), Some(vec![0x02, 5]));
        assert_eq!(encode_advance(300, 1), Some(vec![0x03, 0x2c, 0x01]));
        assert_eq!(encode_advance(5, 3), Some(vec![0x04, 5, 0, 0, 0]));
        assert_eq!(encode_advance(0x1_0000, 0), Some(vec![0x04, 0, 0, 1, 0]));
        assert_eq!(encode_advance(1 << 32, 0), None);
    }

    fn records(sizes: &[usize]) -> Vec<u8> {
        let mut v = Vec::new();
        for &s in sizes {
            v.extend_from_slice(&u32::try_from(s - 4).unwrap().to_le_bytes());
            v.resize(v.len() + s - 4, 0);
        }
        v
    }

    #[test]
    fn record_alignment_follows_the_producer() {
        // GNU as .eh_frame: ends at 0x18, 0x2c, 0x40, then the last one at 0x58.
        assert_eq!(alignments(&records(&[0x18, 0x14, 0x14, 0x18])), (4, 8));
        // GCC's own CFI: every end a multiple of 8.
        assert_eq!(alignments(&records(&[0x18, 0x18, 0x20])), (8, 8));
        // Unaligned producer.
        assert_eq!(alignments(&records(&[0x17, 0x14])), (1, 1));
        // Truncated or 64-bit records end the scan without panicking.
        assert_eq!(alignments(&[0xff, 0xff, 0xff, 0xff, 1, 2]), (8, 8));
        assert_eq!(alignments(&[0x40, 0, 0, 0, 1]), (8, 8));
    }
}
