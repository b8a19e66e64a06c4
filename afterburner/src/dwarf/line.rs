//! `.debug_line`: line number programs (DWARF 2–5).
//!
//! Each program is re-emitted opcode by opcode. Headers (directory and file tables, with their
//! `DW_FORM_line_strp` relocations) and every opcode that does not move the address are copied
//! unchanged. Address advances (`DW_LNS_advance_pc`, `DW_LNS_const_add_pc`,
//! `DW_LNS_fixed_advance_pc` and the address part of special opcodes) are collected up to the
//! opcode that appends a row (`special`, `DW_LNS_copy`, `DW_LNE_end_sequence`). The row's
//! original address `A` must become `map(A)`: when the original advance already gets there it
//! is copied as it was, otherwise the advance is re-encoded (a special opcode when it fits,
//! else `DW_LNS_advance_pc` followed by the row opcode with address advance 0).
//! `DW_LNE_set_address` keeps its relocation, whose addend is mapped like any other.
//!
//! A unit never gets shorter (a shorter re-encoding is padded by widening the length ULEB128
//! of its last `DW_LNE_end_sequence`), so the section's own offset map, with a point at each
//! unit start, maps `DW_AT_stmt_list` relocations.

use super::bytes::{push_uleb, Cursor};
use super::lists::{unit_end, unit_length};
use super::{unchanged_as_none, Addr, Change, Ctx, Input, Out, Result};

const DW_LNS_COPY: u8 = 1;
const DW_LNS_ADVANCE_PC: u8 = 2;
const DW_LNS_ADVANCE_LINE: u8 = 3;
const DW_LNS_SET_FILE: u8 = 4;
const DW_LNS_SET_COLUMN: u8 = 5;
const DW_LNS_CONST_ADD_PC: u8 = 8;
const DW_LNS_FIXED_ADVANCE_PC: u8 = 9;
const DW_LNE_END_SEQUENCE: u8 = 1;
const DW_LNE_SET_ADDRESS: u8 = 2;

/// Rebuilds a `.debug_line` section.
pub(super) fn rewrite(ctx: &Ctx<'_>, inp: &Input<'_>) -> Result<Option<Change>> {
    let mut out = Out::new(inp);
    let mut pos = 0usize;
    while pos < inp.data.len() {
        let (unit, end) = unit(ctx, inp, pos)?;
        out.sync(pos as u64);
        out.append(inp, unit)?;
        pos = end;
    }
    Ok(unchanged_as_none(inp, out.finish(inp, false, || false)?))
}

/// Parameters from a program header.
struct Header {
    opcode_base: u8,
    line_range: u8,
    /// Standard opcode operand counts, indexed by opcode - 1.
    std_lengths: Vec<u8>,
}

/// What a buffered opcode does to the address.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Advance,
    Other,
}

/// How the row is appended.
#[derive(Clone, Copy)]
enum RowOp {
    /// Special opcode with this adjusted opcode (`opcode - opcode_base`).
    Special(u8),
    Copy,
    EndSequence,
}

/// The state of one program being re-emitted.
struct Program<'c, 'd> {
    ctx: &'c Ctx<'d>,
    inp: &'c Input<'d>,
    h: Header,
    out: Out,
    /// Original address of the last row (or `DW_LNE_set_address`).
    addr: Addr,
    /// Its new offset.
    new: u64,
    /// Opcodes since the last row: original byte range and kind.
    pending: Vec<(usize, usize, Kind)>,
    /// Sum of their original address advances.
    pending_adv: u64,
    /// Output position and length of the length ULEB128 of the last `DW_LNE_end_sequence`.
    last_end_len: Option<(usize, usize)>,
    /// Search hint of the offset map lookups (rows go forward).
    hint: usize,
}

fn unit<'d>(ctx: &Ctx<'d>, inp: &Input<'d>, start: usize) -> Result<(Out, usize)> {
    let mut c = Cursor::at(inp.data, start, &inp.name);
    let (len, osz) = unit_length(&mut c)?;
    let after_len = c.pos();
    let end = unit_end(inp, start, after_len, len)?;
    let data = &inp.data[..end];
    let mut c = Cursor::at(data, after_len, &inp.name);
    let version = c.u16()?;
    if !(2..=5).contains(&version) {
        return Err(c.err_at(start, format!("line table version {version}")));
    }
    if version >= 5 {
        c.u8()?; // address_size
        if c.u8()? != 0 {
            return Err(c.err_at(start, "segment selectors are not supported"));
        }
    }
    let header_length = c.uint(osz)?;
    let program = usize::try_from(header_length)
        .ok()
        .and_then(|h| h.checked_add(c.pos()))
        .filter(|&p| p <= end)
        .ok_or_else(|| c.err_at(start, "header runs past the unit"))?;
    let min_inst = c.u8()?;
    if min_inst != 1 {
        return Err(c.err_at(
            start,
            format!("minimum_instruction_length {min_inst} (x86 uses 1)"),
        ));
    }
    if version >= 4 {
        let max_ops = c.u8()?;
        if max_ops != 1 {
            return Err(c.err_at(
                start,
                format!("maximum_operations_per_instruction {max_ops}"),
            ));
        }
    }
    c.u8()?; // default_is_stmt
    c.u8()?; // line_base
    let line_range = c.u8()?;
    let opcode_base = c.u8()?;
    if line_range == 0 || opcode_base == 0 {
        return Err(c.err_at(start, "line_range or opcode_base is zero"));
    }
    let std_lengths = c.bytes(usize::from(opcode_base - 1))?.to_vec();
    if c.pos() > program {
        return Err(c.err_at(start, "header runs past header_length"));
    }

    let mut out = Out::for_range(inp, start, end);
    out.copy(inp, start, program)?;
    let mut p = Program {
        ctx,
        inp,
        h: Header {
            opcode_base,
            line_range,
            std_lengths,
        },
        out,
        addr: Addr::ZERO,
        new: 0,
        pending: Vec::new(),
        pending_adv: 0,
        last_end_len: None,
        hint: 0,
    };
    let mut c = Cursor::at(data, program, &inp.name);
    while c.pos() < end {
        p.opcode(&mut c)?;
    }
    p.flush_all()?;

    // Unit length; pad when the program got shorter.
    let mut out = p.out;
    out.flush(inp)?;
    let orig_size = end - start;
    if out.data.len() < orig_size {
        let k = orig_size - out.data.len();
        let (at, n) = p.last_end_len.ok_or_else(|| {
            inp.err(
                start as u64,
                "internal: shorter line program with no end_sequence to pad",
            )
        })?;
        let mut b = Vec::new();
        push_uleb(&mut b, 1, n + k);
        out.data.splice(at..at + n, b);
        for r in &mut out.relocs {
            if r.offset >= at as u64 {
                r.offset += k as u64;
            }
        }
    }
    let new_len = (out.data.len() - (after_len - start)) as u64;
    let bytes = if osz == 8 {
        new_len.to_le_bytes().to_vec()
    } else {
        u32::try_from(new_len)
            .map_err(|_| inp.err(start as u64, "unit length overflows"))?
            .to_le_bytes()
            .to_vec()
    };
    out.patch(inp, if osz == 8 { 4 } else { 0 }, &bytes)?;
    Ok((out, end))
}

impl Program<'_, '_> {
    fn opcode(&mut self, c: &mut Cursor<'_>) -> Result<()> {
        let at = c.pos();
        let op = c.u8()?;
        if op >= self.h.opcode_base {
            return self.row(at, c.pos(), RowOp::Special(op - self.h.opcode_base));
        }
        match op {
            0 => {
                let len = c.uleb()?;
                let body = c.pos();
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l >= 1)
                    .ok_or_else(|| c.err_at(at, "bad extended opcode length"))?;
                let sub = c.u8()?;
                c.bytes(len - 1)?;
                let end = c.pos();
                match sub {
                    DW_LNE_END_SEQUENCE => {
                        self.row(at, end, RowOp::EndSequence)?;
                        self.addr = Addr::ZERO;
                        self.new = 0;
                    }
                    DW_LNE_SET_ADDRESS => {
                        let field = body + 1;
                        let raw = self
                            .inp
                            .data
                            .get(field..end)
                            .and_then(super::bytes::read_uint)
                            .ok_or_else(|| c.err_at(at, "bad DW_LNE_set_address size"))?;
                        let (addr, _) = self.ctx.field(self.inp, field as u64, raw)?;
                        self.flush_all()?;
                        self.out.copy(self.inp, at, end)?;
                        self.addr = addr;
                        self.new = self.ctx.map(addr);
                    }
                    _ => self.pending.push((at, end, Kind::Other)),
                }
            }
            DW_LNS_COPY => self.row(at, c.pos(), RowOp::Copy)?,
            DW_LNS_ADVANCE_PC => {
                let v = c.uleb()?;
                self.advance(at, c.pos(), v)?;
            }
            DW_LNS_ADVANCE_LINE => {
                c.sleb()?;
                self.pending.push((at, c.pos(), Kind::Other));
            }
            DW_LNS_SET_FILE | DW_LNS_SET_COLUMN => {
                c.uleb()?;
                self.pending.push((at, c.pos(), Kind::Other));
            }
            DW_LNS_CONST_ADD_PC => {
                let v = u64::from((255 - self.h.opcode_base) / self.h.line_range);
                self.advance(at, c.pos(), v)?;
            }
            DW_LNS_FIXED_ADVANCE_PC => {
                let v = c.u16()?;
                self.advance(at, c.pos(), u64::from(v))?;
            }
            _ => {
                // negate_stmt, set_basic_block, set_prologue_end, set_epilogue_begin, set_isa
                // and unknown standard opcodes: operands counted by the header.
                let n = self
                    .h
                    .std_lengths
                    .get(usize::from(op - 1))
                    .copied()
                    .unwrap_or(0);
                for _ in 0..n {
                    c.uleb()?;
                }
                self.pending.push((at, c.pos(), Kind::Other));
            }
        }
        Ok(())
    }

    fn advance(&mut self, a: usize, b: usize, v: u64) -> Result<()> {
        self.pending_adv = self
            .pending_adv
            .checked_add(v)
            .ok_or_else(|| self.inp.err(a as u64, "address advance overflows"))?;
        self.pending.push((a, b, Kind::Advance));
        Ok(())
    }

    /// Copies every buffered opcode unchanged.
    fn flush_all(&mut self) -> Result<()> {
        for (a, b, _) in std::mem::take(&mut self.pending) {
            self.out.copy(self.inp, a, b)?;
        }
        self.pending_adv = 0;
        Ok(())
    }

    /// A row-appending opcode at original bytes `[a, b)`.
    fn row(&mut self, a: usize, b: usize, op: RowOp) -> Result<()> {
        let op_adv = match op {
            RowOp::Special(adj) => u64::from(adj / self.h.line_range),
            _ => 0,
        };
        let orig_adv = self
            .pending_adv
            .checked_add(op_adv)
            .ok_or_else(|| self.inp.err(a as u64, "address advance overflows"))?;
        let row = self.ctx.add(self.inp, a as u64, self.addr, orig_adv)?;
        let new = self.ctx.map_near(row, &mut self.hint);
        let new_adv = new.checked_sub(self.new).ok_or_else(|| {
            self.inp
                .err(a as u64, "line rows go backwards after mapping")
        })?;
        let end_len_at = |out: &Out| out.len() + 1;
        if new_adv == orig_adv {
            self.flush_all()?;
            if matches!(op, RowOp::EndSequence) {
                self.last_end_len = Some((end_len_at(&self.out), uleb_len_at(self.inp, a + 1)));
            }
            self.out.copy(self.inp, a, b)?;
        } else {
            // Keep the opcodes that do not move the address, drop the old advances.
            for (pa, pb, kind) in std::mem::take(&mut self.pending) {
                match kind {
                    Kind::Other => self.out.copy(self.inp, pa, pb)?,
                    Kind::Advance => self.out.replace(self.inp, pa, pb, &[])?,
                }
            }
            self.pending_adv = 0;
            let h = &self.h;
            let mut bytes = Vec::new();
            match op {
                RowOp::Special(adj) => {
                    let line_part = u64::from(adj % h.line_range);
                    let single = new_adv
                        .checked_mul(u64::from(h.line_range))
                        .and_then(|x| x.checked_add(line_part + u64::from(h.opcode_base)))
                        .filter(|&x| x <= 255);
                    match single.and_then(|x| u8::try_from(x).ok()) {
                        Some(opcode) => bytes.push(opcode),
                        None => {
                            bytes.push(DW_LNS_ADVANCE_PC);
                            push_uleb(&mut bytes, new_adv, 0);
                            // line_part < line_range, and the original opcode was <= 255
                            let opcode = u8::try_from(line_part + u64::from(h.opcode_base))
                                .map_err(|_| self.inp.err(a as u64, "special opcode overflows"))?;
                            bytes.push(opcode);
                        }
                    }
                    self.out.replace(self.inp, a, b, &bytes)?;
                }
                RowOp::Copy | RowOp::EndSequence => {
                    if new_adv > 0 {
                        bytes.push(DW_LNS_ADVANCE_PC);
                        push_uleb(&mut bytes, new_adv, 0);
                    }
                    self.out.replace(self.inp, a, a, &bytes)?;
                    if matches!(op, RowOp::EndSequence) {
                        self.last_end_len =
                            Some((end_len_at(&self.out), uleb_len_at(self.inp, a + 1)));
                    }
                    self.out.copy(self.inp, a, b)?;
                }
            }
        }
        self.addr = row;
        self.new = new;
        Ok(())
    }
}

/// Byte length of the ULEB128 at `at` (1 when unreadable: the opcode parsed it already).
fn uleb_len_at(inp: &Input<'_>, at: usize) -> usize {
    let mut c = Cursor::at(inp.data, at, &inp.name);
    match c.uleb() {
        Ok(_) => c.pos() - at,
        Err(_) => 1,
    }
}
