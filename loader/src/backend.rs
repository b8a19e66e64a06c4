//! The seam where a backend plugs into the loader.
//!
//! `bare` runs the kernel as it is. The `kvm` (in-place virtualization: the guest kernel
//! deprivileged at CPL3 with a wedge) and `bt` (binary translation) backends are not built yet.
//! What they will need from the loader, and all this seam offers:
//!
//! 1. `prepare`: once the kernel and the boot structures are in guest memory and the vCPU holds
//!    its boot registers, before the first `KVM_RUN`, the backend may rewrite guest memory
//!    (install the wedge, patch annotated sites) and change the vCPU state (e.g. enter at CPL3).
//! 2. `port_write`: every port write is offered to the backend before the devices see it, so
//!    the backend can own a hypercall port; it may handle the write, decline it, or end the run
//!    (e.g. `EndReason::HypercallAbi`, exit code 105).

use kvm_ioctls::{VcpuFd, VmFd};

use crate::end::EndReason;
use crate::kernel::BootProtocol;
use crate::vstate::memory::GuestMemory;

pub mod kvm;

/// Which backend runs the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    /// Run the kernel as it is.
    Bare,
    /// In-place virtualization: the kernel deprivileged at CPL3 with the wedge (not built yet).
    Kvm,
    /// Binary translation (not built yet).
    Bt,
}

impl BackendKind {
    /// The name used on the command line and in the stats JSON.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Bare => "bare",
            BackendKind::Kvm => "kvm",
            BackendKind::Bt => "bt",
        }
    }

    /// Creates the backend.
    pub fn create(self) -> Result<Box<dyn Backend>, BackendError> {
        match self {
            BackendKind::Bare => Ok(Box::new(Bare)),
            BackendKind::Kvm => Ok(Box::new(kvm::KvmBackend::new())),
            BackendKind::Bt => Err(BackendError::NotImplemented(self.name())),
        }
    }
}

/// A backend that cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The backend does not exist yet.
    #[error("the {0} backend is not implemented yet (only --backend bare runs guests for now)")]
    NotImplemented(&'static str),
    /// The backend could not prepare the guest.
    #[error("the {backend} backend could not prepare the guest: {detail}")]
    Prepare {
        /// The backend.
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
}

/// What the backend sees of the VM.
pub struct VmContext<'a> {
    /// Guest RAM.
    pub memory: &'a GuestMemory,
    /// The vCPU (registers via `get_regs`/`set_regs`, or the `kvm_run` copies a backend asked
    /// for with `set_sync_valid_reg`).
    pub vcpu: &'a mut VcpuFd,
    /// How the kernel was booted.
    pub protocol: BootProtocol,
    /// The entry point the vCPU starts at.
    pub entry: u64,
    /// The VM (memory slots of a backend's own).
    pub vm: &'a VmFd,
    /// The kernel file's bytes (only in `prepare`; empty during the run).
    pub kernel: &'a [u8],
}

/// What happens to a port write offered to the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Not the backend's: the devices handle it.
    NotMine,
    /// The backend handled it; resume the guest.
    Handled,
    /// End the run.
    End(EndReason),
}

/// A backend: prepares the guest before the run and owns the exits it claims.
pub trait Backend: Send {
    /// The backend's name (`bare`, `kvm`, `bt`).
    fn name(&self) -> &'static str;

    /// Prepares guest memory and vCPU state before the first `KVM_RUN`.
    fn prepare(&mut self, vm: &mut VmContext<'_>) -> Result<(), BackendError>;

    /// Offered every port write before the devices.
    fn port_write(&mut self, port: u16, data: &[u8], vm: &mut VmContext<'_>) -> Disposition;

    /// Console output the backend collected (the kvm backend's serial ring), taken after every
    /// exit the backend handled and at the end of the run; it goes to COM1's output.
    fn take_output(&mut self) -> Vec<u8> {
        Vec::new()
    }

    /// The backend's own counters for the stats JSON (`backend_stats`).
    fn stats(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// Runs the kernel as it is: prepares nothing, owns no exit.
#[derive(Debug, Default)]
pub struct Bare;

impl Backend for Bare {
    fn name(&self) -> &'static str {
        "bare"
    }

    fn prepare(&mut self, _vm: &mut VmContext<'_>) -> Result<(), BackendError> {
        Ok(())
    }

    fn port_write(&mut self, _port: u16, _data: &[u8], _vm: &mut VmContext<'_>) -> Disposition {
        Disposition::NotMine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_and_kvm_exist_bt_not_yet() {
        assert_eq!(BackendKind::Bare.create().unwrap().name(), "bare");
        assert_eq!(BackendKind::Kvm.create().unwrap().name(), "kvm");
        let e = BackendKind::Bt.create().err().unwrap();
        assert_eq!(e, BackendError::NotImplemented("bt"));
        assert!(e.to_string().contains("not implemented yet"));
    }
}
