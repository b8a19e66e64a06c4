//! The bytes a patcher rewrites: a kernel image addressed by virtual address.
//!
//! [`ElfImage`] holds the loadable segments of a linked kernel (for tests and tools); the loader
//! implements [`Image`] over guest memory, where the kernel was loaded at its program headers'
//! physical addresses.

use object::elf::PT_LOAD;
use object::read::elf::{ElfFile64, ProgramHeader};
use object::Endianness;

/// Why bytes of an image could not be read or written.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    /// The range is not inside one loaded segment's file contents.
    #[error("{len} bytes at {addr:#x} are not inside a loaded segment of the kernel")]
    Unmapped {
        /// Start address.
        addr: u64,
        /// Length.
        len: usize,
    },
    /// The file is not a loadable ELF64 x86-64 image.
    #[error("not an ELF64 kernel image: {0}")]
    Elf(String),
}

/// A kernel image addressed by virtual address.
pub trait Image {
    /// `len` bytes at virtual address `addr`.
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError>;
    /// Overwrites bytes at virtual address `addr`.
    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), ImageError>;
}

/// One loadable segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Virtual address (`p_vaddr`).
    pub vaddr: u64,
    /// Physical load address (`p_paddr`).
    pub paddr: u64,
    /// File contents (`p_filesz` bytes).
    pub data: Vec<u8>,
}

/// The loadable segments of a linked kernel.
#[derive(Clone, Debug)]
pub struct ElfImage {
    /// Segments in program-header order.
    pub segments: Vec<Segment>,
}

impl ElfImage {
    /// Reads the `PT_LOAD` segments of an ELF64 executable.
    pub fn parse(elf: &[u8]) -> Result<ElfImage, ImageError> {
        let file =
            ElfFile64::<Endianness>::parse(elf).map_err(|e| ImageError::Elf(e.to_string()))?;
        let endian = file.endian();
        let mut segments = Vec::new();
        for (i, ph) in file.elf_program_headers().iter().enumerate() {
            if ph.p_type(endian) != PT_LOAD {
                continue;
            }
            let data = ph.data(endian, elf).map_err(|_| {
                ImageError::Elf(format!("program header {i}: contents past the file's end"))
            })?;
            segments.push(Segment {
                vaddr: ph.p_vaddr(endian),
                paddr: ph.p_paddr(endian),
                data: data.to_vec(),
            });
        }
        Ok(ElfImage { segments })
    }

    fn locate(&self, addr: u64, len: usize) -> Result<(usize, usize), ImageError> {
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(off) = addr.checked_sub(s.vaddr) {
                if let Ok(off) = usize::try_from(off) {
                    if off.checked_add(len).is_some_and(|end| end <= s.data.len()) {
                        return Ok((i, off));
                    }
                }
            }
        }
        Err(ImageError::Unmapped { addr, len })
    }

    /// The physical address where virtual address `addr` is loaded, if it is file contents
    /// of a segment.
    pub fn paddr(&self, addr: u64) -> Option<u64> {
        let (i, off) = self.locate(addr, 1).ok()?;
        Some(self.segments[i].paddr + off as u64)
    }
}

impl Image for ElfImage {
    fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, ImageError> {
        let (i, off) = self.locate(addr, len)?;
        Ok(self.segments[i].data[off..off + len].to_vec())
    }

    fn write(&mut self, addr: u64, bytes: &[u8]) -> Result<(), ImageError> {
        let (i, off) = self.locate(addr, bytes.len())?;
        self.segments[i].data[off..off + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }
}
