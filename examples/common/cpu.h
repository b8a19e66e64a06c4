/*
 * cpu.h - the virtualization-sensitive instructions, in the idioms real kernels use.
 *
 * The names and shapes follow Linux (arch/x86/include/asm/irqflags.h, special_insns.h,
 * msr.h, io.h, desc.h, tlbflush.h): every sensitive instruction is a small always-inlined
 * asm statement, so each call site is one instruction inside ordinary compiled code. These are
 * the sites the afterburner pads and the wedge rewrites.
 */
#ifndef CPU_H
#define CPU_H

#include <stdint.h>
#include "layout.h"

struct desc_ptr {
	uint16_t size;
	uint64_t address;
} __attribute__((packed));

/* ---- interrupt flag (irqflags.h) ---- */

static inline __attribute__((always_inline)) unsigned long native_save_fl(void)
{
	unsigned long flags;

	asm volatile("# __raw_save_flags\n\t"
		     "pushf ; pop %0"
		     : "=rm" (flags)
		     : /* no input */
		     : "memory");
	return flags;
}

static inline __attribute__((always_inline)) void native_restore_fl(unsigned long flags)
{
	asm volatile("push %0 ; popf"
		     : /* no output */
		     : "g" (flags)
		     : "memory", "cc");
}

static inline __attribute__((always_inline)) void native_irq_disable(void)
{
	asm volatile("cli" : : : "memory");
}

static inline __attribute__((always_inline)) void native_irq_enable(void)
{
	asm volatile("sti" : : : "memory");
}

/* sti; hlt must stay adjacent: the interrupt shadow of sti covers hlt, so no wakeup is lost. */
static inline __attribute__((always_inline)) void native_safe_halt(void)
{
	asm volatile("sti; hlt" : : : "memory");
}

static inline __attribute__((always_inline)) void native_halt(void)
{
	asm volatile("hlt" : : : "memory");
}

static inline int irqs_disabled_flags(unsigned long flags)
{
	return !(flags & X86_EFLAGS_IF);
}

#define local_irq_save(flags) \
	do { (flags) = native_save_fl(); native_irq_disable(); } while (0)
#define local_irq_restore(flags) native_restore_fl(flags)

static inline void cpu_relax(void)
{
	asm volatile("rep; nop" : : : "memory");
}

/* ---- control registers (special_insns.h) ---- */

static inline unsigned long native_read_cr0(void)
{
	unsigned long val;
	asm volatile("mov %%cr0,%0" : "=r" (val) : : "memory");
	return val;
}

static inline void native_write_cr0(unsigned long val)
{
	asm volatile("mov %0,%%cr0" : : "r" (val) : "memory");
}

static inline unsigned long native_read_cr2(void)
{
	unsigned long val;
	asm volatile("mov %%cr2,%0" : "=r" (val) : : "memory");
	return val;
}

static inline unsigned long native_read_cr3(void)
{
	unsigned long val;
	asm volatile("mov %%cr3,%0" : "=r" (val) : : "memory");
	return val;
}

static inline void native_write_cr3(unsigned long val)
{
	asm volatile("mov %0,%%cr3" : : "r" (val) : "memory");
}

static inline unsigned long native_read_cr8(void)
{
	unsigned long val;
	asm volatile("mov %%cr8,%0" : "=r" (val) : : "memory");
	return val;
}

static inline __attribute__((always_inline)) void native_write_cr8(unsigned long val)
{
	asm volatile("mov %0,%%cr8" : : "r" (val) : "memory");
}

/* ---- TLB (tlbflush.h) ---- */

static inline __attribute__((always_inline)) void __invlpg(unsigned long addr)
{
	asm volatile("invlpg (%0)" : : "r" (addr) : "memory");
}

/* Flush the whole non-global TLB by reloading CR3, like __native_tlb_flush_global's cousin. */
static inline void native_flush_tlb_local(void)
{
	native_write_cr3(native_read_cr3());
}

/* ---- MSRs (msr.h) ---- */

static inline uint64_t native_read_msr(uint32_t msr)
{
	uint32_t low, high;
	asm volatile("rdmsr" : "=a" (low), "=d" (high) : "c" (msr));
	return ((uint64_t)high << 32) | low;
}

static inline void native_write_msr(uint32_t msr, uint64_t val)
{
	asm volatile("wrmsr"
		     : /* no outputs */
		     : "c" (msr), "a" ((uint32_t)val), "d" ((uint32_t)(val >> 32))
		     : "memory");
}

/* ---- time stamp counter, cpuid ---- */

static inline __attribute__((always_inline)) uint64_t rdtsc(void)
{
	uint32_t low, high;
	asm volatile("rdtsc" : "=a" (low), "=d" (high));
	return ((uint64_t)high << 32) | low;
}

static inline __attribute__((always_inline)) void native_cpuid(uint32_t *eax, uint32_t *ebx,
							      uint32_t *ecx, uint32_t *edx)
{
	asm volatile("cpuid"
		     : "=a" (*eax), "=b" (*ebx), "=c" (*ecx), "=d" (*edx)
		     : "0" (*eax), "2" (*ecx)
		     : "memory");
}

/* ---- port I/O (io.h) ---- */

static inline __attribute__((always_inline)) void outb(uint8_t value, uint16_t port)
{
	asm volatile("outb %b0, %w1" : : "a" (value), "Nd" (port));
}

static inline __attribute__((always_inline)) uint8_t inb(uint16_t port)
{
	uint8_t value;
	asm volatile("inb %w1, %b0" : "=a" (value) : "Nd" (port));
	return value;
}

static inline __attribute__((always_inline)) void outl(uint32_t value, uint16_t port)
{
	asm volatile("outl %0, %w1" : : "a" (value), "Nd" (port));
}

/* A short delay between PIC/PIT programming writes, like Linux's native_io_delay. */
static inline void io_delay(void)
{
	asm volatile("outb %%al, %0" : : "N" (IO_DELAY_PORT));
}

/* ---- descriptor tables (desc.h) ---- */

static inline void native_load_gdt(const struct desc_ptr *dtr)
{
	asm volatile("lgdt %0" : : "m" (*dtr));
}

static inline void native_load_idt(const struct desc_ptr *dtr)
{
	asm volatile("lidt %0" : : "m" (*dtr));
}

static inline void native_store_idt(struct desc_ptr *dtr)
{
	asm volatile("sidt %0" : "=m" (*dtr));
}

static inline void native_load_tr_desc(unsigned int sel)
{
	asm volatile("ltr %w0" : : "q" (sel));
}

/* ---- exception table (asm.h, extable.h) ---- */

/*
 * An entry in __ex_table: if the instruction at `from` faults, the trap handler resumes at `to`.
 * Two PC-relative 32-bit words, like Linux's struct exception_table_entry.
 */
#define _ASM_EXTABLE(from, to)				\
	" .pushsection \"__ex_table\",\"a\"\n"		\
	" .balign 4\n"					\
	" .long (" #from ") - .\n"			\
	" .long (" #to ") - .\n"			\
	" .popsection\n"

#endif
