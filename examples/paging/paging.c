/*
 * paging - own page tables, CR3 switches, invlpg, demand paging, and a CPL3 task.
 *
 * 1. Builds a new address space (kernel high half with 4 KiB pages, the user text at
 *    USER_TEXT_VA, nothing identity-mapped) and switches CR3 to it.
 * 2. Touches KDEMAND_TOUCH pages of a kernel demand region: each access faults (#PF, CR2) and
 *    the handler maps a fresh zeroed page.
 * 3. Remaps one page to another frame by rewriting its PTE: invlpg makes the change visible;
 *    a CR3 reload flushes it back.
 * 4. Write-protect: a write to a read-only page faults (CR0.WP) and the handler makes it
 *    writable (copy-on-write's first half), then the write is retried.
 * 5. Runs the user task of usertask.S at CPL3: it enters the kernel with syscall (returning by
 *    iretq), and its heap and stack pages are mapped on demand by the #PF handler, which runs on
 *    the TSS rsp0 stack.
 *
 * Everything printed is deterministic; the checksum covers every fault and system call in
 * order (docs/examples.md).
 */
#include "kernel.h"
#include "sys.h"

#define POOL_PAGES      64
#define KDEMAND_VA      0xffffff0000000000UL    /* kernel demand region (PML4 slot 510) */
#define KDEMAND_PAGES   8
#define KDEMAND_TOUCH   4
#define REMAP_VA        (KDEMAND_VA + 0x100000)
#define WP_VA           (KDEMAND_VA + 0x200000)
#define USER_LIMIT      0x0000800000000000UL
#define WRITE_MAX       256
#define EFAULT          14

/* Event tags (docs/examples.md, "paging checksum"). */
enum {
	EV_CR3 = 0x01,          /* value: 1 when CR3 reads back the new root */
	EV_KFAULT = 0x02,       /* value: page index << 8 | error code & 7 */
	EV_REMAP = 0x03,        /* value: word read after each PTE change */
	EV_WPFAULT = 0x04,      /* value: error code & 7 */
	EV_UFAULT = 0x05,       /* value: region << 16 | page index << 8 | error code & 7 */
	EV_SYSCALL = 0x06,      /* value: number << 16 | detail (write: length, exit: status) */
	EV_EXIT = 0x07,         /* value: exit status */
};

static uint8_t page_pool[POOL_PAGES][PAGE_SIZE] __aligned(PAGE_SIZE);
static uint64_t *pml4;
static uint64_t checksum = CSUM_INIT;
static unsigned int kernel_faults, user_faults, wp_faults, syscalls;
static int user_running;

extern char user_main[];

static void record(uint32_t tag, uint32_t value)
{
	checksum = csum_event(checksum, tag, value);
}

static int in_range(uint64_t va, uint64_t base, uint64_t pages)
{
	return va >= base && va < base + pages * PAGE_SIZE;
}

/* Which demand-paged user region va is in: 1 heap, 2 stack, 0 none. */
static int user_region(uint64_t va, uint64_t *index)
{
	if (in_range(va, USER_HEAP_VA, USER_HEAP_PAGES)) {
		*index = (va - USER_HEAP_VA) / PAGE_SIZE;
		return 1;
	}
	uint64_t stack_base = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE;
	if (in_range(va, stack_base, USER_STACK_PAGES)) {
		*index = (USER_STACK_TOP - 1 - va) / PAGE_SIZE;
		return 2;
	}
	return 0;
}

static void page_fault(struct trap_frame *frame)
{
	uint64_t va = native_read_cr2();
	uint32_t err = (uint32_t)frame->error_code & 7;
	uint64_t index;
	int region;

	if (syscall_fault_fixup(frame, va))
		return;
	if (!(err & PF_PROT) && in_range(va, KDEMAND_VA, KDEMAND_PAGES) && !user_mode(frame)) {
		index = (va - KDEMAND_VA) / PAGE_SIZE;
		map_page(pml4, va & ~(PAGE_SIZE - 1), __pa(page_alloc()), PTE_W);
		kernel_faults++;
		record(EV_KFAULT, (uint32_t)(index << 8) | err);
		return;
	}
	if (va >> 12 == WP_VA >> 12 && err == (PF_PROT | PF_WRITE) && !user_mode(frame)) {
		*pte_lookup(pml4, WP_VA, 0, 0) |= PTE_W;
		__invlpg(WP_VA);
		wp_faults++;
		record(EV_WPFAULT, err);
		return;
	}
	if (!(err & PF_PROT) && user_running && (region = user_region(va, &index))) {
		map_page(pml4, va & ~(PAGE_SIZE - 1), __pa(page_alloc()), PTE_U | PTE_W);
		user_faults++;
		record(EV_UFAULT, (uint32_t)(region << 16) | (uint32_t)(index << 8) | err);
		return;
	}
	if (!user_mode(frame) && fixup_exception(frame))
		return;
	if (user_mode(frame)) {
		kprintf("paging: user task killed: page fault at 0x%lx, error 0x%x, rip 0x%lx\n",
			va, err, frame->rip);
		user_running = 0;
		return_from_user((uint64_t)-1);
	}
	die("page fault", frame);
}

static void kernel_demand_test(void)
{
	volatile uint64_t *base = (volatile uint64_t *)KDEMAND_VA;

	for (unsigned int i = 0; i < KDEMAND_TOUCH; i++)
		base[i * PAGE_SIZE / 8] = 0x1000 + i;
	for (unsigned int i = 0; i < KDEMAND_TOUCH; i++)
		if (base[i * PAGE_SIZE / 8] != 0x1000 + i)
			panic("paging: demand page %u lost its contents", i);
	if (kernel_faults != KDEMAND_TOUCH)
		panic("paging: %u kernel demand faults, expected %u", kernel_faults, KDEMAND_TOUCH);
	kprintf("paging: kernel demand faults served: %u\n", kernel_faults);
}

static uint64_t read_remap(void)
{
	uint64_t v = *(volatile uint64_t *)REMAP_VA;

	record(EV_REMAP, (uint32_t)v);
	return v;
}

static void remap_test(void)
{
	uint64_t *a = page_alloc(), *b = page_alloc();

	*a = 0x1111;
	*b = 0x2222;
	map_page(pml4, REMAP_VA, __pa(a), PTE_W);
	uint64_t *pte = pte_lookup(pml4, REMAP_VA, 0, 0);
	uint64_t v1 = read_remap();             /* the TLB now holds REMAP_VA -> a */

	*pte = __pa(b) | PTE_P | PTE_W;
	__invlpg(REMAP_VA);
	uint64_t v2 = read_remap();

	*pte = __pa(a) | PTE_P | PTE_W;
	native_write_cr3(native_read_cr3());    /* full flush */
	uint64_t v3 = read_remap();

	if (v1 != 0x1111 || v2 != 0x2222 || v3 != 0x1111)
		panic("paging: remap read 0x%lx 0x%lx 0x%lx", v1, v2, v3);
	kprintf("paging: pte remap: 0x%lx, after invlpg 0x%lx, after cr3 reload 0x%lx\n", v1, v2,
		v3);
}

static void write_protect_test(void)
{
	uint64_t *frame = page_alloc();

	*frame = 0x3333;
	map_page(pml4, WP_VA, __pa(frame), 0);          /* present, read-only */
	if (*(volatile uint64_t *)WP_VA != 0x3333)
		panic("paging: read-only page reads 0x%lx", *(volatile uint64_t *)WP_VA);
	*(volatile uint64_t *)WP_VA = 0x4444;           /* faults once, then succeeds */
	if (wp_faults != 1 || *frame != 0x4444)
		panic("paging: write-protect: %u faults, frame holds 0x%lx", wp_faults, *frame);
	kprintf("paging: write-protect fault served, write retried\n");
}

/*
 * Copies len bytes from user memory. A fault on an address that cannot be mapped resumes at
 * the fixup (exception table) and the copy fails. Returns the number of bytes not copied.
 */
static size_t copy_from_user(void *dst, uint64_t src, size_t len)
{
	asm volatile("1: rep movsb\n"
		     "2:\n"
		     _ASM_EXTABLE(1b, 2b)
		     : "+D" (dst), "+S" (src), "+c" (len)
		     : : "memory");
	return len;
}

uint64_t do_syscall(struct trap_frame *frame)
{
	static char buf[WRITE_MAX];
	uint64_t nr = frame->rax, a0 = frame->rdi, a1 = frame->rsi;

	uint64_t detail = nr == SYS_WRITE ? a1 : nr == SYS_EXIT ? a0 : 0;

	syscalls++;
	record(EV_SYSCALL, (uint32_t)((nr & 0xffff) << 16) | (uint32_t)(detail & 0xffff));
	switch (nr) {
	case SYS_WRITE:
		if (a1 > WRITE_MAX || a0 >= USER_LIMIT || a1 > USER_LIMIT - a0)
			return (uint64_t)-EFAULT;
		if (copy_from_user(buf, a0, a1))
			return (uint64_t)-EFAULT;
		serial_write(buf, a1);
		return a1;
	case SYS_GETPID:
		return USER_PID;
	case SYS_EXIT:
		user_running = 0;
		return_from_user(a0);
	default:
		return (uint64_t)-38;   /* ENOSYS */
	}
}

int kernel_main(uint64_t start_info_pa)
{
	(void)start_info_pa;
	serial_init();
	desc_init();
	pic_init();
	syscall_init();
	mm_init(page_pool, POOL_PAGES);
	set_trap_handler(X86_TRAP_PF, page_fault);
	native_write_cr0(native_read_cr0() | X86_CR0_WP);

	pml4 = mm_new_address_space();
	native_write_cr3(__pa(pml4));
	int cr3_ok = native_read_cr3() == __pa(pml4);
	record(EV_CR3, (uint32_t)cr3_ok);
	if (!cr3_ok)
		panic("paging: cr3 reads 0x%lx, expected 0x%lx", native_read_cr3(), __pa(pml4));
	kprintf("paging: switched cr3 to new page tables\n");

	kernel_demand_test();
	remap_test();
	write_protect_test();

	kprintf("paging: entering user mode\n");
	user_running = 1;
	uint64_t status = enter_user(USER_TEXT_ADDR(user_main), USER_STACK_TOP);
	record(EV_EXIT, (uint32_t)status);
	kprintf("paging: user task exited with status %lu\n", status);
	kprintf("paging: syscalls=%u user-page-faults=%u\n", syscalls, user_faults);

	const uint64_t expected = USER_PID * (USER_TOUCH_PAGES * (USER_TOUCH_PAGES + 1) / 2);
	if (status != expected)
		panic("paging: user exit status %lu, expected %lu", status, expected);
	if (syscalls != 4 || user_faults != USER_TOUCH_PAGES + 1)
		panic("paging: %u syscalls and %u user faults, expected 4 and %u", syscalls,
		      user_faults, USER_TOUCH_PAGES + 1);
	kprintf("paging: pages used %u of %u\n", (unsigned int)(POOL_PAGES - pages_free()),
		POOL_PAGES);
	kprintf("paging: checksum=0x%016lx\n", checksum);
	return EXIT_OK;
}
