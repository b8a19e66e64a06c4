/* A small kernel-like C file for the verifier tests: inline-asm sensitive instructions
 * (the way Linux writes them), a switch that becomes a jump table, loops, static and global
 * functions, data pointing into code. Compiled with gcc -S by the tests. */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

static inline void cli(void) { asm volatile("cli" ::: "memory"); }
static inline void sti(void) { asm volatile("sti" ::: "memory"); }
static inline void safe_halt(void) { asm volatile("sti; hlt" ::: "memory"); }
static inline u64 save_flags(void)
{
	u64 f;
	asm volatile("pushf; pop %0" : "=rm"(f) :: "memory");
	return f;
}
static inline void restore_flags(u64 f) { asm volatile("push %0; popf" :: "g"(f) : "memory", "cc"); }
static inline void outb(u8 v, unsigned short port) { asm volatile("outb %0, %1" :: "a"(v), "Nd"(port)); }
static inline u8 inb(unsigned short port)
{
	u8 v;
	asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v) { asm volatile("wrmsr" :: "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory"); }
static inline u64 read_cr3(void)
{
	u64 v;
	asm volatile("mov %%cr3, %0" : "=r"(v));
	return v;
}
static inline void write_cr3(u64 v) { asm volatile("mov %0, %%cr3" :: "r"(v) : "memory"); }
static inline void invlpg(void *p) { asm volatile("invlpg (%0)" :: "r"(p) : "memory"); }

volatile u64 counter;
u64 table[64];

void serial_putc(char c)
{
	while (!(inb(0x3fd) & 0x20))
		;
	outb(c, 0x3f8);
}

static void __attribute__((noinline)) puts_(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

int classify_op(int op, int x)
{
	switch (op) {
	case 0: return x + 1;
	case 1: return x * 3;
	case 2: puts_("two\n"); return x - 7;
	case 3: return x ^ 0x55;
	case 4: cli(); counter++; sti(); return x;
	case 5: return (int)rdmsr(0x10 + x);
	case 6: wrmsr(0x20, x); return 0;
	default: return -1;
	}
}

void flush_all(void)
{
	u64 f = save_flags();
	cli();
	for (int i = 0; i < 64; i++) {
		if (table[i] & 1)
			invlpg((void *)table[i]);
		counter += table[i];
	}
	write_cr3(read_cr3());
	restore_flags(f);
}

void idle(void)
{
	for (;;) {
		if (counter > 1000)
			break;
		safe_halt();
	}
	puts_("idle done\n");
}

void (*const handlers[])(void) = { flush_all, idle };
