//! The wedge's own memory: one KVM memory slot at `SLOT_GPA`, outside guest RAM, holding the
//! runtime, the shared pages, the real descriptor tables, the CPL0 stubs, the page tables of the
//! wedge hole and the shadow page-table pool (wedge::layout).
//!
//! Every access is bounds-checked by vm-memory (an offset outside the slot is an error).

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use wedge::layout::{Region, SLOT_GPA, SLOT_SIZE};

use crate::vstate::memory::GuestMemory;

/// KVM slot number of the wedge's memory (guest RAM uses slot 0).
pub const SLOT_ID: u32 = 8;

/// The wedge's memory slot.
pub struct Slot {
    mem: GuestMemory,
}

/// An access outside the slot, or a KVM failure.
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    /// The mapping could not be made.
    #[error("cannot map the wedge's memory: {0}")]
    Map(String),
    /// KVM refused the slot.
    #[error("KVM_SET_USER_MEMORY_REGION (wedge slot): {0}")]
    Kvm(kvm_ioctls::Error),
    /// An access outside the slot.
    #[error("wedge memory access of {len} bytes at guest-physical {gpa:#x} is outside the slot")]
    Range {
        /// Address.
        gpa: u64,
        /// Length.
        len: usize,
    },
}

impl Slot {
    /// Maps `SLOT_SIZE` zeroed bytes (not yet visible to the guest).
    pub fn new() -> Result<Slot, SlotError> {
        let len = usize::try_from(SLOT_SIZE).map_err(|e| SlotError::Map(e.to_string()))?;
        let mem = GuestMemory::from_ranges(&[(GuestAddress(SLOT_GPA), len)])
            .map_err(|e| SlotError::Map(e.to_string()))?;
        Ok(Slot { mem })
    }

    fn region(&self, size: u64) -> Result<kvm_userspace_memory_region, SlotError> {
        let region = self
            .mem
            .iter()
            .next()
            .ok_or_else(|| SlotError::Map("no region".into()))?;
        let host = region
            .get_host_address(vm_memory::MemoryRegionAddress(0))
            .map_err(|e| SlotError::Map(e.to_string()))?;
        Ok(kvm_userspace_memory_region {
            slot: SLOT_ID,
            flags: 0,
            guest_phys_addr: SLOT_GPA,
            memory_size: size,
            userspace_addr: host as u64,
        })
    }

    /// Makes the slot guest memory (`KVM_SET_USER_MEMORY_REGION`). The slot must outlive the
    /// VM (the backend does: the machine drops the VM first).
    pub fn register(&self, vm: &VmFd) -> Result<(), SlotError> {
        let r = self.region(SLOT_SIZE)?;
        // SAFETY: `userspace_addr .. + SLOT_SIZE` is a live mapping owned by `self.mem`, which
        // outlives the VM (see above); KVM accesses it only through these addresses.
        unsafe { vm.set_user_memory_region(r) }.map_err(SlotError::Kvm)
    }

    /// Removes the slot and adds it again, contents unchanged: KVM forgets every shadow page it
    /// built from page tables in the slot, so shadow tables the host rewrote in place are read
    /// afresh (docs/backends.md, "Shadow page tables").
    pub fn zap(&self, vm: &VmFd) -> Result<(), SlotError> {
        let r = self.region(0)?;
        // SAFETY: deleting a slot (size 0) makes KVM drop its use of the mapping.
        unsafe { vm.set_user_memory_region(r) }.map_err(SlotError::Kvm)?;
        self.register(vm)
    }

    /// Reads `buf.len()` bytes at guest-physical `gpa`.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), SlotError> {
        self.mem
            .read_slice(buf, GuestAddress(gpa))
            .map_err(|_| SlotError::Range {
                gpa,
                len: buf.len(),
            })
    }

    /// Writes `bytes` at guest-physical `gpa`.
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> Result<(), SlotError> {
        self.mem
            .write_slice(bytes, GuestAddress(gpa))
            .map_err(|_| SlotError::Range {
                gpa,
                len: bytes.len(),
            })
    }

    /// The u64 at guest-physical `gpa`.
    pub fn read_u64(&self, gpa: u64) -> Result<u64, SlotError> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a u64 at guest-physical `gpa`.
    pub fn write_u64(&self, gpa: u64, v: u64) -> Result<(), SlotError> {
        self.write(gpa, &v.to_le_bytes())
    }

    /// Field `off` of region `r`.
    pub fn get(&self, r: &Region, off: u64) -> Result<u64, SlotError> {
        self.read_u64(r.gpa() + off)
    }

    /// Sets field `off` of region `r`.
    pub fn set(&self, r: &Region, off: u64, v: u64) -> Result<(), SlotError> {
        self.write_u64(r.gpa() + off, v)
    }

    /// Whether guest-physical `gpa` lies in the slot.
    pub fn contains(gpa: u64) -> bool {
        gpa >= SLOT_GPA && gpa - SLOT_GPA < SLOT_SIZE
    }
}
