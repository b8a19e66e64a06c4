/*
 * usermode.S - running user code at CPL3: entry with iretq, system calls with syscall.
 *
 * enter_user(rip, rsp) saves the callee-saved registers and the stack pointer, makes the
 * current stack the kernel stack for traps and system calls from user mode (TSS.rsp0,
 * syscall_kernel_rsp), and drops to CPL3 with iretq. return_from_user(value), called on that
 * kernel stack (from a system call), unwinds back to enter_user's caller, returning value.
 *
 * syscall_entry is the LSTAR target. The syscall instruction leaves the user stack in %rsp,
 * the user rip in %rcx and rflags in %r11; the entry switches to the kernel stack, builds a
 * struct trap_frame in the same layout as an interrupt (vector VECTOR_SYSCALL), calls
 * syscall_dispatch(frame) and returns to user mode with iretq. (Not sysretq: the PVM host's
 * instruction emulator cannot execute sysretq at CPL0; Linux takes the same iret path when
 * sysret is not safe.)
 */
#include "layout.h"

	.text
	.globl enter_user
	.type enter_user, @function
enter_user:
	pushq %rbx
	pushq %rbp
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, user_return_rsp(%rip)

	movq %rdi, %r12
	movq %rsi, %r13
	movq %rsp, %rdi
	andq $-16, %rdi
	movq %rdi, syscall_kernel_rsp(%rip)
	call set_kernel_stack

	/* iretq frame: ss, rsp, rflags, cs, rip */
	pushq $USER_DS
	pushq %r13
	pushq $(X86_EFLAGS_IF | 0x2)
	pushq $USER_CS
	pushq %r12
	xorl %eax, %eax
	xorl %ebx, %ebx
	xorl %ecx, %ecx
	xorl %edx, %edx
	xorl %esi, %esi
	xorl %edi, %edi
	xorl %ebp, %ebp
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	xorl %r12d, %r12d
	xorl %r13d, %r13d
	xorl %r14d, %r14d
	xorl %r15d, %r15d
	iretq
	.size enter_user, . - enter_user

	.globl return_from_user
	.type return_from_user, @function
return_from_user:
	movq user_return_rsp(%rip), %rsp
	movq %rdi, %rax
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbp
	popq %rbx
	ret
	.size return_from_user, . - return_from_user

	.p2align 4
	.globl syscall_entry
	.type syscall_entry, @function
syscall_entry:
	movq %rsp, syscall_user_rsp(%rip)
	movq syscall_kernel_rsp(%rip), %rsp
	pushq $USER_DS			/* ss */
	pushq syscall_user_rsp(%rip)	/* rsp */
	pushq %r11			/* rflags */
	pushq $USER_CS			/* cs */
	pushq %rcx			/* rip */
	pushq $0			/* error code */
	pushq $VECTOR_SYSCALL		/* vector */
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call syscall_dispatch
	jmp trap_return
	.size syscall_entry, . - syscall_entry

	.bss
	.p2align 3
user_return_rsp:
	.quad 0
syscall_user_rsp:
	.quad 0
	.globl syscall_kernel_rsp
syscall_kernel_rsp:
	.quad 0
