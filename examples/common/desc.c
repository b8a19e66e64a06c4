/*
 * desc.c - the final GDT (kernel and user segments, TSS), segment reloads, IDT.
 */
#include "kernel.h"

struct tss64 {
	uint32_t reserved0;
	uint64_t rsp0, rsp1, rsp2;
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t io_bitmap_base;
} __attribute__((packed));

struct gate_desc {
	uint16_t offset_low;
	uint16_t segment;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_middle;
	uint32_t offset_high;
	uint32_t reserved;
} __attribute__((packed));

static uint64_t gdt[GDT_ENTRIES] __aligned(16);
static struct tss64 tss __aligned(16);
static struct gate_desc idt[NR_VECTORS] __aligned(16);

extern const uint64_t trap_stubs[NR_VECTORS];
extern char boot_stack_top[];

/* Reload CS with a far return, as Linux's loadsegment/lretq sequence does. */
static void reload_segments(void)
{
	unsigned long tmp;

	asm volatile("movl %1, %%ds\n\t"
		     "movl %1, %%es\n\t"
		     "movl %1, %%ss\n\t"
		     "movl %2, %%fs\n\t"
		     "movl %2, %%gs\n\t"
		     "pushq %3\n\t"
		     "leaq 1f(%%rip), %0\n\t"
		     "pushq %0\n\t"
		     "lretq\n"
		     "1:"
		     : "=&r" (tmp)
		     : "r" (KERNEL_DS), "r" (0), "i" (KERNEL_CS)
		     : "memory");
}

void set_kernel_stack(uint64_t top)
{
	tss.rsp0 = top;
}

void desc_init(void)
{
	uint64_t base = (uint64_t)&tss;
	uint64_t limit = sizeof(tss) - 1;

	gdt[0] = 0;
	gdt[KERNEL_CS >> 3] = 0x00af9b000000ffffULL;    /* 64-bit code, DPL 0 */
	gdt[KERNEL_DS >> 3] = 0x00cf93000000ffffULL;    /* data, DPL 0 */
	gdt[USER_DS >> 3] = 0x00cff3000000ffffULL;      /* data, DPL 3 */
	gdt[USER_CS >> 3] = 0x00affb000000ffffULL;      /* 64-bit code, DPL 3 */
	gdt[TSS_SEL >> 3] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			    (0x89ULL << 40) /* present, 64-bit TSS available */ |
			    (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[(TSS_SEL >> 3) + 1] = base >> 32;

	tss.io_bitmap_base = sizeof(tss);       /* no I/O bitmap: user in/out fault */
	tss.rsp0 = (uint64_t)boot_stack_top;    /* replaced by enter_user() */

	struct desc_ptr gdtr = { sizeof(gdt) - 1, (uint64_t)gdt };
	native_load_gdt(&gdtr);
	reload_segments();
	native_load_tr_desc(TSS_SEL);

	for (unsigned int v = 0; v < NR_VECTORS; v++) {
		uint64_t h = trap_stubs[v];
		idt[v] = (struct gate_desc){
			.offset_low = (uint16_t)h,
			.segment = KERNEL_CS,
			.ist = 0,
			.type_attr = 0x8e,      /* present, DPL 0, 64-bit interrupt gate */
			.offset_middle = (uint16_t)(h >> 16),
			.offset_high = (uint32_t)(h >> 32),
		};
	}
	struct desc_ptr idtr = { sizeof(idt) - 1, (uint64_t)idt };
	native_load_idt(&idtr);
}
