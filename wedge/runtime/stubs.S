/*
 * stubs.S - the only code of the kvm backend that runs at CPL0 (region CPL0) and the user-mode
 * system call page (region SYSCALL). On a PVM host every instruction here is emulated by the
 * host (~0.5 us each), so each stub is a handful of instructions.
 *
 * Kernel-mode bounce stubs (IDT_K, one 64-byte slot per vector): reserve a STACK_AREA below
 * the CPU's frame (TSS.rsp0 -= STACK_AREA, so a nested event cannot overwrite this frame),
 * then iretq to the runtime's entry for the vector at CPL3 with interrupts enabled and %rsp
 * just below the frame. The runtime releases the area when it resumes the interrupted code.
 *
 * Exit stubs (one 64-byte slot per vector): hand the event to the host with an `out` to
 * STUB_PORT (the host knows the vector from %rip); if the host resumes the stub, drop the
 * error code and iretq. The user-mode IDT (IDT_U) uses them for every vector; the kernel-mode
 * IDT for KERNEL_EXIT_VECTOR(v) (NMI, #DF, #PF, #MC).
 */
#include "layout.h"

#define TSS_RSP0	(REGION_TSS_VA + 4)
#define HAS_ERRCODE(v) ((v) == 8 || ((v) >= 10 && (v) <= 14) || (v) == 17 || (v) == 21 || (v) == 29 || (v) == 30)

	.section .cpl0, "ax", @progbits
	.code64
	.globl wedge_stubs_k
wedge_stubs_k:
	.set vec, 0
	.rept 256
	.balign STUB_SLOT
	subq $STACK_AREA, TSS_RSP0
	pushq $SEL_SS3
	pushq %rsp
	pushq $0x202
	pushq $SEL_CS3
	pushq $(wedge_entries + vec * ENTRY_SLOT)
	iretq
	.set vec, vec + 1
	.endr

	.balign STUB_SLOT
	.globl wedge_stubs_x
wedge_stubs_x:
	.set vec, 0
	.rept 256
	.balign STUB_SLOT
	outb %al, $STUB_PORT
	.if HAS_ERRCODE(vec)
	addq $8, %rsp
	.endif
	iretq
	.set vec, vec + 1
	.endr
	.balign STUB_SLOT
	.globl wedge_stubs_end
wedge_stubs_end:

/*
 * LSTAR points here. On VT-x `syscall` from a user task arrives at CPL0; on a PVM host it stays
 * at CPL3 (docs/backends.md). Either way the `out` reaches the host, which switches to the
 * guest kernel's own system call entry; it never resumes this page.
 */
	.section .syscall, "ax", @progbits
	.globl wedge_syscall_entry
wedge_syscall_entry:
	outb %al, $SYSCALL_PORT
	ud2
