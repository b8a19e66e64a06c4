//! x86-64 specifics: the guest memory layout, boot protocols and initial CPU state.

pub mod cpuid;
pub mod gdt;
pub mod interrupts;
pub mod layout;
pub mod linux;
pub mod memmap;
pub mod pvh;
pub mod regs;
