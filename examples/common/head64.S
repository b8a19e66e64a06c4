/*
 * head64.S - first 64-bit code at its high-half address: stack, .bss, kernel_main, exit.
 *
 * Entered from boot32.S with paging on (boot page tables), interrupts off, %ds/%es/%ss flat.
 * A loader that starts the kernel directly in long mode may jump here with the same state.
 */
#include "layout.h"

	.text
	.globl start64
	.type start64, @function
start64:
	movq $boot_stack_top, %rsp
	xorl %ebp, %ebp

	/* Clear .bss (the boot stack is in it, still unused). */
	movq $__bss_start, %rdi
	movq $__bss_end, %rcx
	subq %rdi, %rcx
	shrq $3, %rcx
	xorl %eax, %eax
	rep stosq

	movq pvh_start_info_pa(%rip), %rdi
	call kernel_main
	movl %eax, %edi
	call guest_exit
	.size start64, . - start64

	.bss
	.p2align 12
	.globl boot_stack, boot_stack_top
boot_stack:
	.skip BOOT_STACK_SIZE
boot_stack_top:
