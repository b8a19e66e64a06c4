//! Special sections: kernel tables that point into code, described by a table in the style of
//! objtool's `special.c` (name, entry size, field offsets).
//!
//! Almost every such table is an array of PC-relative (`R_X86_64_PC32`) or absolute
//! (`R_X86_64_64`) pointers into code; burning keeps them true by the one generic rule for
//! relocation addends ([`crate::offset_map::OffsetMap::map_addend`]), and needs nothing from
//! this module. The entries of [`TABLE`] with a [`Layout`] other than [`Layout::Generic`] hold
//! something the generic rule cannot see:
//!
//! * `.altinstructions` (`struct alt_instr`, Linux 6.12, packed, 14 bytes: `s32 instr_offset;
//!   s32 repl_offset; u32 ft_flags; u8 instrlen; u8 replacementlen`): the two lengths are
//!   bytes, not relocations. They are recomputed from the offset maps, and the kernel's rule
//!   `replacementlen <= instrlen` is kept by growing the original region (NOPs at its end)
//!   when a padded replacement outgrows it.
//! * `__jump_table` (`struct jump_entry`, 16 bytes: `s32 code; s32 target; long key`): the
//!   kernel decides from the bytes at `code` whether the site is a 2-byte or a 5-byte jump.
//!   A 2-byte site (`66 90` after objtool, or `jmp rel8`) must still reach its target after
//!   the move, so it becomes a widenable fixup.
//! * `.orc_unwind_ip` (`s32` per entry): an ORC entry describes the state from its address
//!   on. An entry at the end of a padded site describes the state after the site's
//!   instruction, which holds in the padding too, so it maps to the end of the original
//!   instruction (before the padding), not to the next instruction.

use crate::elf::{Object, Reloc, Relocs};
use crate::error::{Error, ErrorKind, Result};

/// What burning must do for a special section beyond the generic relocation rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Only relocations: nothing beyond the generic rule.
    Generic,
    /// `struct alt_instr`: length bytes at `orig_len`/`repl_len`.
    Alternatives {
        /// Offset of the `s32` to the original instructions.
        orig: usize,
        /// Offset of the `s32` to the replacement.
        repl: usize,
        /// Offset of the `u8` original length.
        orig_len: usize,
        /// Offset of the `u8` replacement length.
        repl_len: usize,
    },
    /// `struct jump_entry`: code and target pointers.
    JumpTable {
        /// Offset of the `s32` to the jump/NOP.
        code: usize,
        /// Offset of the `s32` to the target.
        target: usize,
    },
    /// ORC instruction pointers: map to "after the original instruction".
    OrcIp,
}

/// One special section.
#[derive(Clone, Copy, Debug)]
pub struct Special {
    /// Section name.
    pub name: &'static str,
    /// Entry size in bytes (0: not an array of fixed entries).
    pub entry_size: usize,
    /// What burning does with it.
    pub layout: Layout,
}

/// Special sections of Linux 6.12 x86-64 (field layouts checked against the 6.12 source:
/// `arch/x86/include/asm/alternative.h`, `include/linux/jump_label.h`,
/// `arch/x86/include/asm/extable.h`, `tools/objtool/arch/x86/include/arch/special.h`).
pub const TABLE: &[Special] = &[
    Special {
        name: ".altinstructions",
        entry_size: 14,
        layout: Layout::Alternatives {
            orig: 0,
            repl: 4,
            orig_len: 12,
            repl_len: 13,
        },
    },
    Special {
        name: "__jump_table",
        entry_size: 16,
        layout: Layout::JumpTable { code: 0, target: 4 },
    },
    Special {
        name: ".orc_unwind_ip",
        entry_size: 4,
        layout: Layout::OrcIp,
    },
    // struct exception_table_entry { int insn, fixup, data; }
    Special {
        name: "__ex_table",
        entry_size: 12,
        layout: Layout::Generic,
    },
    // struct static_call_site { s32 addr; s32 key; }
    Special {
        name: ".static_call_sites",
        entry_size: 8,
        layout: Layout::Generic,
    },
    // arrays of s32 pointers to instructions
    Special {
        name: ".retpoline_sites",
        entry_size: 4,
        layout: Layout::Generic,
    },
    Special {
        name: ".return_sites",
        entry_size: 4,
        layout: Layout::Generic,
    },
    Special {
        name: ".call_sites",
        entry_size: 4,
        layout: Layout::Generic,
    },
    Special {
        name: ".ibt_endbr_seal",
        entry_size: 4,
        layout: Layout::Generic,
    },
    Special {
        name: ".smp_locks",
        entry_size: 4,
        layout: Layout::Generic,
    },
    // unsigned long pointers to `call __fentry__` sites
    Special {
        name: "__mcount_loc",
        entry_size: 8,
        layout: Layout::Generic,
    },
    Special {
        name: "__patchable_function_entries",
        entry_size: 8,
        layout: Layout::Generic,
    },
    // struct bug_entry { s32 bug_addr_disp; s32 file_disp; u16 line; u16 flags; }
    Special {
        name: "__bug_table",
        entry_size: 12,
        layout: Layout::Generic,
    },
];

/// A place in a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    /// ELF section index.
    pub section: usize,
    /// Offset in it.
    pub offset: u64,
}

/// One `struct alt_instr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltEntry {
    /// Offset of the entry in `.altinstructions`.
    pub entry: u64,
    /// Original instructions.
    pub orig: Loc,
    /// `instrlen`.
    pub orig_len: u8,
    /// Replacement (always present: an entry without its relocation is refused).
    pub repl: Option<Loc>,
    /// `replacementlen`.
    pub repl_len: u8,
}

/// One `struct jump_entry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpEntry {
    /// Offset of the entry in `__jump_table`.
    pub entry: u64,
    /// The jump/NOP.
    pub code: Loc,
    /// Its target.
    pub target: Loc,
}

/// Relocations of a section sorted by offset, for exact lookups.
struct ByOffset {
    /// `(offset, relocation)` sorted by offset.
    sorted: Vec<(u64, Reloc)>,
}

impl ByOffset {
    fn new(relocs: Relocs<'_>) -> Self {
        let mut sorted: Vec<(u64, Reloc)> = relocs.iter().map(|r| (r.offset, r)).collect();
        sorted.sort_unstable_by_key(|e| e.0);
        ByOffset { sorted }
    }
    fn at(&self, offset: u64) -> Option<&Reloc> {
        let i = self.sorted.partition_point(|e| e.0 < offset);
        self.sorted.get(i).filter(|e| e.0 == offset).map(|e| &e.1)
    }
}

/// The place a data relocation points to (`S + A`), which must be in a section.
fn resolve(obj: &Object<'_>, sec_name: &str, r: &Reloc) -> Result<Loc> {
    let err = |m: String| Error::at(sec_name, r.offset, ErrorKind::Malformed(m));
    let sym = obj
        .symbols
        .get(r.sym as usize)
        .ok_or_else(|| err(format!("relocation names symbol {} past the table", r.sym)))?;
    let section = sym.section.ok_or_else(|| {
        err(format!(
            "relocation against `{}`, which is not defined in a section",
            sym.name_str()
        ))
    })?;
    let off = i64::try_from(sym.value)
        .ok()
        .and_then(|v| v.checked_add(r.addend))
        .and_then(|t| u64::try_from(t).ok());
    let offset = off.ok_or_else(|| {
        err(format!(
            "relocation target before the start of `{}`",
            obj.sections[section].name
        ))
    })?;
    Ok(Loc { section, offset })
}

fn entries<'o>(
    obj: &'o Object<'_>,
    index: usize,
    size: usize,
) -> Result<(&'o str, &'o [u8], ByOffset)> {
    let sec = &obj.sections[index];
    #[allow(clippy::manual_is_multiple_of)]
    // is_multiple_of needs Rust 1.87; the workspace says 1.85
    if sec.data.len() % size != 0 {
        return Err(Error::in_section(
            &sec.name,
            ErrorKind::Malformed(format!(
                "size {:#x} is not a multiple of the {size}-byte entry of Linux 6.12",
                sec.data.len()
            )),
        ));
    }
    Ok((&sec.name, sec.data, ByOffset::new(obj.relocs[index])))
}

/// Reads `.altinstructions` (section `index`).
pub fn read_alternatives(obj: &Object<'_>, index: usize) -> Result<Vec<AltEntry>> {
    let Some(Special {
        entry_size,
        layout:
            Layout::Alternatives {
                orig,
                repl,
                orig_len,
                repl_len,
            },
        ..
    }) = TABLE
        .iter()
        .find(|s| matches!(s.layout, Layout::Alternatives { .. }))
        .copied()
    else {
        return Ok(Vec::new());
    };
    let (name, data, rels) = entries(obj, index, entry_size)?;
    let mut out = Vec::with_capacity(data.len() / entry_size);
    for (k, e) in data.chunks_exact(entry_size).enumerate() {
        let base = (k * entry_size) as u64;
        let ol = e[orig_len];
        let rl = e[repl_len];
        let ro = rels.at(base + orig as u64).ok_or_else(|| {
            Error::at(
                name,
                base,
                ErrorKind::Malformed("alt_instr without a relocation for instr_offset".into()),
            )
        })?;
        let o = resolve(obj, name, ro)?;
        // The assembler writes `.long 144f - .` even for an empty replacement, so every
        // entry has both relocations (the verifier recognises the table only then).
        let r = match rels.at(base + repl as u64) {
            Some(rr) => Some(resolve(obj, name, rr)?),
            None => {
                return Err(Error::at(
                    name,
                    base,
                    ErrorKind::Malformed("alt_instr without a relocation for repl_offset".into()),
                ))
            }
        };
        out.push(AltEntry {
            entry: base,
            orig: o,
            orig_len: ol,
            repl: r,
            repl_len: rl,
        });
    }
    Ok(out)
}

/// Reads `__jump_table` (section `index`).
pub fn read_jump_table(obj: &Object<'_>, index: usize) -> Result<Vec<JumpEntry>> {
    let Some(Special {
        entry_size,
        layout: Layout::JumpTable { code, target },
        ..
    }) = TABLE
        .iter()
        .find(|s| matches!(s.layout, Layout::JumpTable { .. }))
        .copied()
    else {
        return Ok(Vec::new());
    };
    let (name, data, rels) = entries(obj, index, entry_size)?;
    let mut out = Vec::with_capacity(data.len() / entry_size);
    for k in 0..data.len() / entry_size {
        let base = (k * entry_size) as u64;
        let rc = rels.at(base + code as u64);
        let rt = rels.at(base + target as u64);
        let (Some(rc), Some(rt)) = (rc, rt) else {
            return Err(Error::at(
                name,
                base,
                ErrorKind::Malformed("jump_entry without code/target relocations".into()),
            ));
        };
        out.push(JumpEntry {
            entry: base,
            code: resolve(obj, name, rc)?,
            target: resolve(obj, name, rt)?,
        });
    }
    Ok(out)
}

/// The special-section entry for a section name.
pub fn lookup(name: &str) -> Option<&'static Special> {
    TABLE.iter().find(|s| s.name == name)
}
