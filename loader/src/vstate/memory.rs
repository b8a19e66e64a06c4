//! Guest RAM: one anonymous mapping from guest-physical 0 to the RAM size.

use vm_memory::{Bytes, GuestAddress};

/// Guest RAM as vm-memory sees it.
pub type GuestMemory = vm_memory::GuestMemoryMmap<()>;

/// Guest RAM that could not be set up or written.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The mapping failed.
    #[error("cannot map {size:#x} bytes of guest RAM: {detail}")]
    Create {
        /// The size asked for.
        size: u64,
        /// Why.
        detail: String,
    },
    /// A write outside RAM.
    #[error("cannot write {len:#x} bytes at guest address {addr:#x}: {detail}")]
    Write {
        /// Where.
        addr: u64,
        /// How much.
        len: usize,
        /// Why.
        detail: String,
    },
}

/// Maps `size` bytes of zeroed guest RAM at guest-physical 0.
pub fn create_guest_memory(size: u64) -> Result<GuestMemory, MemoryError> {
    let len = usize::try_from(size).map_err(|_| MemoryError::Create {
        size,
        detail: "larger than the address space".into(),
    })?;
    let mem = GuestMemory::from_ranges(&[(GuestAddress(0), len)]).map_err(|e| {
        MemoryError::Create {
            size,
            detail: e.to_string(),
        }
    })?;
    advise_huge_pages(&mem);
    Ok(mem)
}

/// Asks the host to back guest RAM with transparent huge pages (`MADV_HUGEPAGE`), as
/// Firecracker does with its huge-page option: KVM then maps a guest 2 MiB page with one 2 MiB
/// host mapping instead of faulting in 512 small ones. Advice only: a host without THP (or
/// with it off) keeps small pages and nothing else changes.
fn advise_huge_pages(mem: &GuestMemory) {
    use vm_memory::{GuestMemoryBackend as _, GuestMemoryRegion as _};
    for region in mem.iter() {
        let Ok(host) = region.get_host_address(vm_memory::MemoryRegionAddress(0)) else {
            continue;
        };
        let Ok(len) = usize::try_from(region.len()) else {
            continue;
        };
        // SAFETY: `host..host + len` is the region's own anonymous mapping, alive as long as
        // `mem`; MADV_HUGEPAGE changes how the kernel backs it, never its contents.
        unsafe {
            libc::madvise(host.cast(), len, libc::MADV_HUGEPAGE);
        }
    }
}

/// Writes `bytes` at guest-physical `addr`, all or nothing.
pub fn write_bytes(mem: &GuestMemory, addr: u64, bytes: &[u8]) -> Result<(), MemoryError> {
    mem.write_slice(bytes, GuestAddress(addr))
        .map_err(|e| MemoryError::Write {
            addr,
            len: bytes.len(),
            detail: e.to_string(),
        })
}

/// Writes little-endian u64 values, each at its own guest-physical address.
pub fn write_u64s(mem: &GuestMemory, entries: &[(u64, u64)]) -> Result<(), MemoryError> {
    for &(addr, value) in entries {
        write_bytes(mem, addr, &value.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_bounds_checked() {
        let m = create_guest_memory(0x10000).unwrap();
        write_bytes(&m, 0xfff0, &[1; 16]).unwrap();
        let e = write_bytes(&m, 0xfff8, &[1; 16]).unwrap_err();
        assert!(e.to_string().contains("0xfff8"), "{e}");
        assert!(write_bytes(&m, u64::MAX, &[1]).is_err());
        write_u64s(&m, &[(0x100, 0x1122_3344_5566_7788)]).unwrap();
        let v: u64 = m.read_obj(GuestAddress(0x100)).unwrap();
        assert_eq!(v, 0x1122_3344_5566_7788);
    }
}
