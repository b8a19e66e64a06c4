//! KVM state: the VM, its vCPU and its guest memory.

pub mod memory;
pub mod vcpu;
pub mod vm;
