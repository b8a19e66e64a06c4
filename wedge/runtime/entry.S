/*
 * entry.S - the runtime's assembly (CPL3, the guest kernel's address space):
 *
 *   wedge_entries      one ENTRY_SLOT per vector: where the CPL0 bounce stubs land
 *   wedge_trap_common  saves the interrupted context (struct ctx) and calls wedge_trap()
 *   wedge_tail         resumes a context from a record [rflags][rip] on its own stack,
 *                      delivering pending virtual interrupts first
 *   wedge_*            the routines the rewritten sites call
 *
 * Real interrupts stay enabled at CPL3 (a PVM host forces IF=1 there), so any instruction of
 * the runtime can be interrupted. The rule that keeps virtual interrupts from being lost: an
 * event that interrupts runtime code only marks itself pending, and every path back to the
 * guest ends in wedge_tail, which checks for pending interrupts. Past that check (from
 * wedge_tail_decided on) and in the halt windows, wedge_trap() instead treats the event as if
 * it had interrupted the guest right after the site (see fixup() in wedge.c).
 */
#include "layout.h"
#include "ctx.h"

#define VIF_BYTE	(REGION_VCPU_VA + VCPU_VIF + 1)
#define VIF_WORD	(REGION_VCPU_VA + VCPU_VIF)
#define PENDING_ANY	(REGION_VCPU_VA + VCPU_PENDING_ANY)
#define VSEL(n)		(REGION_VCPU_VA + VCPU_SEL + 8 * (n))
#define TSS_RSP0	(REGION_TSS_VA + 4)
#define HCALL_NR	(REGION_HCALL_VA + HC_NR)
#define HCALL_ARG(n)	(REGION_HCALL_VA + HC_ARG + 8 * (n))

#define SEG_CS 1
#define SEG_SS 2

/* Vectors for which the CPU pushes an error code. */
#define HAS_ERRCODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

/* ---------------------------------------------------------------------------------------- */
/* Entries: the bounce stub of vector v irets to wedge_entries + v * ENTRY_SLOT with %rsp at
 * the (dead) word it pushed below the CPU's frame. Each entry makes the frame
 * [vector][error][rip][cs][rflags][rsp][ss] and joins wedge_trap_common. */
	.section .text.entries, "ax", @progbits
	.code64
	.balign 64
	.globl wedge_entries
wedge_entries:
	.set vec, 0
	.rept 256
	.balign ENTRY_SLOT
	.if HAS_ERRCODE(vec)
	movq $vec, (%rsp)
	.else
	movq $0, (%rsp)
	pushq $vec
	.endif
	jmp wedge_trap_common
	.set vec, vec + 1
	.endr
	.balign ENTRY_SLOT
	.globl wedge_entries_end
wedge_entries_end:

	.text
	.balign 16
	.globl wedge_trap_common
wedge_trap_common:
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
	call wedge_trap
	/* The resume record [rflags][rip] goes just below the context's stack pointer; its
	 * address replaces the vector. */
	movq CTX_RSP(%rsp), %rax
	subq $16, %rax
	movq CTX_RFLAGS(%rsp), %rcx
	movq %rcx, (%rax)
	movq CTX_RIP(%rsp), %rcx
	movq %rcx, 8(%rax)
	movq %rax, CTX_VECTOR(%rsp)
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
	movq (%rsp), %rsp
	/* The area is no longer used: give it back (an event here finds the area still
	 * reserved, runs below it and returns here). */
	.globl wedge_tail_release
wedge_tail_release:
	addq $STACK_AREA, TSS_RSP0

/* Resume the context whose record [rflags][rip] is at %rsp (all other registers hold the
 * context's values): first deliver pending virtual interrupts if the virtual IF allows,
 * unless the context is runtime code itself (an event that interrupted the runtime only
 * pends; the runtime delivers on its own way out). From wedge_tail_decided on, an event
 * that arrives is handled as if it had interrupted the context (wedge.c, fixup()). */
	.globl wedge_tail
wedge_tail:
	cmpb $0, VIF_BYTE
	je wedge_tail_popf
	cmpq $0, PENDING_ANY
	.globl wedge_tail_decided
wedge_tail_decided:
	je wedge_tail_popf
	cmpq $REGION_TEXT_VA, 8(%rsp)
	jb wedge_tail_slow
	cmpq $(REGION_THUNKS_VA + REGION_THUNKS_SIZE), 8(%rsp)
	jae wedge_tail_slow
	.globl wedge_tail_popf
wedge_tail_popf:
	popfq
	.globl wedge_tail_ret
wedge_tail_ret:
	ret
	.globl wedge_tail_end
wedge_tail_end:

/* A pending interrupt must be delivered to the context of the record at %rsp: reserve a
 * STACK_AREA, build a frame there as a bounce stub would (vector VEC_SOFT) and enter
 * wedge_trap_common. */
wedge_tail_slow:
	pushq %rax
	pushq %rcx
	movq TSS_RSP0, %rax
	subq $STACK_AREA, TSS_RSP0
	leaq 32(%rsp), %rcx
	movq %rcx, -16(%rax)		/* rsp */
	movq $0, -8(%rax)		/* ss */
	movq 16(%rsp), %rcx
	movq %rcx, -24(%rax)		/* rflags */
	movq $0, -32(%rax)		/* cs */
	movq 24(%rsp), %rcx
	movq %rcx, -40(%rax)		/* rip */
	movq $0, -48(%rax)		/* error */
	movq $VEC_SOFT, -56(%rax)	/* vector */
	popq %rcx
	leaq -56(%rax), %rax
	xchgq %rax, (%rsp)
	movq (%rsp), %rsp
	jmp wedge_trap_common

/* ---------------------------------------------------------------------------------------- */
/* Site routines. A site calls one with the guest's registers; each ends in wedge_tail with a
 * record [rflags][return address] where the guest's stack must end up. */

/* sti: [ret] */
	.balign 16
	.globl wedge_sti
wedge_sti:
	pushfq
	movb $2, VIF_BYTE
	jmp wedge_tail

/* The sti fast path: the site sets the virtual IF itself and calls through STI_HOOK, which
 * points here while nothing is pending (an event that lands on this `ret` is handled as if it
 * had interrupted the site's next instruction: fixup() in wedge.c)... */
	.balign 16
	.globl wedge_hook_ret
wedge_hook_ret:
	ret
/* ...and here while something is: deliver it as wedge_sti would. */
	.balign 16
	.globl wedge_hook_deliver
wedge_hook_deliver:
	pushfq
	jmp wedge_tail

/* pushf, fast form: the site did `pushfq` itself (the real flags, whose IF is always 1 at
 * CPL3) and calls here with [ret][F]; F becomes F - IF + the virtual IF in place, with `lea`
 * so that no flag changes and no `popfq` is needed. An event that lands on any instruction
 * here is finished by fixup() in wedge.c (each label says how many words are pushed). */
	.balign 16
	.globl wedge_pushf2, wedge_pushf2_1, wedge_pushf2_2, wedge_pushf2_6, wedge_pushf2_7
	.globl wedge_pushf2_8
wedge_pushf2:
	pushq %rax
wedge_pushf2_1:
	pushq %rcx			/* rcx@0 rax@8 ret@16 F@24 */
wedge_pushf2_2:
	movq 24(%rsp), %rax
	movq VIF_WORD, %rcx
	leaq -0x200(%rax,%rcx), %rax
	movq %rax, 24(%rsp)
wedge_pushf2_6:
	popq %rcx
wedge_pushf2_7:
	popq %rax
wedge_pushf2_8:
	ret

/* popf (64-bit): [ret][value]; arithmetic flags and the virtual IF from the value. */
	.balign 16
	.globl wedge_popf
wedge_popf:
	pushq %rax
	pushq %rcx			/* rcx@0 rax@8 ret@16 value@24 */
	movq 24(%rsp), %rax
	movl %eax, %ecx
	andl $0x200, %ecx
	shrl $8, %ecx
	movb %cl, VIF_BYTE
	movq 16(%rsp), %rcx
	movq %rax, 16(%rsp)		/* record: [value][ret] */
	movq %rcx, 24(%rsp)
	popq %rcx
	popq %rax
	jmp wedge_tail

/* popf (64-bit), fast form: [ret][value]. The CPU's own `popfq` costs ~30 cycles at CPL3;
 * this applies the value without it when only the arithmetic flags, DF and IF change (TF, NT,
 * AC and ID as in the real flags, as they are in a kernel's local_irq_save/restore pairs) and
 * no interrupt becomes deliverable: IF into the virtual IF, DF by cld/std, OF by an add that
 * overflows or not, SF ZF AF PF CF by sahf; `ret $8` drops the value. Anything else goes to
 * wedge_popf. From wedge_popf_fast_decided on (the pending check is behind), an event is
 * handled by fixup() in wedge.c as if it had interrupted the site's next instruction (the
 * IF-off path jumps past that label: an event before it only pends, which IF off allows). */
	.balign 16
	.globl wedge_popf_fast, wedge_popf_fast_decided, wedge_popf_fast_pop, wedge_popf_fast_ret
wedge_popf_fast:
	pushq %rax			/* rax@0 ret@8 value@16 */
	pushfq
	movq (%rsp), %rax
	xorq 24(%rsp), %rax
	leaq 8(%rsp), %rsp		/* drop the real flags */
	testl $0x244100, %eax		/* TF | NT | AC | ID differ: the full path */
	jnz 1f
	testl $0x200, 16(%rsp)		/* IF */
	jnz 2f
	movb $0, VIF_BYTE
	jmp 3f
1:	popq %rax			/* something to deliver, or flags beyond the fast form */
	jmp wedge_popf
2:	movb $2, VIF_BYTE
	cmpq $0, PENDING_ANY
wedge_popf_fast_decided:
	jne 1b
3:	movl 16(%rsp), %eax
	testl $0x400, %eax		/* DF */
	jz 4f
	std
	jmp 5f
4:	cld
5:	shrl $11, %eax			/* OF: 0x7f + 1 overflows, 0x7f + 0 does not */
	andl $1, %eax
	addb $0x7f, %al
	movb 16(%rsp), %ah		/* SF ZF AF PF CF */
	sahf
wedge_popf_fast_pop:
	popq %rax
wedge_popf_fast_ret:
	ret $8

/* iretq: [ret][rip][cs][rflags][rsp][ss]. To the kernel: resume here; to user mode: the host. */
	.balign 16
	.globl wedge_iret
wedge_iret:
	testb $3, 16(%rsp)
	jnz wedge_iret_user
	pushq %rax
	pushq %rcx			/* rcx@0 rax@8 ret@16 rip@24 cs@32 rflags@40 rsp@48 ss@56 */
	movq 32(%rsp), %rax
	movq %rax, VSEL(SEG_CS)
	movq 56(%rsp), %rax
	movq %rax, VSEL(SEG_SS)
	movq 40(%rsp), %rax
	movl %eax, %ecx
	andl $0x200, %ecx
	shrl $8, %ecx
	movb %cl, VIF_BYTE
	movq 48(%rsp), %rcx		/* the frame's rsp: the record goes below it */
	movq %rax, -16(%rcx)
	movq 24(%rsp), %rax
	movq %rax, -8(%rcx)
	subq $16, %rcx
	movq %rcx, 16(%rsp)
	popq %rcx
	popq %rax
	movq (%rsp), %rsp
	jmp wedge_tail

wedge_iret_user:
	pushq %rax			/* rax@0 ret@8 rip@16 cs@24 rflags@32 rsp@40 ss@48 */
	movq 16(%rsp), %rax
	movq %rax, HCALL_ARG(0)
	movq 24(%rsp), %rax
	movq %rax, HCALL_ARG(1)
	movq 32(%rsp), %rax
	movq %rax, HCALL_ARG(2)
	movq 40(%rsp), %rax
	movq %rax, HCALL_ARG(3)
	movq 48(%rsp), %rax
	movq %rax, HCALL_ARG(4)
	movq $HC_IRET_USER, HCALL_NR
	popq %rax
	.globl wedge_iret_user_out
wedge_iret_user_out:
	outb %al, $HC_PORT
	ud2				/* the host switches to the user task; never here */

/* lretq: [ret][rip][cs] */
	.balign 16
	.globl wedge_lret
wedge_lret:
	pushfq
	pushq %rax			/* rax@0 F@8 ret@16 rip@24 cs@32 */
	movq 32(%rsp), %rax
	movq %rax, VSEL(SEG_CS)
	movq 24(%rsp), %rax
	movq %rax, 32(%rsp)
	movq 8(%rsp), %rax
	movq %rax, 24(%rsp)
	popq %rax
	leaq 16(%rsp), %rsp		/* record [F][rip] */
	jmp wedge_tail

/* sti; hlt: enable, then deliver what is pending or halt until the next interrupt. */
	.balign 16
	.globl wedge_sti_hlt
wedge_sti_hlt:
	pushfq
	movb $2, VIF_BYTE
	cmpq $0, PENDING_ANY
	.globl wedge_halt1_start
wedge_halt1_start:
	jne wedge_tail
	movq $HC_HALT, HCALL_NR
	outb %al, $HC_PORT
	.globl wedge_halt1_end
wedge_halt1_end:
	jmp wedge_tail

/* hlt: deliver what is pending if IF allows, else halt until the next interrupt. */
	.balign 16
	.globl wedge_hlt
wedge_hlt:
	pushfq
	cmpb $0, VIF_BYTE
	je 1f
	cmpq $0, PENDING_ANY
	.globl wedge_halt2_start
wedge_halt2_start:
	jne wedge_tail
1:	movq $HC_HALT, HCALL_NR
	outb %al, $HC_PORT
	.globl wedge_halt2_end
wedge_halt2_end:
	jmp wedge_tail

/* Routines in C: SITE name, cfunc, arg. `arg` says whether the site's thunk pushed an
 * argument word below the return address ([arg][ret]); the routine then leaves the record
 * [rflags][ret] in its place. */
	.macro SITE name, cfunc, arg
	.balign 16
	.globl \name
\name:
	pushfq
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
	movq %rsp, %rbx
	andq $-16, %rsp
	call \cfunc
	movq %rbx, %rsp
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
	.if \arg
	popq (%rsp)
	.endif
	jmp wedge_tail
	.endm

	SITE wedge_cpuid, site_cpuid, 0
	SITE wedge_rdmsr, site_rdmsr, 0
	SITE wedge_wrmsr, site_wrmsr, 0
	SITE wedge_in_b, site_in_b, 1
	SITE wedge_in_w, site_in_w, 1
	SITE wedge_in_l, site_in_l, 1
	SITE wedge_out_b, site_out_b, 1
	SITE wedge_out_w, site_out_w, 1
	SITE wedge_out_l, site_out_l, 1
	SITE wedge_write_cr0, site_write_cr0, 1
	SITE wedge_write_cr3, site_write_cr3, 1
	SITE wedge_write_cr4, site_write_cr4, 1
	SITE wedge_ltr, site_ltr, 1
	SITE wedge_lgdt, site_lgdt, 1
	SITE wedge_lidt, site_lidt, 1
	SITE wedge_sgdt, site_sgdt, 1
	SITE wedge_sidt, site_sidt, 1
	SITE wedge_invlpg, site_invlpg, 1
	SITE wedge_clts, site_clts, 0
	SITE wedge_wbinvd, site_nothing, 0

	.globl wedge_text_end
wedge_text_end:
