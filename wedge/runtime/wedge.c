/*
 * wedge.c - the guest-side runtime of the kvm backend, in C (no SSE/x87: built with
 * -mgeneral-regs-only). It runs at CPL3 in the guest kernel's address space:
 *
 *   wedge_trap()   events the CPL0 bounce stubs hand over: pends external interrupts,
 *                  reflects exceptions and pending interrupts to the guest kernel's own IDT
 *                  handlers with a virtual frame
 *   site_*()       the sensitive operations that need more than a few instructions: port I/O
 *                  (serial ring, local answers, forwarding), cpuid from the host's table,
 *                  MSRs, control registers, descriptor tables, invlpg
 *
 * Guest memory is accessed through the guest's own virtual addresses (the host maps them in
 * the shadow page tables, filling missing entries on demand). Values the guest wrote into the
 * virtual CPU are used as they are: the guest can only hurt itself; the host checks anything
 * it reads.
 */
#include <stddef.h>
#include "wedge.h"
#include "ctx.h"

#define COM1		0x3f8
#define UART_LSR_IDLE	0x60	/* THR empty, transmitter empty */
#define UART_LCR_DLAB	0x80

/* ---- pending interrupts ---- */

extern char wedge_hook_ret[], wedge_hook_deliver[];

static void set_any(uint64_t any)
{
	VCPU64(VCPU_PENDING_ANY) = any;
	VCPU64(VCPU_STI_HOOK) = any ? (uint64_t)wedge_hook_deliver : (uint64_t)wedge_hook_ret;
}

static void pend(uint64_t vec)
{
	volatile uint64_t *p = &VCPU64(VCPU_PENDING + 8 * (vec >> 6));
	asm volatile("lock btsq %1, %0" : "+m" (*p) : "r" (vec & 63) : "memory", "cc");
	set_any(1);
}

/* Takes the lowest pending vector, or returns -1. Runs nested only inside events that pend
 * (an event never delivers while C code of the runtime runs), so re-checking after clearing
 * PENDING_ANY is enough to never lose a bit. */
static int64_t take_pending(void)
{
	for (int i = 0; i < 4; i++) {
		volatile uint64_t *p = &VCPU64(VCPU_PENDING + 8 * i);
		uint64_t v = *p;
		if (v) {
			uint64_t bit = (uint64_t)__builtin_ctzll(v);
			asm volatile("lock btrq %1, %0" : "+m" (*p) : "r" (bit) : "memory", "cc");
			uint64_t any = 0;
			for (int j = 0; j < 4; j++)
				any |= VCPU64(VCPU_PENDING + 8 * j);
			if (!any) {
				set_any(0);
				for (int j = 0; j < 4; j++)
					any |= VCPU64(VCPU_PENDING + 8 * j);
				if (any)
					set_any(1);
			}
			return (int64_t)(i * 64 + (int)bit);
		}
	}
	set_any(0);
	return -1;
}

static int vif(void)
{
	return VCPU8(VCPU_VIF + 1) != 0;
}

static __attribute__((noreturn)) void fatal(uint64_t why, uint64_t a, uint64_t b)
{
	for (;;)
		hypercall(HC_FATAL, why, a, b);
}

/* ---- reflecting events to the guest kernel ---- */

static int has_error_code(uint64_t vec)
{
	return vec == 8 || (vec >= 10 && vec <= 14) || vec == 17 || vec == 21 || vec == 29 ||
	       vec == 30;
}

/* The guest's TSS (from its GDT and task register), for IST stacks. */
static uint64_t guest_tss_base(void)
{
	uint64_t sel = VSEL(SEG_TR) & 0xfff8;
	uint64_t gdt = VCPU64(VCPU_GDTR_BASE);
	if (sel == 0 || sel + 15 > VCPU64(VCPU_GDTR_LIMIT))
		return 0;
	const volatile uint64_t *d = (const volatile uint64_t *)(gdt + sel);
	uint64_t lo = d[0], hi = d[1];
	return ((lo >> 16) & 0xffffff) | (((lo >> 56) & 0xff) << 24) | (hi << 32);
}

/* Delivers vector `vec` through the guest's IDT to the context `c` (the guest kernel):
 * pushes the virtual frame on its stack and points `c` at the handler. */
static void deliver(struct ctx *c, uint64_t vec, uint64_t error, int with_error)
{
	uint64_t idt = VCPU64(VCPU_IDTR_BASE);
	if (vec * 16 + 15 > VCPU64(VCPU_IDTR_LIMIT))
		fatal(FATAL_NO_GATE, vec, c->rip);
	const volatile uint64_t *g = (const volatile uint64_t *)(idt + vec * 16);
	uint64_t lo = g[0], hi = g[1];
	uint64_t type = (lo >> 40) & 0xf;
	if (!((lo >> 47) & 1) || (type != 0xe && type != 0xf))
		fatal(FATAL_NO_GATE, vec, c->rip);
	uint64_t handler = (lo & 0xffff) | ((lo >> 32) & 0xffff0000) | (hi << 32);
	uint64_t sel = (lo >> 16) & 0xffff;
	uint64_t ist = (lo >> 32) & 7;

	uint64_t sp = c->rsp;
	if (ist) {
		uint64_t tss = guest_tss_base();
		if (!tss)
			fatal(FATAL_NO_GATE, vec, c->rip);
		sp = *(const volatile uint64_t *)(tss + 36 + 8 * (ist - 1));
	}
	sp &= ~15UL;
	uint64_t flags = (c->rflags & ~(X86_EFLAGS_IF | X86_EFLAGS_IOPL | X86_EFLAGS_RF)) |
			 VCPU64(VCPU_VIF) | 2;
	volatile uint64_t *f = (volatile uint64_t *)sp;
	f[-1] = VSEL(SEG_SS);
	f[-2] = c->rsp;
	f[-3] = flags;
	f[-4] = VSEL(SEG_CS);
	f[-5] = c->rip;
	sp -= 40;
	if (with_error) {
		f[-6] = error;
		sp -= 8;
	}
	c->rsp = sp;
	c->rip = handler;
	c->rflags &= ~(X86_EFLAGS_TF | X86_EFLAGS_NT | X86_EFLAGS_RF | X86_EFLAGS_VM);
	VSEL(SEG_CS) = sel;
	if (type == 0xe)
		VCPU8(VCPU_VIF + 1) = 0;
	VCPU64(VCPU_N_DELIVERED)++;
}

extern char wedge_pushf2[], wedge_pushf2_1[], wedge_pushf2_2[], wedge_pushf2_6[];
extern char wedge_pushf2_7[], wedge_pushf2_8[];

/* An event interrupted the fast pushf routine: finish it here (it only turns the flags word
 * above its return address into the virtual view, which is idempotent) and return to the
 * site's next instruction. */
static void finish_pushf2(struct ctx *c)
{
	uint64_t rip = c->rip;
	volatile uint64_t *s = (volatile uint64_t *)c->rsp;
	uint64_t depth;
	if (rip < (uint64_t)wedge_pushf2_1) {
		depth = 0;
	} else if (rip < (uint64_t)wedge_pushf2_2) {
		depth = 1;				/* rax pushed */
		c->rax = s[0];
	} else if (rip <= (uint64_t)wedge_pushf2_6) {
		depth = 2;				/* rcx, rax pushed */
		c->rcx = s[0];
		c->rax = s[1];
	} else if (rip < (uint64_t)wedge_pushf2_8) {
		depth = 1;				/* rcx popped */
		c->rax = s[0];
	} else {
		depth = 0;
	}
	volatile uint64_t *flags = &s[depth + 1];
	*flags = (*flags & ~X86_EFLAGS_IF) | VCPU64(VCPU_VIF);
	c->rip = s[depth];
	c->rsp += 8 * (depth + 1);
}

extern char wedge_popf_fast_decided[], wedge_popf_fast_pop[], wedge_popf_fast_ret[];

/* The arithmetic flags and DF, which the fast popf applies without popfq. */
#define POPF_FAST_FLAGS 0xcd5UL

/* An event interrupted the fast popf past its pending check: the virtual IF is set already;
 * finish the flags here and return to the site's next instruction. */
static void finish_popf_fast(struct ctx *c)
{
	volatile uint64_t *s = (volatile uint64_t *)c->rsp;
	uint64_t depth = 0;
	if (c->rip <= (uint64_t)wedge_popf_fast_pop) {
		depth = 1;				/* rax pushed */
		c->rax = s[0];
	}
	uint64_t value = s[depth + 1];
	c->rflags = (c->rflags & ~POPF_FAST_FLAGS) | (value & POPF_FAST_FLAGS);
	c->rip = s[depth];
	c->rsp += 8 * (depth + 2);
}

/* If runtime code at c->rip had already decided to return to the guest (past the tail's
 * pending check, or inside a halt), turn `c` into that guest context and return 1. */
static int fixup(struct ctx *c)
{
	uint64_t rip = c->rip;
	if (rip >= (uint64_t)wedge_pushf2 && rip <= (uint64_t)wedge_pushf2_8) {
		finish_pushf2(c);
		return 1;
	}
	if (rip >= (uint64_t)wedge_popf_fast_decided && rip <= (uint64_t)wedge_popf_fast_ret) {
		finish_popf_fast(c);
		return 1;
	}
	int rec = (rip >= (uint64_t)wedge_tail_decided && rip < (uint64_t)wedge_tail_ret) ||
		  (rip >= (uint64_t)wedge_halt1_start && rip <= (uint64_t)wedge_halt1_end) ||
		  (rip >= (uint64_t)wedge_halt2_start && rip <= (uint64_t)wedge_halt2_end);
	const volatile uint64_t *s = (const volatile uint64_t *)c->rsp;
	if (rec) {
		c->rflags = s[0];
		c->rip = s[1];
		c->rsp += 16;
		return 1;
	}
	if (rip == (uint64_t)wedge_tail_ret || rip == (uint64_t)wedge_hook_ret) {
		c->rip = s[0];
		c->rsp += 8;
		return 1;
	}
	return 0;
}

static int in_runtime(uint64_t rip)
{
	return (rip >= REGION_TEXT_VA && rip < REGION_TEXT_VA + REGION_TEXT_SIZE) ||
	       (rip >= REGION_THUNKS_VA && rip < REGION_THUNKS_VA + REGION_THUNKS_SIZE);
}

void wedge_trap(struct ctx *c);
void wedge_trap(struct ctx *c)
{
	uint64_t vec = c->vector;
	if (TSS_RSP0 < REGION_STACK_VA + STACK_AREA)
		fatal(FATAL_STACK, vec, c->rip);
	if (vec >= 32 && vec < 256) {
		pend(vec);
		VCPU64(VCPU_N_IRQ)++;
	}
	if (in_runtime(c->rip)) {
		if (!fixup(c)) {
			/* Runtime code was interrupted before its final pending check: it will see
			 * what was pended. An exception there is a runtime failure. */
			if (vec < 32)
				fatal(vec == 14 ? FATAL_DOUBLE : FATAL_WEDGE_EXCEPTION, vec, c->rip);
			return;
		}
		/* It was returning to runtime code (an event that had interrupted the runtime):
		 * resume that; the runtime delivers on its own way out. */
		if (in_runtime(c->rip))
			return;
	}
	if (vec < 32) {
		uint64_t error = c->error;
		if (vec == 14) {
			/* The host classified this page fault as the guest's own and left its view
			 * of it (error code for the virtual CPL, faulting address) in the vCPU. */
			error = VCPU64(VCPU_PF_ERROR);
			VCPU64(VCPU_CR2) = VCPU64(VCPU_PF_ADDR);
		}
		VCPU64(VCPU_N_EXCEPTIONS)++;
		deliver(c, vec, error, has_error_code(vec));
	}
	if (vif()) {
		int64_t v = take_pending();
		if (v >= 0)
			deliver(c, (uint64_t)v, 0, 0);
	}
}

/* ---- the console ring ---- */

static void ring_flush(void)
{
	hypercall(HC_CONSOLE_FLUSH, 0, 0, 0);
}

static uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	asm volatile("rdtsc" : "=a" (lo), "=d" (hi));
	return ((uint64_t)hi << 32) | lo;
}

static void ring_put(uint8_t b)
{
	uint64_t head = RING64(RING_HEAD);
	if (head - RING64(RING_TAIL) >= RING_SIZE) {
		ring_flush();
		if (head - RING64(RING_TAIL) >= RING_SIZE)
			return;	/* the host did not take anything: drop rather than spin */
	}
	RING_BYTES[head & (RING_SIZE - 1)] = b;
	asm volatile("" : : : "memory");
	RING64(RING_HEAD) = head + 1;
	VCPU64(VCPU_N_SERIAL_BYTES)++;
	if (b == '\n') {
		/* A line is complete: hand it over now unless one went out very recently (the
		 * host also drains the ring at every exit, at hlt and at the end). */
		uint64_t now = rdtsc();
		if (now - VCPU64(VCPU_LAST_FLUSH) >= VCPU64(VCPU_FLUSH_TSC)) {
			VCPU64(VCPU_LAST_FLUSH) = now;
			ring_flush();
		}
	}
}

/* ---- port I/O ---- */

static uint32_t real_in(uint16_t port, int size)
{
	uint32_t v = 0;
	VCPU64(VCPU_N_PORT_FORWARDED)++;
	if (size == 1) {
		uint8_t b;
		asm volatile("inb %w1, %0" : "=a" (b) : "Nd" (port));
		v = b;
	} else if (size == 2) {
		uint16_t w;
		asm volatile("inw %w1, %0" : "=a" (w) : "Nd" (port));
		v = w;
	} else {
		asm volatile("inl %w1, %0" : "=a" (v) : "Nd" (port));
	}
	return v;
}

static void real_out(uint16_t port, int size, uint32_t v)
{
	VCPU64(VCPU_N_PORT_FORWARDED)++;
	if (size == 1)
		asm volatile("outb %b0, %w1" : : "a" ((uint8_t)v), "Nd" (port));
	else if (size == 2)
		asm volatile("outw %w0, %w1" : : "a" ((uint16_t)v), "Nd" (port));
	else
		asm volatile("outl %0, %w1" : : "a" (v), "Nd" (port));
}

static uint32_t port_in(uint16_t port, int size)
{
	if (port == COM1 + 5 && size == 1) {
		VCPU64(VCPU_N_PORT_LOCAL)++;
		return UART_LSR_IDLE;
	}
	if (port == 0x80 || port == 0xed) {
		/* POST / I/O-delay ports: nothing answers (all ones), as on the loader's bus. */
		VCPU64(VCPU_N_PORT_LOCAL)++;
		return size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffff;
	}
	return real_in(port, size);
}

static void port_out(uint16_t port, int size, uint32_t v)
{
	if (port == COM1 && size == 1 && !(VCPU64(VCPU_UART_LCR) & UART_LCR_DLAB)) {
		ring_put((uint8_t)v);
		return;
	}
	if (port == 0x80 || port == 0xed) {
		VCPU64(VCPU_N_DELAY_WRITES)++;
		return;
	}
	if (port == COM1 + 3 && size == 1)
		VCPU64(VCPU_UART_LCR) = v & 0xff;
	real_out(port, size, v);
}

#define SITE_FN(name) void name(struct site *s); void name(struct site *s)

SITE_FN(site_in_b) { s->rax = (s->rax & ~0xffUL) | port_in((uint16_t)s->arg, 1); }
SITE_FN(site_in_w) { s->rax = (s->rax & ~0xffffUL) | port_in((uint16_t)s->arg, 2); }
SITE_FN(site_in_l) { s->rax = port_in((uint16_t)s->arg, 4); }
SITE_FN(site_out_b) { port_out((uint16_t)s->arg, 1, (uint32_t)s->rax & 0xff); }
SITE_FN(site_out_w) { port_out((uint16_t)s->arg, 2, (uint32_t)s->rax & 0xffff); }
SITE_FN(site_out_l) { port_out((uint16_t)s->arg, 4, (uint32_t)s->rax); }

/* ---- cpuid ---- */

SITE_FN(site_cpuid)
{
	uint32_t leaf = (uint32_t)s->rax, sub = (uint32_t)s->rcx;
	uint64_t n = CPUID64(CPUID_COUNT);
	if (n > CPUID_MAX)
		n = CPUID_MAX;
	for (uint64_t i = 0; i < n; i++) {
		const volatile uint32_t *e =
			(const volatile uint32_t *)(REGION_CPUID_VA + CPUID_ENTRIES + i * CPUID_ENTRY_SIZE);
		if (e[0] == leaf && (!(e[2] & 1) || e[1] == sub)) {
			s->rax = e[3];
			s->rbx = e[4];
			s->rcx = e[5];
			s->rdx = e[6];
			VCPU64(VCPU_N_CPUID_LOCAL)++;
			return;
		}
	}
	uint32_t a = leaf, b, c = sub, d;
	asm volatile("cpuid" : "+a" (a), "=b" (b), "+c" (c), "=d" (d));
	s->rax = a;
	s->rbx = b;
	s->rcx = c;
	s->rdx = d;
	VCPU64(VCPU_N_CPUID_FORWARDED)++;
}

/* ---- MSRs ---- */

#define MSR_EFER		0xc0000080
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SFMASK		0xc0000084
#define MSR_FS_BASE		0xc0000100
#define MSR_GS_BASE		0xc0000101
#define MSR_KGS_BASE		0xc0000102
#define MSR_TSC_AUX		0xc0000103
#define MSR_TSC			0x10
#define MSR_APIC_BASE		0x1b
#define MSR_SYSENTER_CS		0x174
#define MSR_SYSENTER_ESP	0x175
#define MSR_SYSENTER_EIP	0x176
#define MSR_MISC_ENABLE		0x1a0
#define MSR_PAT			0x277
#define EFER_SCE		1UL

/* The vCPU field that holds a virtual MSR, or -1. */
static int64_t msr_field(uint32_t msr)
{
	switch (msr) {
	case MSR_EFER: return VCPU_EFER;
	case MSR_STAR: return VCPU_STAR;
	case MSR_LSTAR: return VCPU_LSTAR;
	case MSR_CSTAR: return VCPU_CSTAR;
	case MSR_SFMASK: return VCPU_SFMASK;
	case MSR_FS_BASE: return VCPU_FS_BASE;
	case MSR_GS_BASE: return VCPU_GS_BASE;
	case MSR_KGS_BASE: return VCPU_KGS_BASE;
	case MSR_TSC_AUX: return VCPU_TSC_AUX;
	case MSR_APIC_BASE: return VCPU_APIC_BASE;
	case MSR_SYSENTER_CS: return VCPU_SYSENTER_CS;
	case MSR_SYSENTER_ESP: return VCPU_SYSENTER_ESP;
	case MSR_SYSENTER_EIP: return VCPU_SYSENTER_EIP;
	case MSR_MISC_ENABLE: return VCPU_MISC_ENABLE;
	case MSR_PAT: return VCPU_PAT;
	default: return -1;
	}
}

SITE_FN(site_rdmsr)
{
	uint32_t msr = (uint32_t)s->rcx;
	uint64_t v;
	int64_t f = msr_field(msr);
	if (f >= 0) {
		v = VCPU64((uint64_t)f);
	} else if (msr == MSR_TSC) {
		v = rdtsc();
	} else {
		v = hypercall(HC_RDMSR, msr, 0, 0);
	}
	s->rax = (uint32_t)v;
	s->rdx = v >> 32;
}

SITE_FN(site_wrmsr)
{
	uint32_t msr = (uint32_t)s->rcx;
	uint64_t v = ((s->rdx & 0xffffffffUL) << 32) | (s->rax & 0xffffffffUL);
	int64_t f = msr_field(msr);
	if (f < 0) {
		hypercall(HC_WRMSR, msr, v, 0);
		return;
	}
	uint64_t old = VCPU64((uint64_t)f);
	VCPU64((uint64_t)f) = v;
	/* EFER beyond SCE, and the segment bases the CPU uses, need the host. */
	if ((msr == MSR_EFER && ((old ^ v) & ~EFER_SCE)) || msr == MSR_FS_BASE ||
	    msr == MSR_GS_BASE)
		hypercall(HC_WRMSR, msr, v, 0);
}

/* ---- control registers, descriptor tables, TLB ---- */

#define CR0_TS		0x8UL
#define CR0_HOST_BITS	0x80010001UL	/* PG, WP, PE: they change what the shadow shows */
#define CR4_HOST_BITS	0x000000b0UL	/* PGE, PAE, PSE */

SITE_FN(site_write_cr0)
{
	uint64_t old = VCPU64(VCPU_CR0);
	VCPU64(VCPU_CR0) = s->arg;
	if ((old ^ s->arg) & CR0_HOST_BITS)
		hypercall(HC_CR0_WRITE, s->arg, old, 0);
}

SITE_FN(site_write_cr3)
{
	VCPU64(VCPU_CR3) = s->arg;
	hypercall(HC_CR3_WRITE, s->arg, 0, 0);
}

SITE_FN(site_write_cr4)
{
	uint64_t old = VCPU64(VCPU_CR4);
	VCPU64(VCPU_CR4) = s->arg;
	if ((old ^ s->arg) & CR4_HOST_BITS)
		hypercall(HC_CR4_WRITE, s->arg, old, 0);
}

SITE_FN(site_clts) { (void)s; VCPU64(VCPU_CR0) &= ~CR0_TS; }

SITE_FN(site_nothing) { (void)s; }

SITE_FN(site_ltr) { VSEL(SEG_TR) = s->arg & 0xffff; }

struct __attribute__((packed)) desc_ptr {
	uint16_t limit;
	uint64_t base;
};

SITE_FN(site_lgdt)
{
	const volatile struct desc_ptr *d = (const volatile struct desc_ptr *)s->arg;
	VCPU64(VCPU_GDTR_LIMIT) = d->limit;
	VCPU64(VCPU_GDTR_BASE) = d->base;
}

SITE_FN(site_lidt)
{
	const volatile struct desc_ptr *d = (const volatile struct desc_ptr *)s->arg;
	VCPU64(VCPU_IDTR_LIMIT) = d->limit;
	VCPU64(VCPU_IDTR_BASE) = d->base;
}

SITE_FN(site_sgdt)
{
	volatile struct desc_ptr *d = (volatile struct desc_ptr *)s->arg;
	d->limit = (uint16_t)VCPU64(VCPU_GDTR_LIMIT);
	d->base = VCPU64(VCPU_GDTR_BASE);
}

SITE_FN(site_sidt)
{
	volatile struct desc_ptr *d = (volatile struct desc_ptr *)s->arg;
	d->limit = (uint16_t)VCPU64(VCPU_IDTR_LIMIT);
	d->base = VCPU64(VCPU_IDTR_BASE);
}

SITE_FN(site_invlpg) { hypercall(HC_INVLPG, s->arg, 0, 0); }
