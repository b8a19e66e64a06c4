//! The KVM VM: /dev/kvm, the VM fd, the in-kernel irqchip and PIT, the memory slot.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Kvm, VmFd};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::layout::KVM_TSS_ADDRESS;
use crate::vstate::memory::GuestMemory;

/// A VM that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0}")]
    OpenKvm(kvm_ioctls::Error),
    /// KVM's API version is not 12.
    #[error("/dev/kvm speaks KVM API version {0}, not 12")]
    ApiVersion(i32),
    /// An ioctl failed.
    #[error("{what}: {source}")]
    Ioctl {
        /// The ioctl.
        what: &'static str,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// A memory region KVM cannot take.
    #[error("guest memory region at {0:#x} cannot be registered: {1}")]
    Region(u64, String),
}

fn ioctl(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Ioctl { what, source }
}

/// A KVM VM.
pub struct Vm {
    kvm: Kvm,
    fd: VmFd,
}

impl Vm {
    /// Opens /dev/kvm and creates a VM.
    pub fn new() -> Result<Vm, VmError> {
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(VmError::ApiVersion(version));
        }
        let fd = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        Ok(Vm { kvm, fd })
    }

    /// /dev/kvm.
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// The VM fd.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Creates the in-kernel devices (IOAPIC + dual PIC + local APICs, and the PIT), which must
    /// exist before any vCPU. `KVM_SET_TSS_ADDR` is needed by VMX only; where KVM refuses it
    /// (other implementations), the VM goes on without it.
    pub fn setup_irqchip(&self) -> Result<(), VmError> {
        // Not every KVM implementation needs (or accepts) the real-mode TSS; nothing the loader
        // runs depends on it.
        let tss = usize::try_from(KVM_TSS_ADDRESS).unwrap_or(0);
        let _ = self.fd.set_tss_address(tss);
        self.fd
            .create_irq_chip()
            .map_err(ioctl("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd.create_pit2(pit).map_err(ioctl("KVM_CREATE_PIT2"))?;
        self.disable_pit_reinjection()?;
        Ok(())
    }

    /// Makes the in-kernel 8254 behave like a PC's: a tick that comes while the previous one is
    /// still unacknowledged is lost, not queued and delivered later in a burst
    /// (`KVM_REINJECT_CONTROL`, `pit_reinject = 0`). With KVM's default catch-up, a vCPU that
    /// the host does not schedule for a few milliseconds gets the missed ticks back to back, and
    /// a guest that counts ticks (the interrupts example) sees more of them before it can stop.
    fn disable_pit_reinjection(&self) -> Result<(), VmError> {
        #[repr(C)]
        struct KvmReinjectControl {
            pit_reinject: u8,
            reserved: [u8; 31],
        }
        vmm_sys_util::ioctl_io_nr!(KVM_REINJECT_CONTROL, kvm_bindings::KVMIO, 0x71);
        let arg = KvmReinjectControl {
            pit_reinject: 0,
            reserved: [0; 31],
        };
        // SAFETY: KVM_REINJECT_CONTROL reads a `struct kvm_reinject_control` (1 + 31 bytes, the
        // layout above) from the pointer; `arg` lives across the call.
        let r =
            unsafe { vmm_sys_util::ioctl::ioctl_with_ref(&self.fd, KVM_REINJECT_CONTROL(), &arg) };
        if r < 0 {
            return Err(VmError::Ioctl {
                what: "KVM_REINJECT_CONTROL",
                source: kvm_ioctls::Error::last(),
            });
        }
        Ok(())
    }

    /// Registers every region of `mem` as a KVM memory slot.
    ///
    /// The caller must keep `mem` alive for as long as the VM or any of its vCPUs lives (the
    /// `Machine` in `builder` does, by field order).
    pub fn register_memory(&self, mem: &GuestMemory) -> Result<(), VmError> {
        for (slot, region) in mem.iter().enumerate() {
            let start = region.start_addr().0;
            let host = region
                .get_host_address(vm_memory::MemoryRegionAddress(0))
                .map_err(|e| VmError::Region(start, e.to_string()))?;
            let r = kvm_userspace_memory_region {
                slot: u32::try_from(slot)
                    .map_err(|_| VmError::Region(start, "too many slots".into()))?,
                flags: 0,
                guest_phys_addr: start,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: `host .. host + len` is a live mapping owned by `mem` (vm-memory's mmap
            // region), and the caller keeps `mem` alive for as long as the VM and its vCPUs.
            // KVM accesses that memory only through these user addresses.
            unsafe { self.fd.set_user_memory_region(r) }
                .map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        }
        Ok(())
    }

    /// Makes a write to `evt` an edge on interrupt line `gsi` (`KVM_IRQFD`).
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd.register_irqfd(evt, gsi).map_err(ioctl("KVM_IRQFD"))
    }
}
