/*
 * boot32.S - PVH entry: 32-bit protected mode to 64-bit long mode in the high half.
 *
 * The loader (QEMU, afterburn-run) enters pvh_start32 at its physical address as the PVH boot
 * ABI says: 32-bit protected mode, paging off, flat CS/DS, %ebx = physical address of
 * struct hvm_start_info. This code
 *   1. saves %ebx, loads a boot GDT (64-bit code at KERNEL_CS, flat data at KERNEL_DS),
 *   2. enables PAE, loads CR3 with boot page tables that map the first 1 GiB of physical
 *      memory twice: identity (for this code) and at KERNEL_VMA (for the kernel),
 *   3. sets EFER.LME, enables paging (CR0.PG), far-jumps into 64-bit code,
 *   4. jumps to start64 (head64.S) at its high-half address.
 *
 * This object holds 32-bit code, which a 64-bit decoder must not read, and runs once before any
 * wedge exists: the empty .afterburn_noannotate section opts the whole object out of
 * annotation (the afterburner copies it unchanged).
 */
#include "layout.h"

#define pa(x) ((x) - KERNEL_VMA)

/* PVH ELF note: XEN_ELFNOTE_PHYS32_ENTRY (18), an 8-byte descriptor as in Linux. */
	.section .note.Xen, "a", @note
	.p2align 2
	.long 4				/* namesz: "Xen\0" */
	.long 8				/* descsz */
	.long 18			/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.quad pa(pvh_start32)

	.section .afterburn_noannotate, "", @progbits

	.section .text.boot32, "ax", @progbits
	.code32
	.globl pvh_start32
	.type pvh_start32, @function
pvh_start32:
	cli
	cld
	movl %ebx, pa(pvh_start_info_pa)

	lgdt pa(boot_gdt_desc)
	movl $KERNEL_DS, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $pa(boot_stack_top), %esp

	movl %cr4, %eax
	orl $X86_CR4_PAE, %eax
	movl %eax, %cr4

	movl $pa(boot_pml4), %eax
	movl %eax, %cr3

	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr

	movl %cr0, %eax
	orl $(X86_CR0_PG | X86_CR0_PE), %eax
	movl %eax, %cr0

	ljmp $KERNEL_CS, $pa(start64_low)

	.code64
start64_low:
	/* Still at the identity-mapped physical address: go to the high half. */
	movabsq $start64, %rax
	jmp *%rax
	.size pvh_start32, . - pvh_start32

	.section .data.boot, "aw", @progbits
	.p2align 3
	.globl pvh_start_info_pa
pvh_start_info_pa:
	.quad 0

	.p2align 3
boot_gdt:
	.quad 0				/* null */
	.quad 0x00af9b000000ffff	/* KERNEL_CS: 64-bit code, DPL 0 */
	.quad 0x00cf93000000ffff	/* KERNEL_DS: flat 32-bit data, DPL 0 */
boot_gdt_end:
boot_gdt_desc:
	.word boot_gdt_end - boot_gdt - 1
	.long pa(boot_gdt)

	/* Boot page tables, initialized here so the emulated 32-bit path stays short. */
	.p2align 12
	.globl boot_pml4
boot_pml4:
	.quad pa(boot_pdpt_low) + (PTE_P | PTE_W)
	.fill 510, 8, 0
	.quad pa(boot_pdpt_high) + (PTE_P | PTE_W)	/* 511: KERNEL_VMA */
boot_pdpt_low:
	.quad pa(boot_pd) + (PTE_P | PTE_W)
	.fill 511, 8, 0
boot_pdpt_high:
	.fill 510, 8, 0
	.quad pa(boot_pd) + (PTE_P | PTE_W)		/* 510: KERNEL_VMA */
	.quad 0
	.globl boot_pd
boot_pd:					/* 512 x 2 MiB: physical 0 .. 1 GiB */
	.set i, 0
	.rept 512
	.quad (i << 21) | (PTE_P | PTE_W | PTE_PS)
	.set i, i + 1
	.endr
