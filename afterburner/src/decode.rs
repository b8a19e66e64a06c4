//! Decode: turns the bytes of one executable section into our instruction model.
//!
//! One linear sweep per section with iced-x86, starting at offset 0 and checked against every
//! symbol start (an instruction that runs over a symbol start is an error, never a guess).
//! The sweep keeps only what later rooms need, with no per-instruction allocation:
//!
//! * [`Site`]s: sensitive instructions ([`crate::sensitive::classify`]), `sti; hlt` merged;
//! * [`Fixup`]s: instructions whose encoding depends on the layout because the assembler
//!   resolved a PC-relative operand inside the section (branches, RIP-relative operands
//!   without a relocation);
//! * for every relocation of the section, the field it sits on (it must be exactly the
//!   displacement or immediate of a decoded instruction, else "data in code") and its
//!   *bias* (`insn_end - r_offset` for PC-relative fields of branches and RIP-relative
//!   operands, 0 otherwise), used by [`crate::offset_map::OffsetMap::map_addend`];
//! * a bitmap of instruction starts.

use crate::elf::{reloc_class, reloc_name, RelocClass, Relocs};
use crate::error::{Error, ErrorKind, Result};
use crate::sensitive::{classify, pairs_with};
use annotations::{Operands, SensitiveKind};
use iced_x86::{
    Code, ConstantOffsets, Decoder, DecoderOptions, FlowControl, Formatter, GasFormatter,
    Instruction,
};

/// A sensitive instruction (or `sti; hlt` pair) found in a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Offset of the first byte in the section.
    pub offset: u64,
    /// Length of the original instruction(s).
    pub insn_len: u8,
    /// What it is.
    pub kind: SensitiveKind,
    /// Operand details.
    pub operands: Operands,
    /// `sti; hlt` pair.
    pub pair: bool,
}

impl Site {
    /// Offset just past the original instruction(s).
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.insn_len)
    }
}

/// How a fixup instruction's PC-relative field is re-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixupKind {
    /// `jmp rel8` (`EB`): widened to `jmp rel32` (`E9`, 3 bytes longer) when needed.
    Jmp8,
    /// `jcc rel8` (`70+cc`): widened to `jcc rel32` (`0F 80+cc`, 4 bytes longer) when needed.
    Jcc8,
    /// `loop`/`loope`/`loopne`/`jrcxz`/`jecxz`: rel8 only; out of range is an error.
    Loop8,
    /// A 2-byte `__jump_table` code site (`66 90`): widened to a 5-byte NOP when its target
    /// leaves rel8 range (filled in by [`crate::special`], not by decoding).
    JumpLabelNop2,
    /// `jmp`/`jcc`/`call`/`xbegin` with rel32.
    Rel32,
    /// RIP-relative memory operand with a 32-bit displacement.
    RipDisp,
}

/// An instruction whose PC-relative field the assembler resolved inside the section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fixup {
    /// Instruction offset.
    pub offset: u64,
    /// Instruction length.
    pub len: u8,
    /// Offset of the PC-relative field inside the instruction.
    pub field: u8,
    /// Kind.
    pub kind: FixupKind,
    /// Target offset in the section.
    pub target: u64,
}

impl Fixup {
    /// Offset just past the instruction.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// The decoded model of one section.
#[derive(Clone, Debug, Default)]
pub struct Decoded {
    /// Sites in offset order.
    pub sites: Vec<Site>,
    /// Fixups in offset order.
    pub fixups: Vec<Fixup>,
    /// Bias of each relocation of the section (parallel to its relocation list).
    pub reloc_bias: Vec<i8>,
    /// Bitmap of instruction starts (bit `x` set when an instruction starts at offset `x`).
    pub starts: Vec<u64>,
    /// Number of instructions decoded.
    pub insn_count: usize,
}

impl Decoded {
    /// Whether an instruction starts at `x`.
    pub fn is_start(&self, x: u64) -> bool {
        let Ok(i) = usize::try_from(x / 64) else {
            return false;
        };
        self.starts.get(i).is_some_and(|w| w >> (x % 64) & 1 != 0)
    }
}

/// Input of [`decode_section`].
pub struct SectionInput<'a> {
    /// Section name (for errors).
    pub name: &'a str,
    /// Contents.
    pub data: &'a [u8],
    /// Symbol starts inside the section, sorted by offset: `(offset, symbol name)`.
    pub symbol_starts: &'a [(u64, &'a [u8])],
    /// The section's relocations (file order).
    pub relocs: Relocs<'a>,
    /// Relocatable object: collect fixups and check that PC-relative operands without a
    /// relocation stay inside the section. Off for executables, whose code is final (scan
    /// only).
    pub relocatable: bool,
}

/// GNU-syntax text of an instruction (for error messages and reports).
pub fn insn_text(insn: &Instruction) -> String {
    let mut f = GasFormatter::new();
    let mut s = String::new();
    f.format(insn, &mut s);
    s
}

/// Hex of bytes, space-separated.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn is_loop(code: Code) -> bool {
    matches!(
        code,
        Code::Loop_rel8_64_RCX
            | Code::Loope_rel8_64_RCX
            | Code::Loopne_rel8_64_RCX
            | Code::Loop_rel8_64_ECX
            | Code::Loope_rel8_64_ECX
            | Code::Loopne_rel8_64_ECX
            | Code::Jrcxz_rel8_64
            | Code::Jecxz_rel8_64
    )
}

/// Decodes one executable section.
pub fn decode_section(input: &SectionInput<'_>) -> Result<Decoded> {
    let data = input.data;
    let len = data.len() as u64;
    let name = input.name;
    // Relocations by offset.
    if u32::try_from(input.relocs.len()).is_err() {
        return Err(Error::in_section(
            name,
            ErrorKind::Malformed("too many relocations".into()),
        ));
    }
    let mut order: Vec<(u64, u32)> = input
        .relocs
        .iter()
        .enumerate()
        .map(|(i, r)| (r.offset, i as u32))
        .collect();
    order.sort_unstable();
    let reloc = |i: u32| {
        input
            .relocs
            .get(i as usize)
            .ok_or_else(|| Error::internal("relocation index"))
    };
    if let Some(&(_, last)) = order.last() {
        let r = reloc(last)?;
        if r.offset >= len {
            return Err(Error::at(
                name,
                r.offset,
                ErrorKind::Malformed(format!(
                    "relocation {} past the end of the section ({len:#x} bytes)",
                    reloc_name(r.r_type)
                )),
            ));
        }
    }
    let mut out = Decoded {
        sites: Vec::new(),
        fixups: Vec::new(),
        reloc_bias: vec![0; input.relocs.len()],
        starts: vec![0; data.len().div_ceil(64) + 1],
        insn_count: 0,
    };
    let mut decoder = Decoder::with_ip(64, data, 0, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut next_sym = 0usize;
    let mut next_rel = 0usize;
    let mut pos = 0u64;
    // The previous instruction was `sti` recorded as the last site.
    let mut sti_before = false;
    while pos < len {
        let mut at_symbol = false;
        while next_sym < input.symbol_starts.len() && input.symbol_starts[next_sym].0 <= pos {
            at_symbol |= input.symbol_starts[next_sym].0 == pos;
            next_sym += 1;
        }
        let limit = input.symbol_starts.get(next_sym).map_or(len, |s| s.0);
        decoder.decode_out(&mut insn);
        if insn.is_invalid() {
            let p = usize::try_from(pos).unwrap_or(usize::MAX);
            let bytes = data.get(p..).unwrap_or(&[]);
            let bytes = &bytes[..bytes.len().min(8)];
            return Err(Error::at(
                name,
                pos,
                ErrorKind::Undecodable { bytes: hex(bytes) },
            ));
        }
        let ilen = insn.len() as u64;
        let end = pos + ilen;
        if end > limit {
            let sym = input.symbol_starts.get(next_sym).map_or(&b"?"[..], |s| s.1);
            let symbol = String::from_utf8_lossy(sym).into_owned();
            return Err(Error::at(
                name,
                pos,
                ErrorKind::Overlap {
                    insn: pos,
                    text: insn_text(&insn),
                    symbol,
                },
            ));
        }
        out.insn_count += 1;
        out.starts[(pos / 64) as usize] |= 1 << (pos % 64);

        // Relocations inside this instruction.
        let mut rel_on_imm = false;
        let mut rel_on_disp = false;
        let mut offsets: Option<ConstantOffsets> = None;
        while next_rel < order.len() {
            let (r_offset, ri) = order[next_rel];
            if r_offset >= end {
                break;
            }
            let r = reloc(ri)?;
            let ri = ri as usize;
            if r.offset >= end {
                break;
            }
            next_rel += 1;
            let class = reloc_class(r.r_type).ok_or_else(|| {
                Error::at(
                    name,
                    r.offset,
                    ErrorKind::UnsupportedRelocation {
                        r_type: r.r_type,
                        name: reloc_name(r.r_type),
                    },
                )
            })?;
            let rel = r.offset - pos;
            if class == RelocClass::Marker {
                if r.r_type == crate::elf::R_X86_64_NONE || rel == 0 {
                    continue;
                }
                return Err(Error::at(
                    name,
                    r.offset,
                    ErrorKind::DataInCode {
                        name: reloc_name(r.r_type),
                        insn: pos,
                        text: insn_text(&insn),
                    },
                ));
            }
            let co = *offsets.get_or_insert_with(|| decoder.get_constant_offsets(&insn));
            let size = usize::from(class.size());
            let on_disp = co.has_displacement()
                && rel == co.displacement_offset() as u64
                && size == co.displacement_size();
            let on_imm = (co.has_immediate()
                && rel == co.immediate_offset() as u64
                && size == co.immediate_size())
                || (co.has_immediate2()
                    && rel == co.immediate_offset2() as u64
                    && size == co.immediate_size2());
            if !on_disp && !on_imm {
                return Err(Error::at(
                    name,
                    r.offset,
                    ErrorKind::DataInCode {
                        name: reloc_name(r.r_type),
                        insn: pos,
                        text: insn_text(&insn),
                    },
                ));
            }
            rel_on_disp |= on_disp;
            rel_on_imm |= on_imm;
            let is_branch_rel = on_imm && !insn.is_ip_rel_memory_operand() && is_near_branch(&insn);
            if class.pc_relative()
                && ((on_disp && insn.is_ip_rel_memory_operand()) || is_branch_rel)
            {
                out.reloc_bias[ri] =
                    i8::try_from(end - r.offset).map_err(|_| Error::internal("bias"))?;
            }
        }

        // Layout-dependent operands resolved by the assembler.
        if !input.relocatable {
            // executables: nothing moves, nothing to fix up
        } else if is_near_branch(&insn) && !rel_on_imm {
            let co = *offsets.get_or_insert_with(|| decoder.get_constant_offsets(&insn));
            let target = insn.near_branch_target();
            if target > len {
                return Err(Error::at(name, pos, ErrorKind::Layout(format!("branch `{}` targets {target:#x}, outside the section, without a relocation", insn_text(&insn)))));
            }
            let code = insn.code();
            let kind = if is_loop(code) {
                FixupKind::Loop8
            } else if co.immediate_size() == 1 && code == Code::Jmp_rel8_64 {
                FixupKind::Jmp8
            } else if co.immediate_size() == 1 && insn.is_jcc_short() {
                FixupKind::Jcc8
            } else if co.immediate_size() == 4 {
                FixupKind::Rel32
            } else {
                return Err(Error::at(
                    name,
                    pos,
                    ErrorKind::Layout(format!("unsupported branch form `{}`", insn_text(&insn))),
                ));
            };
            out.fixups.push(Fixup {
                offset: pos,
                len: ilen as u8,
                field: co.immediate_offset() as u8,
                kind,
                target,
            });
        } else if insn.is_ip_rel_memory_operand() && !rel_on_disp {
            let co = *offsets.get_or_insert_with(|| decoder.get_constant_offsets(&insn));
            let target = insn.ip_rel_memory_address();
            if co.displacement_size() != 4 {
                return Err(Error::at(
                    name,
                    pos,
                    ErrorKind::Layout(format!(
                        "RIP-relative operand without a 32-bit displacement in `{}`",
                        insn_text(&insn)
                    )),
                ));
            }
            if target > len {
                return Err(Error::at(
                    name,
                    pos,
                    ErrorKind::Layout(format!(
                        "`{}` refers to {target:#x}, outside the section, without a relocation",
                        insn_text(&insn)
                    )),
                ));
            }
            out.fixups.push(Fixup {
                offset: pos,
                len: ilen as u8,
                field: co.displacement_offset() as u8,
                kind: FixupKind::RipDisp,
                target,
            });
        }

        // Sensitive?
        let class = classify(&insn);
        let mut merged = false;
        if sti_before && !at_symbol {
            if let Some(last) = out.sites.last_mut() {
                let prev = crate::sensitive::Class {
                    kind: last.kind,
                    operands: last.operands,
                };
                if last.end() == pos && pairs_with(&prev, &insn) {
                    last.kind = SensitiveKind::StiHlt;
                    last.insn_len += ilen as u8;
                    last.pair = true;
                    merged = true;
                }
            }
        }
        sti_before = false;
        if !merged {
            if let Some(c) = class {
                out.sites.push(Site {
                    offset: pos,
                    insn_len: ilen as u8,
                    kind: c.kind,
                    operands: c.operands,
                    pair: false,
                });
                sti_before = c.kind == SensitiveKind::Sti;
            }
        }
        pos = end;
    }
    split_pairs_entered_in_the_middle(&mut out, data);
    Ok(out)
}

/// A `sti; hlt` pair is one site only if nothing in the section branches to its `hlt`
/// (a rewritten pair site is replaced as a whole); otherwise it is two sites.
fn split_pairs_entered_in_the_middle(out: &mut Decoded, data: &[u8]) {
    if !out.sites.iter().any(|s| s.pair) {
        return;
    }
    let mut targets: Vec<u64> = out.fixups.iter().map(|f| f.target).collect();
    targets.sort_unstable();
    let mut sites = Vec::with_capacity(out.sites.len() + 1);
    for s in out.sites.drain(..) {
        let sti_len = usize::try_from(s.offset)
            .ok()
            .and_then(|o| data.get(o..))
            .map(|b| Decoder::new(64, b, DecoderOptions::NONE).decode().len() as u8)
            .unwrap_or(0);
        let hlt_at = s.offset + u64::from(sti_len);
        if s.pair && sti_len > 0 && sti_len < s.insn_len && targets.binary_search(&hlt_at).is_ok() {
            sites.push(Site {
                offset: s.offset,
                insn_len: sti_len,
                kind: SensitiveKind::Sti,
                operands: Operands::NONE,
                pair: false,
            });
            sites.push(Site {
                offset: hlt_at,
                insn_len: s.insn_len - sti_len,
                kind: SensitiveKind::Hlt,
                operands: Operands::NONE,
                pair: false,
            });
        } else {
            sites.push(s);
        }
    }
    out.sites = sites;
}

/// A near relative branch (`jmp`/`jcc`/`call`/`loop`/`jrcxz`/`xbegin` with a displacement).
fn is_near_branch(insn: &Instruction) -> bool {
    match insn.flow_control() {
        FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch | FlowControl::Call => {
            matches!(
                insn.op0_kind(),
                iced_x86::OpKind::NearBranch64
                    | iced_x86::OpKind::NearBranch32
                    | iced_x86::OpKind::NearBranch16
            )
        }
        FlowControl::XbeginXabortXend => {
            insn.code() == Code::Xbegin_rel32 || insn.code() == Code::Xbegin_rel16
        }
        _ => false,
    }
}
