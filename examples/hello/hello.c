/*
 * hello - the smallest example kernel: one line on COM1, then exit status 0.
 *
 * It also checks the PVH boot ABI: %ebx at entry must hold the physical address of a
 * struct hvm_start_info whose magic is HVM_START_MAGIC.
 */
#include "kernel.h"

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
};

/* The boot page tables map physical 0 .. 1 GiB in the high half. */
#define BOOT_MAPPED_PHYS (1UL << 30)

int kernel_main(uint64_t start_info_pa)
{
	serial_init();
	kprintf("hello from afterburn\n");

	if (start_info_pa == 0 || start_info_pa > BOOT_MAPPED_PHYS - sizeof(struct hvm_start_info))
		panic("hello: start_info address 0x%lx is outside the boot mapping", start_info_pa);
	const struct hvm_start_info *si = __va(start_info_pa);
	if (si->magic != HVM_START_MAGIC)
		panic("hello: start_info magic 0x%x, expected 0x%x", si->magic, HVM_START_MAGIC);
	kprintf("hello: pvh start_info magic ok\n");
	return EXIT_OK;
}
