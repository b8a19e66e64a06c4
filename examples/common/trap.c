/*
 * trap.c - C side of interrupts and exceptions: handler table, exception-table fixups.
 */
#include "kernel.h"

static trap_handler_t trap_handlers[NR_VECTORS];

static const char *const exception_names[32] = {
	"divide error", "debug", "nmi", "breakpoint", "overflow", "bound range",
	"invalid opcode", "device not available", "double fault", "coprocessor overrun",
	"invalid tss", "segment not present", "stack fault", "general protection",
	"page fault", "reserved", "x87 fpu error", "alignment check", "machine check",
	"simd error", "virtualization", "control protection",
};

void set_trap_handler(unsigned int vector, trap_handler_t handler)
{
	if (vector >= NR_VECTORS)
		panic("set_trap_handler: vector %u out of range", vector);
	trap_handlers[vector] = handler;
}

struct exception_table_entry {
	int32_t insn, fixup;
};

extern const struct exception_table_entry __start___ex_table[], __stop___ex_table[];

/* If the faulting instruction has an __ex_table entry, resume at its fixup. */
int fixup_exception(struct trap_frame *frame)
{
	for (const struct exception_table_entry *e = __start___ex_table; e < __stop___ex_table;
	     e++) {
		uint64_t insn = (uint64_t)&e->insn + (int64_t)e->insn;
		if (insn == frame->rip) {
			frame->rip = (uint64_t)&e->fixup + (int64_t)e->fixup;
			return 1;
		}
	}
	return 0;
}

__noreturn void die(const char *what, struct trap_frame *f)
{
	const char *name = f->vector < 32 ? exception_names[f->vector] : "interrupt";

	kprintf("unexpected trap: %s: vector %lu (%s) error 0x%lx\n", what, f->vector,
		name ? name : "reserved", f->error_code);
	kprintf("  rip 0x%lx cs 0x%lx rflags 0x%lx rsp 0x%lx ss 0x%lx cr2 0x%lx\n", f->rip, f->cs,
		f->rflags, f->rsp, f->ss, native_read_cr2());
	kprintf("  rax 0x%lx rbx 0x%lx rcx 0x%lx rdx 0x%lx rsi 0x%lx rdi 0x%lx\n", f->rax, f->rbx,
		f->rcx, f->rdx, f->rsi, f->rdi);
	guest_exit(EXIT_UNEXPECTED);
}

/* Called from entry.S with interrupts disabled (every gate is an interrupt gate). */
void trap_dispatch(struct trap_frame *frame)
{
	if (frame->vector < NR_VECTORS) {
		trap_handler_t handler = trap_handlers[frame->vector];
		if (handler) {
			handler(frame);
			return;
		}
	}
	if (frame->vector < 32 && !user_mode(frame) && fixup_exception(frame))
		return;
	die("no handler", frame);
}
