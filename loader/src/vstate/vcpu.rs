//! The vCPU: boot configuration, `KVM_RUN` exits as owned values, and the register report.

use std::fmt;

use kvm_bindings::{
    kvm_regs, kvm_segment, kvm_sregs, KVM_EXIT_INTERNAL_ERROR, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress};

use crate::arch::x86_64::cpuid::set_apic_id;
use crate::arch::x86_64::gdt::EntryMode;
use crate::arch::x86_64::interrupts::boot_lapic;
use crate::arch::x86_64::regs::{boot_fpu, boot_sregs, EFER_LMA};
use crate::vstate::memory::GuestMemory;
use crate::vstate::vm::{Vm, VmError};

/// Most data words of an internal error (`kvm_run.internal.data` has 16).
pub const MAX_INTERNAL_ERROR_DATA: usize = 16;
/// Bytes of code shown at `rip` in the register report.
pub const CODE_BYTES: usize = 16;

/// A vCPU that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct VcpuError {
    /// The ioctl.
    pub what: &'static str,
    /// The error.
    pub source: kvm_ioctls::Error,
}

fn ioctl(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> VcpuError {
    move |source| VcpuError { what, source }
}

/// A vCPU of a `Vm`.
pub struct Vcpu {
    fd: VcpuFd,
    apic_id: u8,
}

impl Vcpu {
    /// Creates vCPU `id` (whose APIC ID is `id`).
    pub fn new(vm: &Vm, id: u8) -> Result<Vcpu, VmError> {
        let fd = vm
            .fd()
            .create_vcpu(u64::from(id))
            .map_err(|source| VmError::Ioctl {
                what: "KVM_CREATE_VCPU",
                source,
            })?;
        Ok(Vcpu { fd, apic_id: id })
    }

    /// The vCPU fd.
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    /// The vCPU fd, for `KVM_RUN`.
    pub fn fd_mut(&mut self) -> &mut VcpuFd {
        &mut self.fd
    }

    /// Gives the vCPU its boot state: the host's supported CPUID (with this vCPU's APIC ID),
    /// the boot segments and control registers for `mode`, the general registers `regs`, the
    /// FPU reset state, and the local APIC's LINT0 = ExtINT / LINT1 = NMI.
    pub fn configure(&self, vm: &Vm, mode: EntryMode, regs: &kvm_regs) -> Result<(), VcpuError> {
        let mut cpuid = vm
            .kvm()
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        set_apic_id(cpuid.as_mut_slice(), self.apic_id);
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(ioctl("KVM_SET_CPUID2"))?;
        let sregs = self.fd.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
        self.fd
            .set_sregs(&boot_sregs(&sregs, mode))
            .map_err(ioctl("KVM_SET_SREGS"))?;
        self.fd.set_regs(regs).map_err(ioctl("KVM_SET_REGS"))?;
        self.fd.set_fpu(&boot_fpu()).map_err(ioctl("KVM_SET_FPU"))?;
        let lapic = self.fd.get_lapic().map_err(ioctl("KVM_GET_LAPIC"))?;
        self.fd
            .set_lapic(&boot_lapic(&lapic))
            .map_err(ioctl("KVM_SET_LAPIC"))?;
        Ok(())
    }

    /// The suberror and data words of the last `KVM_EXIT_INTERNAL_ERROR`, or `None` if the last
    /// exit was something else.
    pub fn internal_error(&mut self) -> Option<(u32, Vec<u64>)> {
        let run = self.fd.get_kvm_run();
        if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
            return None;
        }
        // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so `internal` is the member of
        // the union KVM filled in; it holds only integers, valid for any bit pattern.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = usize::try_from(internal.ndata)
            .unwrap_or(usize::MAX)
            .min(MAX_INTERNAL_ERROR_DATA)
            .min(internal.data.len());
        Some((internal.suberror, internal.data[..n].to_vec()))
    }

    /// The registers for the end-of-run report; `None` if KVM will not tell.
    pub fn registers(&self, mem: &GuestMemory) -> Option<RegisterDump> {
        let regs = self.fd.get_regs().ok()?;
        let sregs = self.fd.get_sregs().ok()?;
        let linear = if sregs.efer & EFER_LMA != 0 && sregs.cs.l == 1 {
            regs.rip
        } else {
            sregs.cs.base.wrapping_add(regs.rip & 0xffff_ffff)
        };
        let code = self
            .fd
            .translate_gva(linear)
            .ok()
            .filter(|t| t.valid != 0)
            .and_then(|t| {
                let mut b = [0u8; CODE_BYTES];
                mem.read_slice(&mut b, GuestAddress(t.physical_address))
                    .ok()?;
                Some(b.to_vec())
            });
        Some(RegisterDump { regs, sregs, code })
    }
}

/// The `KVM_EXIT_*` name of an exit.
pub fn exit_name(exit: &VcpuExit<'_>) -> String {
    let s = match exit {
        VcpuExit::IoOut(..) | VcpuExit::IoIn(..) => "KVM_EXIT_IO",
        VcpuExit::MmioRead(..) | VcpuExit::MmioWrite(..) => "KVM_EXIT_MMIO",
        VcpuExit::Unknown => "KVM_EXIT_UNKNOWN",
        VcpuExit::Exception => "KVM_EXIT_EXCEPTION",
        VcpuExit::Hypercall(..) => "KVM_EXIT_HYPERCALL",
        VcpuExit::Debug(..) => "KVM_EXIT_DEBUG",
        VcpuExit::Hlt => "KVM_EXIT_HLT",
        VcpuExit::IrqWindowOpen => "KVM_EXIT_IRQ_WINDOW_OPEN",
        VcpuExit::Shutdown => "KVM_EXIT_SHUTDOWN",
        VcpuExit::FailEntry(..) => "KVM_EXIT_FAIL_ENTRY",
        VcpuExit::Intr => "KVM_EXIT_INTR",
        VcpuExit::SetTpr => "KVM_EXIT_SET_TPR",
        VcpuExit::TprAccess => "KVM_EXIT_TPR_ACCESS",
        VcpuExit::Nmi => "KVM_EXIT_NMI",
        VcpuExit::InternalError => "KVM_EXIT_INTERNAL_ERROR",
        VcpuExit::Watchdog => "KVM_EXIT_WATCHDOG",
        VcpuExit::SystemEvent(..) => "KVM_EXIT_SYSTEM_EVENT",
        VcpuExit::IoapicEoi(..) => "KVM_EXIT_IOAPIC_EOI",
        VcpuExit::Hyperv => "KVM_EXIT_HYPERV",
        VcpuExit::X86Rdmsr(..) => "KVM_EXIT_X86_RDMSR",
        VcpuExit::X86Wrmsr(..) => "KVM_EXIT_X86_WRMSR",
        VcpuExit::MemoryFault { .. } => "KVM_EXIT_MEMORY_FAULT",
        VcpuExit::Unsupported(n) => return format!("exit reason {n}"),
        _ => "KVM_EXIT_(other)",
    };
    s.to_string()
}

/// The vCPU's registers at the end of a run, and the code bytes at `rip` if readable.
#[derive(Clone, Debug)]
pub struct RegisterDump {
    /// General registers.
    pub regs: kvm_regs,
    /// Segment, control and descriptor-table registers.
    pub sregs: kvm_sregs,
    /// Up to `CODE_BYTES` bytes at `cs:rip`, when the address translates into RAM.
    pub code: Option<Vec<u8>>,
}

impl RegisterDump {
    /// The CPU mode: `real`, `protected (16-bit)`, `protected (32-bit)`, `long (64-bit)` or
    /// `long (compatibility)`, plus `, paging` when CR0.PG is set.
    pub fn mode(&self) -> String {
        let s = &self.sregs;
        let base = if s.cr0 & 1 == 0 {
            "real"
        } else if s.efer & EFER_LMA != 0 {
            if s.cs.l == 1 {
                "long (64-bit)"
            } else {
                "long (compatibility)"
            }
        } else if s.cs.db == 1 {
            "protected (32-bit)"
        } else {
            "protected (16-bit)"
        };
        if s.cr0 & (1 << 31) != 0 {
            format!("{base}, paging")
        } else {
            base.to_string()
        }
    }

    /// The registers as a JSON object (numbers; the stats JSON's `registers`).
    pub fn to_json(&self) -> serde_json::Value {
        let r = &self.regs;
        let s = &self.sregs;
        serde_json::json!({
            "rip": r.rip, "rsp": r.rsp, "rflags": r.rflags,
            "rax": r.rax, "rbx": r.rbx, "rcx": r.rcx, "rdx": r.rdx,
            "rsi": r.rsi, "rdi": r.rdi, "rbp": r.rbp,
            "r8": r.r8, "r9": r.r9, "r10": r.r10, "r11": r.r11,
            "r12": r.r12, "r13": r.r13, "r14": r.r14, "r15": r.r15,
            "cr0": s.cr0, "cr2": s.cr2, "cr3": s.cr3, "cr4": s.cr4, "efer": s.efer,
            "cs": s.cs.selector, "ss": s.ss.selector,
            "mode": self.mode(),
        })
    }
}

fn seg(f: &mut fmt::Formatter<'_>, name: &str, s: &kvm_segment) -> fmt::Result {
    writeln!(
        f,
        "  {name:<3} sel {:#06x} base {:#018x} limit {:#010x} type {:#x} s {} dpl {} p {} db {} l {} g {}",
        s.selector, s.base, s.limit, s.type_, s.s, s.dpl, s.present, s.db, s.l, s.g
    )
}

impl fmt::Display for RegisterDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.regs;
        let s = &self.sregs;
        writeln!(f, "  mode {}", self.mode())?;
        writeln!(
            f,
            "  rip {:#018x} rsp {:#018x} rflags {:#010x}",
            r.rip, r.rsp, r.rflags
        )?;
        writeln!(
            f,
            "  rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "  rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}",
            r.rsi, r.rdi, r.rbp, r.r8
        )?;
        writeln!(
            f,
            "  r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}",
            r.r9, r.r10, r.r11, r.r12
        )?;
        writeln!(
            f,
            "  r13 {:#018x} r14 {:#018x} r15 {:#018x}",
            r.r13, r.r14, r.r15
        )?;
        writeln!(
            f,
            "  cr0 {:#018x} cr2 {:#018x} cr3 {:#018x} cr4 {:#018x}",
            s.cr0, s.cr2, s.cr3, s.cr4
        )?;
        writeln!(f, "  efer {:#x} apic_base {:#x}", s.efer, s.apic_base)?;
        seg(f, "cs", &s.cs)?;
        seg(f, "ss", &s.ss)?;
        seg(f, "ds", &s.ds)?;
        seg(f, "tr", &s.tr)?;
        writeln!(
            f,
            "  gdt base {:#x} limit {:#x}; idt base {:#x} limit {:#x}",
            s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit
        )?;
        match &self.code {
            Some(c) => {
                let hex: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(f, "  code at rip: {}", hex.join(" "))
            }
            None => writeln!(f, "  code at rip: (not readable)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::regs::boot_sregs;

    #[test]
    fn modes() {
        let mut d = RegisterDump {
            regs: kvm_regs::default(),
            sregs: boot_sregs(&kvm_sregs::default(), EntryMode::Protected32),
            code: None,
        };
        assert_eq!(d.mode(), "protected (32-bit)");
        d.sregs = boot_sregs(&kvm_sregs::default(), EntryMode::Long64);
        assert_eq!(d.mode(), "long (64-bit), paging");
        d.sregs.cr0 = 0;
        assert_eq!(d.mode(), "real");
        let text = d.to_string();
        assert!(text.contains("rip 0x0000000000000000") && text.contains("(not readable)"));
        d.code = Some(vec![0x0f, 0x0b]);
        assert!(d.to_string().contains("code at rip: 0f 0b"));
        assert_eq!(d.to_json()["cs"], 0x10);
    }
}
