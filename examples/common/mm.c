/*
 * mm.c - a page-frame pool and four-level page-table helpers.
 *
 * The pool is memory inside the kernel image (a page-aligned .bss array), so its physical
 * address is __pa() of its kernel address and page tables allocated from it are reachable
 * through the high-half mapping every address space here keeps.
 */
#include "kernel.h"

static uint8_t *pool_next, *pool_end;

void mm_init(void *pool, size_t npages)
{
	pool_next = pool;
	pool_end = (uint8_t *)pool + npages * PAGE_SIZE;
}

size_t pages_free(void)
{
	return (size_t)(pool_end - pool_next) / PAGE_SIZE;
}

void *page_alloc(void)
{
	if (pool_next >= pool_end)
		panic("page_alloc: page pool exhausted");
	void *page = pool_next;
	pool_next += PAGE_SIZE;
	memset(page, 0, PAGE_SIZE);
	return page;
}

static unsigned int pt_index(uint64_t va, int level)
{
	return (va >> (12 + 9 * level)) & 511;
}

/*
 * Returns a pointer to the level-1 entry (PTE) for `va`, creating missing tables with
 * `table_flags` when `create` is set; NULL if a table is missing and `create` is clear.
 * Panics when a large page covers va.
 */
uint64_t *pte_lookup(uint64_t *pml4, uint64_t va, int create, uint64_t table_flags)
{
	uint64_t *table = pml4;

	for (int level = 3; level > 0; level--) {
		uint64_t *entry = &table[pt_index(va, level)];
		if (!(*entry & PTE_P)) {
			if (!create)
				return NULL;
			*entry = __pa(page_alloc()) | table_flags | PTE_P;
		} else if (*entry & PTE_PS) {
			panic("pte_lookup: 0x%lx is inside a large page", va);
		}
		table = __va(*entry & PTE_ADDR_MASK);
	}
	return &table[pt_index(va, 0)];
}

void map_page(uint64_t *pml4, uint64_t va, uint64_t pa, uint64_t flags)
{
	uint64_t table_flags = PTE_W | (flags & PTE_U);

	*pte_lookup(pml4, va, 1, table_flags) = (pa & PTE_ADDR_MASK) | flags | PTE_P;
}

/*
 * A new address space: the kernel (physical 0 .. KERNEL_MAPPED_PHYS at KERNEL_VMA, 4 KiB
 * pages, supervisor only) and the .user pages at USER_TEXT_VA (read-only, user). Nothing is
 * identity-mapped. Returns the PML4 (load __pa() of it into CR3).
 */
uint64_t *mm_new_address_space(void)
{
	uint64_t kernel_end_pa = __pa(__kernel_end);

	if (kernel_end_pa > KERNEL_MAPPED_PHYS)
		panic("mm: kernel image ends at 0x%lx, beyond the 0x%lx mapped", kernel_end_pa,
		      KERNEL_MAPPED_PHYS);
	uint64_t *pml4 = page_alloc();

	/* One page table covers the 2 MiB: fill it in one pass. */
	uint64_t *pt = pte_lookup(pml4, KERNEL_VMA, 1, PTE_W);
	for (unsigned int i = 0; i < KERNEL_MAPPED_PHYS / PAGE_SIZE; i++)
		pt[i] = ((uint64_t)i * PAGE_SIZE) | PTE_P | PTE_W;

	for (char *p = __user_start; p < __user_end; p += PAGE_SIZE)
		map_page(pml4, USER_TEXT_VA + (uint64_t)(p - __user_start), __pa(p), PTE_U);
	return pml4;
}
