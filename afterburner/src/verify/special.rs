//! Kernel tables whose meaning constrains the burnt layout beyond "every relocation designates
//! the mapped place". Each is read from the original object only; the rules are the kernel's:
//!
//! * `.altinstructions` (`struct alt_instr`; 14 bytes in Linux >= 6.3, 12 before: `s32
//!   instr_offset; s32 repl_offset; u16 cpuid | u32 ft_flags; u8 instrlen; u8
//!   replacementlen`). The two lengths are bytes, so they must equal the mapped lengths, and
//!   `apply_alternatives` copies the replacement over the original region, so
//!   `replacementlen <= instrlen` must keep holding. When a padded replacement outgrows its
//!   region, the region may grow by exactly the missing bytes of NOP padding at its end.
//! * `__jump_table` (`struct jump_entry`, 16 bytes: `s32 code; s32 target; long key`). The
//!   kernel sizes a site by decoding it: a 2-byte site (`66 90` or `jmp rel8`) is patched to a
//!   `jmp rel8`, so its target must stay within rel8 reach; a `66 90` may instead become the
//!   5-byte NOP `0f 1f 44 00 00` (`x86_nops[5]`), which the kernel patches to a `jmp rel32`.
//! * `.orc_unwind_ip` (`s32` per entry): an ORC entry describes the unwind state from its
//!   address on. Bytes inserted at an address execute in the state *after* the instruction
//!   before them, so an entry at an insertion point must designate the place right after that
//!   instruction, before the inserted bytes.

use super::elf::{Object, Place, Reloc};

/// Name of the alternatives table.
pub(crate) const ALTINSTRUCTIONS: &str = ".altinstructions";
/// Name of the jump-label table.
pub(crate) const JUMP_TABLE: &str = "__jump_table";
/// Name of the ORC instruction-pointer table.
pub(crate) const ORC_IP: &str = ".orc_unwind_ip";
/// Linux's 5-byte NOP (`x86_nops[5]`).
pub(crate) const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];
/// The 2-byte NOP of a disabled short jump label.
pub(crate) const NOP2: [u8; 2] = [0x66, 0x90];

/// `(section, offset)` designated by a `S + A` relocation.
pub(crate) fn place_of(o: &Object<'_>, r: &Reloc) -> Option<(usize, u64)> {
    let sym = o.symbols.get(r.sym)?;
    let Place::Section(x) = sym.place else {
        return None;
    };
    let v = i64::try_from(sym.value).ok()?.checked_add(r.addend)?;
    Some((x, u64::try_from(v).ok()?))
}

/// One `struct alt_instr`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AltEntry {
    /// Offset of the entry in `.altinstructions`.
    pub entry: u64,
    /// Original region start.
    pub orig: (usize, u64),
    pub orig_len: u64,
    /// Replacement start.
    pub repl: (usize, u64),
    pub repl_len: u64,
    /// Offset of `instrlen` in `.altinstructions` (`replacementlen` follows).
    pub len_off: u64,
}

/// The alternatives table: its section index and entries; `Err` with a reason when the
/// layout is not recognised.
pub(crate) fn alt_entries(o: &Object<'_>) -> Option<Result<(usize, Vec<AltEntry>), String>> {
    let sec = o.sections.iter().position(|s| s.name == ALTINSTRUCTIONS)?;
    let s = &o.sections[sec];
    let at = |off: u64| s.relocs.iter().find(|r| r.offset == off);
    let stride = [14u64, 12].into_iter().find(|&st| {
        s.size.checked_rem(st) == Some(0)
            && (0..s.size / st).all(|k| at(k * st).is_some() && at(k * st + 4).is_some())
    });
    let Some(stride) = stride else {
        return Some(Err(
            "entry layout not recognised (neither 14- nor 12-byte entries with two relocations)"
                .into(),
        ));
    };
    let mut out = Vec::new();
    for k in 0..s.size / stride {
        let base = k * stride;
        let len_off = base + stride - 2;
        let byte = |off: u64| {
            usize::try_from(off)
                .ok()
                .and_then(|i| s.data.get(i))
                .copied()
                .map(u64::from)
        };
        let (Some(orig), Some(repl)) = (
            at(base).and_then(|r| place_of(o, r)),
            at(base + 4).and_then(|r| place_of(o, r)),
        ) else {
            return Some(Err(format!("entry {k}: offsets do not designate sections")));
        };
        let (Some(orig_len), Some(repl_len)) = (byte(len_off), byte(len_off + 1)) else {
            return Some(Err(format!("entry {k}: truncated")));
        };
        out.push(AltEntry {
            entry: base,
            orig,
            orig_len,
            repl,
            repl_len,
            len_off,
        });
    }
    Some(Ok((sec, out)))
}

/// One `struct jump_entry`: code site and target.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JumpEntry {
    pub code: (usize, u64),
    pub target: (usize, u64),
}

/// The jump-label table's entries (entries whose fields do not designate sections are skipped;
/// the generic relocation check covers them).
pub(crate) fn jump_entries(o: &Object<'_>) -> Vec<JumpEntry> {
    let Some(sec) = o.sections.iter().position(|s| s.name == JUMP_TABLE) else {
        return Vec::new();
    };
    let s = &o.sections[sec];
    let at = |off: u64| s.relocs.iter().find(|r| r.offset == off);
    let mut out = Vec::new();
    let mut base = 0;
    while base + 16 <= s.size {
        if let (Some(code), Some(target)) = (
            at(base).and_then(|r| place_of(o, r)),
            at(base + 4).and_then(|r| place_of(o, r)),
        ) {
            out.push(JumpEntry { code, target });
        }
        base += 16;
    }
    out
}
