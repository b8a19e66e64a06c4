//! Decoding original code: linear sweep from every symbol start, `STT_OBJECT` ranges as data,
//! relocations attached to the instruction field they cover. Undecodable bytes are an error
//! naming the place, never a guess.

use super::elf::{reloc_info, reloc_name, Object, Place, Section};
use super::{site_at, Error, ExpectedSite};
use iced_x86::{ConstantOffsets, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind};
use object::elf as E;

/// Which field of an instruction a relocation covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    Disp,
    Imm,
    Imm2,
    /// A relocation without a field (`R_X86_64_NONE`).
    None,
}

/// A relocation inside an original instruction: index into the section's relocations,
/// the field, its offset in the instruction and its size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InsnReloc {
    pub idx: usize,
    pub field: Field,
    pub at: u64,
    pub size: u64,
}

#[derive(Clone, Debug)]
pub(crate) enum ItemKind {
    Insn {
        insn: Instruction,
        co: ConstantOffsets,
        relocs: Vec<InsnReloc>,
    },
    Data {
        len: u64,
    },
}

/// One decoded piece of original code.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub off: u64,
    pub kind: ItemKind,
}

impl Item {
    pub fn insn(&self) -> Option<&Instruction> {
        match &self.kind {
            ItemKind::Insn { insn, .. } => Some(insn),
            ItemKind::Data { .. } => None,
        }
    }
    pub fn is_nop(&self) -> bool {
        self.insn().is_some_and(|i| i.mnemonic() == Mnemonic::Nop)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn slice(data: &[u8], start: u64, len: u64) -> &[u8] {
    let s = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
    let e = usize::try_from(start.saturating_add(len))
        .unwrap_or(usize::MAX)
        .min(data.len());
    &data[s..e]
}

pub(crate) fn decode_at(data: &[u8], off: u64, end: u64) -> Option<(Instruction, ConstantOffsets)> {
    let bytes = slice(data, off, end.saturating_sub(off));
    if bytes.is_empty() {
        return None;
    }
    let mut d = Decoder::with_ip(64, bytes, off, DecoderOptions::NONE);
    let insn = d.decode();
    if insn.is_invalid() {
        return None;
    }
    let co = d.get_constant_offsets(&insn);
    Some((insn, co))
}

pub(crate) fn is_near_branch(insn: &Instruction) -> bool {
    insn.op_count() > 0
        && matches!(
            insn.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        )
}

pub(crate) fn relocs_in(sec: &Section<'_>, start: u64, end: u64) -> std::ops::Range<usize> {
    let a = sec.relocs.partition_point(|r| r.offset < start);
    let b = sec.relocs.partition_point(|r| r.offset < end);
    a..b
}

/// Decodes the original section into instructions and data items.
pub(crate) fn decode_items(
    o: &Object<'_>,
    osec: usize,
    ignore_prefix: Option<&str>,
) -> Result<Vec<Item>, Error> {
    let s = &o.sections[osec];
    let size = s.size;
    let mut starts: Vec<u64> = vec![0];
    let mut data_ranges: Vec<(u64, u64)> = Vec::new();
    for sym in &o.symbols {
        if sym.place != Place::Section(osec) || sym.is_section() || sym.st_type == E::STT_FILE.0 {
            continue;
        }
        if ignore_prefix.is_some_and(|p| sym.name.starts_with(p)) {
            continue;
        }
        if sym.value < size {
            starts.push(sym.value);
            if sym.st_type == E::STT_OBJECT.0 && sym.size > 0 {
                data_ranges.push((sym.value, sym.value.saturating_add(sym.size).min(size)));
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    data_ranges.sort_unstable();
    let undecodable = |off: u64, why: String| Error::Undecodable {
        file: o.label.clone(),
        section: s.name.clone(),
        offset: off,
        place: o.describe(osec, off),
        why,
    };
    let mut items = Vec::new();
    let mut off = 0u64;
    // `off` only grows, so ranges that ended at or before it at the front of `data_ranges`
    // (sorted by start) never contain a later `off`: skip them once (`live`). Lookups are
    // binary searches, which keeps an 85 MB `vmlinux.o` (1.8 M instructions, 90 k symbols)
    // linear.
    let mut live = 0usize;
    while off < size {
        while data_ranges.get(live).is_some_and(|&(_, e)| e <= off) {
            live += 1;
        }
        let started = data_ranges.partition_point(|&(a, _)| a <= off);
        let containing = data_ranges
            .get(live..started)
            .and_then(|r| r.iter().find(|&&(_, e)| off < e));
        if let Some(&(_, end)) = containing {
            items.push(Item {
                off,
                kind: ItemKind::Data { len: end - off },
            });
            off = end;
            continue;
        }
        // The next symbol or data start bounds this instruction.
        let next_start = starts
            .get(starts.partition_point(|&x| x <= off))
            .copied()
            .unwrap_or(size);
        let next_data = data_ranges.get(started).map_or(size, |&(a, _)| a);
        let bound = next_start.min(next_data);
        let Some((insn, co)) = decode_at(s.data, off, bound) else {
            let why = match decode_at(s.data, off, size) {
                Some((i, _)) => format!(
                    "the instruction here ({} bytes) runs into the symbol at +{bound:#x} <{}>",
                    i.len(),
                    o.describe(osec, bound)
                ),
                None => format!("invalid instruction bytes {}", hex(slice(s.data, off, 15))),
            };
            return Err(undecodable(off, why));
        };
        let len = insn.len() as u64;
        let mut relocs = Vec::new();
        for idx in relocs_in(s, off, off + len) {
            let r = s.relocs[idx];
            let Some(info) = reloc_info(r.r_type) else {
                return Err(Error::Unsupported {
                    file: o.label.clone(),
                    what: format!(
                        "{}+{:#x}: relocation {}",
                        s.name,
                        r.offset,
                        reloc_name(r.r_type)
                    ),
                });
            };
            let at = r.offset - off;
            let field = if info.size == 0 {
                Field::None
            } else if co.has_displacement() && at == co.displacement_offset() as u64 {
                Field::Disp
            } else if co.has_immediate() && at == co.immediate_offset() as u64 {
                Field::Imm
            } else if co.has_immediate2() && at == co.immediate_offset2() as u64 {
                Field::Imm2
            } else {
                return Err(undecodable(
                    off,
                    format!(
                        "relocation {} at +{at} is not on a displacement or immediate",
                        reloc_name(r.r_type)
                    ),
                ));
            };
            let fsize = match field {
                Field::Disp => co.displacement_size() as u64,
                Field::Imm => co.immediate_size() as u64,
                Field::Imm2 => co.immediate_size2() as u64,
                Field::None => 0,
            };
            if fsize != u64::from(info.size) {
                return Err(undecodable(
                    off,
                    format!(
                        "relocation {} ({} bytes) on a {fsize}-byte field",
                        reloc_name(r.r_type),
                        info.size
                    ),
                ));
            }
            relocs.push(InsnReloc {
                idx,
                field,
                at,
                size: fsize,
            });
        }
        items.push(Item {
            off,
            kind: ItemKind::Insn { insn, co, relocs },
        });
        off += len;
    }
    // A relocation must not straddle items.
    for r in &s.relocs {
        let size = reloc_info(r.r_type).map_or(0, |i| u64::from(i.size));
        if r.offset.saturating_add(size) > s.size {
            return Err(undecodable(
                r.offset,
                "relocation past the section end".into(),
            ));
        }
    }
    Ok(items)
}

/// The sites among decoded items: `(offset, site)` in offset order. A pair needs both
/// instructions adjacent (no data item between them).
pub(crate) fn sites(items: &[Item]) -> Vec<(u64, ExpectedSite)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let pair: Vec<Instruction> = items[i..]
            .iter()
            .take(2)
            .map_while(|it| it.insn().copied())
            .collect();
        match site_at(&pair) {
            Some(site) => {
                out.push((items[i].off, site));
                i += site.count;
            }
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assembles `src` with GNU `as` and returns the object's bytes.
    fn assemble(src: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (s, o) = (dir.path().join("t.s"), dir.path().join("t.o"));
        std::fs::write(&s, src).expect("write source");
        let st = std::process::Command::new("as")
            .arg("-o")
            .arg(&o)
            .arg(&s)
            .status()
            .expect("GNU as (binutils) is required");
        assert!(st.success(), "as failed on:\n{src}");
        std::fs::read(&o).expect("read object")
    }

    /// `(offset, Some(insn length) | None for data, data length)` of every item.
    fn shape(items: &[Item]) -> Vec<(u64, &'static str, u64)> {
        items
            .iter()
            .map(|it| match &it.kind {
                ItemKind::Insn { insn, .. } => (it.off, "insn", insn.len() as u64),
                ItemKind::Data { len } => (it.off, "data", *len),
            })
            .collect()
    }

    /// Objects in code are data items; overlapping and nested objects, several symbols at one
    /// offset and instructions between objects all decode as one linear sweep would (this
    /// walk uses binary searches; at each offset the first object in (start, end) order that
    /// contains it gives the extent, as a scan over all objects would).
    #[test]
    fn data_objects_and_symbol_bounds_in_code() {
        let obj = assemble(
            "\t.text\n\
             f:\tnop\n\
             \tmovl $1, %eax\n\
             \t.type big, @object\n\
             big:\n\
             \t.type small, @object\n\
             small:\t.byte 1, 2\n\
             \t.size small, 2\n\
             \t.byte 3, 4, 5, 6\n\
             \t.size big, 6\n\
             g:\tret\n\
             h:\n\
             \t.type tail, @object\n\
             tail:\t.byte 0xff, 0xff, 0xff\n\
             \t.size tail, 3\n\
             \t.type late, @object\n\
             late:\t.byte 0xcc\n\
             \t.size late, 1\n\
             i:\tcli\n\
             \tret\n",
        );
        let o = Object::parse("t.o", &obj).expect("parse");
        let text = o.find_section(".text", 0).expect(".text");
        let items = decode_items(&o, text, None).expect("decodes");
        assert_eq!(
            shape(&items),
            [
                (0, "insn", 1),
                (1, "insn", 5),
                // `small` first (the shorter of two objects at one offset), then the rest of `big`.
                (6, "data", 2),
                (8, "data", 4),
                (12, "insn", 1),
                (13, "data", 3),
                (16, "data", 1),
                (17, "insn", 1),
                (18, "insn", 1),
            ]
        );
        // An instruction that runs into the next symbol is an error naming the place.
        let obj = assemble("\t.text\nf:\tmovl $1, %eax\n\t.set g, f + 2\n\t.globl g\n");
        let o = Object::parse("t.o", &obj).expect("parse");
        let text = o.find_section(".text", 0).expect(".text");
        let e = decode_items(&o, text, None)
            .expect_err("runs into g")
            .to_string();
        assert!(e.contains("runs into the symbol at +0x2"), "{e}");
    }
}
