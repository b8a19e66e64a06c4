//! The PVH boot protocol's start-of-day structure, `hvm_start_info` (xen/include/public/
//! arch-x86/hvm/start_info.h, version 1), and its memory map.

use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};

use super::layout::{CMDLINE_START, MAX_MEMMAP_ENTRIES, PVH_MEMMAP_START};
use super::memmap::MemRegion;

/// `hvm_start_info.magic`.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// The structure version the loader writes (version 1 has the memory map fields).
pub const HVM_START_INFO_VERSION: u32 = 1;

/// Too many memory regions for the room reserved at `PVH_MEMMAP_START`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} memory-map entries do not fit the {MAX_MEMMAP_ENTRIES} reserved for PVH")]
pub struct TooManyRegions(pub usize);

/// The `hvm_start_info` for a memory map: magic, version 1, no modules, no RSDP,
/// `cmdline_paddr` = `CMDLINE_START` (always a NUL-terminated string, possibly empty),
/// `memmap_paddr` = `PVH_MEMMAP_START` with one entry per region.
pub fn start_info(map: &[MemRegion]) -> Result<hvm_start_info, TooManyRegions> {
    if map.len() > MAX_MEMMAP_ENTRIES {
        return Err(TooManyRegions(map.len()));
    }
    Ok(hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: HVM_START_INFO_VERSION,
        flags: 0,
        nr_modules: 0,
        modlist_paddr: 0,
        cmdline_paddr: CMDLINE_START,
        rsdp_paddr: 0,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: u32::try_from(map.len()).map_err(|_| TooManyRegions(map.len()))?,
        reserved: 0,
    })
}

/// The PVH memory map entries for `map`, in order.
pub fn memmap_entries(map: &[MemRegion]) -> Vec<hvm_memmap_table_entry> {
    map.iter()
        .map(|r| hvm_memmap_table_entry {
            addr: r.start,
            size: r.size,
            type_: r.kind,
            reserved: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::memmap::memory_map;

    #[test]
    fn start_info_fields() {
        let map = memory_map(64 << 20).unwrap();
        let si = start_info(&map).unwrap();
        assert_eq!(si.magic, 0x336e_c578);
        assert_eq!(si.version, 1);
        assert_eq!(si.flags, 0);
        assert_eq!(si.nr_modules, 0);
        assert_eq!(si.modlist_paddr, 0);
        assert_eq!(si.cmdline_paddr, 0x20000);
        assert_eq!(si.rsdp_paddr, 0);
        assert_eq!(si.memmap_paddr, 0x6400);
        assert_eq!(si.memmap_entries, 3);
        assert_eq!(std::mem::size_of::<hvm_start_info>(), 56);
    }

    #[test]
    fn memmap_mirrors_the_regions() {
        let map = memory_map(64 << 20).unwrap();
        let e = memmap_entries(&map);
        assert_eq!(e.len(), 3);
        assert_eq!(
            (e[2].addr, e[2].size, e[2].type_),
            (0x10_0000, (64 << 20) - 0x10_0000, 1)
        );
        assert_eq!(e[1].type_, 2);
        assert_eq!(std::mem::size_of::<hvm_memmap_table_entry>(), 24);
    }

    #[test]
    fn too_many_regions() {
        let map = vec![
            MemRegion {
                start: 0,
                size: 1,
                kind: 1
            };
            33
        ];
        assert_eq!(start_info(&map), Err(TooManyRegions(33)));
    }
}
