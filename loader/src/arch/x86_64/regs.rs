//! Initial vCPU register state for each boot protocol: small pure functions from the layout
//! constants to `kvm_regs` / `kvm_sregs` / `kvm_fpu`, plus the boot identity page tables.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};

use super::gdt::{boot_gdt, kvm_segment_from_gdt, EntryMode, CODE_INDEX, DATA_INDEX, TSS_INDEX};
use super::layout::{
    BOOT_GDT_ENTRIES, BOOT_GDT_START, BOOT_IDT_START, BOOT_PD_COUNT, BOOT_STACK_POINTER,
    PDPT_START, PD_START, PML4_START,
};

/// CR0.PE: protected mode.
pub const X86_CR0_PE: u64 = 1 << 0;
/// CR0.ET: extension type (always 1 on modern CPUs).
pub const X86_CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
pub const X86_CR0_PG: u64 = 1 << 31;
/// CR4.PAE: physical address extension (required for long mode).
pub const X86_CR4_PAE: u64 = 1 << 5;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always set; every other flag starts clear (IF = 0).
pub const RFLAGS_RESERVED: u64 = 1 << 1;

/// Page-table entry bits: present and writable.
pub const PTE_PRESENT_RW: u64 = 0x3;
/// Page-directory entry bit: this entry maps a 2 MiB page.
pub const PDE_PAGE_SIZE: u64 = 0x80;
/// Entries per page table.
pub const ENTRIES_PER_TABLE: u64 = 512;

/// General registers at the PVH entry: `rip` = the note's entry point, `rbx` = the
/// guest-physical address of `hvm_start_info`, flags clear. Other registers are zero.
pub fn pvh_regs(entry: u64, start_info: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rbx: start_info,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    }
}

/// General registers at the Linux 64-bit entry: `rip` = entry, `rsi` = the guest-physical
/// address of `boot_params`, a small stack below the page tables, flags clear.
pub fn linux64_regs(entry: u64, zero_page: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsi: zero_page,
        rsp: BOOT_STACK_POINTER,
        rbp: BOOT_STACK_POINTER,
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    }
}

/// The limit of the boot GDT as `lgdt` would see it.
pub fn boot_gdt_limit() -> u16 {
    // 5 entries * 8 bytes - 1 = 39; always fits.
    u16::try_from(BOOT_GDT_ENTRIES * 8 - 1).unwrap_or(u16::MAX)
}

/// Special registers for `mode`, starting from the vCPU's current ones (`KVM_GET_SREGS`), which
/// keep what the loader does not decide (LDT, APIC base, ...).
///
/// Both modes: flat segments from the boot GDT (code 0x10, data 0x18 in every data segment
/// register, TSS 0x20), GDTR = boot GDT, IDTR = base `BOOT_IDT_START`, limit 0 (no gate: an
/// exception before the kernel loads its own IDT is a triple fault).
/// `Protected32`: CR0 = PE|ET, paging off, CR3 = CR4 = EFER = 0.
/// `Long64`: CR0 = PE|ET|PG, CR3 = `PML4_START`, CR4 = PAE, EFER = LME|LMA.
pub fn boot_sregs(current: &kvm_sregs, mode: EntryMode) -> kvm_sregs {
    let gdt = boot_gdt(mode);
    let code = kvm_segment_from_gdt(gdt[usize::from(CODE_INDEX)], CODE_INDEX);
    let data = kvm_segment_from_gdt(gdt[usize::from(DATA_INDEX)], DATA_INDEX);
    let tss = kvm_segment_from_gdt(gdt[usize::from(TSS_INDEX)], TSS_INDEX);
    let mut s = *current;
    s.gdt.base = BOOT_GDT_START;
    s.gdt.limit = boot_gdt_limit();
    s.idt.base = BOOT_IDT_START;
    s.idt.limit = 0;
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = tss;
    s.cr2 = 0;
    s.cr8 = 0;
    match mode {
        EntryMode::Protected32 => {
            s.cr0 = X86_CR0_PE | X86_CR0_ET;
            s.cr3 = 0;
            s.cr4 = 0;
            s.efer = 0;
        }
        EntryMode::Long64 => {
            s.cr0 = X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            s.cr3 = PML4_START;
            s.cr4 = X86_CR4_PAE;
            s.efer = EFER_LME | EFER_LMA;
        }
    }
    s
}

/// The FPU state at entry: x87 control word 0x37f and MXCSR 0x1f80 (their reset values).
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// The boot identity map of the low 4 GiB with 2 MiB pages, as `(guest address, entry)` pairs:
/// one PML4 entry, `BOOT_PD_COUNT` PDPT entries, 512 entries in each page directory.
pub fn identity_page_tables() -> Vec<(u64, u64)> {
    let mut entries = Vec::new();
    entries.push((PML4_START, PDPT_START | PTE_PRESENT_RW));
    for i in 0..BOOT_PD_COUNT {
        entries.push((PDPT_START + i * 8, (PD_START + i * 0x1000) | PTE_PRESENT_RW));
    }
    for i in 0..BOOT_PD_COUNT * ENTRIES_PER_TABLE {
        entries.push((PD_START + i * 8, (i << 21) | PDE_PAGE_SIZE | PTE_PRESENT_RW));
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::PVH_INFO_START;

    #[test]
    fn pvh_registers() {
        let r = pvh_regs(0x10_0040, PVH_INFO_START);
        assert_eq!(r.rip, 0x10_0040);
        assert_eq!(r.rbx, 0x6000);
        assert_eq!(r.rflags, 2);
        assert_eq!((r.rax, r.rsi, r.rsp), (0, 0, 0));
    }

    #[test]
    fn linux_registers() {
        let r = linux64_regs(0x100_0200, 0x7000);
        assert_eq!(r.rip, 0x100_0200);
        assert_eq!(r.rsi, 0x7000);
        assert_eq!(r.rsp, 0x8ff0);
        assert_eq!(r.rbp, 0x8ff0);
        assert_eq!(r.rflags, 2);
        assert_eq!(r.rbx, 0);
    }

    #[test]
    fn protected_mode_sregs() {
        let cur = kvm_sregs {
            apic_base: 0xfee0_0900,
            cr0: 0x6000_0010,
            ..Default::default()
        };
        let s = boot_sregs(&cur, EntryMode::Protected32);
        assert_eq!(s.cr0, 0x11);
        assert_eq!((s.cr3, s.cr4, s.efer), (0, 0, 0));
        assert_eq!(s.cs.selector, 0x10);
        assert_eq!(
            (s.cs.db, s.cs.l, s.cs.base, s.cs.limit),
            (1, 0, 0, 0xffff_ffff)
        );
        for seg in [s.ds, s.es, s.fs, s.gs, s.ss] {
            assert_eq!(seg.selector, 0x18);
            assert_eq!((seg.type_, seg.db, seg.limit), (3, 1, 0xffff_ffff));
        }
        assert_eq!((s.tr.selector, s.tr.type_), (0x20, 0xb));
        assert_eq!((s.gdt.base, s.gdt.limit), (0x500, 39));
        assert_eq!((s.idt.base, s.idt.limit), (0x528, 0));
        assert_eq!(
            s.apic_base, 0xfee0_0900,
            "fields the loader does not own are kept"
        );
    }

    #[test]
    fn long_mode_sregs() {
        let s = boot_sregs(&kvm_sregs::default(), EntryMode::Long64);
        assert_eq!(s.cr0, 0x8000_0011);
        assert_eq!(s.cr3, 0x9000);
        assert_eq!(s.cr4, 0x20);
        assert_eq!(s.efer, 0x500);
        assert_eq!((s.cs.selector, s.cs.l, s.cs.db), (0x10, 1, 0));
        assert_eq!(s.ss.selector, 0x18);
    }

    #[test]
    fn fpu_reset_values() {
        let f = boot_fpu();
        assert_eq!(f.fcw, 0x37f);
        assert_eq!(f.mxcsr, 0x1f80);
    }

    #[test]
    fn identity_map_covers_4_gib_with_2_mib_pages() {
        let e = identity_page_tables();
        assert_eq!(e.len(), 1 + 4 + 2048);
        assert_eq!(e[0], (0x9000, 0xa003));
        assert_eq!(e[1], (0xa000, 0xb003));
        assert_eq!(e[4], (0xa018, 0xe003));
        assert_eq!(e[5], (0xb000, 0x83));
        assert_eq!(e[6], (0xb008, 0x20_0083));
        let last = e[e.len() - 1];
        assert_eq!(last, (0xb000 + 2047 * 8, 0xffe0_0083));
        // Every PD entry maps the 2 MiB page at its own index.
        for (n, (addr, val)) in e[5..].iter().enumerate() {
            assert_eq!(*addr, 0xb000 + 8 * n as u64);
            assert_eq!(val & !0xfff, (n as u64) << 21);
        }
    }
}
