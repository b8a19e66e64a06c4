//! Reading the annotated sites of a linked kernel: its `.afterburn` section
//! (docs/annotation-format.md), resolved to virtual addresses.
//!
//! A record at offset `o` of the section resolves to
//! `site_address = sh_addr(.afterburn) + o + sign_extend(site)` (wrapping), which covers both a
//! non-alloc section (address 0, the spec's default) and one a linker script placed in a
//! loaded segment.

use annotations::{FormatError, Operands, SensitiveKind, SiteRecord, Sites, SECTION_NAME};
use object::{Object, ObjectSection};

/// One annotated site of a linked kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    /// Virtual address of the site's first byte.
    pub addr: u64,
    /// Offset of its record in the `.afterburn` section (named in errors).
    pub record: u64,
    /// Length of the original instruction(s).
    pub insn_len: u8,
    /// Length of the whole site: instruction(s) and padding.
    pub site_len: u8,
    /// What the instruction is.
    pub kind: SensitiveKind,
    /// Operand details from the record.
    pub operands: Operands,
    /// `FLAG_*` bits from the record.
    pub flags: u32,
}

impl Site {
    fn from_record(sh_addr: u64, offset: usize, r: &SiteRecord) -> Site {
        let record = offset as u64;
        Site {
            addr: r.target(sh_addr.wrapping_add(record)),
            record,
            insn_len: r.insn_len,
            site_len: r.site_len,
            kind: r.kind,
            operands: r.operands,
            flags: r.flags,
        }
    }

    /// Address just past the site.
    pub fn end(&self) -> u64 {
        self.addr.wrapping_add(u64::from(self.site_len))
    }
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "site at {:#x} ({}, {} + {} bytes; record at .afterburn offset {:#x})",
            self.addr,
            self.kind,
            self.insn_len,
            self.site_len - self.insn_len,
            self.record
        )
    }
}

/// Why the sites of a kernel could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SitesError {
    /// Not an ELF file `object` can read.
    #[error("not a readable ELF file: {0}")]
    Elf(#[from] object::Error),
    /// The `.afterburn` section's bytes could not be read (e.g. it lies past the file's end).
    #[error("section {SECTION_NAME}: cannot read its contents: {0}")]
    Contents(object::Error),
    /// The section breaks the format.
    #[error("section {SECTION_NAME}: {0}")]
    Format(#[from] FormatError),
    /// Two sites overlap.
    #[error("section {SECTION_NAME}: {first} overlaps {second}")]
    Overlap {
        /// The site that starts first.
        first: Box<Site>,
        /// The site that starts inside it.
        second: Box<Site>,
    },
    /// A site wraps around the end of the address space.
    #[error("section {SECTION_NAME}: {0} wraps around the address space")]
    Wraps(Box<Site>),
}

/// The sites of the linked kernel in `elf`, sorted by address; `None` when it has no
/// `.afterburn` section (a kernel that was never burnt).
pub fn read_sites(elf: &[u8]) -> Result<Option<Vec<Site>>, SitesError> {
    let file = object::File::parse(elf)?;
    let Some(section) = file.section_by_name(SECTION_NAME) else {
        return Ok(None);
    };
    let bytes = section.data().map_err(SitesError::Contents)?;
    let mut sites = Vec::new();
    for r in Sites::new(bytes) {
        let (offset, record) = r?;
        let site = Site::from_record(section.address(), offset, &record);
        if site.addr.checked_add(u64::from(site.site_len)).is_none() {
            return Err(SitesError::Wraps(Box::new(site)));
        }
        sites.push(site);
    }
    sites.sort_by_key(|s| s.addr);
    for w in sites.windows(2) {
        if w[1].addr < w[0].end() {
            return Err(SitesError::Overlap {
                first: Box::new(w[0]),
                second: Box::new(w[1]),
            });
        }
    }
    Ok(Some(sites))
}

#[cfg(test)]
mod tests {
    use super::*;
    use annotations::{Header, RECORD_SIZE, VERSION};

    fn record(site: i32, kind: SensitiveKind, insn_len: u8) -> SiteRecord {
        SiteRecord {
            site,
            insn_len,
            site_len: annotations::site_len(kind, insn_len),
            kind,
            operands: Operands::NONE,
            flags: 0,
        }
    }

    #[test]
    fn records_resolve_against_the_section_address() {
        let mut buf = vec![0u8; 3 * RECORD_SIZE];
        Header {
            count: 2,
            version: VERSION,
        }
        .write(&mut buf);
        record(-16, SensitiveKind::Cli, 1).write(&mut buf[16..]);
        record(0x40, SensitiveKind::Out, 1).write(&mut buf[32..]);
        let sites: Vec<Site> = Sites::new(&buf)
            .map(|r| {
                let (o, rec) = r.unwrap();
                Site::from_record(0xffff_ffff_8010_0000, o, &rec)
            })
            .collect();
        assert_eq!(sites[0].addr, 0xffff_ffff_8010_0000);
        assert_eq!(sites[1].addr, 0xffff_ffff_8010_0000 + 32 + 0x40);
        // Non-alloc section at address 0: record offset + site.
        let s = Site::from_record(0, 16, &record(-16, SensitiveKind::Cli, 1));
        assert_eq!(s.addr, 0);
        assert!(s.to_string().contains("cli, 1 + 7 bytes"), "{s}");
    }
}
