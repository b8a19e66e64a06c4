/*
 * interrupts - IDT, 8259 PIC, 8254 timer ticks, irq-flag save/restore, and an idle loop.
 *
 * Phase 1 checks the interrupt-flag idioms with the timer off: cli, sti, local_irq_save /
 * local_irq_restore (pushf; pop / push; popf), nested. Phase 2 programs the PIT at TICK_HZ and
 * idles in Linux's default_idle shape (cli; check; sti; hlt) until the IRQ 0 handler has
 * counted NR_TICKS ticks. Phase 3 masks the PIC and reports.
 *
 * The checksum covers a fixed sequence of events (docs/examples.md lists them), never a count
 * that depends on timing, so it is the same on every machine; timing goes on `bench` lines.
 */
#include "kernel.h"

#define NR_TICKS 32
#define TICK_HZ  1000

/* Event tags (docs/examples.md, "interrupts checksum"). */
enum {
	EV_CLI = 0x01,          /* value: IF after cli */
	EV_STI = 0x02,          /* value: IF after sti */
	EV_SAVE_OUTER = 0x03,   /* value: IF in the flags saved by the outer local_irq_save */
	EV_AFTER_SAVE = 0x04,   /* value: IF after it */
	EV_SAVE_INNER = 0x05,   /* value: IF in the flags saved by the nested local_irq_save */
	EV_RESTORE_INNER = 0x06,/* value: IF after the nested local_irq_restore */
	EV_RESTORE_OUTER = 0x07,/* value: IF after the outer local_irq_restore */
	EV_TICK = 0x10,         /* value: tick number, 1..NR_TICKS */
	EV_TICK_SAVED_IF = 0x11,/* value: IF in local_irq_save flags inside the handler */
	EV_TICK_FRAME_IF = 0x12,/* value: IF of the interrupted context (frame rflags) */
	EV_TICK_FRAME_CPL = 0x13,/* value: CPL of the interrupted context (frame cs & 3) */
	EV_DONE = 0x20,         /* value: ticks counted */
};

static uint64_t checksum = CSUM_INIT;
static volatile unsigned int ticks;
static uint64_t first_tick_tsc, last_tick_tsc;

static unsigned int if_bit(unsigned long flags)
{
	return !irqs_disabled_flags(flags);
}

static void record(uint32_t tag, uint32_t value, uint32_t expected)
{
	if (value != expected)
		panic("interrupts: event 0x%x: value %u, expected %u", tag, value, expected);
	checksum = csum_event(checksum, tag, value);
}

static void timer_interrupt(struct trap_frame *frame)
{
	unsigned long flags;
	unsigned int t = ticks + 1;

	/*
	 * The idle loop wakes with interrupts on and only then checks the count, so on a loaded
	 * host a late tick can land after the NR_TICKS-th one: it is acknowledged, not counted,
	 * which keeps the output independent of timing.
	 */
	if (t > NR_TICKS) {
		pic_eoi(0);
		return;
	}
	local_irq_save(flags);
	if (t <= NR_TICKS) {
		record(EV_TICK, t, t);
		record(EV_TICK_SAVED_IF, if_bit(flags), 0);
		record(EV_TICK_FRAME_IF, if_bit(frame->rflags), 1);
		record(EV_TICK_FRAME_CPL, frame->cs & 3, 0);
	}
	if (t == 1)
		first_tick_tsc = rdtsc();
	last_tick_tsc = rdtsc();
	ticks = t;
	pic_eoi(0);
	local_irq_restore(flags);
}

/* IRQ 7 and 15 can be spurious on a real 8259: no EOI for IRQ 7, only the master for 15. */
static unsigned int spurious;

static void spurious_interrupt(struct trap_frame *frame)
{
	spurious++;
	if (frame->vector == PIC_VECTOR_BASE + 15)
		pic_eoi(0);
}

static void irq_flag_selftest(void)
{
	unsigned long outer, inner;

	native_irq_disable();
	record(EV_CLI, if_bit(native_save_fl()), 0);
	native_irq_enable();
	record(EV_STI, if_bit(native_save_fl()), 1);

	local_irq_save(outer);
	record(EV_SAVE_OUTER, if_bit(outer), 1);
	record(EV_AFTER_SAVE, if_bit(native_save_fl()), 0);
	local_irq_save(inner);
	record(EV_SAVE_INNER, if_bit(inner), 0);
	local_irq_restore(inner);
	record(EV_RESTORE_INNER, if_bit(native_save_fl()), 0);
	local_irq_restore(outer);
	record(EV_RESTORE_OUTER, if_bit(native_save_fl()), 1);

	native_irq_disable();
}

/*
 * popf must restore every arithmetic flag and DF, whatever machine runs it (a wedge may apply
 * the value without the CPU's popfq). Every combination of CF, PF, AF, ZF, SF, DF and OF, with
 * interrupts off; DF is cleared in the same asm block (C code runs with DF clear). A mismatch
 * panics, so the output is the same as long as popf is right.
 */
static void popf_arith_selftest(void)
{
	static const unsigned long bits[] = { 0x1, 0x4, 0x10, 0x40, 0x80, 0x400, 0x800 };
	const unsigned long mask = 0xcd5;
	unsigned long base = native_save_fl() & ~(mask | X86_EFLAGS_IF);

	for (unsigned int combo = 0; combo < (1U << ARRAY_SIZE(bits)); combo++) {
		unsigned long value = base, got;
		for (unsigned int b = 0; b < ARRAY_SIZE(bits); b++)
			if (combo & (1U << b))
				value |= bits[b];
		asm volatile("push %1 ; popf ; pushf ; pop %0 ; cld"
			     : "=r" (got) : "r" (value) : "memory", "cc");
		if ((got ^ value) & mask)
			panic("interrupts: popf of 0x%lx gave 0x%lx", value, got);
	}
}

/* Linux's default_idle shape: test with interrupts off, then sti; hlt as one unit. */
static unsigned int idle_until_ticks(unsigned int n)
{
	unsigned int wakeups = 0;

	for (;;) {
		native_irq_disable();
		if (ticks >= n)
			break;
		native_safe_halt();
		wakeups++;
	}
	return wakeups;
}

int kernel_main(uint64_t start_info_pa)
{
	(void)start_info_pa;
	serial_init();
	desc_init();
	pic_init();
	set_trap_handler(PIC_VECTOR_BASE + 0, timer_interrupt);
	set_trap_handler(PIC_VECTOR_BASE + 7, spurious_interrupt);
	set_trap_handler(PIC_VECTOR_BASE + 15, spurious_interrupt);
	kprintf("interrupts: idt, pic and pit ready\n");

	irq_flag_selftest();
	popf_arith_selftest();
	kprintf("interrupts: irq flag save/restore ok\n");

	pit_start_periodic(TICK_HZ);
	pic_unmask(0);
	unsigned int wakeups = idle_until_ticks(NR_TICKS);
	/* Interrupts are off again: no tick can arrive after the loop saw NR_TICKS. */
	pic_mask_all();
	record(EV_DONE, ticks, NR_TICKS);

	kprintf("interrupts: ticks=%u\n", ticks);
	kprintf("bench idle-wakeups %u\n", wakeups);
	kprintf("bench cycles-per-tick %lu\n",
		(last_tick_tsc - first_tick_tsc) / (NR_TICKS - 1));
	if (spurious)
		kprintf("bench spurious-irqs %u\n", spurious);
	kprintf("interrupts: checksum=0x%016lx\n", checksum);
	return EXIT_OK;
}
