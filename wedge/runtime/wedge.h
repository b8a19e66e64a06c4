/*
 * wedge.h - the runtime's view of the shared pages (layout.h is generated from the one source
 * of truth, wedge/src/layout_defs.rs) and its small helpers.
 */
#ifndef WEDGE_H
#define WEDGE_H

#include <stdint.h>
#include "layout.h"

#define VCPU64(off)	(*(volatile uint64_t *)(REGION_VCPU_VA + (off)))
#define VCPU8(off)	(*(volatile uint8_t *)(REGION_VCPU_VA + (off)))
#define HCALL64(off)	(*(volatile uint64_t *)(REGION_HCALL_VA + (off)))
#define RING64(off)	(*(volatile uint64_t *)(REGION_RING_VA + (off)))
#define RING_BYTES	((volatile uint8_t *)(REGION_RING_VA + RING_DATA))
#define CPUID64(off)	(*(volatile uint64_t *)(REGION_CPUID_VA + (off)))
#define TSS_RSP0	(*(volatile uint64_t *)(REGION_TSS_VA + 4))

#define VSEL(n)		VCPU64(VCPU_SEL + 8 * (n))
#define SEG_ES 0
#define SEG_CS 1
#define SEG_SS 2
#define SEG_DS 3
#define SEG_FS 4
#define SEG_GS 5
#define SEG_LDTR 6
#define SEG_TR 7

#define X86_EFLAGS_TF	0x100UL
#define X86_EFLAGS_IF	0x200UL
#define X86_EFLAGS_IOPL	0x3000UL
#define X86_EFLAGS_NT	0x4000UL
#define X86_EFLAGS_RF	0x10000UL
#define X86_EFLAGS_VM	0x20000UL

/* FATAL hypercall reasons (docs/hypercall-abi.md). */
#define FATAL_NO_GATE		1	/* no usable IDT gate for a vector: the guest would triple fault */
#define FATAL_WEDGE_EXCEPTION	2	/* an exception in the runtime itself */
#define FATAL_STACK		3	/* nesting deeper than the runtime's stack areas */
#define FATAL_DOUBLE		4	/* an exception while delivering an exception */

/* Runtime symbols (entry.S). */
extern char wedge_tail_decided[], wedge_tail_ret[];
extern char wedge_halt1_start[], wedge_halt1_end[], wedge_halt2_start[], wedge_halt2_end[];
extern char wedge_entries[], wedge_text_end[];

static inline uint64_t hypercall(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	HCALL64(HC_ARG) = a0;
	HCALL64(HC_ARG + 8) = a1;
	HCALL64(HC_ARG + 16) = a2;
	HCALL64(HC_NR) = nr;
	VCPU64(VCPU_N_HYPERCALLS)++;
	asm volatile("outb %%al, %0" : : "i" (HC_PORT) : "memory");
	return HCALL64(HC_RET);
}

#endif
