//! ELF: the read model of an input object, and the only code that writes ELF.
//!
//! Reading ([`Object::parse`]) checks the file (ELF64, little-endian x86-64), and gathers the
//! sections, symbols and `RELA` relocations into plain tables indexed by their ELF indices.
//! Every access is checked: malformed input is an [`Error`], never a panic.
//!
//! Writing ([`write()`], [`write_to_file`]; the `writer` module) applies the [`Edits`] (new
//! section contents, relocation lists and changes, symbol values, new sections) and streams the
//! new file, laid out by the rules of `object`'s ELF builder, straight from the input bytes.
//! (In tests the builder itself, with `SHT_GROUP` sections hidden from it as opaque data and
//! restored after writing, is the oracle of the writer.)

use crate::error::{Error, ErrorKind, Result};
#[cfg(test)]
use object::build::elf::{Builder, SectionData, SymbolId};
#[cfg(test)]
use object::build::Id;
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, Rela, SectionHeader, Sym};
use object::{Endianness, FileKind};
use std::borrow::Cow;

/// `SHF_EXECINSTR`.
pub const SHF_EXECINSTR: u64 = elf::SHF_EXECINSTR.0;
/// `SHF_ALLOC`.
pub const SHF_ALLOC: u64 = elf::SHF_ALLOC.0;
/// `SHT_PROGBITS`.
pub const SHT_PROGBITS: u32 = elf::SHT_PROGBITS.0;
/// `SHT_NOBITS`.
pub const SHT_NOBITS: u32 = elf::SHT_NOBITS.0;
/// `SHT_RELA`.
pub const SHT_RELA: u32 = elf::SHT_RELA.0;
/// `SHT_REL`.
pub const SHT_REL: u32 = elf::SHT_REL.0;
/// `SHT_GROUP`.
pub const SHT_GROUP: u32 = elf::SHT_GROUP.0;
/// `STT_SECTION`.
pub const STT_SECTION: u8 = elf::STT_SECTION.0;
/// `STT_FILE`.
pub const STT_FILE: u8 = elf::STT_FILE.0;
/// `R_X86_64_PC32`.
pub const R_X86_64_PC32: u32 = elf::R_X86_64_PC32.0;
/// `R_X86_64_PC64`.
pub const R_X86_64_PC64: u32 = elf::R_X86_64_PC64.0;
/// `R_X86_64_NONE`.
pub const R_X86_64_NONE: u32 = elf::R_X86_64_NONE.0;
/// `ET_REL`.
pub const ET_REL: u16 = elf::ET_REL.0;

/// One section of the input, by ELF index.
#[derive(Clone, Debug)]
pub struct Section<'a> {
    /// Name (lossy UTF-8).
    pub name: Cow<'a, str>,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addr`.
    pub addr: u64,
    /// `sh_size`.
    pub size: u64,
    /// Contents (empty for `SHT_NOBITS` and the null section).
    pub data: &'a [u8],
    /// Index of the `SHT_RELA` section whose relocations apply to this section.
    pub rela: Option<usize>,
}

impl Section<'_> {
    /// Executable code with contents.
    pub fn is_code(&self) -> bool {
        self.flags & SHF_EXECINSTR != 0 && self.sh_type == SHT_PROGBITS
    }
}

/// One symbol of `.symtab`, by index.
#[derive(Clone, Copy, Debug)]
pub struct Symbol<'a> {
    /// Name bytes.
    pub name: &'a [u8],
    /// Defining section (ELF index), if any.
    pub section: Option<usize>,
    /// `st_value`.
    pub value: u64,
    /// `st_size`.
    pub size: u64,
    /// `STT_*`.
    pub st_type: u8,
    /// `STB_*`.
    pub bind: u8,
}

impl Symbol<'_> {
    /// Name as text (lossy).
    pub fn name_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.name)
    }
}

/// One `RELA` relocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// `r_offset` in the target section.
    pub offset: u64,
    /// `.symtab` index (0: none). Indices past the original table name new symbols
    /// ([`Edits::new_section_symbols`]).
    pub sym: u32,
    /// `ELF64_R_TYPE`.
    pub r_type: u32,
    /// `r_addend`.
    pub addend: i64,
}

/// The `RELA` relocations of one section, read in place from the file (no copy).
#[derive(Clone, Copy, Default)]
pub struct Relocs<'a> {
    raw: &'a [elf::Rela64<Endianness>],
}

impl<'a> Relocs<'a> {
    /// Number of relocations.
    pub fn len(&self) -> usize {
        self.raw.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
    /// The `i`-th relocation (file order); `None` past the end.
    pub fn get(&self, i: usize) -> Option<Reloc> {
        self.raw.get(i).map(read_rela)
    }
    /// All relocations in file order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Reloc> + 'a {
        self.raw.iter().map(read_rela)
    }
}

fn read_rela(r: &elf::Rela64<Endianness>) -> Reloc {
    let e = Endianness::Little;
    Reloc {
        offset: r.r_offset(e),
        sym: r.r_sym(e, false),
        r_type: r.r_type(e, false).0,
        addend: r.r_addend(e),
    }
}

/// A parsed input object.
pub struct Object<'a> {
    /// The raw bytes.
    pub data: &'a [u8],
    /// `object`'s view of the file (handed to the DWARF rewriter).
    pub file: ElfFile64<'a, Endianness>,
    /// `e_type`.
    pub e_type: u16,
    /// Sections by ELF index (index 0 is the null section).
    pub sections: Vec<Section<'a>>,
    /// Symbols by `.symtab` index (index 0 is the null symbol); empty without a symbol table.
    pub symbols: Vec<Symbol<'a>>,
    /// ELF index of `.symtab`, if any.
    pub symtab: Option<usize>,
    /// Relocations of each section (by ELF index of the section they apply to), in file order.
    pub relocs: Vec<Relocs<'a>>,
}

fn malformed(e: object::read::Error) -> Error {
    Error::malformed(e.to_string())
}

/// Largest `sh_addralign` accepted. Linux objects and modules need at most 2^14 (a 16 KiB
/// aligned stack page section); this leaves room while bounding the padding of each section.
pub const MAX_ALIGN: u64 = 1 << 16;

/// `sh_addralign` must be 1 or another power of two up to [`MAX_ALIGN`]. (ELF also allows 0
/// for "none", but no compiler, assembler or linker writes it for a real section, and `object`'s
/// writer cannot lay it out; it is refused.)
fn check_align(name: &str, align: u64, hdr: u64) -> Result<()> {
    let what = if align == 0 {
        "not 1 or a power of two"
    } else if !align.is_power_of_two() {
        "not a power of two"
    } else if align > MAX_ALIGN {
        "larger than 0x10000"
    } else {
        return Ok(());
    };
    Err(Error::in_section(
        name,
        ErrorKind::Malformed(format!(
            "sh_addralign {align:#x} is {what} (section header at file offset {hdr:#x})"
        )),
    ))
}

/// The sections with file data must not claim more bytes than the file holds (they never
/// overlap in a real object), and their alignments must not add up to more than the file plus
/// [`MAX_ALIGN`] (each one costs the writer at most its alignment in padding). Together these
/// keep the output within a small multiple of the input, whatever the headers say.
fn check_layout(name: &str, claimed: u64, align_sum: u64, file_len: u64) -> Result<()> {
    if claimed > file_len {
        return Err(Error::in_section(
            name,
            ErrorKind::Malformed(format!(
                "the sections up to this one claim {claimed:#x} bytes of file data, more than \
                 the file's {file_len:#x} (overlapping sections)"
            )),
        ));
    }
    if align_sum > file_len.saturating_add(MAX_ALIGN) {
        return Err(Error::in_section(
            name,
            ErrorKind::Malformed(format!(
                "the alignments of the sections up to this one add up to {align_sum:#x}, more \
                 than the file's {file_len:#x} bytes plus {MAX_ALIGN:#x}"
            )),
        ));
    }
    Ok(())
}

impl<'a> Object<'a> {
    /// Parses and checks `data`: ELF64, little-endian, x86-64.
    pub fn parse(data: &'a [u8]) -> Result<Object<'a>> {
        match FileKind::parse(data) {
            Ok(FileKind::Elf64) => {}
            Ok(FileKind::Elf32) => {
                return Err(Error::new(ErrorKind::NotElf64("32-bit ELF".into())))
            }
            Ok(other) => return Err(Error::new(ErrorKind::NotElf64(format!("{other:?} file")))),
            Err(e) => return Err(Error::new(ErrorKind::NotElf64(e.to_string()))),
        }
        let file = ElfFile64::<Endianness>::parse(data).map_err(malformed)?;
        let endian = file.endian();
        let header = file.elf_header();
        if endian != Endianness::Little {
            return Err(Error::new(ErrorKind::WrongMachine("big-endian".into())));
        }
        let machine = header.e_machine(endian);
        if machine != elf::EM_X86_64 {
            return Err(Error::new(ErrorKind::WrongMachine(format!(
                "e_machine {}",
                machine.0
            ))));
        }
        let e_type = header.e_type(endian).0;
        let table = file.elf_section_table();
        let shoff = header.e_shoff(endian);
        let file_len = data.len() as u64;
        let mut sections = Vec::with_capacity(table.len());
        // Bytes of file data the sections claim, and the sum of their alignments: the writer
        // lays every such section out anew, so these bound the output (see `check_layout`).
        let (mut claimed, mut align_sum) = (0u64, 0u64);
        for (i, sh) in table.iter().enumerate() {
            // Where this section's header sits, for messages about its fields.
            let hdr = shoff.saturating_add((i as u64).saturating_mul(64));
            let name = if i == 0 {
                Cow::Borrowed("")
            } else {
                let n = table.section_name(endian, sh).map_err(|e| {
                    Error::malformed(format!(
                        "section {i}: {e}: name offset {:#x} lies outside the section name table \
                         (section header at file offset {hdr:#x})",
                        sh.sh_name(endian)
                    ))
                })?;
                String::from_utf8_lossy(n)
            };
            let sh_type = sh.sh_type(endian).0;
            let data = if i == 0 || sh_type == SHT_NOBITS {
                &[][..]
            } else {
                let (off, size) = (sh.sh_offset(endian), sh.sh_size(endian));
                sh.data(endian, data).map_err(|e| {
                    Error::in_section(
                        &name,
                        ErrorKind::Malformed(format!(
                            "{e}: file range {off:#x}+{size:#x} does not fit the file ({file_len:#x} bytes; \
                             section header at file offset {hdr:#x})"
                        )),
                    )
                })?
            };
            if i != 0 {
                let align = sh.sh_addralign(endian);
                check_align(&name, align, hdr)?;
                if sh_type != SHT_NOBITS {
                    claimed = claimed.saturating_add(data.len() as u64);
                    align_sum = align_sum.saturating_add(align);
                    check_layout(&name, claimed, align_sum, file_len)?;
                }
            }
            sections.push(Section {
                name,
                sh_type,
                flags: sh.sh_flags(endian).0,
                addr: sh.sh_addr(endian),
                size: sh.sh_size(endian),
                data,
                rela: None,
            });
        }
        let symtab_t = file.elf_symbol_table();
        let symtab = if symtab_t.is_empty() {
            None
        } else {
            Some(symtab_t.section().0)
        };
        let mut symbols = Vec::with_capacity(symtab_t.len());
        for (i, sym) in symtab_t.iter().enumerate() {
            // Offset of this entry inside .symtab.
            let at = (i as u64).saturating_mul(24);
            let name = symtab_t.symbol_name(endian, sym).map_err(|e| {
                Error::at(
                    ".symtab",
                    at,
                    ErrorKind::Malformed(format!("symbol {i}: {e}")),
                )
            })?;
            let section = if i == 0 {
                // The null symbol is all zeros, with an empty name, in every object a compiler,
                // assembler or linker writes, and the writer rewrites it so: a name (also one
                // read from a string table that does not start with NUL), a section index or
                // any other field there would silently change (the verifier compares names).
                let raw = (
                    sym.st_name(endian),
                    sym.st_info().0,
                    sym.st_other().0,
                    sym.st_shndx(endian).0,
                    sym.st_value(endian),
                    sym.st_size(endian),
                );
                if raw != (0, 0, 0, 0, 0, 0) || !name.is_empty() {
                    let shndx = raw.3;
                    return Err(Error::at(
                        ".symtab",
                        at,
                        ErrorKind::Malformed(format!(
                            "the null symbol (index 0) is not all zeros with an empty name \
                             (name `{}`, section index {shndx}{}, value {:#x})",
                            String::from_utf8_lossy(name),
                            if usize::from(shndx) >= sections.len() {
                                ", a section which does not exist"
                            } else {
                                ""
                            },
                            raw.4
                        )),
                    ));
                }
                None
            } else {
                symtab_t
                    .symbol_section(endian, sym, object::SymbolIndex(i))
                    .map_err(|e| {
                        Error::at(
                            ".symtab",
                            at,
                            ErrorKind::Malformed(format!("symbol {i}: {e}")),
                        )
                    })?
                    .map(|s| s.0)
            };
            if let Some(s) = section {
                if s >= sections.len() {
                    return Err(Error::at(
                        ".symtab",
                        at,
                        ErrorKind::Malformed(format!(
                            "symbol {i} `{}` is in section {s}, which does not exist ({} sections)",
                            String::from_utf8_lossy(name),
                            sections.len()
                        )),
                    ));
                }
            }
            // In a relocatable object (symbol values are section offsets there; in a linked
            // file they are addresses):
            // * A section symbol stands for its section's start: `.afterburn` and the
            //   relocation rewrite address sites as "section symbol + offset". gcc, as and
            //   ld -r always give it value 0 (none of the Linux objects and modules differ),
            //   so another value is refused rather than carried through every addend.
            // * A symbol lies inside its section (`value + size <= sh_size`; true of every
            //   symbol of the Linux objects and modules): the rewrite maps both ends.
            let (value, size) = (sym.st_value(endian), sym.st_size(endian));
            if e_type == ET_REL && sym.st_type() == elf::STT_SECTION && value != 0 {
                return Err(Error::at(
                    ".symtab",
                    at,
                    ErrorKind::Malformed(format!(
                        "section symbol {i} has value {value:#x} (section symbols must have value 0)"
                    )),
                ));
            }
            if let (ET_REL, Some(s)) = (e_type, section) {
                let sec = &sections[s];
                if value.checked_add(size).is_none_or(|end| end > sec.size) {
                    return Err(Error::at(
                        ".symtab",
                        at,
                        ErrorKind::Malformed(format!(
                            "symbol {i} `{}` at {value:#x} ({size:#x} bytes) lies outside {} ({:#x} bytes)",
                            String::from_utf8_lossy(name),
                            sec.name,
                            sec.size
                        )),
                    ));
                }
            }
            symbols.push(Symbol {
                name,
                section,
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                st_type: sym.st_type().0,
                bind: sym.st_bind().0,
            });
        }
        let mut relocs = vec![Relocs::default(); sections.len()];
        for (i, sh) in table.iter().enumerate() {
            let sh_type = sh.sh_type(endian).0;
            if sh_type == SHT_REL {
                let name = &sections[i].name;
                return Err(Error::in_section(
                    name,
                    ErrorKind::Malformed(
                        "SHT_REL relocations are not supported on x86-64 (expected SHT_RELA)"
                            .into(),
                    ),
                ));
            }
            if sh_type != SHT_RELA {
                continue;
            }
            if sh.sh_flags(endian).0 & SHF_ALLOC != 0 {
                // Dynamic relocations of a linked file (scan only reads those).
                if e_type != ET_REL {
                    continue;
                }
                // In a relocatable object relocations are link-time data: an allocated
                // relocation section would be neither applied nor kept true.
                return Err(Error::in_section(
                    &sections[i].name,
                    ErrorKind::Malformed(
                        "relocation section with SHF_ALLOC in a relocatable object".into(),
                    ),
                ));
            }
            let name = sections[i].name.to_string();
            let Some((rels, link)) = sh
                .rela(endian, data)
                .map_err(|e| Error::in_section(&name, ErrorKind::Malformed(e.to_string())))?
            else {
                continue;
            };
            if Some(link.0) != symtab {
                return Err(Error::in_section(
                    &name,
                    ErrorKind::Malformed("relocations do not link to .symtab".into()),
                ));
            }
            let target = sh.sh_info(endian) as usize;
            if target == 0 || target >= sections.len() {
                return Err(Error::in_section(
                    &name,
                    ErrorKind::Malformed(format!("sh_info {target} names no section")),
                ));
            }
            if sections[target].rela.is_some() {
                return Err(Error::in_section(
                    &name,
                    ErrorKind::Malformed(format!(
                        "second relocation section for {}",
                        sections[target].name
                    )),
                ));
            }
            sections[target].rela = Some(i);
            let target_size = sections[target].size;
            // Relocations patch contents: never those of an empty section or of an ELF table
            // (compilers and assemblers relocate PROGBITS sections only; the verifier skips
            // tables, and the writer rebuilds them).
            let what = match sections[target].sh_type {
                SHT_NOBITS => Some("has no file data (SHT_NOBITS)"),
                0 => Some("is an SHT_NULL section"),
                2 | 3 | 11 => Some("is a symbol or string table"),
                SHT_RELA | SHT_GROUP | 18 => Some("is an ELF table (relocations, group, indices)"),
                _ => None,
            };
            if let (Some(what), false) = (what, rels.is_empty()) {
                return Err(Error::at(
                    &name,
                    0,
                    ErrorKind::Malformed(format!(
                        "relocations apply to {}, which {what}",
                        sections[target].name
                    )),
                ));
            }
            for (k, r) in rels.iter().enumerate() {
                // The field a relocation patches must lie inside its section (fuzzing found
                // objects whose relocations point past the end; they must be refused, not
                // followed).
                let width: u64 = match r.r_type(endian, false).0 {
                    0 => 0,
                    1 | 24 | 25 => 8,
                    12 | 13 => 2,
                    14 | 15 => 1,
                    _ => 4,
                };
                let off = r.r_offset(endian);
                if off.checked_add(width).is_none_or(|end| end > target_size) {
                    return Err(Error::at(
                        &name,
                        (k * 24) as u64,
                        ErrorKind::Malformed(format!(
                            "relocation at {off:#x} patches {width} bytes past the end of {} ({target_size:#x} bytes)",
                            sections[target].name
                        )),
                    ));
                }
                let sym = r.r_sym(endian, false);
                if sym != 0 && sym as usize >= symbols.len() {
                    return Err(Error::at(
                        &name,
                        (k * 24) as u64,
                        ErrorKind::Malformed(format!(
                            "relocation names symbol {sym} past the symbol table"
                        )),
                    ));
                }
                // A TLS offset (R_X86_64_DTPOFF32/64, TPOFF32/64) is carried unchanged: its
                // symbol must lie in a TLS section (SHF_TLS), which never moves, not in code.
                let tls_offset = matches!(r.r_type(endian, false).0, 17 | 18 | 21 | 23);
                let sym_section = symbols.get(sym as usize).and_then(|s| s.section);
                if let (true, Some(t)) = (tls_offset, sym_section) {
                    if sections[t].flags & elf::SHF_TLS.0 == 0 {
                        return Err(Error::at(
                            &name,
                            (k * 24) as u64,
                            ErrorKind::Malformed(format!(
                                "TLS relocation {} against a symbol in {}, which is not a TLS section",
                                reloc_name(r.r_type(endian, false).0),
                                sections[t].name
                            )),
                        ));
                    }
                }
            }
            relocs[target] = Relocs { raw: rels };
        }
        Ok(Object {
            data,
            file,
            e_type,
            sections,
            symbols,
            symtab,
            relocs,
        })
    }

    /// Section index by name (first match).
    pub fn section_by_name(&self, name: &str) -> Option<usize> {
        self.sections.iter().position(|s| s.name == name)
    }

    /// Whether this is a relocatable object.
    pub fn is_relocatable(&self) -> bool {
        self.e_type == ET_REL
    }
}

/// The name of an x86-64 relocation type.
pub fn reloc_name(r_type: u32) -> &'static str {
    match elf::RelocationType(r_type) {
        elf::R_X86_64_NONE => "R_X86_64_NONE",
        elf::R_X86_64_64 => "R_X86_64_64",
        elf::R_X86_64_PC32 => "R_X86_64_PC32",
        elf::R_X86_64_GOT32 => "R_X86_64_GOT32",
        elf::R_X86_64_PLT32 => "R_X86_64_PLT32",
        elf::R_X86_64_COPY => "R_X86_64_COPY",
        elf::R_X86_64_GLOB_DAT => "R_X86_64_GLOB_DAT",
        elf::R_X86_64_JUMP_SLOT => "R_X86_64_JUMP_SLOT",
        elf::R_X86_64_RELATIVE => "R_X86_64_RELATIVE",
        elf::R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        elf::R_X86_64_32 => "R_X86_64_32",
        elf::R_X86_64_32S => "R_X86_64_32S",
        elf::R_X86_64_16 => "R_X86_64_16",
        elf::R_X86_64_PC16 => "R_X86_64_PC16",
        elf::R_X86_64_8 => "R_X86_64_8",
        elf::R_X86_64_PC8 => "R_X86_64_PC8",
        elf::R_X86_64_DTPMOD64 => "R_X86_64_DTPMOD64",
        elf::R_X86_64_DTPOFF64 => "R_X86_64_DTPOFF64",
        elf::R_X86_64_TPOFF64 => "R_X86_64_TPOFF64",
        elf::R_X86_64_TLSGD => "R_X86_64_TLSGD",
        elf::R_X86_64_TLSLD => "R_X86_64_TLSLD",
        elf::R_X86_64_DTPOFF32 => "R_X86_64_DTPOFF32",
        elf::R_X86_64_GOTTPOFF => "R_X86_64_GOTTPOFF",
        elf::R_X86_64_TPOFF32 => "R_X86_64_TPOFF32",
        elf::R_X86_64_PC64 => "R_X86_64_PC64",
        elf::R_X86_64_GOTOFF64 => "R_X86_64_GOTOFF64",
        elf::R_X86_64_GOTPC32 => "R_X86_64_GOTPC32",
        elf::R_X86_64_GOT64 => "R_X86_64_GOT64",
        elf::R_X86_64_GOTPCREL64 => "R_X86_64_GOTPCREL64",
        elf::R_X86_64_GOTPC64 => "R_X86_64_GOTPC64",
        elf::R_X86_64_GOTPLT64 => "R_X86_64_GOTPLT64",
        elf::R_X86_64_PLTOFF64 => "R_X86_64_PLTOFF64",
        elf::R_X86_64_SIZE32 => "R_X86_64_SIZE32",
        elf::R_X86_64_SIZE64 => "R_X86_64_SIZE64",
        elf::R_X86_64_GOTPC32_TLSDESC => "R_X86_64_GOTPC32_TLSDESC",
        elf::R_X86_64_TLSDESC_CALL => "R_X86_64_TLSDESC_CALL",
        elf::R_X86_64_TLSDESC => "R_X86_64_TLSDESC",
        elf::R_X86_64_IRELATIVE => "R_X86_64_IRELATIVE",
        elf::R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        elf::R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        _ => "unknown",
    }
}

/// How a relocation type relates its field to an address, as far as moving code is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocClass {
    /// No field (`R_X86_64_NONE`, `R_X86_64_TLSDESC_CALL`: markers on an instruction).
    Marker,
    /// The field holds an address (or address difference) of `S + A`, `size` bytes wide;
    /// `pc_relative` when the place `P` is subtracted.
    Address {
        /// Field width in bytes.
        size: u8,
        /// `P` is subtracted.
        pc_relative: bool,
    },
    /// The field does not name an address in `S`'s section (GOT/TLS offsets, symbol sizes):
    /// its addend is carried unchanged.
    Opaque {
        /// Field width in bytes.
        size: u8,
        /// `P` is subtracted (the field still moves with its instruction).
        pc_relative: bool,
    },
}

/// Classifies `r_type`; `None` for types this tool does not support in relocatable objects.
pub fn reloc_class(r_type: u32) -> Option<RelocClass> {
    use RelocClass::*;
    Some(match elf::RelocationType(r_type) {
        elf::R_X86_64_NONE | elf::R_X86_64_TLSDESC_CALL => Marker,
        elf::R_X86_64_64 => Address {
            size: 8,
            pc_relative: false,
        },
        elf::R_X86_64_32 | elf::R_X86_64_32S => Address {
            size: 4,
            pc_relative: false,
        },
        elf::R_X86_64_16 => Address {
            size: 2,
            pc_relative: false,
        },
        elf::R_X86_64_8 => Address {
            size: 1,
            pc_relative: false,
        },
        elf::R_X86_64_PC64 => Address {
            size: 8,
            pc_relative: true,
        },
        elf::R_X86_64_PC32 | elf::R_X86_64_PLT32 => Address {
            size: 4,
            pc_relative: true,
        },
        elf::R_X86_64_PC16 => Address {
            size: 2,
            pc_relative: true,
        },
        elf::R_X86_64_PC8 => Address {
            size: 1,
            pc_relative: true,
        },
        elf::R_X86_64_GOTOFF64 => Address {
            size: 8,
            pc_relative: false,
        },
        elf::R_X86_64_GOTPCREL
        | elf::R_X86_64_GOTPCRELX
        | elf::R_X86_64_REX_GOTPCRELX
        | elf::R_X86_64_GOTPC32
        | elf::R_X86_64_TLSGD
        | elf::R_X86_64_TLSLD
        | elf::R_X86_64_GOTTPOFF
        | elf::R_X86_64_GOTPC32_TLSDESC => Opaque {
            size: 4,
            pc_relative: true,
        },
        elf::R_X86_64_GOTPCREL64 | elf::R_X86_64_GOTPC64 => Opaque {
            size: 8,
            pc_relative: true,
        },
        elf::R_X86_64_GOT32
        | elf::R_X86_64_DTPOFF32
        | elf::R_X86_64_TPOFF32
        | elf::R_X86_64_SIZE32 => Opaque {
            size: 4,
            pc_relative: false,
        },
        elf::R_X86_64_GOT64
        | elf::R_X86_64_GOTPLT64
        | elf::R_X86_64_PLTOFF64
        | elf::R_X86_64_DTPOFF64
        | elf::R_X86_64_TPOFF64
        | elf::R_X86_64_DTPMOD64
        | elf::R_X86_64_SIZE64 => Opaque {
            size: 8,
            pc_relative: false,
        },
        _ => return None,
    })
}

impl RelocClass {
    /// Width of the relocated field (0 for markers).
    pub fn size(self) -> u8 {
        match self {
            RelocClass::Marker => 0,
            RelocClass::Address { size, .. } | RelocClass::Opaque { size, .. } => size,
        }
    }
    /// Whether `P` is subtracted.
    pub fn pc_relative(self) -> bool {
        matches!(
            self,
            RelocClass::Address {
                pc_relative: true,
                ..
            } | RelocClass::Opaque {
                pc_relative: true,
                ..
            }
        )
    }
}

/// In-place changes of a section's contents: `(offset, new bytes)`, sorted, not overlapping.
pub type BytePatches = Vec<(u64, Vec<u8>)>;

/// An in-place change of one relocation: `(index in file order, new offset, new addend)`.
pub type RelocPatch = (u32, u64, i64);

/// A new section to append.
#[derive(Clone, Debug)]
pub struct NewSection {
    /// Name.
    pub name: String,
    /// `sh_type` (`SHT_PROGBITS`).
    pub sh_type: u32,
    /// `sh_flags`.
    pub flags: u64,
    /// `sh_addralign`.
    pub align: u64,
    /// Contents.
    pub data: Vec<u8>,
    /// Relocations against it (a `.rela<name>` section is added when non-empty).
    pub relocs: Vec<Reloc>,
}

/// Everything `burn` changes in an object.
#[derive(Clone, Debug, Default)]
pub struct Edits {
    /// New contents by ELF section index.
    pub section_data: Vec<(usize, Vec<u8>)>,
    /// In-place changes of contents by ELF section index: `(offset, new bytes)`, sorted, not
    /// overlapping.
    pub section_patches: Vec<(usize, BytePatches)>,
    /// Complete new relocation lists by ELF index of the section they apply to.
    pub relocs: Vec<(usize, Vec<Reloc>)>,
    /// In-place changes of relocations by ELF index of the section they apply to:
    /// `(index in file order, new offset, new addend)`.
    pub reloc_patches: Vec<(usize, Vec<RelocPatch>)>,
    /// New `(value, size)` by `.symtab` index.
    pub symbols: Vec<(usize, u64, u64)>,
    /// Section symbols to create (ELF section indices); relocation `sym` values
    /// `original_symbol_count + k` refer to the `k`-th of these.
    pub new_section_symbols: Vec<usize>,
    /// Sections to append.
    pub new_sections: Vec<NewSection>,
}

mod writer;

/// Applies `edits` to `obj` and returns the new file.
pub fn write(obj: &Object<'_>, edits: Edits) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(obj.data.len() + obj.data.len() / 8);
    writer::emit(obj, edits, &mut out)?;
    Ok(out)
}

/// Applies `edits` to `obj` and streams the new file into `file` (empty, at position 0),
/// without holding the whole output in memory.
pub fn write_to_file(obj: &Object<'_>, edits: Edits, file: &mut std::fs::File) -> Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    writer::emit(obj, edits, &mut out)
}

#[cfg(test)]
fn build_err(e: object::build::Error) -> Error {
    Error::malformed(e.to_string())
}

/// The file `object`'s ELF builder makes of `obj` with `edits`: the oracle of [`write`].
#[cfg(test)]
pub(crate) fn write_with_builder(obj: &Object<'_>, edits: Edits) -> Result<Vec<u8>> {
    let (mut out, fixes) = with_builder(obj, edits, |b| {
        let mut out = Vec::with_capacity(obj.data.len() + obj.data.len() / 8);
        b.write(&mut out).map_err(build_err)?;
        Ok(out)
    })?;
    if !fixes.is_empty() {
        let shoff = out
            .get(0x28..0x30)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| Error::internal("output header"))?;
        let shoff = usize::try_from(shoff).map_err(|_| Error::internal("e_shoff"))?;
        for (g, new_sig) in fixes {
            let at = shoff + g * 64;
            let hdr = out
                .get_mut(at..at + 64)
                .ok_or_else(|| Error::internal("section header past the end of the output"))?;
            hdr[4..8].copy_from_slice(&SHT_GROUP.to_le_bytes());
            hdr[44..48].copy_from_slice(&new_sig.to_le_bytes());
        }
    }
    Ok(out)
}

/// Reads `obj` into `object`'s builder, applies `edits` and hands the builder to `emit`.
/// Returns `emit`'s result and the `SHT_GROUP` headers to restore in the written file:
/// `(section index, new signature symbol index)`.
#[cfg(test)]
fn with_builder<R>(
    obj: &Object<'_>,
    edits: Edits,
    emit: impl FnOnce(Builder<'_>) -> Result<R>,
) -> Result<(R, Vec<(usize, u32)>)> {
    let endian = Endianness::Little;
    // SHT_GROUP sections: hidden from the builder as PROGBITS, restored afterwards.
    let groups: Vec<usize> = obj
        .sections
        .iter()
        .enumerate()
        .filter(|(_, s)| s.sh_type == SHT_GROUP)
        .map(|(i, _)| i)
        .collect();
    let input: Cow<'_, [u8]> = if groups.is_empty() {
        Cow::Borrowed(obj.data)
    } else {
        let mut copy = obj.data.to_vec();
        let shoff = usize::try_from(obj.file.elf_header().e_shoff(endian))
            .map_err(|_| Error::malformed("e_shoff"))?;
        for &g in &groups {
            let at = shoff + g * 64 + 4;
            let field = copy
                .get_mut(at..at + 4)
                .ok_or_else(|| Error::malformed("section header past the end"))?;
            field.copy_from_slice(&SHT_PROGBITS.to_le_bytes());
        }
        Cow::Owned(copy)
    };
    let mut b = Builder::read64(&*input).map_err(build_err)?;
    let section_ids: Vec<_> = b.sections.iter().map(|s| s.id()).collect();
    let symbol_ids: Vec<SymbolId> = b.symbols.iter().map(|s| s.id()).collect();
    if section_ids.len() + 1 != obj.sections.len()
        || symbol_ids.len() + usize::from(!obj.symbols.is_empty()) != obj.symbols.len()
    {
        return Err(Error::internal(
            "builder and reader disagree on table sizes",
        ));
    }
    let sec_id = |i: usize| {
        section_ids
            .get(i.wrapping_sub(1))
            .copied()
            .ok_or_else(|| Error::internal(format!("no section {i}")))
    };

    for (i, data) in edits.section_data {
        let id = sec_id(i)?;
        b.sections.get_mut(id).data = SectionData::Data(data.into());
    }
    for (i, patches) in edits.section_patches {
        let mut data = obj.sections[i].data.to_vec();
        for (at, bytes) in patches {
            let at = at as usize;
            data[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        let id = sec_id(i)?;
        b.sections.get_mut(id).data = SectionData::Data(data.into());
    }
    for &(i, value, size) in &edits.symbols {
        let id = *symbol_ids
            .get(i.wrapping_sub(1))
            .ok_or_else(|| Error::internal(format!("no symbol {i}")))?;
        let s = b.symbols.get_mut(id);
        s.st_value = value;
        s.st_size = size;
    }
    let mut new_syms = Vec::with_capacity(edits.new_section_symbols.len());
    for &sec in &edits.new_section_symbols {
        let id = sec_id(sec)?;
        let s = b.symbols.add();
        s.name = Default::default();
        s.section = Some(id);
        s.set_st_info(elf::STB_LOCAL, elf::STT_SECTION);
        s.st_value = 0;
        s.st_size = 0;
        new_syms.push(s.id());
    }
    // `Reloc::sym` numbering: original indices below `nsyms`, new symbols from there on
    // (index 0 stays the null symbol when the input has no table).
    let nsyms = obj.symbols.len().max(1);
    let to_builder = |rels: Vec<Reloc>| -> Result<Vec<object::build::elf::Relocation>> {
        rels.into_iter()
            .map(|r| {
                let symbol = match r.sym as usize {
                    0 => None,
                    s if s < nsyms => Some(symbol_ids[s - 1]),
                    s => Some(
                        *new_syms
                            .get(s - nsyms)
                            .ok_or_else(|| Error::internal(format!("no new symbol {s}")))?,
                    ),
                };
                Ok(object::build::elf::Relocation {
                    r_offset: r.offset,
                    symbol,
                    r_type: elf::RelocationType(r.r_type),
                    r_addend: r.addend,
                })
            })
            .collect()
    };
    for (target, patches) in edits.reloc_patches {
        let rela = obj
            .sections
            .get(target)
            .and_then(|s| s.rela)
            .ok_or_else(|| {
                Error::internal("relocation patches for a section without a RELA section")
            })?;
        let id = sec_id(rela)?;
        let SectionData::Relocation(v) = &mut b.sections.get_mut(id).data else {
            return Err(Error::internal("RELA section read as something else"));
        };
        for (i, offset, addend) in patches {
            let r = v
                .get_mut(i as usize)
                .ok_or_else(|| Error::internal("relocation patch past the list"))?;
            r.r_offset = offset;
            r.r_addend = addend;
        }
    }
    for (target, rels) in edits.relocs {
        let rela = obj
            .sections
            .get(target)
            .and_then(|s| s.rela)
            .ok_or_else(|| Error::internal("relocations for a section without a RELA section"))?;
        let id = sec_id(rela)?;
        b.sections.get_mut(id).data = SectionData::Relocation(to_builder(rels)?);
    }
    let mut symtab_id = obj.symtab.map(sec_id).transpose()?;
    if symtab_id.is_none() && !new_syms.is_empty() {
        // An object without a symbol table (GNU as leaves it out when empty) gets one.
        let strtab = b.sections.add();
        strtab.name = b".strtab".to_vec().into();
        strtab.sh_type = elf::SHT_STRTAB;
        strtab.sh_addralign = 1;
        strtab.data = SectionData::String;
        let strtab_id = strtab.id();
        let symtab = b.sections.add();
        symtab.name = b".symtab".to_vec().into();
        symtab.sh_type = elf::SHT_SYMTAB;
        symtab.sh_addralign = 8;
        symtab.sh_entsize = 24;
        symtab.sh_link_section = Some(strtab_id);
        symtab.data = SectionData::Symbol;
        symtab_id = Some(symtab.id());
    }
    for ns in edits.new_sections {
        let s = b.sections.add();
        s.name = ns.name.clone().into_bytes().into();
        s.sh_type = elf::SectionType(ns.sh_type);
        s.sh_flags = elf::SectionFlags(ns.flags);
        s.sh_addralign = ns.align;
        s.data = SectionData::Data(ns.data.into());
        let id = s.id();
        if !ns.relocs.is_empty() {
            let symtab =
                symtab_id.ok_or_else(|| Error::internal("relocations without a symbol table"))?;
            let rels = to_builder(ns.relocs)?;
            let r = b.sections.add();
            r.name = format!(".rela{}", ns.name).into_bytes().into();
            r.sh_type = elf::SHT_RELA;
            r.sh_flags = elf::SHF_INFO_LINK;
            r.sh_addralign = 8;
            r.sh_entsize = 24;
            r.sh_link_section = Some(symtab);
            r.sh_info_section = Some(id);
            r.data = SectionData::Relocation(rels);
        }
    }
    // Output symbol indices, by the builder's rule: locals first, then globals, each in
    // table order.
    let mut out_index = vec![
        0u32;
        b.symbols
            .iter()
            .map(|s| s.id().index() + 1)
            .max()
            .unwrap_or(0)
    ];
    let mut next = 1u32;
    for local in [true, false] {
        for s in b.symbols.iter() {
            if (s.st_bind() == elf::STB_LOCAL) == local {
                out_index[s.id().index()] = next;
                next += 1;
            }
        }
    }
    let fixes = group_fixes(obj, &groups, &out_index)?;
    let r = emit(b)?;
    Ok((r, fixes))
}

/// New `sh_info` (signature symbol index) of each `SHT_GROUP` section.
#[cfg(test)]
fn group_fixes(obj: &Object<'_>, groups: &[usize], out_index: &[u32]) -> Result<Vec<(usize, u32)>> {
    let endian = Endianness::Little;
    let table = obj.file.elf_section_table();
    let mut fixes = Vec::with_capacity(groups.len());
    for &g in groups {
        let sh = table.section(object::SectionIndex(g)).map_err(malformed)?;
        let sig = sh.sh_info(endian) as usize;
        let new_sig = if sig == 0 {
            0
        } else {
            *out_index.get(sig - 1).ok_or_else(|| {
                Error::in_section(
                    &obj.sections[g].name,
                    ErrorKind::Malformed(format!("group signature symbol {sig} past the table")),
                )
            })?
        };
        fixes.push((g, new_sig));
    }
    Ok(fixes)
}
