//! The guest's physical memory map, handed to the kernel as the e820 table (Linux) or the PVH
//! memory map. Both use the e820 type numbers.

use super::layout::{EBDA_START, HIMEM_START, MAX_RAM_END, MIN_RAM_SIZE};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// One entry of the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemRegion {
    /// First guest-physical address.
    pub start: u64,
    /// Length in bytes.
    pub size: u64,
    /// e820 type (`E820_RAM` or `E820_RESERVED`).
    pub kind: u32,
}

/// A RAM size the loader cannot lay out.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MemSizeError {
    /// Less RAM than the loader's low-memory structures plus 1 MiB for the kernel.
    #[error("guest RAM of {0:#x} bytes is too small (the minimum is {MIN_RAM_SIZE:#x})")]
    TooSmall(u64),
    /// RAM would run into the 32-bit MMIO area.
    #[error("guest RAM of {0:#x} bytes is too large (the maximum is {MAX_RAM_END:#x})")]
    TooLarge(u64),
    /// RAM must be whole 4 KiB pages.
    #[error("guest RAM of {0:#x} bytes is not a multiple of 4 KiB")]
    Unaligned(u64),
}

/// Checks that `ram_size` bytes of RAM starting at guest-physical 0 can be laid out.
pub fn check_ram_size(ram_size: u64) -> Result<(), MemSizeError> {
    if ram_size < MIN_RAM_SIZE {
        return Err(MemSizeError::TooSmall(ram_size));
    }
    if ram_size > MAX_RAM_END {
        return Err(MemSizeError::TooLarge(ram_size));
    }
    if ram_size & 0xfff != 0 {
        return Err(MemSizeError::Unaligned(ram_size));
    }
    Ok(())
}

/// The memory map for `ram_size` bytes of RAM at guest-physical 0:
/// conventional RAM `[0, EBDA_START)`, reserved `[EBDA_START, 1 MiB)` (EBDA, VGA window, BIOS
/// area), RAM `[1 MiB, ram_size)`. Nothing is listed above RAM.
pub fn memory_map(ram_size: u64) -> Result<Vec<MemRegion>, MemSizeError> {
    check_ram_size(ram_size)?;
    Ok(vec![
        MemRegion {
            start: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        MemRegion {
            start: EBDA_START,
            size: HIMEM_START - EBDA_START,
            kind: E820_RESERVED,
        },
        MemRegion {
            start: HIMEM_START,
            size: ram_size - HIMEM_START,
            kind: E820_RAM,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_for_128_mib() {
        let m = memory_map(128 << 20).unwrap();
        assert_eq!(
            m,
            vec![
                MemRegion {
                    start: 0,
                    size: 0x9fc00,
                    kind: 1
                },
                MemRegion {
                    start: 0x9fc00,
                    size: 0x400 + 0x60000,
                    kind: 2
                },
                MemRegion {
                    start: 0x10_0000,
                    size: (128 << 20) - 0x10_0000,
                    kind: 1
                },
            ]
        );
        // Contiguous and covering exactly the RAM.
        assert_eq!(m[0].start + m[0].size, m[1].start);
        assert_eq!(m[1].start + m[1].size, m[2].start);
        assert_eq!(m[2].start + m[2].size, 128 << 20);
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(memory_map(1 << 20), Err(MemSizeError::TooSmall(1 << 20)));
        assert_eq!(memory_map(4 << 30), Err(MemSizeError::TooLarge(4 << 30)));
        assert_eq!(
            memory_map((4 << 20) + 1),
            Err(MemSizeError::Unaligned((4 << 20) + 1))
        );
        assert!(memory_map(MAX_RAM_END).is_ok());
        assert!(memory_map(MIN_RAM_SIZE).is_ok());
    }
}
