//! `.debug_aranges`: each tuple's address keeps its relocation; its length (no relocation)
//! becomes `map(address + length) - map(address)`, patched in place.

use super::bytes::{uint_bytes, Cursor};
use super::lists::{unit_end, unit_length};
use super::{patched, Change, Ctx, Input, Result};

/// Patches a `.debug_aranges` section.
pub(super) fn rewrite(ctx: &Ctx<'_>, inp: &Input<'_>) -> Result<Option<Change>> {
    let mut data = inp.data.to_vec();
    let mut pos = 0usize;
    while pos < inp.data.len() {
        let start = pos;
        let mut c = Cursor::at(inp.data, start, &inp.name);
        let (len, osz) = unit_length(&mut c)?;
        let after_len = c.pos();
        let end = unit_end(inp, start, after_len, len)?;
        let mut c = Cursor::at(&inp.data[..end], after_len, &inp.name);
        let version = c.u16()?;
        if version != 2 {
            return Err(c.err_at(start, format!("aranges version {version}")));
        }
        c.uint(osz)?; // debug_info_offset (relocated; the engine maps it)
        let asz = c.u8()?;
        if asz != 4 && asz != 8 {
            return Err(c.err_at(start, format!("address size {asz}")));
        }
        if c.u8()? != 0 {
            return Err(c.err_at(start, "segment selectors are not supported"));
        }
        let size = usize::from(asz);
        let tuple = 2 * size;
        let mut p = start + (c.pos() - start).div_ceil(tuple) * tuple;
        while p + tuple <= end {
            c.set_pos(p);
            let addr = c.uint(asz)?;
            let length = c.uint(asz)?;
            let (a, relocated) = ctx.field(inp, p as u64, addr)?;
            inp.no_reloc_in(
                (p + size) as u64,
                (p + tuple) as u64,
                "an address range length",
            )?;
            if !relocated && addr == 0 && length == 0 {
                break;
            }
            let new = ctx.map_delta(inp, (p + size) as u64, a, length)?;
            if new != length {
                let b = uint_bytes(new, size)
                    .ok_or_else(|| inp.err((p + size) as u64, "new length does not fit"))?;
                if let Some(dst) = data.get_mut(p + size..p + tuple) {
                    dst.copy_from_slice(&b);
                }
            }
            p += tuple;
        }
        pos = end;
    }
    Ok(patched(inp, &data))
}
