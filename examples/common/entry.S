/*
 * entry.S - interrupt and exception entry stubs.
 *
 * One stub per vector 0..NR_VECTORS-1. Each pushes a zero error code when the CPU does not push
 * one, then the vector number, and jumps to trap_common, which saves the general registers as a
 * struct trap_frame (kernel.h), calls trap_dispatch(frame) and returns with iretq.
 * trap_stubs[] (in .rodata) holds the stub addresses; desc.c builds the IDT from it.
 */
#include "layout.h"

/* Vectors for which the CPU pushes an error code. */
#define HAS_ERRCODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

	.text
	.p2align 4
trap_common:
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
	call trap_dispatch
	.globl trap_return
trap_return:
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp			/* vector, error code */
	iretq

	.set vec, 0
	.rept NR_VECTORS
	.p2align 3
1:
	.if !HAS_ERRCODE(vec)
	pushq $0
	.endif
	pushq $vec
	jmp trap_common
	.pushsection .rodata
	.p2align 3
	.if vec == 0
	.globl trap_stubs
trap_stubs:
	.endif
	.quad 1b
	.popsection
	.set vec, vec + 1
	.endr
