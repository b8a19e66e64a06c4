//! Encode: writes the new bytes of one code section from its original bytes and its plan.
//!
//! Unchanged instructions are copied in runs; each site is followed by its padding
//! ([`annotations::nop::fill`]); extra insertions asked for by special sections follow as
//! separate NOP runs; every fixup gets its new displacement, short branches that the plan
//! widened get their rel32 form (prefixes kept), and a widened 2-byte jump-label NOP becomes
//! the 5-byte NOP the kernel's jump-label code expects.

use crate::decode::{Fixup, FixupKind, Site};
use crate::error::{Error, ErrorKind, Result};
use crate::relayout::{growth, new_displacement, SectionPlan};

/// The 5-byte NOP of Linux's `x86_nops[5]` (`BYTES_NOP5`).
pub const NOP5: [u8; 5] = [0x0f, 0x1f, 0x44, 0x00, 0x00];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Site padding after site `i` (sorts before extra padding at the same offset).
    SitePad(u64, usize),
    /// Extra NOPs `(at, n)`.
    Extra(u64, u64),
    /// Rewrite of fixup `i`.
    Rewrite(u64, usize),
}

impl Event {
    fn key(&self) -> (u64, u8) {
        match *self {
            Event::SitePad(at, _) => (at, 0),
            Event::Extra(at, _) => (at, 1),
            Event::Rewrite(at, _) => (at, 2),
        }
    }
}

fn slice(data: &[u8], from: u64, to: u64) -> Result<&[u8]> {
    let (a, b) = (usize::try_from(from), usize::try_from(to));
    match (a, b) {
        (Ok(a), Ok(b)) if a <= b && b <= data.len() => Ok(&data[a..b]),
        _ => Err(Error::internal(format!(
            "byte range {from:#x}..{to:#x} outside the section"
        ))),
    }
}

/// Encodes the new contents of a section.
pub fn encode_section(
    name: &str,
    data: &[u8],
    sites: &[Site],
    fixups: &[Fixup],
    plan: &SectionPlan,
) -> Result<Vec<u8>> {
    let map = &plan.map;
    let mut events: Vec<Event> = Vec::with_capacity(sites.len() + fixups.len() + plan.extra.len());
    for (i, (s, &p)) in sites.iter().zip(&plan.pads).enumerate() {
        if p > 0 {
            events.push(Event::SitePad(s.end(), i));
        }
    }
    events.extend(plan.extra.iter().map(|&(at, n)| Event::Extra(at, n)));
    events.extend(
        fixups
            .iter()
            .enumerate()
            .map(|(i, f)| Event::Rewrite(f.offset, i)),
    );
    events.sort_unstable_by_key(|e| e.key());

    let len = data.len() as u64;
    let mut out = Vec::with_capacity(data.len() + usize::try_from(map.total()).unwrap_or(0));
    let mut pos = 0u64;
    for ev in events {
        match ev {
            Event::SitePad(at, i) => {
                out.extend_from_slice(slice(data, pos, at)?);
                pos = at;
                let start = out.len();
                out.resize(start + usize::from(plan.pads[i]), 0);
                annotations::nop::fill(&mut out[start..]);
            }
            Event::Extra(at, n) => {
                out.extend_from_slice(slice(data, pos, at)?);
                pos = at;
                let start = out.len();
                out.resize(
                    start + usize::try_from(n).map_err(|_| Error::internal("extra padding"))?,
                    0,
                );
                annotations::nop::fill(&mut out[start..]);
            }
            Event::Rewrite(at, i) => {
                out.extend_from_slice(slice(data, pos, at)?);
                if out.len() as u64 != map.map(at) {
                    return Err(Error::at(
                        name,
                        at,
                        ErrorKind::Internal(format!(
                            "layout drift: at new offset {:#x}, planned {:#x}",
                            out.len(),
                            map.map(at)
                        )),
                    ));
                }
                let f = &fixups[i];
                let insn = slice(data, f.offset, f.end())?;
                encode_fixup(name, map, f, plan.widened[i], insn, &mut out)?;
                pos = f.end();
            }
        }
    }
    out.extend_from_slice(slice(data, pos, len)?);
    if out.len() as u64 != map.map(len) {
        return Err(Error::in_section(
            name,
            ErrorKind::Internal(format!(
                "encoded {:#x} bytes, planned {:#x}",
                out.len(),
                map.map(len)
            )),
        ));
    }
    Ok(out)
}

fn encode_fixup(
    name: &str,
    map: &crate::offset_map::OffsetMap,
    f: &Fixup,
    widened: bool,
    insn: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    let field = usize::from(f.field);
    let disp = new_displacement(map, f, widened);
    let out_of_range = || {
        Error::at(
            name,
            f.offset,
            ErrorKind::Layout(format!(
                "new displacement {disp} to {:#x} does not fit",
                f.target
            )),
        )
    };
    match (f.kind, widened) {
        (FixupKind::Rel32 | FixupKind::RipDisp, _) => {
            let d = i32::try_from(disp).map_err(|_| out_of_range())?;
            let start = out.len();
            out.extend_from_slice(insn);
            out.get_mut(start + field..start + field + 4)
                .ok_or_else(|| Error::internal("rel32 field"))?
                .copy_from_slice(&d.to_le_bytes());
        }
        (FixupKind::Jmp8 | FixupKind::Jcc8 | FixupKind::Loop8, false) => {
            let d = i8::try_from(disp).map_err(|_| out_of_range())?;
            let start = out.len();
            out.extend_from_slice(insn);
            *out.get_mut(start + field)
                .ok_or_else(|| Error::internal("rel8 field"))? = d as u8;
        }
        (FixupKind::JumpLabelNop2, false) => out.extend_from_slice(insn),
        (FixupKind::JumpLabelNop2, true) => out.extend_from_slice(&NOP5),
        (FixupKind::Jmp8 | FixupKind::Jcc8, true) => {
            let d = i32::try_from(disp).map_err(|_| out_of_range())?;
            let opcode = *insn
                .get(field.wrapping_sub(1))
                .ok_or_else(|| Error::internal("rel8 opcode"))?;
            out.extend_from_slice(&insn[..field - 1]);
            match (f.kind, opcode) {
                (FixupKind::Jmp8, 0xeb) => out.push(0xe9),
                (FixupKind::Jcc8, 0x70..=0x7f) => {
                    out.extend_from_slice(&[0x0f, 0x80 | (opcode & 0x0f)])
                }
                _ => {
                    return Err(Error::at(
                        name,
                        f.offset,
                        ErrorKind::Internal(format!(
                            "unexpected short-branch opcode {opcode:#04x}"
                        )),
                    ))
                }
            }
            out.extend_from_slice(&d.to_le_bytes());
            debug_assert_eq!(
                growth(f.kind),
                if f.kind == FixupKind::Jmp8 { 3 } else { 4 }
            );
        }
        (FixupKind::Loop8, true) => return Err(Error::internal("loop cannot be widened")),
    }
    Ok(())
}
