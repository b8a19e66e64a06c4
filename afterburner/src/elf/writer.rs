//! The ELF writer: applies [`Edits`] to a relocatable object and streams the new file.
//!
//! Nothing of the input is copied into memory first: section contents that did not change are
//! written straight from the input bytes, relocation sections are re-encoded entry by entry (or
//! copied as they are when neither their entries nor the symbol numbering changed).
//!
//! # Layout
//!
//! The file is laid out by the rules of `object`'s ELF builder (`object::build::elf`), which
//! wrote it before; for the same edits the bytes are the same (a test compares the two):
//!
//! 1. the ELF header (64 bytes);
//! 2. the contents of every section with file data (`SHT_PROGBITS`, `SHT_NOTE`, `SHT_GROUP`, ...)
//!    in section-header order, each at the next multiple of its `sh_addralign` (0 counts as 1);
//!    `SHT_NOBITS` sections get the current offset and take no room;
//! 3. `.symtab` (8-aligned): the null symbol, the local symbols, then the global ones, each in
//!    table order; then `.symtab_shndx` (4-aligned) when present or needed; then `.strtab`,
//!    rebuilt from the symbol names (sorted, suffixes shared: `object::write::StringTable`);
//! 4. every relocation section (8-aligned), in section-header order;
//! 5. `.shstrtab`, rebuilt from the section names the same way;
//! 6. the section headers (8-aligned).
//!
//! Section indices never change (sections are only appended). Symbol indices do when local
//! symbols are added: relocations, `sh_info` of `.symtab` (first global) and the signature
//! symbol of `SHT_GROUP` sections follow. Header fields are kept, except: `sh_addr` is 0 for
//! sections without `SHF_ALLOC`; `.symtab`, `.symtab_shndx` and the string tables get the
//! standard headers (`sh_flags` 0; alignment 8, 4 and 1; `sh_entsize` 24, 4 and 0).

use super::{Edits, Object, Reloc};
use crate::error::{Error, Result};
use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::write::StringTable;
use object::Endianness;
use std::borrow::Cow;
use std::io::Write;

const LE: Endianness = Endianness::Little;
const SHT_NOBITS: u32 = elf::SHT_NOBITS.0;
const SHT_PROGBITS: u32 = elf::SHT_PROGBITS.0;
const SHT_INIT_ARRAY: u32 = elf::SHT_INIT_ARRAY.0;
const SHT_FINI_ARRAY: u32 = elf::SHT_FINI_ARRAY.0;
const SHT_PREINIT_ARRAY: u32 = elf::SHT_PREINIT_ARRAY.0;
const SHT_RELR: u32 = elf::SHT_RELR.0;
const SHT_CREL: u32 = elf::SHT_CREL.0;
const SHT_LLVM_DEPENDENT_LIBRARIES: u32 = elf::SHT_LLVM_DEPENDENT_LIBRARIES.0;
const SHT_NOTE: u32 = elf::SHT_NOTE.0;
const SHT_GROUP: u32 = elf::SHT_GROUP.0;
const SHT_X86_64_UNWIND: u32 = elf::SHT_X86_64_UNWIND.0;
const SHT_REL: u32 = elf::SHT_REL.0;
const SHT_RELA: u32 = elf::SHT_RELA.0;
const SHT_SYMTAB: u32 = elf::SHT_SYMTAB.0;
const SHT_SYMTAB_SHNDX: u32 = elf::SHT_SYMTAB_SHNDX.0;
const SHT_STRTAB: u32 = elf::SHT_STRTAB.0;
const SHT_NULL: u32 = elf::SHT_NULL.0;
const SHF_ALLOC: u64 = elf::SHF_ALLOC.0;
const SHF_INFO_LINK: u64 = elf::SHF_INFO_LINK.0;
const STB_LOCAL: u8 = elf::STB_LOCAL.0;
const STT_SECTION: u8 = elf::STT_SECTION.0;
const SHDR_SIZE: u64 = 64;
const SYM_SIZE: u64 = 24;
const SHN_LORESERVE: u32 = elf::SHN_LORESERVE as u32;
const SHN_XINDEX: u16 = elf::SHN_XINDEX.0;

/// What a section's file contents are.
enum Body<'a> {
    /// Bytes (original or new).
    Data(Cow<'a, [u8]>),
    /// The original bytes with some replaced: `(offset, bytes)`, sorted, not overlapping.
    Patched(&'a [u8], super::BytePatches),
    /// `SHT_NOBITS` of this size: no file contents.
    Nobits(u64),
    /// Relocations (`rela`: `SHT_RELA` rather than `SHT_REL`).
    Relocs {
        rela: bool,
    },
    Symtab,
    SymtabShndx,
    Strtab,
    Shstrtab,
}

/// One output section.
struct OutSection<'a> {
    name: Cow<'a, [u8]>,
    sh_type: u32,
    flags: u64,
    addr: u64,
    link: u32,
    info: u32,
    align: u64,
    entsize: u64,
    body: Body<'a>,
}

impl<'a> OutSection<'a> {
    fn new(name: Cow<'a, [u8]>, sh_type: u32, align: u64, body: Body<'a>) -> Self {
        OutSection {
            name,
            sh_type,
            flags: 0,
            addr: 0,
            link: 0,
            info: 0,
            align,
            entsize: 0,
            body,
        }
    }
}

/// One output symbol (before ordering).
struct OutSymbol<'a> {
    name: &'a [u8],
    st_info: u8,
    st_other: u8,
    /// Defining section (its index), else the raw `st_shndx` below.
    section: Option<u32>,
    st_shndx: u16,
    value: u64,
    size: u64,
}

impl OutSymbol<'_> {
    fn is_local(&self) -> bool {
        self.st_info >> 4 == STB_LOCAL
    }
}

fn unsupported(what: impl Into<String>) -> Error {
    Error::malformed(what)
}

/// `offset` aligned up to `align` by the builder's rule, `(offset + a - 1) & !(a - 1)` (exact
/// for powers of two; 0 counts as 1).
fn align(offset: u64, align: u64) -> u64 {
    let m = align.max(1) - 1;
    offset.saturating_add(m) & !m
}

/// Alignment padding beyond this is refused (a nonsensical `sh_addralign` in the input would
/// otherwise make a file of that size).
const MAX_PADDING: u64 = 1 << 30;

fn index_u32(i: usize) -> Result<u32> {
    u32::try_from(i).map_err(|_| Error::internal("index out of range"))
}

/// Relocations of one relocation section as they will be written.
enum RelocSource<'r> {
    /// The input's entries (raw bytes), with in-place changes `(index, offset, addend)` sorted
    /// by index.
    Original(&'r [u8], Vec<super::RelocPatch>),
    /// A complete new list.
    New(Vec<Reloc>),
}

impl RelocSource<'_> {
    fn len(&self, rela: bool) -> usize {
        match self {
            RelocSource::Original(raw, _) => raw.len() / if rela { 24 } else { 16 },
            RelocSource::New(v) => v.len(),
        }
    }
}

/// Applies `edits` to `obj` and streams the new file into `out`.
pub(super) fn emit<W: Write>(obj: &Object<'_>, mut edits: Edits, out: &mut W) -> Result<()> {
    let file = &obj.file;
    let header = file.elf_header();
    let table = file.elf_section_table();
    let symtab = file.elf_symbol_table();
    if header.e_phnum(LE) != 0 {
        return Err(unsupported(
            "program headers in a relocatable object are not supported",
        ));
    }
    let shstrndx = usize::try_from(
        header
            .shstrndx(LE, obj.data)
            .map_err(|e| Error::malformed(e.to_string()))?,
    )
    .map_err(|_| Error::malformed("e_shstrndx"))?;
    let symtab_index = symtab.section().0;
    let strtab_index = if symtab_index == 0 {
        0
    } else {
        symtab.string_section().0
    };
    let shndx_index = symtab.shndx_section().0;

    // Sections of the input, with their new contents.
    let mut new_data: Vec<Option<Vec<u8>>> = vec![None; table.len()];
    for (i, data) in std::mem::take(&mut edits.section_data) {
        *new_data
            .get_mut(i)
            .ok_or_else(|| Error::internal(format!("no section {i}")))? = Some(data);
    }
    let mut patches: Vec<Option<super::BytePatches>> = vec![None; table.len()];
    for (i, p) in std::mem::take(&mut edits.section_patches) {
        let data = obj
            .sections
            .get(i)
            .map(|s| s.data)
            .ok_or_else(|| Error::internal(format!("no section {i}")))?;
        let mut end = 0u64;
        for (at, bytes) in &p {
            if *at < end || at.saturating_add(bytes.len() as u64) > data.len() as u64 {
                return Err(Error::internal(
                    "section patches overlap or run past the end",
                ));
            }
            end = at + bytes.len() as u64;
        }
        if new_data[i].is_some() {
            return Err(Error::internal("new contents and patches for one section"));
        }
        patches[i] = Some(p);
    }
    let mut sections: Vec<OutSection<'_>> = Vec::with_capacity(table.len() + 4);
    for (i, sh) in table.iter().enumerate().skip(1) {
        let name = table
            .section_name(LE, sh)
            .map_err(|e| Error::malformed(format!("section {i}: {e}")))?;
        let sh_type = sh.sh_type(LE).0;
        let flags = sh.sh_flags(LE).0;
        let replaced = new_data[i].is_some() || patches[i].is_some();
        let contents = match (new_data[i].take(), patches[i].take()) {
            (Some(d), _) => Body::Data(Cow::Owned(d)),
            (None, Some(p)) => Body::Patched(obj.sections[i].data, p),
            (None, None) => Body::Data(Cow::Borrowed(obj.sections[i].data)),
        };
        let body = match sh_type {
            SHT_NOBITS => Body::Nobits(sh.sh_size(LE)),
            SHT_PROGBITS
            | SHT_INIT_ARRAY
            | SHT_FINI_ARRAY
            | SHT_PREINIT_ARRAY
            | SHT_RELR
            | SHT_CREL
            | SHT_LLVM_DEPENDENT_LIBRARIES
            | SHT_NOTE
            | SHT_GROUP
            | SHT_X86_64_UNWIND => contents,
            SHT_REL | SHT_RELA => {
                let link = sh.sh_link(LE) as usize;
                if link == 0 || link != symtab_index || flags & SHF_ALLOC != 0 {
                    return Err(unsupported(format!(
                        "Unsupported non-alloc section type {sh_type:x}"
                    )));
                }
                Body::Relocs {
                    rela: sh_type == SHT_RELA,
                }
            }
            SHT_SYMTAB if i == symtab_index => Body::Symtab,
            SHT_SYMTAB_SHNDX if i == shndx_index => Body::SymtabShndx,
            SHT_STRTAB if i == strtab_index => Body::Strtab,
            SHT_STRTAB if i == shstrndx => Body::Shstrtab,
            SHT_STRTAB if name == b".annobin.notes" => contents,
            SHT_SYMTAB | SHT_SYMTAB_SHNDX | SHT_STRTAB => {
                return Err(unsupported(format!(
                    "Unsupported section type {sh_type:x} at index {i}"
                )))
            }
            other => return Err(unsupported(format!("Unsupported section type {other:x}"))),
        };
        if replaced && !matches!(body, Body::Data(_) | Body::Patched(..)) {
            return Err(Error::internal(
                "new contents for a section without file data",
            ));
        }
        sections.push(OutSection {
            name: Cow::Borrowed(name),
            sh_type,
            flags,
            addr: sh.sh_addr(LE),
            link: sh.sh_link(LE),
            info: sh.sh_info(LE),
            align: sh.sh_addralign(LE),
            entsize: sh.sh_entsize(LE),
            body,
        });
    }
    if shstrndx == 0
        || !matches!(
            sections.get(shstrndx - 1).map(|s| &s.body),
            Some(Body::Shstrtab)
        )
    {
        return Err(unsupported(".shstrtab section is needed but not present"));
    }
    // Relocation sources by relocation section (ELF index).
    let mut sources: Vec<Option<RelocSource<'_>>> = (0..table.len())
        .map(|r| {
            matches!(
                sections.get(r.wrapping_sub(1)).map(|s| &s.body),
                Some(Body::Relocs { .. })
            )
            .then(|| RelocSource::Original(obj.sections[r].data, Vec::new()))
        })
        .collect();
    let rela_of = |t: usize, what: &str| -> Result<usize> {
        obj.sections
            .get(t)
            .and_then(|s| s.rela)
            .ok_or_else(|| Error::internal(format!("{what} for a section without a RELA section")))
    };
    for (t, mut p) in std::mem::take(&mut edits.reloc_patches) {
        let r = rela_of(t, "relocation patches")?;
        if let Some(Some(RelocSource::Original(_, patches))) = sources.get_mut(r) {
            p.sort_by_key(|x| x.0);
            *patches = p;
        }
    }
    for (t, rels) in std::mem::take(&mut edits.relocs) {
        let r = rela_of(t, "relocations")?;
        *sources
            .get_mut(r)
            .ok_or_else(|| Error::internal("relocation section"))? = Some(RelocSource::New(rels));
    }

    // Appended sections.
    let mut symtab_out = (symtab_index != 0).then_some(symtab_index);
    let mut strtab_out = (strtab_index != 0).then_some(strtab_index);
    if symtab_out.is_none() && !edits.new_section_symbols.is_empty() {
        // An object without a symbol table (GNU as leaves it out when empty) gets one.
        sections.push(OutSection::new(
            Cow::Borrowed(b".strtab"),
            SHT_STRTAB,
            1,
            Body::Strtab,
        ));
        strtab_out = Some(sections.len());
        sources.push(None);
        sections.push(OutSection::new(
            Cow::Borrowed(b".symtab"),
            SHT_SYMTAB,
            8,
            Body::Symtab,
        ));
        symtab_out = Some(sections.len());
        sources.push(None);
    }
    for ns in std::mem::take(&mut edits.new_sections) {
        let mut s = OutSection::new(
            Cow::Owned(ns.name.clone().into_bytes()),
            ns.sh_type,
            ns.align,
            Body::Data(Cow::Owned(ns.data)),
        );
        s.flags = ns.flags;
        sections.push(s);
        sources.push(None);
        let target = sections.len();
        if !ns.relocs.is_empty() {
            let symtab =
                symtab_out.ok_or_else(|| Error::internal("relocations without a symbol table"))?;
            let mut r = OutSection::new(
                Cow::Owned(format!(".rela{}", ns.name).into_bytes()),
                SHT_RELA,
                8,
                Body::Relocs { rela: true },
            );
            r.flags = SHF_INFO_LINK;
            r.link = index_u32(symtab)?;
            r.info = index_u32(target)?;
            r.entsize = 24;
            sections.push(r);
            sources.push(Some(RelocSource::New(ns.relocs)));
        }
    }
    let section_num = index_u32(1 + sections.len())?;

    // Symbols: the input's with their new values, then the new section symbols.
    let mut symbols: Vec<OutSymbol<'_>> = Vec::with_capacity(symtab.len() + 8);
    for (i, sym) in symtab.iter().enumerate().skip(1) {
        let section = symtab
            .symbol_section(LE, sym, object::SymbolIndex(i))
            .map_err(|e| Error::malformed(format!("symbol {i}: {e}")))?;
        let section = match section {
            Some(s) if s.0 >= table.len() => {
                return Err(unsupported("Invalid symbol section index"))
            }
            Some(s) => Some(index_u32(s.0)?),
            None => None,
        };
        symbols.push(OutSymbol {
            name: symtab
                .symbol_name(LE, sym)
                .map_err(|e| Error::malformed(format!("symbol {i}: {e}")))?,
            st_info: sym.st_info().0,
            st_other: sym.st_other().0,
            section,
            st_shndx: sym.st_shndx(LE).0,
            value: sym.st_value(LE),
            size: sym.st_size(LE),
        });
    }
    for &(i, value, size) in &edits.symbols {
        let s = symbols
            .get_mut(i.wrapping_sub(1))
            .ok_or_else(|| Error::internal(format!("no symbol {i}")))?;
        s.value = value;
        s.size = size;
    }
    let input_symbols = symbols.len();
    for &sec in &edits.new_section_symbols {
        if sec == 0 || sec > sections.len() {
            return Err(Error::internal(format!("no section {sec}")));
        }
        symbols.push(OutSymbol {
            name: b"",
            st_info: (STB_LOCAL << 4) | STT_SECTION,
            st_other: 0,
            section: Some(index_u32(sec)?),
            st_shndx: 0,
            value: 0,
            size: 0,
        });
    }
    // Output order: locals, then globals, each in table order. `out_index[k + 1]` is the
    // output index of `symbols[k]`.
    let mut order: Vec<usize> = Vec::with_capacity(symbols.len());
    for local in [true, false] {
        order.extend((0..symbols.len()).filter(|&k| symbols[k].is_local() == local));
    }
    let num_local = symbols.iter().filter(|s| s.is_local()).count();
    let mut out_index = vec![0u32; symbols.len() + 1];
    for (n, &k) in order.iter().enumerate() {
        out_index[k + 1] = index_u32(n + 1)?;
    }
    let identity_symbols = out_index.iter().enumerate().all(|(i, &o)| i == o as usize);
    // `Reloc::sym` numbering: input index `s` below `nsyms`, then the new symbols (index 0 is
    // the null symbol even when the input has no table).
    let nsyms = symtab.len().max(1);
    let sym_out = |s: u32| -> Result<u32> {
        let s = s as usize;
        if s == 0 {
            return Ok(0);
        }
        let k = if s < nsyms {
            s
        } else {
            s - nsyms + input_symbols + 1
        };
        out_index
            .get(k)
            .copied()
            .ok_or_else(|| Error::internal(format!("no new symbol {s}")))
    };
    let sym_num = if symtab_out.is_none() && symbols.is_empty() {
        0
    } else {
        index_u32(1 + symbols.len())?
    };
    let mut need_shndx = shndx_index != 0;
    let mut strtab = StringTable::new();
    let mut names = Vec::with_capacity(symbols.len());
    for &k in &order {
        let s = &symbols[k];
        names.push((!s.name.is_empty()).then(|| strtab.add(s.name)));
        if s.section.is_some_and(|x| x >= SHN_LORESERVE) {
            need_shndx = true;
        }
    }
    if shndx_index == 0 && need_shndx {
        return Err(unsupported(
            ".symtab.shndx section is needed but not present",
        ));
    }
    if strtab_out.is_none() && !strtab.is_empty() {
        return Err(unsupported(".strtab section is needed but not present"));
    }
    let mut shstrtab = StringTable::new();
    let section_names: Vec<_> = sections
        .iter()
        .map(|s| (!s.name.is_empty()).then(|| shstrtab.add(&s.name)))
        .collect();
    let string_data = |t: &mut StringTable<'_>| -> Result<Vec<u8>> {
        let mut v = vec![0u8];
        t.write(&mut v, 1)
            .map_err(|e| Error::malformed(e.to_string()))?;
        Ok(v)
    };
    let strtab_data = string_data(&mut strtab)?;
    let shstrtab_data = string_data(&mut shstrtab)?;

    // Layout.
    let mut offset = 64u64;
    let mut reserve = |size: u64, a: u64| -> (u64, u64) {
        offset = align(offset, a);
        let at = offset;
        offset += size;
        (at, size)
    };
    // (offset, size) of each section in the file, by position in `sections`.
    let mut place = vec![(0u64, 0u64); sections.len()];
    let mut last_end = 64u64;
    for (s, p) in sections.iter().zip(place.iter_mut()) {
        match &s.body {
            Body::Data(_) | Body::Patched(..) => {
                let len = match &s.body {
                    Body::Data(d) => d.len(),
                    Body::Patched(d, _) => d.len(),
                    _ => 0,
                };
                *p = reserve(len as u64, s.align);
                if p.0 - last_end > MAX_PADDING {
                    return Err(Error::in_section(
                        &String::from_utf8_lossy(&s.name),
                        crate::error::ErrorKind::Malformed(format!(
                            "sh_addralign {:#x} would put {:#x} bytes of padding before it",
                            s.align,
                            p.0 - last_end
                        )),
                    ));
                }
                last_end = p.0 + p.1;
            }
            Body::Nobits(n) => *p = (reserve(0, 1).0, *n),
            _ => {}
        }
    }
    if let Some(i) = symtab_out {
        place[i - 1] = reserve(u64::from(sym_num) * SYM_SIZE, 8);
    }
    if shndx_index != 0 {
        place[shndx_index - 1] = reserve(u64::from(sym_num) * 4, 4);
    }
    if let Some(i) = strtab_out {
        place[i - 1] = reserve(strtab_data.len() as u64, 1);
    }
    for (i, s) in sections.iter().enumerate() {
        if let Body::Relocs { rela } = s.body {
            let n = sources[i + 1].as_ref().map_or(0, |x| x.len(rela)) as u64;
            place[i] = reserve(n * if rela { 24 } else { 16 }, 8);
        }
    }
    place[shstrndx - 1] = reserve(shstrtab_data.len() as u64, 1);
    let e_shoff = reserve(u64::from(section_num) * SHDR_SIZE, 8).0;
    let total = reserve(0, 1).0;

    // Writing.
    let mut w = Counting { out, count: 0 };
    let input_header = obj
        .data
        .get(..64)
        .ok_or_else(|| Error::malformed("truncated ELF header"))?;
    let mut eh = [0u8; 64];
    eh[0..4].copy_from_slice(&elf::ELFMAG);
    eh[4] = elf::ELFCLASS64.0;
    eh[5] = elf::ELFDATA2LSB.0;
    eh[6] = elf::EV_CURRENT.0;
    // EI_OSABI, EI_ABIVERSION, e_type, e_machine; e_version; e_entry; e_flags.
    eh[7..9].copy_from_slice(&input_header[7..9]);
    eh[16..20].copy_from_slice(&input_header[16..20]);
    eh[20..24].copy_from_slice(&1u32.to_le_bytes());
    eh[24..32].copy_from_slice(&input_header[24..32]);
    eh[48..52].copy_from_slice(&input_header[48..52]);
    eh[40..48].copy_from_slice(&e_shoff.to_le_bytes());
    eh[52..54].copy_from_slice(&64u16.to_le_bytes());
    eh[58..60].copy_from_slice(&64u16.to_le_bytes());
    let e_shnum = u16::try_from(section_num)
        .ok()
        .filter(|&n| u32::from(n) < SHN_LORESERVE)
        .unwrap_or(0);
    eh[60..62].copy_from_slice(&e_shnum.to_le_bytes());
    let shstrndx32 = index_u32(shstrndx)?;
    let e_shstrndx = u16::try_from(shstrndx32)
        .ok()
        .filter(|&n| u32::from(n) < SHN_LORESERVE)
        .unwrap_or(SHN_XINDEX);
    eh[62..64].copy_from_slice(&e_shstrndx.to_le_bytes());
    w.write(&eh)?;

    for (s, p) in sections.iter().zip(&place) {
        match &s.body {
            Body::Data(d) => {
                w.pad_to(p.0)?;
                w.write(d)?;
            }
            Body::Patched(d, patches) => {
                w.pad_to(p.0)?;
                let mut from = 0usize;
                for (at, bytes) in patches {
                    // (Checked above: sorted, not overlapping, inside the section.)
                    let at = usize::try_from(*at).unwrap_or(d.len()).min(d.len());
                    w.write(&d[from.min(at)..at])?;
                    w.write(bytes)?;
                    from = at + bytes.len();
                }
                w.write(&d[from.min(d.len())..])?;
            }
            _ => {}
        }
    }
    if let Some(i) = symtab_out {
        w.pad_to(place[i - 1].0)?;
        let mut buf = Vec::with_capacity((symbols.len() + 1) * 24);
        let mut shndx = Vec::new();
        buf.extend_from_slice(&[0u8; 24]);
        if need_shndx {
            shndx.extend_from_slice(&0u32.to_le_bytes());
        }
        for (&k, name) in order.iter().zip(&names) {
            let s = &symbols[k];
            let st_shndx = match s.section {
                Some(x) => u16::try_from(x)
                    .ok()
                    .filter(|&n| u32::from(n) < SHN_LORESERVE)
                    .unwrap_or(SHN_XINDEX),
                None => s.st_shndx,
            };
            buf.extend_from_slice(&strtab.maybe_get_offset(*name).to_le_bytes());
            buf.push(s.st_info);
            buf.push(s.st_other);
            buf.extend_from_slice(&st_shndx.to_le_bytes());
            buf.extend_from_slice(&s.value.to_le_bytes());
            buf.extend_from_slice(&s.size.to_le_bytes());
            if need_shndx {
                let x = if st_shndx == SHN_XINDEX {
                    s.section.unwrap_or(0)
                } else {
                    0
                };
                shndx.extend_from_slice(&x.to_le_bytes());
            }
        }
        w.write(&buf)?;
        if shndx_index != 0 {
            w.pad_to(place[shndx_index - 1].0)?;
            w.write(&shndx)?;
        }
    }
    if let Some(i) = strtab_out {
        w.pad_to(place[i - 1].0)?;
        w.write(&strtab_data)?;
    }
    for (i, s) in sections.iter().enumerate() {
        let Body::Relocs { rela } = s.body else {
            continue;
        };
        w.pad_to(place[i].0)?;
        if let Some(source) = &sources[i + 1] {
            write_relocs(&mut w, source, rela, identity_symbols, &sym_out)?;
        }
    }
    w.pad_to(place[shstrndx - 1].0)?;
    w.write(&shstrtab_data)?;

    w.pad_to(e_shoff)?;
    let mut hdrs = Vec::with_capacity(section_num as usize * 64);
    let null_size = if section_num >= SHN_LORESERVE {
        u64::from(section_num)
    } else {
        0
    };
    let null_link = if shstrndx32 >= SHN_LORESERVE {
        shstrndx32
    } else {
        0
    };
    let null = OutSection::new(Cow::Borrowed(b""), SHT_NULL, 0, Body::Nobits(0));
    push_shdr(&mut hdrs, 0, &null, 0, null_size, null_link, 0);
    for (i, s) in sections.iter().enumerate() {
        let name = shstrtab.maybe_get_offset(section_names[i]);
        let (offset, size) = place[i];
        match s.body {
            Body::Symtab => {
                let mut h = OutSection::new(Cow::Borrowed(b""), SHT_SYMTAB, 8, Body::Symtab);
                h.entsize = SYM_SIZE;
                let link = strtab_out.map_or(Ok(0), index_u32)?;
                push_shdr(
                    &mut hdrs,
                    name,
                    &h,
                    offset,
                    size,
                    link,
                    index_u32(1 + num_local)?,
                );
            }
            Body::SymtabShndx => {
                let mut h =
                    OutSection::new(Cow::Borrowed(b""), SHT_SYMTAB_SHNDX, 4, Body::SymtabShndx);
                h.entsize = 4;
                let link = symtab_out.map_or(Ok(0), index_u32)?;
                push_shdr(&mut hdrs, name, &h, offset, size, link, 0);
            }
            Body::Strtab | Body::Shstrtab => {
                let h = OutSection::new(Cow::Borrowed(b""), SHT_STRTAB, 1, Body::Strtab);
                push_shdr(&mut hdrs, name, &h, offset, size, 0, 0);
            }
            _ => {
                let mut info = s.info;
                if s.sh_type == SHT_GROUP && info != 0 {
                    // The signature symbol keeps its identity, not its index.
                    info = *out_index.get(info as usize).ok_or_else(|| {
                        Error::in_section(
                            &String::from_utf8_lossy(&s.name),
                            crate::error::ErrorKind::Malformed(format!(
                                "group signature symbol {info} past the table"
                            )),
                        )
                    })?;
                }
                push_shdr(&mut hdrs, name, s, offset, size, s.link, info);
            }
        }
    }
    w.write(&hdrs)?;
    w.out.flush()?;
    if w.count != total {
        return Err(Error::internal("written size differs from the layout"));
    }
    Ok(())
}

/// Appends a section header: type, flags, address (only with `SHF_ALLOC`), alignment and
/// entry size from `s`; the rest as given.
fn push_shdr(
    v: &mut Vec<u8>,
    name: u32,
    s: &OutSection<'_>,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
) {
    let addr = if s.flags & SHF_ALLOC != 0 { s.addr } else { 0 };
    v.extend_from_slice(&name.to_le_bytes());
    v.extend_from_slice(&s.sh_type.to_le_bytes());
    v.extend_from_slice(&s.flags.to_le_bytes());
    v.extend_from_slice(&addr.to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&link.to_le_bytes());
    v.extend_from_slice(&info.to_le_bytes());
    v.extend_from_slice(&s.align.to_le_bytes());
    v.extend_from_slice(&s.entsize.to_le_bytes());
}

/// Writes the relocations of one section.
fn write_relocs<W: Write>(
    w: &mut Counting<'_, W>,
    source: &RelocSource<'_>,
    rela: bool,
    identity_symbols: bool,
    sym_out: &dyn Fn(u32) -> Result<u32>,
) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let entry = |buf: &mut Vec<u8>, offset: u64, sym: u32, r_type: u32, addend: i64| {
        buf.extend_from_slice(&offset.to_le_bytes());
        let info = (u64::from(sym) << 32) | u64::from(r_type);
        buf.extend_from_slice(&info.to_le_bytes());
        if rela {
            buf.extend_from_slice(&addend.to_le_bytes());
        }
    };
    match source {
        RelocSource::New(list) => {
            for r in list {
                entry(&mut buf, r.offset, sym_out(r.sym)?, r.r_type, r.addend);
                if buf.len() >= 60 * 1024 {
                    w.write(&buf)?;
                    buf.clear();
                }
            }
        }
        RelocSource::Original(raw, patches) => {
            let size = if rela { 24 } else { 16 };
            let n = raw.len() / size;
            let mut p = patches.iter().peekable();
            let mut i = 0usize;
            while i < n {
                // A run of unchanged entries is copied as it is when symbols keep their numbers.
                let next = p.peek().map_or(n, |x| (x.0 as usize).min(n));
                if identity_symbols && next > i {
                    w.write(&buf)?;
                    buf.clear();
                    w.write(&raw[i * size..next * size])?;
                    i = next;
                    continue;
                }
                let e = &raw[i * size..(i + 1) * size];
                let mut offset = u64::from_le_bytes(e[0..8].try_into().unwrap_or_default());
                let info = u64::from_le_bytes(e[8..16].try_into().unwrap_or_default());
                let mut addend = if rela {
                    i64::from_le_bytes(e[16..24].try_into().unwrap_or_default())
                } else {
                    0
                };
                while let Some(&&(k, o, a)) = p.peek() {
                    if k as usize > i {
                        break;
                    }
                    if k as usize == i {
                        offset = o;
                        addend = a;
                    }
                    p.next();
                }
                entry(
                    &mut buf,
                    offset,
                    sym_out((info >> 32) as u32)?,
                    (info & 0xffff_ffff) as u32,
                    addend,
                );
                if buf.len() >= 60 * 1024 {
                    w.write(&buf)?;
                    buf.clear();
                }
                i += 1;
            }
        }
    }
    w.write(&buf)
}

/// A writer that counts bytes (for padding to the laid-out offsets).
struct Counting<'w, W: Write> {
    out: &'w mut W,
    count: u64,
}

impl<W: Write> Counting<'_, W> {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.count += b.len() as u64;
        Ok(())
    }

    fn pad_to(&mut self, offset: u64) -> Result<()> {
        const ZEROS: [u8; 4096] = [0; 4096];
        if offset < self.count {
            return Err(Error::internal("output sections overlap"));
        }
        while self.count < offset {
            let n = usize::try_from((offset - self.count).min(ZEROS.len() as u64)).unwrap_or(0);
            self.write(&ZEROS[..n])?;
        }
        Ok(())
    }
}
