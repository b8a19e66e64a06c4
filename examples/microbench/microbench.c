/*
 * microbench - the microbenchmarks of Adams & Agesen (ASPLOS 2006, "A comparison of software
 * and hardware techniques for x86 virtualization": syscall, in, cr8wr, call/ret, pgfault,
 * divzero, ptemod) plus afterburn's other sensitive operations: out, rdtsc, cpuid, cli/sti,
 * pushf/popf.
 *
 * Each benchmark runs BENCH_ITERS iterations between two rdtsc reads and prints
 * "bench <name> <cycles per iteration>" (timing: these lines differ from run to run). Each one
 * also counts the events it caused (traps taken, values read back); the kernel checks every
 * count and prints a checksum over them, which is deterministic (docs/examples.md).
 */
#include "kernel.h"
#include "bench.h"

#define POOL_PAGES      32
#define PGFAULT_VA      0xffffff0000000000UL    /* BENCH_ITERS not-present pages */
#define PTEMOD_VA       0xffffff0000400000UL    /* one page, remapped every iteration */
#define ARITH_FLAGS     0x8d5UL                 /* CF PF AF ZF SF OF */

static uint8_t page_pool[POOL_PAGES][PAGE_SIZE] __aligned(PAGE_SIZE);
static uint64_t *pml4;
static uint64_t *pgfault_ptes;          /* the PTEs of the pgfault region */
static uint64_t pgfault_frame;          /* every pgfault page maps this frame */
static volatile unsigned int page_faults, divide_errors, syscalls;
static volatile unsigned long divisor;  /* always 0: the compiler cannot see that */

extern char user_bench_syscall[];

/* ---- traps ---- */

static void page_fault(struct trap_frame *frame)
{
	uint64_t va = native_read_cr2();

	if (syscall_fault_fixup(frame, va))
		return;
	if (!user_mode(frame) && va >= PGFAULT_VA && va < PGFAULT_VA + BENCH_ITERS * PAGE_SIZE &&
	    !(frame->error_code & PF_PROT)) {
		pgfault_ptes[(va - PGFAULT_VA) / PAGE_SIZE] = pgfault_frame | PTE_P | PTE_W;
		page_faults++;
		return;
	}
	die("page fault", frame);
}

static void divide_error(struct trap_frame *frame)
{
	if (user_mode(frame) || !fixup_exception(frame))
		die("divide error", frame);
	divide_errors++;
}

uint64_t do_syscall(struct trap_frame *frame)
{
	switch (frame->rax) {
	case SYS_NULL:
		syscalls++;
		return 0;
	case SYS_EXIT:
		return_from_user(frame->rdi);
	default:
		return (uint64_t)-38;
	}
}

/* ---- benchmarks: each returns its event count and sets *cycles ---- */

static unsigned int bench_syscall(uint64_t *cycles)
{
	syscalls = 0;
	*cycles = enter_user(USER_TEXT_ADDR(user_bench_syscall), USER_STACK_TOP);
	return syscalls;
}

static unsigned int bench_in(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		(void)inb(IO_DELAY_PORT);
		n++;
	}
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_out(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		outb((uint8_t)i, IO_DELAY_PORT);
		n++;
	}
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_cr8wr(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		native_write_cr8(0);
		n++;
	}
	*cycles = rdtsc() - t0;
	return native_read_cr8() == 0 ? n : 0;
}

static __noinline unsigned int callee(unsigned int x)
{
	asm volatile("" : "+r" (x));
	return x + 1;
}

static unsigned int bench_callret(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++)
		n = callee(n);
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_pgfault(uint64_t *cycles)
{
	page_faults = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++)
		(void)*(volatile uint64_t *)(PGFAULT_VA + i * PAGE_SIZE);
	*cycles = rdtsc() - t0;
	for (unsigned int i = 0; i < BENCH_ITERS; i++)
		pgfault_ptes[i] = 0;
	native_flush_tlb_local();
	return page_faults;
}

static unsigned long div_may_fault(unsigned long dividend, unsigned long d)
{
	unsigned long quotient = dividend, remainder = 0;

	asm volatile("1: divq %[d]\n"
		     "2:\n"
		     _ASM_EXTABLE(1b, 2b)
		     : "+a" (quotient), "+d" (remainder)
		     : [d] "rm" (d));
	return quotient;
}

static unsigned int bench_divzero(uint64_t *cycles)
{
	divide_errors = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++)
		(void)div_may_fault(i, divisor);
	*cycles = rdtsc() - t0;
	return divide_errors;
}

static unsigned int bench_ptemod(uint64_t *cycles)
{
	uint64_t *frames[2] = { page_alloc(), page_alloc() };
	unsigned int n = 0;

	*frames[0] = 0xa0;
	*frames[1] = 0xb1;
	map_page(pml4, PTEMOD_VA, __pa(frames[0]), PTE_W);
	uint64_t *pte = pte_lookup(pml4, PTEMOD_VA, 0, 0);
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		unsigned int which = (i + 1) & 1;
		*pte = __pa(frames[which]) | PTE_P | PTE_W;
		__invlpg(PTEMOD_VA);
		if (*(volatile uint64_t *)PTEMOD_VA == *frames[which])
			n++;
	}
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_rdtsc(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t last = 0, t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		uint64_t t = rdtsc();
		if (t >= last)
			n++;
		last = t;
	}
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_cpuid(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		uint32_t eax = 0, ebx, ecx = 0, edx;
		native_cpuid(&eax, &ebx, &ecx, &edx);
		n++;
	}
	*cycles = rdtsc() - t0;
	return n;
}

static unsigned int bench_clisti(uint64_t *cycles)
{
	unsigned int n = 0;
	uint64_t t0 = rdtsc();

	/* Every PIC line is masked: sti lets nothing in. */
	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		native_irq_disable();
		native_irq_enable();
		n++;
	}
	*cycles = rdtsc() - t0;
	if (irqs_disabled_flags(native_save_fl()))
		n = 0;
	native_irq_disable();
	return n;
}

static unsigned int bench_pushfpopf(uint64_t *cycles)
{
	unsigned int n = 0;
	unsigned long before = native_save_fl();
	uint64_t t0 = rdtsc();

	for (unsigned int i = 0; i < BENCH_ITERS; i++) {
		unsigned long flags = native_save_fl();
		native_restore_fl(flags);
		n++;
	}
	*cycles = rdtsc() - t0;
	/* The arithmetic flags change with the loop; the system flags must not. */
	return ((native_save_fl() ^ before) & ~ARITH_FLAGS) == 0 ? n : 0;
}

static const struct {
	const char *name;
	unsigned int (*run)(uint64_t *cycles);
} benchmarks[] = {
	{ "syscall", bench_syscall },
	{ "in", bench_in },
	{ "out", bench_out },
	{ "cr8wr", bench_cr8wr },
	{ "callret", bench_callret },
	{ "pgfault", bench_pgfault },
	{ "divzero", bench_divzero },
	{ "ptemod", bench_ptemod },
	{ "rdtsc", bench_rdtsc },
	{ "cpuid", bench_cpuid },
	{ "clisti", bench_clisti },
	{ "pushfpopf", bench_pushfpopf },
};

int kernel_main(uint64_t start_info_pa)
{
	(void)start_info_pa;
	serial_init();
	desc_init();
	pic_init();
	syscall_init();
	mm_init(page_pool, POOL_PAGES);
	set_trap_handler(X86_TRAP_DE, divide_error);
	set_trap_handler(X86_TRAP_PF, page_fault);

	pml4 = mm_new_address_space();
	pgfault_ptes = pte_lookup(pml4, PGFAULT_VA, 1, PTE_W);   /* one table, all not present */
	pgfault_frame = __pa(page_alloc());
	native_write_cr3(__pa(pml4));
	kprintf("microbench: %u benchmarks x %u iterations\n", (unsigned int)ARRAY_SIZE(benchmarks),
		BENCH_ITERS);

	uint64_t checksum = CSUM_INIT;
	for (unsigned int i = 0; i < ARRAY_SIZE(benchmarks); i++) {
		uint64_t cycles = 0;
		unsigned int events = benchmarks[i].run(&cycles);
		kprintf("bench %s %lu\n", benchmarks[i].name, cycles / BENCH_ITERS);
		if (events != BENCH_ITERS)
			panic("microbench: %s counted %u events, expected %u", benchmarks[i].name,
			      events, BENCH_ITERS);
		checksum = csum_event(checksum, i + 1, events);
	}
	kprintf("microbench: checksum=0x%016lx\n", checksum);
	return EXIT_OK;
}
