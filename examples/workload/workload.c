/*
 * workload - a kernel that spends its time the way kernels do: in ordinary code, with the
 * interrupt-flag idioms of kernel locking in its hot paths and a timer ticking underneath.
 *
 * The other examples each exercise one mechanism (a print, a tick, a page fault, one
 * sensitive operation in a loop) and spend their time in exits. This one is what the kvm
 * backend is for (docs/backends.md): a guest whose run time is mostly CPL0 code. It runs, with
 * the 8254 ticking at TICK_HZ into an IRQ 0 handler:
 *
 *   1. mm:    a buddy page allocator over a 16 MiB pool (struct page array, free lists of
 *             orders 0..MAX_ORDER, buddy merging), driven through ROUNDS_MM random
 *             alloc/free operations; each allocation stamps its pages, each free checks them;
 *             every operation takes the zone lock with spin_lock_irqsave (pushf; cli ... popf).
 *   2. slab:  size-class caches carved from order-0 pages, and a dentry-like hash table of
 *             NR_NAMES names (insert, lookup hits and misses, delete), each bucket under a
 *             lock taken with spin_lock_irqsave.
 *   3. crc:   a table-driven CRC-32 over CRC_BYTES of the pool, and copy_page/clear_page
 *             over it (string instructions, as Linux's).
 *
 * Every phase folds what it computed into the checksum (docs/examples.md, "workload"), never a
 * count that depends on timing; cycles and ticks go on `bench` lines.
 */
#include "kernel.h"

#define TICK_HZ   250
#define MAX_ORDER 10
#define POOL_PAGES 4096                 /* 16 MiB */
#define ROUNDS_MM 5000
#define NR_SLOTS  256
#define NR_NAMES  2500
#define HASH_BITS 10
#define CRC_BYTES (32 * 1024)

static uint64_t checksum = CSUM_INIT;
static volatile uint64_t jiffies;

/* ---- locking: Linux's spin_lock_irqsave shape on one CPU ------------------------------- */

typedef struct {
	volatile uint32_t locked;
} spinlock_t;

static unsigned int lock_contended;

static __attribute__((always_inline)) inline unsigned long spin_lock_irqsave(spinlock_t *l)
{
	unsigned long flags;
	local_irq_save(flags);
	uint32_t old = 1;
	asm volatile("xchgl %0, %1" : "+r" (old), "+m" (l->locked) : : "memory");
	if (old)
		lock_contended++;       /* one CPU, interrupts off: never, unless a bug */
	return flags;
}

static __attribute__((always_inline)) inline void spin_unlock_irqrestore(spinlock_t *l,
									  unsigned long flags)
{
	barrier();
	l->locked = 0;
	local_irq_restore(flags);
}

/* ---- a pseudo-random sequence (the same on every machine) -------------------------------- */

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint32_t rng(void)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(rng_state >> 33);
}

/* ---- the timer ---------------------------------------------------------------------------- */

static void timer_interrupt(struct trap_frame *frame)
{
	(void)frame;
	jiffies++;
	pic_eoi(0);
}

/* ---- 1. a buddy page allocator ------------------------------------------------------------- */

struct list_head {
	struct list_head *next, *prev;
};

static inline void list_init(struct list_head *h)
{
	h->next = h->prev = h;
}

static inline void list_add(struct list_head *n, struct list_head *h)
{
	n->next = h->next;
	n->prev = h;
	h->next->prev = n;
	h->next = n;
}

static inline void list_del(struct list_head *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

static inline int list_empty(const struct list_head *h)
{
	return h->next == h;
}

#define PG_BUDDY 0x1    /* head of a free block, on free_area[order] */
#define PG_HEAD  0x2    /* head of an allocated block */

struct page {
	struct list_head lru;
	uint32_t order;
	uint32_t flags;
	uint64_t stamp;
};

/*
 * The pool is guest RAM above the kernel image (POOL_PHYS, found in the PVH memory map), not
 * .bss: clearing 16 MiB of .bss in head64.S would be the slowest part of the boot on an
 * emulating host, and nothing here needs the pool zeroed.
 */
#define POOL_PHYS 0x2000000UL           /* 32 MiB */
static uint8_t *pool;
/* The struct page array follows the pool (Linux allocates its memmap at boot too, from
 * memblock, and initializes it in code: memmap_init). */
#define MEMMAP_PHYS (POOL_PHYS + POOL_PAGES * PAGE_SIZE)
static struct page *pages;
static struct list_head free_area[MAX_ORDER + 1];
static unsigned long nr_free[MAX_ORDER + 1];
static spinlock_t zone_lock;

static inline unsigned long page_index(const struct page *p)
{
	return (unsigned long)(p - pages);
}

static inline void *page_address(const struct page *p)
{
	return pool + page_index(p) * PAGE_SIZE;
}

static void buddy_init(void)
{
	for (unsigned long i = 0; i < POOL_PAGES; i++)
		pages[i] = (struct page){ .lru = { &pages[i].lru, &pages[i].lru } };
	for (unsigned int o = 0; o <= MAX_ORDER; o++)
		list_init(&free_area[o]);
	for (unsigned long i = 0; i < POOL_PAGES; i += 1UL << MAX_ORDER) {
		pages[i].order = MAX_ORDER;
		pages[i].flags = PG_BUDDY;
		list_add(&pages[i].lru, &free_area[MAX_ORDER]);
		nr_free[MAX_ORDER]++;
	}
}

static struct page *alloc_pages(unsigned int order)
{
	unsigned long flags = spin_lock_irqsave(&zone_lock);
	struct page *page = NULL;

	for (unsigned int o = order; o <= MAX_ORDER; o++) {
		if (list_empty(&free_area[o]))
			continue;
		page = (struct page *)free_area[o].next;
		list_del(&page->lru);
		nr_free[o]--;
		page->flags = 0;
		/* Split: the upper halves go back on the lower free lists. */
		while (o > order) {
			o--;
			struct page *buddy = page + (1UL << o);
			buddy->order = o;
			buddy->flags = PG_BUDDY;
			list_add(&buddy->lru, &free_area[o]);
			nr_free[o]++;
		}
		page->order = order;
		page->flags = PG_HEAD;
		break;
	}
	spin_unlock_irqrestore(&zone_lock, flags);
	return page;
}

static void free_pages(struct page *page, unsigned int order)
{
	unsigned long flags = spin_lock_irqsave(&zone_lock);
	unsigned long idx = page_index(page);

	if (!(page->flags & PG_HEAD) || page->order != order)
		panic("workload: free_pages(%lu, %u): not an allocated block of that order", idx,
		      order);
	page->flags = 0;
	while (order < MAX_ORDER) {
		unsigned long buddy_idx = idx ^ (1UL << order);
		struct page *buddy = &pages[buddy_idx];
		if (!(buddy->flags & PG_BUDDY) || buddy->order != order)
			break;
		list_del(&buddy->lru);
		buddy->flags = 0;
		nr_free[order]--;
		idx &= ~(1UL << order);
		order++;
	}
	pages[idx].order = order;
	pages[idx].flags = PG_BUDDY;
	list_add(&pages[idx].lru, &free_area[order]);
	nr_free[order]++;
	spin_unlock_irqrestore(&zone_lock, flags);
}

/* Writes a pattern derived from `stamp` into the first words of every page of the block. */
static void stamp_block(struct page *page, unsigned int order, uint64_t stamp)
{
	page->stamp = stamp;
	for (unsigned long i = 0; i < (1UL << order); i++) {
		uint64_t *w = (uint64_t *)((uint8_t *)page_address(page) + i * PAGE_SIZE);
		for (unsigned int k = 0; k < 8; k++)
			w[k] = stamp ^ (i << 8) ^ k;
	}
}

static void check_block(struct page *page, unsigned int order)
{
	for (unsigned long i = 0; i < (1UL << order); i++) {
		const uint64_t *w =
			(const uint64_t *)((uint8_t *)page_address(page) + i * PAGE_SIZE);
		for (unsigned int k = 0; k < 8; k++)
			if (w[k] != (page->stamp ^ (i << 8) ^ k))
				panic("workload: page %lu of block %lu was overwritten",
				      page_index(page) + i, page_index(page));
	}
}

static unsigned long free_pages_total(void)
{
	unsigned long n = 0;
	for (unsigned int o = 0; o <= MAX_ORDER; o++)
		n += nr_free[o] << o;
	return n;
}

static void phase_mm(void)
{
	static struct {
		struct page *page;
		unsigned int order;
	} slots[NR_SLOTS];
	unsigned long failed = 0;

	for (unsigned int r = 0; r < ROUNDS_MM; r++) {
		uint32_t x = rng();
		unsigned int s = x % NR_SLOTS;
		/* Mostly single pages, as in a running kernel; now and then up to order 4. */
		unsigned int order = (x >> 12) & 7;
		order = order < 5 ? 0 : order - 4;
		order += ((x >> 16) & 15) == 0 ? 2 : 0;
		if (slots[s].page) {
			check_block(slots[s].page, slots[s].order);
			checksum = csum_mix(checksum, page_index(slots[s].page) << 8 | slots[s].order);
			free_pages(slots[s].page, slots[s].order);
			slots[s].page = NULL;
		}
		struct page *p = alloc_pages(order);
		if (!p) {
			failed++;
			continue;
		}
		stamp_block(p, order, ((uint64_t)r << 32) | x);
		slots[s].page = p;
		slots[s].order = order;
	}
	for (unsigned int s = 0; s < NR_SLOTS; s++) {
		if (!slots[s].page)
			continue;
		check_block(slots[s].page, slots[s].order);
		free_pages(slots[s].page, slots[s].order);
		slots[s].page = NULL;
	}
	/* Every block merged back: as many order-MAX blocks as at the start. */
	if (free_pages_total() != POOL_PAGES || nr_free[MAX_ORDER] != POOL_PAGES >> MAX_ORDER)
		panic("workload: buddy allocator did not merge back (%lu pages free, %lu top blocks)",
		      free_pages_total(), nr_free[MAX_ORDER]);
	checksum = csum_event(checksum, 0x100, (uint32_t)failed);
	kprintf("workload: mm: %u alloc/free rounds, %lu pages free, all merged\n", ROUNDS_MM,
		free_pages_total());
}

/* ---- 2. slab caches and a dentry-like hash table ------------------------------------------- */

struct kmem_cache {
	unsigned int size;
	void *freelist;            /* free objects, linked through their first word */
	unsigned long pages, objects;
	spinlock_t lock;
};

static struct kmem_cache caches[] = { { 32 }, { 64 }, { 128 }, { 256 } };

static struct page *slab_pages[1024];
static unsigned int nr_slab_pages;

static void *kmalloc(size_t size)
{
	struct kmem_cache *c = caches;
	while (c->size < size)
		c++;
	unsigned long flags = spin_lock_irqsave(&c->lock);
	if (!c->freelist) {
		spin_unlock_irqrestore(&c->lock, flags);
		struct page *p = alloc_pages(0);
		if (!p || nr_slab_pages == ARRAY_SIZE(slab_pages))
			panic("workload: kmalloc(%lu): out of memory", (unsigned long)size);
		slab_pages[nr_slab_pages++] = p;
		flags = spin_lock_irqsave(&c->lock);
		uint8_t *base = page_address(p);
		for (unsigned int off = 0; off + c->size <= PAGE_SIZE; off += c->size) {
			*(void **)(base + off) = c->freelist;
			c->freelist = base + off;
		}
		c->pages++;
	}
	void *obj = c->freelist;
	c->freelist = *(void **)obj;
	c->objects++;
	spin_unlock_irqrestore(&c->lock, flags);
	return obj;
}

static void kfree(void *obj, size_t size)
{
	struct kmem_cache *c = caches;
	while (c->size < size)
		c++;
	unsigned long flags = spin_lock_irqsave(&c->lock);
	*(void **)obj = c->freelist;
	c->freelist = obj;
	c->objects--;
	spin_unlock_irqrestore(&c->lock, flags);
}

struct dentry {
	struct dentry *next;
	uint32_t hash;
	uint32_t len;
	uint64_t ino;
	char name[];
};

static struct dentry *dcache[1 << HASH_BITS];
static spinlock_t dcache_lock[1 << HASH_BITS];

/* Linux's hash_64 over a running string hash (the shape of full_name_hash). */
static uint32_t name_hash(const char *s, unsigned int len)
{
	uint64_t h = 0;
	for (unsigned int i = 0; i < len; i++)
		h = (h + (uint8_t)s[i]) * 0x9e37fffffffc0001ULL;
	return (uint32_t)(h >> 32);
}

static unsigned int make_name(char *buf, unsigned int n)
{
	static const char *const dirs[] = { "usr", "lib", "bin", "etc", "var", "share", "local" };
	const char *d = dirs[n % ARRAY_SIZE(dirs)];
	unsigned int len = 0;
	while (*d)
		buf[len++] = *d++;
	buf[len++] = '-';
	char digits[12];
	unsigned int nd = 0;
	do {
		digits[nd++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	while (nd)
		buf[len++] = digits[--nd];
	return len;
}

static struct dentry *d_lookup(const char *name, unsigned int len)
{
	uint32_t hash = name_hash(name, len);
	unsigned int b = hash >> (32 - HASH_BITS);
	unsigned long flags = spin_lock_irqsave(&dcache_lock[b]);
	struct dentry *d = dcache[b];
	for (; d; d = d->next)
		if (d->hash == hash && d->len == len && memcmp(d->name, name, len) == 0)
			break;
	spin_unlock_irqrestore(&dcache_lock[b], flags);
	return d;
}

static void d_add(const char *name, unsigned int len, uint64_t ino)
{
	struct dentry *d = kmalloc(sizeof(*d) + len);
	d->hash = name_hash(name, len);
	d->len = len;
	d->ino = ino;
	memcpy(d->name, name, len);
	unsigned int b = d->hash >> (32 - HASH_BITS);
	unsigned long flags = spin_lock_irqsave(&dcache_lock[b]);
	d->next = dcache[b];
	dcache[b] = d;
	spin_unlock_irqrestore(&dcache_lock[b], flags);
}

static int d_delete(const char *name, unsigned int len)
{
	uint32_t hash = name_hash(name, len);
	unsigned int b = hash >> (32 - HASH_BITS);
	unsigned long flags = spin_lock_irqsave(&dcache_lock[b]);
	struct dentry **pp = &dcache[b], *d;
	while ((d = *pp) && !(d->hash == hash && d->len == len && memcmp(d->name, name, len) == 0))
		pp = &d->next;
	if (d)
		*pp = d->next;
	spin_unlock_irqrestore(&dcache_lock[b], flags);
	if (d)
		kfree(d, sizeof(*d) + d->len);
	return d != NULL;
}

static void phase_slab(void)
{
	char name[32];
	unsigned int hits = 0, misses = 0, deleted = 0;

	for (unsigned int n = 0; n < NR_NAMES; n++) {
		unsigned int len = make_name(name, n * 7 + 1);
		d_add(name, len, 1000 + n);
	}
	/* Look up every name and as many that are not there (even numbers are never added). */
	for (unsigned int n = 0; n < 2 * NR_NAMES; n++) {
		unsigned int len = make_name(name, n % 2 ? (n / 2) * 7 + 1 : n * 7 + 2);
		struct dentry *d = d_lookup(name, len);
		if (d) {
			hits++;
			checksum = csum_mix(checksum, d->ino);
		} else {
			misses++;
		}
	}
	for (unsigned int n = 0; n < NR_NAMES; n += 3)
		deleted += d_delete(name, make_name(name, n * 7 + 1));
	unsigned int longest = 0, used = 0;
	for (unsigned int b = 0; b < (1U << HASH_BITS); b++) {
		unsigned int chain = 0;
		for (struct dentry *d = dcache[b]; d; d = d->next)
			chain++;
		used += chain != 0;
		longest = chain > longest ? chain : longest;
		checksum = csum_event(checksum, b, chain);
	}
	if (hits != NR_NAMES || misses != NR_NAMES)
		panic("workload: dcache: %u hits, %u misses, expected %u each", hits, misses,
		      NR_NAMES);
	unsigned long objects = 0;
	for (unsigned int i = 0; i < ARRAY_SIZE(caches); i++)
		objects += caches[i].objects;
	kprintf("workload: slab: %u names, %u hits, %u misses, %u deleted, %lu objects live in "
		"%u slab pages; dcache %u/%u buckets used, longest chain %u\n",
		NR_NAMES, hits, misses, deleted, objects, nr_slab_pages, used, 1U << HASH_BITS,
		longest);
}

/* ---- 3. CRC-32 and page copies ------------------------------------------------------------ */

static uint32_t crc_table[256];

static void crc32_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320U ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void phase_crc(void)
{
	crc32_init();
	/* Fill the first CRC_BYTES of the pool from the sequence, copy them page by page to the
	 * next CRC_BYTES (copy_page), CRC both halves, then clear the copy (clear_page). */
	uint32_t *w = (uint32_t *)pool;
	for (size_t i = 0; i < CRC_BYTES / 4; i++)
		w[i] = rng();
	for (size_t off = 0; off < CRC_BYTES; off += PAGE_SIZE)
		memcpy(pool + CRC_BYTES + off, pool + off, PAGE_SIZE);
	uint32_t a = crc32(0, pool, CRC_BYTES);
	uint32_t b = crc32(0, pool + CRC_BYTES, CRC_BYTES);
	if (a != b)
		panic("workload: crc of the copy 0x%08x differs from the original 0x%08x", b, a);
	for (size_t off = 0; off < CRC_BYTES; off += PAGE_SIZE)
		memset(pool + CRC_BYTES + off, 0, PAGE_SIZE);
	if (crc32(0, pool + CRC_BYTES, CRC_BYTES) != crc32(0, pool + 2 * CRC_BYTES, CRC_BYTES))
		panic("workload: cleared pages differ from untouched zero pages");
	checksum = csum_event(checksum, 0x300, a);
	kprintf("workload: crc32 over %u KiB = 0x%08x (copy matches)\n", CRC_BYTES / 1024, a);
}

/* hvm_start_info (PVH boot ABI), version 1: the memory map. */
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

#define HVM_MEMMAP_TYPE_RAM 1
#define BOOT_MAPPED_PHYS (1UL << 30)    /* boot32.S maps physical 0 .. 1 GiB */

/* The pool's memory must be RAM in the PVH memory map and inside the boot mapping. */
static void find_pool(uint64_t start_info_pa)
{
	const uint64_t start = POOL_PHYS,
		       end = MEMMAP_PHYS + POOL_PAGES * sizeof(struct page);

	if (start_info_pa == 0 || start_info_pa > BOOT_MAPPED_PHYS - sizeof(struct hvm_start_info))
		panic("workload: start_info address 0x%lx is outside the boot mapping", start_info_pa);
	const struct hvm_start_info *si = __va(start_info_pa);
	if (si->magic != HVM_START_MAGIC || si->version < 1)
		panic("workload: no PVH memory map (start_info magic 0x%x, version %u)", si->magic,
		      si->version);
	if (si->memmap_entries > 128 ||
	    si->memmap_paddr > BOOT_MAPPED_PHYS - 128 * sizeof(struct hvm_memmap_entry))
		panic("workload: PVH memory map at 0x%lx with %u entries is out of reach",
		      si->memmap_paddr, si->memmap_entries);
	const struct hvm_memmap_entry *e = __va(si->memmap_paddr);
	for (uint32_t i = 0; i < si->memmap_entries; i++)
		if (e[i].type == HVM_MEMMAP_TYPE_RAM && e[i].addr <= start &&
		    e[i].addr + e[i].size >= end) {
			pool = __va(POOL_PHYS);
			pages = __va(MEMMAP_PHYS);
			return;
		}
	panic("workload: needs RAM at physical 0x%lx..0x%lx (at least 48 MiB of guest memory)",
	      start, end);
}

int kernel_main(uint64_t start_info_pa)
{
	serial_init();
	find_pool(start_info_pa);
	desc_init();
	pic_init();
	set_trap_handler(PIC_VECTOR_BASE + 0, timer_interrupt);
	buddy_init();
	kprintf("workload: %u pages in the buddy allocator, timer at %u Hz\n", POOL_PAGES, TICK_HZ);

	pit_start_periodic(TICK_HZ);
	pic_unmask(0);
	native_irq_enable();

	uint64_t t0 = rdtsc();
	phase_mm();
	uint64_t t1 = rdtsc();
	phase_slab();
	uint64_t t2 = rdtsc();
	phase_crc();
	uint64_t t3 = rdtsc();

	native_irq_disable();
	pic_mask_all();
	if (lock_contended)
		panic("workload: a lock was found taken %u times with interrupts off",
		      lock_contended);
	kprintf("bench workload-mm-cycles %lu\n", t1 - t0);
	kprintf("bench workload-slab-cycles %lu\n", t2 - t1);
	kprintf("bench workload-crc-cycles %lu\n", t3 - t2);
	kprintf("bench workload-ticks %lu\n", jiffies);
	kprintf("workload: checksum=0x%016lx\n", checksum);
	return EXIT_OK;
}
