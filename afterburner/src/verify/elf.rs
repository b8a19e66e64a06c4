//! The verifier's own view of a relocatable ELF64 x86-64 object, read with `object`'s low-level
//! ELF API. Only reading happens here; nothing is interpreted beyond the ELF tables.

use super::Error;
use object::elf;
use object::read::elf::{FileHeader, Rela as _, SectionHeader, Sym as _};
use object::read::{SectionIndex, SymbolIndex};
use object::Endianness;

/// One relocation (RELA form) applying to a section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reloc {
    /// Offset of the relocated field in the target section.
    pub offset: u64,
    /// `R_X86_64_*` type.
    pub r_type: u32,
    /// Symbol table index.
    pub sym: usize,
    /// Explicit addend.
    pub addend: i64,
}

/// One section.
#[derive(Debug)]
pub(crate) struct Section<'a> {
    pub name: String,
    /// Which section of this name it is (0 for the first), for matching across files.
    pub ordinal: usize,
    pub sh_type: u32,
    pub flags: u64,
    pub addralign: u64,
    pub entsize: u64,
    pub size: u64,
    pub info: u32,
    /// File bytes (empty for `SHT_NOBITS`).
    pub data: &'a [u8],
    /// Relocations applying to this section, sorted by offset.
    pub relocs: Vec<Reloc>,
    /// Index of the `SHT_RELA` section holding [`Section::relocs`], if any.
    pub rela: Option<usize>,
}

impl Section<'_> {
    pub fn is_exec(&self) -> bool {
        self.flags & elf::SHF_EXECINSTR.0 != 0
    }
    /// Executable program bits: the sections walked as code.
    pub fn is_code(&self) -> bool {
        self.is_exec() && self.sh_type == elf::SHT_PROGBITS.0
    }
}

/// Where a symbol is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Undefined,
    Section(usize),
    Absolute,
    Common,
    Other(u16),
}

/// One symbol.
#[derive(Clone, Debug)]
pub(crate) struct Symbol {
    pub name: String,
    /// Which symbol of this name it is (0 for the first).
    pub ordinal: usize,
    pub value: u64,
    pub size: u64,
    pub st_type: u8,
    pub bind: u8,
    pub other: u8,
    pub place: Place,
}

impl Symbol {
    pub fn is_section(&self) -> bool {
        self.st_type == elf::STT_SECTION.0
    }
    pub fn is_local(&self) -> bool {
        self.bind == elf::STB_LOCAL.0
    }
}

/// A parsed object.
#[derive(Debug)]
pub(crate) struct Object<'a> {
    /// What to call the file in messages ("original", a path, ...).
    pub label: String,
    /// Indexed by ELF section index; index 0 is the null section.
    pub sections: Vec<Section<'a>>,
    /// Indexed by symbol table index; index 0 is the null symbol.
    pub symbols: Vec<Symbol>,
}

fn name_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl<'a> Object<'a> {
    /// Parses `data`, which must be a relocatable little-endian ELF64 x86-64 object.
    pub fn parse(label: &str, data: &'a [u8]) -> Result<Object<'a>, Error> {
        let bad = |what: String| Error::BadElf {
            file: label.to_string(),
            what,
        };
        let header =
            elf::FileHeader64::<Endianness>::parse(data).map_err(|e| bad(e.to_string()))?;
        let endian = header.endian().map_err(|e| bad(e.to_string()))?;
        if header.e_machine(endian) != elf::EM_X86_64 {
            return Err(bad(format!(
                "machine {} is not x86-64",
                header.e_machine(endian).0
            )));
        }
        if header.e_type(endian) != elf::ET_REL {
            return Err(bad(format!(
                "ELF type {} is not a relocatable object (ET_REL)",
                header.e_type(endian).0
            )));
        }
        let table = header
            .sections(endian, data)
            .map_err(|e| bad(e.to_string()))?;
        let mut sections = Vec::with_capacity(table.len());
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for (i, sh) in table.iter().enumerate() {
            if i == 0 {
                // The null section header means nothing here (its fields only extend
                // e_shnum/e_shstrndx, which `object` handles); never read it as a section.
                sections.push(Section {
                    name: String::new(),
                    ordinal: usize::MAX,
                    sh_type: elf::SHT_NULL.0,
                    flags: 0,
                    addralign: 0,
                    entsize: 0,
                    size: 0,
                    info: 0,
                    data: &[],
                    relocs: Vec::new(),
                    rela: None,
                });
                continue;
            }
            let name = name_of(
                table
                    .section_name(endian, sh)
                    .map_err(|e| bad(format!("section {i}: {e}")))?,
            );
            let ordinal = {
                let n = seen.entry(name.clone()).or_insert(0);
                *n += 1;
                *n - 1
            };
            let sh_type = sh.sh_type(endian).0;
            let bytes = if sh_type == elf::SHT_NULL.0 {
                &[][..]
            } else {
                sh.data(endian, data)
                    .map_err(|e| bad(format!("section {i} ({name}): {e}")))?
            };
            sections.push(Section {
                name,
                ordinal,
                sh_type,
                flags: sh.sh_flags(endian).0,
                addralign: sh.sh_addralign(endian),
                entsize: sh.sh_entsize(endian),
                size: sh.sh_size(endian),
                info: sh.sh_info(endian),
                data: bytes,
                relocs: Vec::new(),
                rela: None,
            });
        }

        // Symbols.
        let symtab = table
            .symbols(endian, data, elf::SHT_SYMTAB)
            .map_err(|e| bad(format!("symbol table: {e}")))?;
        let mut symbols = Vec::with_capacity(symtab.len());
        let mut seen = std::collections::HashMap::<String, usize>::new();
        for (i, sym) in symtab.iter().enumerate() {
            let name = name_of(
                symtab
                    .symbol_name(endian, sym)
                    .map_err(|e| bad(format!("symbol {i}: {e}")))?,
            );
            let shndx = sym.st_shndx(endian);
            let place = if shndx == elf::SHN_UNDEF {
                Place::Undefined
            } else if shndx == elf::SHN_ABS {
                Place::Absolute
            } else if shndx == elf::SHN_COMMON {
                Place::Common
            } else {
                match symtab
                    .symbol_section(endian, sym, SymbolIndex(i))
                    .map_err(|e| bad(format!("symbol {i}: {e}")))?
                {
                    Some(SectionIndex(s)) if s < sections.len() => Place::Section(s),
                    Some(SectionIndex(s)) => {
                        return Err(bad(format!(
                            "symbol {name:?} (index {i}) is in section {s}, which does not exist"
                        )))
                    }
                    None => Place::Other(shndx.0),
                }
            };
            let ordinal = {
                let key = if sym.st_type() == elf::STT_SECTION {
                    format!("\0section{place:?}")
                } else {
                    name.clone()
                };
                let n = seen.entry(key).or_insert(0);
                *n += 1;
                *n - 1
            };
            symbols.push(Symbol {
                name,
                ordinal,
                value: sym.st_value(endian),
                size: sym.st_size(endian),
                st_type: sym.st_type().0,
                bind: sym.st_bind().0,
                other: sym.st_other().0,
                place,
            });
        }

        // Relocations.
        for (i, sh) in table.iter().enumerate() {
            let t = sh.sh_type(endian);
            if t == elf::SHT_REL || t == elf::SHT_CREL {
                return Err(Error::Unsupported {
                    file: label.to_string(),
                    what: format!(
                        "section {}: only RELA relocations are supported on x86-64",
                        sections[i].name
                    ),
                });
            }
            let Some((relas, _link)) = sh
                .rela(endian, data)
                .map_err(|e| bad(format!("section {}: {e}", sections[i].name)))?
            else {
                continue;
            };
            let target = usize::try_from(sh.sh_info(endian)).unwrap_or(usize::MAX);
            if target == 0 || target >= sections.len() {
                return Err(bad(format!(
                    "relocation section {} applies to missing section {target}",
                    sections[i].name
                )));
            }
            if sections[target].rela.is_some() {
                return Err(bad(format!(
                    "section {} has two relocation sections",
                    sections[target].name
                )));
            }
            let mut relocs = Vec::with_capacity(relas.len());
            for r in relas {
                let sym = usize::try_from(r.r_sym(endian, false)).unwrap_or(usize::MAX);
                if sym >= symbols.len() {
                    return Err(bad(format!(
                        "relocation at {}+{:#x} names symbol {sym}, which does not exist",
                        sections[target].name,
                        r.r_offset(endian)
                    )));
                }
                relocs.push(Reloc {
                    offset: r.r_offset(endian),
                    r_type: r.r_type(endian, false).0,
                    sym,
                    addend: r.r_addend(endian),
                });
            }
            relocs.sort_by_key(|r| r.offset);
            // Every relocated field lies inside its section (a linker would refuse it).
            let size = sections[target].size;
            let nobits = sections[target].sh_type == elf::SHT_NOBITS.0;
            for r in &relocs {
                let field = reloc_info(r.r_type).map_or(1, |i| u64::from(i.size));
                if nobits || r.offset.checked_add(field).is_none_or(|end| end > size) {
                    return Err(bad(format!(
                        "relocation {} at {}+{:#x} lies outside the section ({:#x} bytes{})",
                        reloc_name(r.r_type),
                        sections[target].name,
                        r.offset,
                        size,
                        if nobits { ", no file data" } else { "" }
                    )));
                }
            }
            sections[target].relocs = relocs;
            sections[target].rela = Some(i);
        }
        Ok(Object {
            label: label.to_string(),
            sections,
            symbols,
        })
    }

    /// Index of the section named `name` with this ordinal.
    pub fn find_section(&self, name: &str, ordinal: usize) -> Option<usize> {
        self.sections
            .iter()
            .enumerate()
            .skip(1)
            .find(|(_, s)| s.name == name && s.ordinal == ordinal)
            .map(|(i, _)| i)
    }

    /// Best `symbol+offset` description of section offset `off` (the nearest symbol at or below
    /// it that is not a section symbol), or `section+off`.
    pub fn describe(&self, sec: usize, off: u64) -> String {
        let mut best: Option<&Symbol> = None;
        for s in &self.symbols {
            if s.place == Place::Section(sec)
                && !s.is_section()
                && s.st_type != elf::STT_FILE.0
                && s.value <= off
            {
                let better = match best {
                    None => true,
                    Some(b) => s.value > b.value || (s.value == b.value && b.name.is_empty()),
                };
                if better && !s.name.is_empty() {
                    best = Some(s);
                }
            }
        }
        match best {
            Some(s) if s.value == off => s.name.clone(),
            Some(s) => format!("{}+{:#x}", s.name, off - s.value),
            None => format!(
                "{}+{:#x}",
                self.sections.get(sec).map_or("?", |s| s.name.as_str()),
                off
            ),
        }
    }
}

/// Size in bytes and PC-relativity of the field an x86-64 relocation type writes, and whether
/// its target is `S + A` ("direct") rather than a GOT/PLT/TLS construct of the symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RelocInfo {
    pub size: u8,
    pub pc_relative: bool,
    /// The relocated value designates the place `S + A` (mapped through the offset map when `S`
    /// lies in moved code); otherwise only `S` itself is designated and `A` is an adjustment.
    pub direct: bool,
}

/// Describes relocation type `t`; `None` for types this verifier does not know.
pub(crate) fn reloc_info(t: u32) -> Option<RelocInfo> {
    let ri = |size, pc_relative, direct| {
        Some(RelocInfo {
            size,
            pc_relative,
            direct,
        })
    };
    match t {
        0 => ri(0, false, false),  // NONE
        1 => ri(8, false, true),   // 64
        2 => ri(4, true, true),    // PC32
        3 => ri(4, false, false),  // GOT32
        4 => ri(4, true, true),    // PLT32
        9 => ri(4, true, false),   // GOTPCREL
        10 => ri(4, false, true),  // 32
        11 => ri(4, false, true),  // 32S
        12 => ri(2, false, true),  // 16
        13 => ri(2, true, true),   // PC16
        14 => ri(1, false, true),  // 8
        15 => ri(1, true, true),   // PC8
        16 => ri(8, false, false), // DTPMOD64
        17 => ri(8, false, true),  // DTPOFF64
        18 => ri(8, false, true),  // TPOFF64
        19 => ri(4, true, false),  // TLSGD
        20 => ri(4, true, false),  // TLSLD
        21 => ri(4, false, true),  // DTPOFF32
        22 => ri(4, true, false),  // GOTTPOFF
        23 => ri(4, false, true),  // TPOFF32
        24 => ri(8, true, true),   // PC64
        25 => ri(8, false, true),  // GOTOFF64
        26 => ri(4, true, false),  // GOTPC32
        27 => ri(8, false, false), // GOT64
        28 => ri(8, true, false),  // GOTPCREL64
        29 => ri(8, true, false),  // GOTPC64
        30 => ri(8, false, false), // GOTPLT64
        31 => ri(8, false, false), // PLTOFF64
        32 => ri(4, false, false), // SIZE32
        33 => ri(8, false, false), // SIZE64
        34 => ri(4, true, false),  // GOTPC32_TLSDESC
        35 => ri(0, false, false), // TLSDESC_CALL
        41 => ri(4, true, false),  // GOTPCRELX
        42 => ri(4, true, false),  // REX_GOTPCRELX
        43 => ri(4, true, false),  // CODE_4_GOTPCRELX
        44 => ri(4, true, false),  // CODE_4_GOTTPOFF
        45 => ri(4, true, false),  // CODE_4_GOTPC32_TLSDESC
        _ => None,
    }
}

/// Name of relocation type `t` for reports.
pub(crate) fn reloc_name(t: u32) -> String {
    let n = match t {
        0 => "NONE",
        1 => "64",
        2 => "PC32",
        3 => "GOT32",
        4 => "PLT32",
        9 => "GOTPCREL",
        10 => "32",
        11 => "32S",
        12 => "16",
        13 => "PC16",
        14 => "8",
        15 => "PC8",
        24 => "PC64",
        41 => "GOTPCRELX",
        42 => "REX_GOTPCRELX",
        _ => return format!("type {t}"),
    };
    format!("R_X86_64_{n}")
}
