//! loader: launches native and afterburnt guest kernels on KVM (`afterburn-run`).
//!
//! Laid out by concern, as Firecracker is: `arch::x86_64` (guest memory layout, boot
//! protocols, initial CPU state: pure functions), `kernel` (reading kernel images), `vstate`
//! (KVM VM, vCPU, guest memory), `devices` (UART, debug exit, the port/MMIO bus), `stats` (the
//! vCPU binary stats fd), `host` (which KVM this is), `backend` (the seam for the kvm and bt
//! backends), `builder` (from a kernel file to a VM ready to run) and `run` (the run loop, the
//! watchdog, the end report). The CLI (`afterburn-run`) is a thin layer in `main.rs`;
//! `compare` runs native and afterburnt kernels side by side and reports the difference.

pub mod arch;
pub mod backend;
pub mod builder;
pub mod cli;
pub mod compare;
pub mod devices;
pub mod end;
pub mod host;
pub mod kernel;
pub mod report;
pub mod run;
pub mod stats;
pub mod vstate;
