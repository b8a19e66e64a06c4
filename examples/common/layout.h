/*
 * layout.h - addresses, selectors and architectural constants shared by C and assembly.
 *
 * Every guest address the example kernels use is named here (see docs/examples.md).
 */
#ifndef LAYOUT_H
#define LAYOUT_H

#ifdef __ASSEMBLER__
#define _UL(x) x
#else
#define _UL(x) x##UL
#endif

/* The kernel image is linked at KERNEL_VMA + physical address and loaded at LOAD_PHYS. */
#define KERNEL_VMA      _UL(0xffffffff80000000)
#define LOAD_PHYS       _UL(0x100000)

/* Global descriptor table selectors (see desc.c; the boot GDT in boot32.S uses the first two). */
#define KERNEL_CS       0x08
#define KERNEL_DS       0x10
#define USER_DS         0x1b    /* GDT entry 3, RPL 3 */
#define USER_CS         0x23    /* GDT entry 4, RPL 3 */
#define TSS_SEL         0x28    /* GDT entries 5 and 6 (a 16-byte system descriptor) */
#define GDT_ENTRIES     7

/* Interrupt vectors: exceptions 0-31, the remapped 8259 PIC at 32-47. */
#define NR_VECTORS      48
#define PIC_VECTOR_BASE 32
#define VECTOR_SYSCALL  0x100   /* trap_frame.vector for frames built by the syscall entry */

/* Exception vectors used by name. */
#define X86_TRAP_DE     0
#define X86_TRAP_GP     13
#define X86_TRAP_PF     14

/* Control registers and flags. */
#define X86_CR0_PE      _UL(0x00000001)
#define X86_CR0_WP      _UL(0x00010000)
#define X86_CR0_PG      _UL(0x80000000)
#define X86_CR4_PAE     _UL(0x00000020)
#define X86_EFLAGS_TF   _UL(0x00000100)
#define X86_EFLAGS_IF   _UL(0x00000200)
#define X86_EFLAGS_DF   _UL(0x00000400)
#define X86_EFLAGS_NT   _UL(0x00004000)
#define X86_EFLAGS_AC   _UL(0x00040000)

/* Model-specific registers. */
#define MSR_EFER        0xc0000080
#define MSR_STAR        0xc0000081
#define MSR_LSTAR       0xc0000082
#define MSR_SYSCALL_MASK 0xc0000084
#define EFER_SCE        0x00000001
#define EFER_LME        0x00000100

/* Page-table entry bits. */
#define PTE_P           _UL(0x001)
#define PTE_W           _UL(0x002)
#define PTE_U           _UL(0x004)
#define PTE_A           _UL(0x020)
#define PTE_D           _UL(0x040)
#define PTE_PS          _UL(0x080)
#define PTE_ADDR_MASK   _UL(0x000ffffffffff000)
#define PAGE_SIZE       _UL(4096)

/* Page-fault error code bits. */
#define PF_PROT         0x1
#define PF_WRITE        0x2
#define PF_USER         0x4

/* I/O ports. */
#define COM1_PORT       0x3f8
#define DEBUG_EXIT_PORT 0xf4
#define IO_DELAY_PORT   0x80    /* Linux's io_delay port; nothing answers it meaningfully */
#define PIC1_CMD        0x20
#define PIC1_DATA       0x21
#define PIC2_CMD        0xa0
#define PIC2_DATA       0xa1
#define PIT_CH0         0x40
#define PIT_CMD         0x43
#define PIT_HZ          1193182

/* hvm_start_info (PVH boot ABI). */
#define HVM_START_MAGIC 0x336ec578

/* Address spaces built by mm_new_address_space() (mm.c). */
#define KERNEL_MAPPED_PHYS _UL(0x200000)         /* physical 0 .. 2 MiB at KERNEL_VMA, 4 KiB pages */
#define USER_TEXT_VA    _UL(0x400000)           /* the .user pages, read-only for CPL3 */

/* Stack sizes. */
#define BOOT_STACK_SIZE 0x4000

#endif
