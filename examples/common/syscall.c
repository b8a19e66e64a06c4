/*
 * syscall.c - system call setup and dispatch (the entry code is in usermode.S).
 */
#include "kernel.h"

extern char syscall_entry[];

/* EFER.SCE, STAR (kernel CS/SS, user segment base), LSTAR (entry), FMASK (flags cleared). */
void syscall_init(void)
{
	native_write_msr(MSR_EFER, native_read_msr(MSR_EFER) | EFER_SCE);
	/* syscall: CS = KERNEL_CS, SS = KERNEL_CS + 8 = KERNEL_DS.
	 * sysret (not used here): CS = 0x10 + 16 = USER_CS, SS = 0x10 + 8 = USER_DS. */
	native_write_msr(MSR_STAR, ((uint64_t)(USER_DS - 8 - 3) << 48) | ((uint64_t)KERNEL_CS << 32));
	native_write_msr(MSR_LSTAR, (uint64_t)syscall_entry);
	native_write_msr(MSR_SYSCALL_MASK, X86_EFLAGS_IF | X86_EFLAGS_TF | X86_EFLAGS_DF |
					   X86_EFLAGS_NT | X86_EFLAGS_AC);
}

/* Called from syscall_entry on the kernel stack, interrupts disabled by FMASK. */
void syscall_dispatch(struct trap_frame *frame)
{
	frame->rax = do_syscall(frame);
}

/*
 * Host quirk (docs/examples.md, "syscall on the PVM host"): on the PVM host this project runs
 * on, a syscall from CPL3 does everything the instruction does (rcx = return rip, r11 = rflags,
 * rflags &= ~FMASK, rip = LSTAR) except change privilege: it keeps running at CPL3 and then
 * faults fetching syscall_entry, a supervisor page. Called first by a #PF handler: when a user
 * fault is exactly that fetch, runs the system call and returns to the user like iretq would.
 * Real hardware and QEMU never take this path. The user controls rcx/r11 here (it could jump
 * to syscall_entry itself), so both are checked like any user value.
 */
#define USER_LIMIT      0x0000800000000000UL

unsigned int syscall_fault_fixups;

int syscall_fault_fixup(struct trap_frame *frame, uint64_t cr2)
{
	if (!user_mode(frame) || frame->rip != (uint64_t)syscall_entry || cr2 != frame->rip)
		return 0;
	if (frame->rcx >= USER_LIMIT)
		return 0;
	syscall_fault_fixups++;
	frame->rip = frame->rcx;
	/* Arithmetic flags and DF from the user; IF on; IOPL, NT, TF, RF, AC, VM off. */
	frame->rflags = (frame->r11 & (0x8d5UL | X86_EFLAGS_DF)) | X86_EFLAGS_IF | 0x2;
	frame->rax = do_syscall(frame);
	return 1;
}
