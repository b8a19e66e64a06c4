//! Reading kernel images before anything is loaded: which boot protocol a file speaks, where it
//! is entered, and whether it fits the guest's RAM. Every value comes from the file, so every
//! read is bounds-checked and every refusal names the place in the file.
//!
//! Supported images:
//! - ELF64 x86-64 executables with a PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`, name "Xen", type 18):
//!   booted through PVH.
//! - ELF64 x86-64 executables without that note whose entry point is a physical address inside
//!   a loadable segment (a Linux `vmlinux`): booted through the Linux 64-bit boot protocol at
//!   `e_entry`.
//! - bzImages ("HdrS" at offset 0x202, boot protocol >= 2.12 with `XLF_KERNEL_64`): booted
//!   through the Linux 64-bit boot protocol at the load address + 0x200.
//!
//! Loading itself is linux-loader's (`Elf::load`, `BzImage::load`), to the segments' `p_paddr`.

use crate::arch::x86_64::layout::HIMEM_START;
use crate::arch::x86_64::linux::XLF_KERNEL_64;

/// ELF note type of the PVH 32-bit entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// Program header type of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// Program header type of a note segment.
pub const PT_NOTE: u32 = 4;
/// Size of an ELF64 file header.
pub const ELF64_EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const ELF64_PHDR_SIZE: usize = 56;
/// Offset of the bzImage setup header.
pub const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// Largest kernel file the loader reads (1 GiB).
pub const MAX_KERNEL_FILE: u64 = 1 << 30;

/// A kernel image the loader cannot boot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// A structure runs past the end of the file.
    #[error("{what} at file offset {offset:#x} (+{len:#x} bytes) runs past the end of the file ({file_len:#x} bytes)")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        offset: u64,
        /// How many bytes it needs.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// Neither ELF magic nor a bzImage header.
    #[error("not a kernel image: no ELF magic at offset 0 and no \"HdrS\" bzImage header at offset 0x202")]
    UnknownFormat,
    /// An ELF header the loader does not accept.
    #[error("ELF header: {0}")]
    ElfHeader(String),
    /// A bad program header.
    #[error("program header {index} (file offset {offset:#x}): {problem}")]
    Segment {
        /// Index in the program header table.
        index: usize,
        /// File offset of the program header.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// A bad ELF note.
    #[error("ELF note at file offset {offset:#x}: {problem}")]
    Note {
        /// File offset of the note header.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// An ELF with no way in.
    #[error("ELF entry: {0}")]
    Entry(String),
    /// A bzImage the loader cannot boot.
    #[error("bzImage setup header (file offset 0x1f1): {0}")]
    BzImage(String),
}

/// An image that does not fit the guest's RAM.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{what} needs guest RAM up to {end:#x}, but the guest has {ram:#x} bytes (use --memory)")]
pub struct FitError {
    /// What needs the memory.
    pub what: String,
    /// The end of the needed range (exclusive guest-physical address).
    pub end: u64,
    /// The guest's RAM size.
    pub ram: u64,
}

/// One `PT_LOAD` program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Index in the program header table.
    pub index: usize,
    /// Guest-physical load address (`p_paddr`).
    pub paddr: u64,
    /// File offset of the contents.
    pub offset: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory (the rest is zero).
    pub memsz: u64,
}

/// What an ELF image says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_entry`.
    pub entry: u64,
    /// The PVH entry point, if the image has a PVH note.
    pub pvh_entry: Option<u32>,
    /// The loadable segments.
    pub segments: Vec<LoadSegment>,
}

/// What a bzImage's setup header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImageInfo {
    /// Boot protocol version (`0x020f` = 2.15).
    pub version: u16,
    /// Bytes of real-mode setup code before the protected-mode kernel (incl. the boot sector).
    pub setup_size: u64,
    /// Bytes of protected-mode kernel (the rest of the file).
    pub kernel_size: u64,
    /// Default protected-mode load address.
    pub code32_start: u32,
    /// Where the kernel prefers to be decompressed to (0 before 2.10).
    pub pref_address: u64,
    /// Memory the kernel needs from `pref_address` to run its decompressor (0 before 2.10).
    pub init_size: u32,
    /// Longest command line the kernel accepts.
    pub cmdline_size: u32,
}

/// The kinds of image, with what each says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelKind {
    /// An ELF executable.
    Elf(ElfInfo),
    /// A bzImage.
    BzImage(BzImageInfo),
}

/// The boot protocol the loader uses for an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootProtocol {
    /// PVH: 32-bit entry with `hvm_start_info`.
    Pvh,
    /// Linux 64-bit boot protocol, ELF vmlinux.
    LinuxElf,
    /// Linux 64-bit boot protocol, bzImage.
    LinuxBzImage,
}

impl BootProtocol {
    /// The name used in reports and the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            BootProtocol::Pvh => "pvh",
            BootProtocol::LinuxElf => "linux-elf",
            BootProtocol::LinuxBzImage => "linux-bzimage",
        }
    }
}

impl KernelKind {
    /// The boot protocol for this image.
    pub fn protocol(&self) -> BootProtocol {
        match self {
            KernelKind::Elf(e) if e.pvh_entry.is_some() => BootProtocol::Pvh,
            KernelKind::Elf(_) => BootProtocol::LinuxElf,
            KernelKind::BzImage(_) => BootProtocol::LinuxBzImage,
        }
    }
}

fn slice<'a>(
    bytes: &'a [u8],
    offset: u64,
    len: u64,
    what: &'static str,
) -> Result<&'a [u8], ImageError> {
    let truncated = || ImageError::Truncated {
        what,
        offset,
        len,
        file_len: bytes.len() as u64,
    };
    let start = usize::try_from(offset).map_err(|_| truncated())?;
    let n = usize::try_from(len).map_err(|_| truncated())?;
    let end = start.checked_add(n).ok_or_else(truncated)?;
    bytes.get(start..end).ok_or_else(truncated)
}

fn le<const N: usize>(
    bytes: &[u8],
    offset: u64,
    what: &'static str,
) -> Result<[u8; N], ImageError> {
    let s = slice(bytes, offset, N as u64, what)?;
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    Ok(a)
}

fn u16_at(b: &[u8], off: u64, what: &'static str) -> Result<u16, ImageError> {
    le::<2>(b, off, what).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], off: u64, what: &'static str) -> Result<u32, ImageError> {
    le::<4>(b, off, what).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: u64, what: &'static str) -> Result<u64, ImageError> {
    le::<8>(b, off, what).map(u64::from_le_bytes)
}

/// Works out what kind of kernel `bytes` (a whole file) is.
pub fn inspect(bytes: &[u8]) -> Result<KernelKind, ImageError> {
    if bytes.starts_with(b"\x7fELF") {
        return inspect_elf(bytes).map(KernelKind::Elf);
    }
    if bytes.get(0x202..0x206) == Some(b"HdrS") {
        return inspect_bzimage(bytes).map(KernelKind::BzImage);
    }
    Err(ImageError::UnknownFormat)
}

fn align4(n: u64) -> Option<u64> {
    n.checked_add(3).map(|v| v & !3)
}

/// Finds the PVH entry in the notes of one `PT_NOTE` segment's contents, which start at file
/// offset `base`.
pub fn find_pvh_note(notes: &[u8], base: u64) -> Result<Option<u32>, ImageError> {
    let mut pos: u64 = 0;
    let len = notes.len() as u64;
    while pos < len {
        let at = base.saturating_add(pos);
        let bad = |problem: &str| ImageError::Note {
            offset: at,
            problem: problem.to_string(),
        };
        if len - pos < 12 {
            return Err(bad("note header runs past the end of the note segment"));
        }
        let namesz = u64::from(u32_at(notes, pos, "note n_namesz")?);
        let descsz = u64::from(u32_at(notes, pos + 4, "note n_descsz")?);
        let ntype = u32_at(notes, pos + 8, "note n_type")?;
        let name_off = pos + 12;
        let desc_off = align4(namesz)
            .and_then(|n| name_off.checked_add(n))
            .ok_or_else(|| bad("n_namesz overflows"))?;
        let next = align4(descsz)
            .and_then(|d| desc_off.checked_add(d))
            .ok_or_else(|| bad("n_descsz overflows"))?;
        if next > len {
            return Err(bad(
                "note name or descriptor runs past the end of the note segment",
            ));
        }
        let name = slice(notes, name_off, namesz, "note name")?;
        if ntype == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" {
            let entry = match descsz {
                4 => u64::from(u32_at(notes, desc_off, "PVH entry")?),
                8 => u64_at(notes, desc_off, "PVH entry")?,
                n => {
                    return Err(bad(&format!(
                        "PVH entry note has a {n}-byte descriptor (expected 4 or 8)"
                    )))
                }
            };
            let entry = u32::try_from(entry).map_err(|_| {
                bad(&format!(
                    "PVH entry {entry:#x} is not a 32-bit physical address"
                ))
            })?;
            return Ok(Some(entry));
        }
        pos = next;
    }
    Ok(None)
}

/// Reads an ELF64 x86-64 executable's header, loadable segments and PVH note.
pub fn inspect_elf(bytes: &[u8]) -> Result<ElfInfo, ImageError> {
    let hdr = |m: String| ImageError::ElfHeader(m);
    let ident = slice(bytes, 0, 16, "ELF identification")?;
    if ident[4] != 2 {
        return Err(hdr(format!("class {} is not ELF64", ident[4])));
    }
    if ident[5] != 1 {
        return Err(hdr(format!(
            "data encoding {} is not little-endian",
            ident[5]
        )));
    }
    slice(bytes, 0, ELF64_EHDR_SIZE as u64, "ELF header")?;
    let e_type = u16_at(bytes, 16, "e_type")?;
    if e_type != 2 && e_type != 3 {
        return Err(hdr(format!(
            "e_type {e_type} is not an executable (ET_EXEC or ET_DYN)"
        )));
    }
    let machine = u16_at(bytes, 18, "e_machine")?;
    if machine != EM_X86_64 {
        return Err(hdr(format!(
            "e_machine {machine} is not x86-64 ({EM_X86_64})"
        )));
    }
    let entry = u64_at(bytes, 24, "e_entry")?;
    let phoff = u64_at(bytes, 32, "e_phoff")?;
    let phentsize = u16_at(bytes, 54, "e_phentsize")?;
    let phnum = u16_at(bytes, 56, "e_phnum")?;
    if usize::from(phentsize) != ELF64_PHDR_SIZE {
        return Err(hdr(format!(
            "e_phentsize {phentsize} is not {ELF64_PHDR_SIZE}"
        )));
    }
    if phnum == 0xffff {
        return Err(hdr(
            "more than 65534 program headers (PN_XNUM) are not supported".into(),
        ));
    }
    if phoff < ELF64_EHDR_SIZE as u64 {
        return Err(hdr(format!("e_phoff {phoff:#x} overlaps the ELF header")));
    }
    slice(
        bytes,
        phoff,
        u64::from(phnum) * ELF64_PHDR_SIZE as u64,
        "program header table",
    )?;

    let mut segments = Vec::new();
    let mut pvh_entry = None;
    for index in 0..usize::from(phnum) {
        let at = phoff + (index * ELF64_PHDR_SIZE) as u64;
        let seg_err = |problem: String| ImageError::Segment {
            index,
            offset: at,
            problem,
        };
        let p_type = u32_at(bytes, at, "p_type")?;
        let offset = u64_at(bytes, at + 8, "p_offset")?;
        let paddr = u64_at(bytes, at + 24, "p_paddr")?;
        let filesz = u64_at(bytes, at + 32, "p_filesz")?;
        let memsz = u64_at(bytes, at + 40, "p_memsz")?;
        match p_type {
            PT_LOAD => {
                if filesz > memsz {
                    return Err(seg_err(format!(
                        "p_filesz {filesz:#x} is larger than p_memsz {memsz:#x}"
                    )));
                }
                if offset
                    .checked_add(filesz)
                    .is_none_or(|end| end > bytes.len() as u64)
                {
                    return Err(seg_err(format!(
                        "contents at {offset:#x}+{filesz:#x} run past the end of the file ({:#x} bytes)",
                        bytes.len()
                    )));
                }
                if paddr.checked_add(memsz).is_none() {
                    return Err(seg_err(format!(
                        "p_paddr {paddr:#x} + p_memsz {memsz:#x} overflows"
                    )));
                }
                if memsz > 0 && paddr < HIMEM_START {
                    return Err(seg_err(format!(
                        "p_paddr {paddr:#x} is below 1 MiB, where the loader keeps its boot structures"
                    )));
                }
                segments.push(LoadSegment {
                    index,
                    paddr,
                    offset,
                    filesz,
                    memsz,
                });
            }
            PT_NOTE => {
                let notes = slice(bytes, offset, filesz, "note segment")
                    .map_err(|e| seg_err(e.to_string()))?;
                if let Some(e) = find_pvh_note(notes, offset)? {
                    pvh_entry.get_or_insert(e);
                }
            }
            _ => {}
        }
    }
    if segments.iter().all(|s| s.memsz == 0) {
        return Err(ImageError::Entry("the ELF has no loadable segment".into()));
    }
    let inside = |addr: u64| {
        segments
            .iter()
            .any(|s| addr >= s.paddr && addr - s.paddr < s.filesz)
    };
    match pvh_entry {
        Some(e) if !inside(u64::from(e)) => Err(ImageError::Entry(format!(
            "the PVH entry point {e:#x} is not inside the file contents of a loadable segment"
        ))),
        Some(_) => Ok(ElfInfo {
            entry,
            pvh_entry,
            segments,
        }),
        None if inside(entry) => Ok(ElfInfo {
            entry,
            pvh_entry,
            segments,
        }),
        None => Err(ImageError::Entry(format!(
            "no PVH note (XEN_ELFNOTE_PHYS32_ENTRY), and e_entry {entry:#x} is not a physical \
             address inside a loadable segment, so it is no Linux vmlinux either"
        ))),
    }
}

/// Reads a bzImage's setup header and checks that it can be booted through the 64-bit protocol.
pub fn inspect_bzimage(bytes: &[u8]) -> Result<BzImageInfo, ImageError> {
    let bad = |m: String| ImageError::BzImage(m);
    let setup_sects = slice(bytes, 0x1f1, 1, "setup_sects")?[0];
    let version = u16_at(bytes, 0x206, "version")?;
    let loadflags = slice(bytes, 0x211, 1, "loadflags")?[0];
    let code32_start = u32_at(bytes, 0x214, "code32_start")?;
    if version < 0x020c {
        return Err(bad(format!(
            "boot protocol {}.{:02} is older than 2.12, which introduced the 64-bit entry",
            version >> 8,
            version & 0xff
        )));
    }
    if loadflags & 1 == 0 {
        return Err(bad(
            "loadflags.LOADED_HIGH is clear (a zImage, not a bzImage)".into(),
        ));
    }
    let xloadflags = u16_at(bytes, 0x236, "xloadflags")?;
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(bad(
            "xloadflags.XLF_KERNEL_64 is clear: no 64-bit entry point".into(),
        ));
    }
    let cmdline_size = u32_at(bytes, 0x238, "cmdline_size")?;
    let pref_address = u64_at(bytes, 0x258, "pref_address")?;
    let init_size = u32_at(bytes, 0x260, "init_size")?;
    let sects = if setup_sects == 0 {
        4
    } else {
        u64::from(setup_sects)
    };
    let setup_size = (sects + 1) * 512;
    let kernel_size = (bytes.len() as u64)
        .checked_sub(setup_size)
        .filter(|&k| k > 0)
        .ok_or_else(|| {
            bad(format!(
                "setup_sects {setup_sects} puts the kernel at {setup_size:#x}, past the end of the file ({:#x} bytes)",
                bytes.len()
            ))
        })?;
    if u64::from(code32_start) < HIMEM_START {
        return Err(bad(format!(
            "code32_start {code32_start:#x} is below 1 MiB"
        )));
    }
    Ok(BzImageInfo {
        version,
        setup_size,
        kernel_size,
        code32_start,
        pref_address,
        init_size,
        cmdline_size,
    })
}

/// Checks that the image's memory fits `ram` bytes of guest RAM.
pub fn check_fits(kind: &KernelKind, ram: u64) -> Result<(), FitError> {
    let need = |what: String, end: u64| {
        if end > ram {
            Err(FitError { what, end, ram })
        } else {
            Ok(())
        }
    };
    match kind {
        KernelKind::Elf(e) => {
            for s in &e.segments {
                need(
                    format!("ELF segment {} at {:#x}", s.index, s.paddr),
                    s.paddr.saturating_add(s.memsz),
                )?;
            }
        }
        KernelKind::BzImage(b) => {
            need(
                "the bzImage's protected-mode kernel".into(),
                u64::from(b.code32_start).saturating_add(b.kernel_size),
            )?;
            need(
                format!(
                    "decompressing the kernel (pref_address {:#x} + init_size {:#x})",
                    b.pref_address, b.init_size
                ),
                b.pref_address.saturating_add(u64::from(b.init_size)),
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(name.len() as u32).to_le_bytes());
        v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        v.extend_from_slice(&ntype.to_le_bytes());
        v.extend_from_slice(name);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(desc);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    /// An ELF64 with one PT_LOAD (paddr 1 MiB, 0x100 bytes at file offset 0x100) and one
    /// PT_NOTE holding `notes` at file offset 0x200.
    fn elf(entry: u64, notes: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 0x200];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph =
            |f: &mut Vec<u8>, at: usize, t: u32, off: u64, paddr: u64, filesz: u64, memsz: u64| {
                f[at..at + 4].copy_from_slice(&t.to_le_bytes());
                f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
                f[at + 16..at + 24].copy_from_slice(&paddr.to_le_bytes());
                f[at + 24..at + 32].copy_from_slice(&paddr.to_le_bytes());
                f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
                f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            };
        ph(&mut f, 64, PT_LOAD, 0x100, 0x10_0000, 0x100, 0x2000);
        ph(
            &mut f,
            120,
            PT_NOTE,
            0x200,
            0,
            notes.len() as u64,
            notes.len() as u64,
        );
        f.extend_from_slice(notes);
        f
    }

    #[test]
    fn elf_with_pvh_note_32_and_64_bit_descriptors() {
        let n = note(b"Xen\0", 18, &0x10_0010u32.to_le_bytes());
        let info = inspect_elf(&elf(0xffff_ffff_8010_0000, &n)).unwrap();
        assert_eq!(info.pvh_entry, Some(0x10_0010));
        assert_eq!(info.entry, 0xffff_ffff_8010_0000);
        assert_eq!(
            info.segments,
            vec![LoadSegment {
                index: 0,
                paddr: 0x10_0000,
                offset: 0x100,
                filesz: 0x100,
                memsz: 0x2000
            }]
        );
        let n8 = note(b"Xen\0", 18, &0x10_0020u64.to_le_bytes());
        assert_eq!(
            inspect_elf(&elf(0, &n8)).unwrap().pvh_entry,
            Some(0x10_0020)
        );
        let kind = inspect(&elf(0, &n8)).unwrap();
        assert_eq!(kind.protocol(), BootProtocol::Pvh);
    }

    #[test]
    fn pvh_note_after_other_notes() {
        let mut n = note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        n.extend(note(b"Xen\0", 6, b"linux\0"));
        n.extend(note(b"Xen\0", 18, &0x10_0004u32.to_le_bytes()));
        assert_eq!(inspect_elf(&elf(0, &n)).unwrap().pvh_entry, Some(0x10_0004));
    }

    #[test]
    fn elf_without_note_is_a_vmlinux_if_entry_is_physical() {
        let info = inspect_elf(&elf(0x10_0000, &[])).unwrap();
        assert_eq!(info.pvh_entry, None);
        assert_eq!(
            inspect(&elf(0x10_0000, &[])).unwrap().protocol(),
            BootProtocol::LinuxElf
        );
        let e = inspect_elf(&elf(0x40_1000, &[])).unwrap_err();
        assert!(e.to_string().contains("no PVH note"), "{e}");
    }

    #[test]
    fn pvh_entry_outside_the_image_is_refused() {
        let n = note(b"Xen\0", 18, &0x20_0000u32.to_le_bytes());
        let e = inspect_elf(&elf(0, &n)).unwrap_err();
        assert!(e.to_string().contains("0x200000"), "{e}");
    }

    #[test]
    fn hostile_notes() {
        // Name size that overflows the segment.
        let mut n = note(b"Xen\0", 18, &[0; 4]);
        n[0..4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let e = inspect_elf(&elf(0, &n)).unwrap_err();
        assert!(matches!(e, ImageError::Note { offset: 0x200, .. }), "{e:?}");
        // A descriptor of the wrong size.
        let n = note(b"Xen\0", 18, &[0; 2]);
        assert!(inspect_elf(&elf(0, &n))
            .unwrap_err()
            .to_string()
            .contains("2-byte"));
        // A note header cut short.
        let e = find_pvh_note(&[4, 0, 0, 0, 4, 0], 0x40).unwrap_err();
        assert_eq!(
            e,
            ImageError::Note {
                offset: 0x40,
                problem: "note header runs past the end of the note segment".into()
            }
        );
        // An entry above 4 GiB.
        let n = note(b"Xen\0", 18, &0x1_0000_0000u64.to_le_bytes());
        assert!(inspect_elf(&elf(0, &n))
            .unwrap_err()
            .to_string()
            .contains("32-bit"));
    }

    #[test]
    fn hostile_headers_and_segments() {
        let good = elf(0x10_0000, &[]);
        assert!(matches!(
            inspect(&good[..40]),
            Err(ImageError::Truncated { .. })
        ));
        let mut f = good.clone();
        f[4] = 1;
        assert!(inspect(&f).unwrap_err().to_string().contains("ELF64"));
        let mut f = good.clone();
        f[18] = 3;
        assert!(inspect(&f).unwrap_err().to_string().contains("x86-64"));
        let mut f = good.clone();
        f[56..58].copy_from_slice(&1000u16.to_le_bytes());
        assert!(matches!(
            inspect(&f),
            Err(ImageError::Truncated {
                what: "program header table",
                ..
            })
        ));
        let mut f = good.clone();
        f[64 + 32..64 + 40].copy_from_slice(&0x1_0000u64.to_le_bytes()); // filesz > file
        f[64 + 40..64 + 48].copy_from_slice(&0x1_0000u64.to_le_bytes());
        let e = inspect(&f).unwrap_err();
        assert!(
            matches!(
                e,
                ImageError::Segment {
                    index: 0,
                    offset: 64,
                    ..
                }
            ),
            "{e:?}"
        );
        let mut f = good.clone();
        f[64 + 24..64 + 32].copy_from_slice(&0x1000u64.to_le_bytes()); // paddr below 1 MiB
        assert!(inspect(&f).unwrap_err().to_string().contains("below 1 MiB"));
        let mut f = good.clone();
        f[64 + 24..64 + 32].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(inspect(&f).unwrap_err().to_string().contains("overflows"));
        assert_eq!(inspect(b"hello world"), Err(ImageError::UnknownFormat));
        assert_eq!(inspect(&[]), Err(ImageError::UnknownFormat));
    }

    fn bzimage(version: u16, xloadflags: u16, setup_sects: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0x1f1] = setup_sects;
        f[0x202..0x206].copy_from_slice(b"HdrS");
        f[0x206..0x208].copy_from_slice(&version.to_le_bytes());
        f[0x211] = 1;
        f[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        f[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
        f[0x238..0x23c].copy_from_slice(&2047u32.to_le_bytes());
        f[0x258..0x260].copy_from_slice(&0x100_0000u64.to_le_bytes());
        f[0x260..0x264].copy_from_slice(&0x40_0000u32.to_le_bytes());
        f
    }

    #[test]
    fn bzimage_header_fields() {
        let b = inspect_bzimage(&bzimage(0x020f, 0x7f, 27, 0x10000)).unwrap();
        assert_eq!(b.version, 0x020f);
        assert_eq!(b.setup_size, 28 * 512);
        assert_eq!(b.kernel_size, 0x10000 - 28 * 512);
        assert_eq!(b.code32_start, 0x10_0000);
        assert_eq!(b.pref_address, 0x100_0000);
        assert_eq!(b.init_size, 0x40_0000);
        assert_eq!(b.cmdline_size, 2047);
        assert_eq!(
            inspect(&bzimage(0x020f, 1, 0, 0x10000)).unwrap().protocol(),
            BootProtocol::LinuxBzImage
        );
        let b0 = inspect_bzimage(&bzimage(0x020f, 1, 0, 0x10000)).unwrap();
        assert_eq!(b0.setup_size, 5 * 512, "setup_sects 0 means 4");
    }

    #[test]
    fn bzimages_the_loader_refuses() {
        assert!(inspect_bzimage(&bzimage(0x020b, 1, 4, 0x10000))
            .unwrap_err()
            .to_string()
            .contains("2.11"));
        assert!(inspect_bzimage(&bzimage(0x020f, 2, 4, 0x10000))
            .unwrap_err()
            .to_string()
            .contains("XLF_KERNEL_64"));
        assert!(inspect_bzimage(&bzimage(0x020f, 1, 200, 0x10000))
            .unwrap_err()
            .to_string()
            .contains("past the end"));
        let mut f = bzimage(0x020f, 1, 4, 0x10000);
        f[0x211] = 0;
        assert!(inspect_bzimage(&f)
            .unwrap_err()
            .to_string()
            .contains("zImage"));
        assert!(matches!(
            inspect(&bzimage(0x020f, 1, 4, 0x10000)[..0x240]),
            Err(ImageError::Truncated { .. })
        ));
    }

    #[test]
    fn fit_checks() {
        let kind = inspect(&elf(0x10_0000, &[])).unwrap();
        assert!(check_fits(&kind, 0x10_2000).is_ok());
        let e = check_fits(&kind, 0x10_1000).unwrap_err();
        assert_eq!(e.end, 0x10_2000);
        let bz = inspect(&bzimage(0x020f, 1, 4, 0x10000)).unwrap();
        assert!(check_fits(&bz, 0x140_0000).is_ok());
        let e = check_fits(&bz, 0x100_0000).unwrap_err();
        assert!(e.what.contains("init_size"), "{e}");
    }
}
