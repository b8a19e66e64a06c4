//! The guest-physical memory layout the loader sets up before the first instruction runs.
//!
//! Every guest address the loader writes to or hands to the guest is one of these constants.
//! The map (see also docs/loader.md):
//!
//! ```text
//! 0x0000_0000 ..0x0000_0500   real-mode IVT and BIOS data area (left zero)
//! 0x0000_0500 ..0x0000_0528   boot GDT (5 entries)            BOOT_GDT_START
//! 0x0000_0528 ..0x0000_0530   boot IDT (empty: limit 0)      BOOT_IDT_START
//! 0x0000_6000 ..0x0000_6038   PVH hvm_start_info             PVH_INFO_START
//! 0x0000_6400 ..0x0000_6700   PVH memory map (32 entries)     PVH_MEMMAP_START
//! 0x0000_7000 ..0x0000_8000   Linux boot_params (zero page)  ZERO_PAGE_START
//! 0x0000_8000 ..0x0000_8ff0   boot stack (Linux protocol)    BOOT_STACK_POINTER
//! 0x0000_9000 ..0x0000_a000   PML4                            PML4_START
//! 0x0000_a000 ..0x0000_b000   PDPT                            PDPT_START
//! 0x0000_b000 ..0x0000_f000   4 page directories (2 MiB pages, 4 GiB identity map)
//! 0x0002_0000 ..0x0002_1000   kernel command line            CMDLINE_START
//! 0x0009_fc00 ..0x0010_0000   EBDA, VGA hole, BIOS area (reserved in the memory map)
//! 0x0010_0000 ..RAM end       kernel (ELF p_paddr / bzImage code32_start) and free RAM
//! RAM end     ..4 GiB         unmapped: MMIO exits (unhandled: reads all-ones, writes dropped)
//! 0xfec0_0000                 in-kernel IOAPIC
//! 0xfee0_0000                 in-kernel local APIC
//! ```

/// Where the boot GDT lives (as in Firecracker).
pub const BOOT_GDT_START: u64 = 0x500;
/// Number of entries in the boot GDT: null, unused, code, data, TSS.
pub const BOOT_GDT_ENTRIES: usize = 5;
/// Where the (empty) boot IDT lives: any exception before the guest loads its own IDT becomes a
/// triple fault.
pub const BOOT_IDT_START: u64 = 0x528;

/// Guest-physical address of the PVH `hvm_start_info` (`ebx` at the PVH entry).
pub const PVH_INFO_START: u64 = 0x6000;
/// Guest-physical address of the PVH memory map (`hvm_start_info.memmap_paddr`).
pub const PVH_MEMMAP_START: u64 = 0x6400;
/// Most memory-map entries the loader ever writes (room reserved at `PVH_MEMMAP_START`).
pub const MAX_MEMMAP_ENTRIES: usize = 32;

/// Guest-physical address of the Linux `boot_params` ("zero page", `rsi` at the 64-bit entry).
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for the Linux 64-bit entry (also `rbp`); the stack grows down to
/// 0x8000, the end of the zero page.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;

/// The level-4 page table of the boot identity map (`cr3` at the Linux 64-bit entry).
pub const PML4_START: u64 = 0x9000;
/// The page-directory-pointer table of the boot identity map.
pub const PDPT_START: u64 = 0xa000;
/// The first of `BOOT_PD_COUNT` consecutive page directories of the boot identity map.
pub const PD_START: u64 = 0xb000;
/// Number of page directories: each maps 1 GiB with 2 MiB pages, so 4 map the low 4 GiB.
pub const BOOT_PD_COUNT: u64 = 4;

/// Guest-physical address of the NUL-terminated kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Room for the command line including its terminating NUL.
pub const CMDLINE_MAX_SIZE: usize = 0x1000;

/// Start of the extended BIOS data area: conventional RAM ends here.
pub const EBDA_START: u64 = 0x9fc00;
/// Start of high memory (1 MiB): kernels load at or above it.
pub const HIMEM_START: u64 = 0x10_0000;

/// Guest RAM may not reach above this (3 GiB): the range up to 4 GiB stays free for MMIO
/// (IOAPIC, local APIC, unhandled MMIO exits).
pub const MAX_RAM_END: u64 = 0xc000_0000;
/// Smallest guest RAM the loader accepts (bytes).
pub const MIN_RAM_SIZE: u64 = 2 << 20;

/// Where KVM places its three-page TSS for real-mode emulation on VMX (`KVM_SET_TSS_ADDR`),
/// as in Firecracker; just below the BIOS area at the top of 4 GiB and outside RAM.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// The in-kernel IOAPIC's MMIO base.
pub const IOAPIC_START: u64 = 0xfec0_0000;
/// The in-kernel local APIC's MMIO base.
pub const APIC_START: u64 = 0xfee0_0000;

// Compile-time checks of the layout's invariants.
const _: () = assert!(PML4_START & 0xfff == 0 && PDPT_START & 0xfff == 0);
const _: () = assert!(PD_START & 0xfff == 0 && ZERO_PAGE_START & 0xfff == 0);
const _: () = assert!(MAX_RAM_END <= IOAPIC_START && MAX_RAM_END <= KVM_TSS_ADDRESS);
const _: () = assert!(BOOT_STACK_POINTER & 0xf == 0);
const _: () = assert!(HIMEM_START > EBDA_START && MIN_RAM_SIZE > HIMEM_START);

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges() -> Vec<(&'static str, u64, u64)> {
        vec![
            (
                "gdt",
                BOOT_GDT_START,
                BOOT_GDT_START + 8 * BOOT_GDT_ENTRIES as u64,
            ),
            ("idt", BOOT_IDT_START, BOOT_IDT_START + 8),
            ("pvh info", PVH_INFO_START, PVH_INFO_START + 0x38),
            (
                "pvh memmap",
                PVH_MEMMAP_START,
                PVH_MEMMAP_START + 24 * MAX_MEMMAP_ENTRIES as u64,
            ),
            ("zero page", ZERO_PAGE_START, ZERO_PAGE_START + 0x1000),
            ("stack", ZERO_PAGE_START + 0x1000, BOOT_STACK_POINTER + 0x10),
            ("pml4", PML4_START, PML4_START + 0x1000),
            ("pdpt", PDPT_START, PDPT_START + 0x1000),
            ("pd", PD_START, PD_START + 0x1000 * BOOT_PD_COUNT),
            (
                "cmdline",
                CMDLINE_START,
                CMDLINE_START + CMDLINE_MAX_SIZE as u64,
            ),
        ]
    }

    #[test]
    fn boot_structures_do_not_overlap_and_sit_in_conventional_ram() {
        let r = ranges();
        for (i, a) in r.iter().enumerate() {
            assert!(a.1 < a.2, "{} is empty", a.0);
            assert!(a.2 <= EBDA_START, "{} reaches into the EBDA", a.0);
            for b in &r[i + 1..] {
                assert!(a.2 <= b.1 || b.2 <= a.1, "{} overlaps {}", a.0, b.0);
            }
        }
    }
}
