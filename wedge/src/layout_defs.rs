// The kvm backend's memory layout: one source of truth for Rust (`wedge::layout`), for the
// guest-side runtime (C and assembly: build.rs turns these tables into `layout.h`), and for the
// host side (the loader). This file is `include!`d by build.rs and by src/layout.rs, so it holds
// plain `const`s and tables only (no `use`, no attributes that only one side understands).
//
// docs/backends.md describes what each region is for.

/// Virtual address of the wedge hole: the top 1 GiB of the address space (PML4 slot 511, PDPT
/// slot 511). Under the kvm backend the guest's own mappings there are ignored.
pub const HOLE_VA: u64 = 0xffff_ffff_c000_0000;
/// Guest-physical address of the wedge's memory slot (above any guest RAM: RAM ends below
/// 4 GiB). Hole offset `o` is guest-physical `SLOT_GPA + o`.
pub const SLOT_GPA: u64 = 0x1_0000_0000;
/// Size of the wedge's memory slot.
pub const SLOT_SIZE: u64 = 0x0140_0000;

/// A region of the wedge hole: offset from `HOLE_VA` / `SLOT_GPA`, and size.
pub struct Region {
    /// Name (also the C/assembly macro prefix `REGION_<NAME>`).
    pub name: &'static str,
    /// Offset in the hole and in the slot.
    pub offset: u64,
    /// Size in bytes (a multiple of 4 KiB).
    pub size: u64,
}

/// Runtime text and read-only data (guest-side wedge code), kernel mode: user, read, execute.
pub const R_TEXT: Region = Region { name: "TEXT", offset: 0x0000_0000, size: 0x0010_0000 };
/// Per-site thunks written by the kvm backend's patcher.
pub const R_THUNKS: Region = Region { name: "THUNKS", offset: 0x0010_0000, size: 0x0020_0000 };
/// The virtual CPU (layout `VCPU_FIELDS`).
pub const R_VCPU: Region = Region { name: "VCPU", offset: 0x0030_0000, size: 0x1000 };
/// The hypercall page (layout `HC_FIELDS`).
pub const R_HCALL: Region = Region { name: "HCALL", offset: 0x0030_1000, size: 0x1000 };
/// The console ring (layout `RING_FIELDS`, data at `RING_DATA`).
pub const R_RING: Region = Region { name: "RING", offset: 0x0030_2000, size: 0x2000 };
/// The cpuid table the host fills once (layout `CPUID_*`).
pub const R_CPUID: Region = Region { name: "CPUID", offset: 0x0030_4000, size: 0x2000 };
/// The runtime's own writable data (.data, .bss).
pub const R_DATA: Region = Region { name: "DATA", offset: 0x0030_6000, size: 0x2000 };
/// Stacks of the CPL0 frames and of the wedge's interrupt entries (`TSS.rsp0` points into it).
pub const R_STACK: Region = Region { name: "STACK", offset: 0x0031_0000, size: 0x0002_0000 };
/// The real GDT (supervisor, read-only).
pub const R_GDT: Region = Region { name: "GDT", offset: 0x0033_0000, size: 0x1000 };
/// The real IDT used while the guest kernel runs (supervisor, read-only).
pub const R_IDT_K: Region = Region { name: "IDT_K", offset: 0x0033_1000, size: 0x1000 };
/// The real IDT used while a guest user task runs (supervisor, read-only).
pub const R_IDT_U: Region = Region { name: "IDT_U", offset: 0x0033_2000, size: 0x1000 };
/// The real 64-bit TSSs with their I/O permission bitmaps: the kernel-mode TSS at offset 0
/// (`TSS.rsp0` is what the stubs and the runtime reserve stack areas with; every port allowed),
/// the user-mode TSS at `TSS_USER` (only `SYSCALL_PORT` allowed).
pub const R_TSS: Region = Region { name: "TSS", offset: 0x0033_4000, size: 0x6000 };
/// CPL0 stubs (supervisor, read, execute): see `STUBS_*`.
pub const R_CPL0: Region = Region { name: "CPL0", offset: 0x0033_a000, size: 0x8000 };
/// The page `LSTAR` points to: user-mode system calls enter the host through it.
pub const R_SYSCALL: Region = Region { name: "SYSCALL", offset: 0x0034_2000, size: 0x1000 };
/// Host-owned page-table pages of the hole itself (PD and PTs, kernel and user views).
pub const R_HOLE_PT: Region = Region { name: "HOLE_PT", offset: 0x0035_0000, size: 0x0001_0000 };
/// Shadow page-table pool (never mapped into the guest's address space).
pub const R_POOL: Region = Region { name: "POOL", offset: 0x0040_0000, size: 0x0100_0000 };

/// Every region, in address order.
pub const REGIONS: &[&Region] = &[
    &R_TEXT, &R_THUNKS, &R_VCPU, &R_HCALL, &R_RING, &R_CPUID, &R_DATA, &R_STACK, &R_GDT,
    &R_IDT_K, &R_IDT_U, &R_TSS, &R_CPL0, &R_SYSCALL, &R_HOLE_PT, &R_POOL,
];

/// Bytes of `R_STACK` reserved per nested wedge entry (CPL0 frame + wedge stack).
pub const STACK_AREA: u64 = 0x1000;

/// A field of a shared page: name (C/assembly macro `<PAGE>_<NAME>`), byte offset, size of one
/// element, element count.
pub struct Field {
    /// Name.
    pub name: &'static str,
    /// Byte offset in its page.
    pub offset: u64,
    /// Size of one element in bytes.
    pub size: u64,
    /// Number of elements (1 for a scalar).
    pub count: u64,
}

const fn f(name: &'static str, offset: u64, size: u64, count: u64) -> Field {
    Field { name, offset, size, count }
}

/// The virtual CPU (`R_VCPU`). Written by the runtime (guest side) and the host; the host reads
/// every value as untrusted.
pub const VCPU_FIELDS: &[Field] = &[
    // Virtual IF: byte 1 is 0x02 when interrupts are enabled, so the u64 is 0 or 0x200
    // (RFLAGS.IF) and `cli` is one byte store (`movb $0, VIF+1`).
    f("VIF", 0x000, 8, 1),
    // Nonzero when any bit of PENDING is set.
    f("PENDING_ANY", 0x008, 8, 1),
    // Pending external interrupts, one bit per vector (0..255).
    f("PENDING", 0x010, 8, 4),
    f("CR0", 0x030, 8, 1),
    f("CR2", 0x038, 8, 1),
    f("CR3", 0x040, 8, 1),
    f("CR4", 0x048, 8, 1),
    f("CR8", 0x050, 8, 1),
    f("EFER", 0x058, 8, 1),
    f("DR", 0x060, 8, 8),
    f("GDTR_BASE", 0x0a0, 8, 1),
    f("GDTR_LIMIT", 0x0a8, 8, 1),
    f("IDTR_BASE", 0x0b0, 8, 1),
    f("IDTR_LIMIT", 0x0b8, 8, 1),
    // Virtual selectors (low 16 bits significant): es cs ss ds fs gs (annotation numbering),
    // then ldtr, tr.
    f("SEL", 0x0c0, 8, 8),
    f("STAR", 0x100, 8, 1),
    f("LSTAR", 0x108, 8, 1),
    f("CSTAR", 0x110, 8, 1),
    f("SFMASK", 0x118, 8, 1),
    f("FS_BASE", 0x120, 8, 1),
    f("GS_BASE", 0x128, 8, 1),
    f("KGS_BASE", 0x130, 8, 1),
    f("TSC_AUX", 0x138, 8, 1),
    f("APIC_BASE", 0x140, 8, 1),
    f("PAT", 0x148, 8, 1),
    f("SYSENTER_CS", 0x150, 8, 1),
    f("SYSENTER_ESP", 0x158, 8, 1),
    f("SYSENTER_EIP", 0x160, 8, 1),
    f("MISC_ENABLE", 0x168, 8, 1),
    // 0 while the guest kernel runs, 1 while a guest user task runs (written by the host).
    f("MODE", 0x180, 8, 1),
    // The UART line control register as last written (DLAB decides what 0x3f8/0x3f9 are).
    f("UART_LCR", 0x188, 8, 1),
    // A guest page fault the host hands to the runtime: error code, faulting address.
    f("PF_ERROR", 0x190, 8, 1),
    f("PF_ADDR", 0x198, 8, 1),
    // Counters (statistics, read by the host at the end).
    f("N_IRQ", 0x200, 8, 1),
    f("N_DELIVERED", 0x208, 8, 1),
    f("N_EXCEPTIONS", 0x210, 8, 1),
    f("N_HYPERCALLS", 0x218, 8, 1),
    f("N_PORT_LOCAL", 0x220, 8, 1),
    f("N_PORT_FORWARDED", 0x228, 8, 1),
    f("N_CPUID_LOCAL", 0x230, 8, 1),
    f("N_CPUID_FORWARDED", 0x238, 8, 1),
    f("N_SERIAL_BYTES", 0x240, 8, 1),
    f("N_DELAY_WRITES", 0x248, 8, 1),
    // Set once the host has switched the guest to CPL3 (the START hypercall).
    f("STARTED", 0x280, 8, 1),
    // Console batching: a newline flushes the ring only if FLUSH_TSC cycles passed since the
    // last flush (LAST_FLUSH, a TSC value); the host fills FLUSH_TSC from the TSC frequency.
    f("FLUSH_TSC", 0x288, 8, 1),
    f("LAST_FLUSH", 0x290, 8, 1),
    // Where the sti fast path goes after setting the virtual IF: `wedge_hook_ret` while
    // nothing is pending, `wedge_hook_deliver` while something is.
    f("STI_HOOK", 0x298, 8, 1),
];
/// Size of the virtual CPU page.
pub const VCPU_SIZE: u64 = 0x1000;

/// The hypercall page (`R_HCALL`).
pub const HC_FIELDS: &[Field] = &[
    // Hypercall number (`HC_*`).
    f("NR", 0x000, 8, 1),
    // Arguments.
    f("ARG", 0x008, 8, 8),
    // Result written by the host.
    f("RET", 0x048, 8, 1),
];

/// The console ring (`R_RING`): HEAD counts bytes the runtime wrote, TAIL bytes the host took.
pub const RING_FIELDS: &[Field] = &[f("HEAD", 0x000, 8, 1), f("TAIL", 0x008, 8, 1)];
/// Offset of the ring's data in `R_RING`.
pub const RING_DATA: u64 = 0x1000;
/// Size of the ring's data (a power of two).
pub const RING_SIZE: u64 = 0x1000;

/// The cpuid table (`R_CPUID`): COUNT entries of `CPUID_ENTRY_SIZE` bytes at `CPUID_ENTRIES`.
pub const CPUID_FIELDS: &[Field] = &[f("COUNT", 0x000, 8, 1)];
/// Offset of the first cpuid entry.
pub const CPUID_ENTRIES: u64 = 0x20;
/// Size of one cpuid entry: leaf u32, subleaf u32, flags u32 (bit 0: subleaf significant),
/// eax, ebx, ecx, edx u32, pad u32.
pub const CPUID_ENTRY_SIZE: u64 = 32;
/// Maximum number of cpuid entries.
pub const CPUID_MAX: u64 = (0x2000 - CPUID_ENTRIES) / CPUID_ENTRY_SIZE;

/// I/O port of the hypercall (`out %al, $HC_PORT` from the runtime at CPL3).
pub const HC_PORT: u16 = 0xf8;
/// I/O port of the CPL0 stubs that hand an exception to the host.
pub const STUB_PORT: u16 = 0xf9;
/// I/O port of a site's boot form (before the guest runs deprivileged).
pub const START_PORT: u16 = 0xfa;
/// I/O port of the user-mode system call page.
pub const SYSCALL_PORT: u16 = 0xfb;

/// Hypercall numbers (the `NR` field). docs/hypercall-abi.md specifies each.
pub const HC_NUMBERS: &[(&str, u64)] = &[
    ("CONSOLE_FLUSH", 1),
    ("HALT", 2),
    ("CR3_WRITE", 3),
    ("INVLPG", 4),
    ("CR0_WRITE", 5),
    ("CR4_WRITE", 6),
    ("IRET_USER", 7),
    ("WRMSR", 9),
    ("RDMSR", 10),
    ("FATAL", 11),
];

/// Selectors of the real GDT the host builds (`R_GDT`), at indices the guest's own GDT is
/// unlikely to use. Guest descriptors with DPL 3 are copied to their own indices below these.
pub const SEL_CS0: u16 = 0xfc0;
/// Data selector for CPL0 (the stubs), right after `SEL_CS0` as `syscall` needs.
pub const SEL_SS0: u16 = 0xfc8;
/// Code selector (DPL 3, 64-bit) of the deprivileged guest kernel.
pub const SEL_CS3: u16 = 0xfd3;
/// Data selector (DPL 3) of the deprivileged guest kernel.
pub const SEL_SS3: u16 = 0xfdb;
/// The real kernel-mode TSS (two GDT entries).
pub const SEL_TSS: u16 = 0xfe0;
/// The real user-mode TSS (two GDT entries).
pub const SEL_TSS_USER: u16 = 0xff0;
/// Offset of the user-mode TSS in `R_TSS`.
pub const TSS_USER: u64 = 0x3000;
/// Size of the 64-bit TSS proper; its I/O bitmap follows it.
pub const TSS_SIZE: u64 = 104;
/// Limit of a TSS descriptor: the TSS, 8192 bitmap bytes, and the terminating 0xff byte.
pub const TSS_LIMIT: u64 = TSS_SIZE + 8192;
/// Number of GDT entries the real GDT holds (limit = 8 * entries - 1).
pub const GDT_ENTRIES: u64 = 0x200;

/// Vector number the runtime uses for "no new event: deliver what is pending".
pub const VEC_SOFT: u64 = 0x100;

/// Size in bytes of one stub slot in `R_CPL0`.
pub const STUB_SLOT: u64 = 64;
/// Offset in `R_CPL0` of the kernel-mode bounce stubs (256 slots): they hand the event to the
/// runtime at CPL3 (`wedge_entries`).
pub const STUBS_K: u64 = 0;
/// Offset in `R_CPL0` of the exit stubs (256 slots): they hand the event to the host through
/// `STUB_PORT`. The user-mode IDT uses them for every vector, the kernel-mode IDT for the
/// vectors in `KERNEL_EXIT_VECTORS`.
pub const STUBS_X: u64 = 256 * STUB_SLOT;
/// Vectors whose kernel-mode gate is an exit stub: NMI, double fault, page fault, machine check.
pub const KERNEL_EXIT_VECTORS: &[u8] = &[2, 8, 14, 18];
/// Size in bytes of one runtime entry slot (`wedge_entries`, in `R_TEXT`).
pub const ENTRY_SLOT: u64 = 32;
