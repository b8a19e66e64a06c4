# Test input for the DWARF rewrite tests: hand-written assembly in the style of Linux's
# entry code, assembled with `as --gdwarf-5` / `--gdwarf-4` (GNU as writes the DWARF itself:
# DW_FORM_udata high_pc, DW_FORM_ref_udata types, line numbers of this file).
	.text
	.globl	irq_save
	.type	irq_save, @function
irq_save:
	.cfi_startproc
	pushfq
	.cfi_adjust_cfa_offset 8
	popq	%rax
	.cfi_adjust_cfa_offset -8
	cli
	ret
	.cfi_endproc
	.size	irq_save, .-irq_save

	.globl	irq_restore
	.type	irq_restore, @function
irq_restore:
	.cfi_startproc
	pushq	%rdi
	.cfi_adjust_cfa_offset 8
	popfq
	.cfi_adjust_cfa_offset -8
	ret
	.cfi_endproc
	.size	irq_restore, .-irq_restore

	.globl	idle
	.type	idle, @function
idle:
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, %rbp
	.cfi_def_cfa_register %rbp
1:	testl	$1, (%rdi)
	jnz	2f
	sti
	hlt
	cli
	incq	8(%rdi)
	jmp	1b
2:	popq	%rbp
	.cfi_def_cfa %rsp, 8
	ret
	.cfi_endproc
	.size	idle, .-idle

	.globl	write_cr3
	.type	write_cr3, @function
write_cr3:
	.cfi_startproc
	movq	%rdi, %cr3
	movq	%cr0, %rax
	orq	$0x10000, %rax
	movq	%rax, %cr0
	ret
	.cfi_endproc
	.size	write_cr3, .-write_cr3

	.section .entry.text, "ax"
	.globl	entry_syscall
	.type	entry_syscall, @function
entry_syscall:
	.cfi_startproc simple
	.cfi_def_cfa %rsp, 0
	swapgs
	movq	%rsp, %gs:0x10
	movq	%gs:0x18, %rsp
	pushq	$0x2b
	.cfi_adjust_cfa_offset 8
	pushq	%gs:0x10
	.cfi_adjust_cfa_offset 8
	pushq	%r11
	.cfi_adjust_cfa_offset 8
	pushq	$0x33
	.cfi_adjust_cfa_offset 8
	pushq	%rcx
	.cfi_adjust_cfa_offset 8
	testq	%rax, %rax
	js	3f
	movl	$0xc0000100, %ecx
	rdmsr
	wrmsr
	inb	$0x60, %al
	outb	%al, $0x80
3:	popq	%rcx
	.cfi_adjust_cfa_offset -8
	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r11
	.cfi_adjust_cfa_offset -8
	popq	%rsp
	swapgs
	sysretq
	.cfi_endproc
	.size	entry_syscall, .-entry_syscall

	.globl	return_to_user
	.type	return_to_user, @function
return_to_user:
	.cfi_startproc
	swapgs
	iretq
	.cfi_endproc
	.size	return_to_user, .-return_to_user
