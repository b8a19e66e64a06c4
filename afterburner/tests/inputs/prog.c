/* A user-space program whose hot paths hold sensitive instructions that run at CPL3
 * (rdtsc, rdtscp, cpuid, pushf/popf, mov from a segment register, lsl, verr), jump tables
 * from big switches, calls between static functions of one section, function pointers,
 * and loops whose short branches must widen once sites inside them are padded.
 * Its output does not depend on timing, so the burnt build must print exactly what the
 * native build prints. Code that would fault at CPL3 (cli, sti; hlt, in, out) is only
 * reachable with an impossible argument count. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t rdtscp(void)
{
	uint32_t lo, hi, aux;
	__asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(aux));
	return ((uint64_t)hi << 32) | lo;
}

static inline unsigned long save_flags(void)
{
	unsigned long f;
	__asm__ volatile("pushf; pop %0" : "=r"(f)::"memory");
	return f;
}

static inline void restore_flags(unsigned long f)
{
	__asm__ volatile("push %0; popf" ::"g"(f) : "memory", "cc");
}

static inline void cpuid(unsigned leaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline unsigned short read_ds(void)
{
	unsigned short s;
	__asm__ volatile("mov %%ds, %0" : "=r"(s));
	return s;
}

static inline unsigned long segment_limit(unsigned long sel)
{
	unsigned long lim = 0;
	__asm__ volatile("lsl %1, %0" : "+r"(lim) : "r"(sel) : "cc");
	return lim;
}

static inline int readable(unsigned short sel)
{
	unsigned char ok;
	__asm__ volatile("verr %1; setz %0" : "=q"(ok) : "r"(sel) : "cc");
	return ok;
}

/* A big switch: gcc -O2 makes a jump table (in .rodata, pointing into .text). */
__attribute__((noinline)) static long dispatch(int op, long x)
{
	switch (op) {
	case 0: return x + 1;
	case 1: return x * 3 + (long)(save_flags() & 0x2);
	case 2: return x - 7 + (rdtsc() != 0);
	case 3: return x ^ 0x55;
	case 4: { unsigned a, b, c, d; cpuid(0, &a, &b, &c, &d); return x + (b != 0); }
	case 5: return x << 2;
	case 6: { unsigned long f = save_flags(); restore_flags(f); return x + (long)((f >> 9) & 1); }
	case 7: return x / 3;
	case 8: return x % 11 + (rdtscp() != 0);
	case 9: return -x;
	case 10: return x + read_ds() * 0 + 10;
	case 11: return x * x;
	case 12: return x + 12 + (rdtsc() > 0);
	case 13: return x & 0xff;
	case 14: return x | 0x100;
	case 15: { unsigned a, b, c, d; cpuid(1, &a, &b, &c, &d); return x + ((d >> 0) & 1); }
	case 16: return x + 16;
	case 17: return x - 17;
	case 18: return x * 18 + (long)(save_flags() & 0x200 ? 1 : 0);
	case 19: return x + 19 + (segment_limit(read_ds()) == 0);
	default: return -1;
	}
}

/* A second switch with more cases and no sites: its table still points into moved code. */
__attribute__((noinline)) static const char *name_of(int n)
{
	switch (n) {
	case 0: return "zero";
	case 1: return "one";
	case 2: return "two";
	case 3: return "three";
	case 4: return "four";
	case 5: return "five";
	case 6: return "six";
	case 7: return "seven";
	case 8: return "eight";
	case 9: return "nine";
	case 10: return "ten";
	case 11: return "eleven";
	default: return "many";
	}
}

/* A loop whose body holds many sites: its backward short branch must widen. */
__attribute__((noinline)) static uint64_t spin(int n)
{
	uint64_t nonzero = 0;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = rdtsc(), t1 = rdtsc(), t2 = rdtsc(), t3 = rdtsc();
		uint64_t t4 = rdtsc(), t5 = rdtsc(), t6 = rdtsc(), t7 = rdtsc();
		uint64_t t8 = rdtsc(), t9 = rdtsc(), t10 = rdtsc(), t11 = rdtsc();
		uint64_t t12 = rdtsc(), t13 = rdtsc(), t14 = rdtsc(), t15 = rdtsc();
		nonzero += (t0 | t1 | t2 | t3 | t4 | t5 | t6 | t7 | t8 | t9 | t10 | t11 | t12 | t13 | t14 | t15) != 0;
		nonzero += t15 >= t0;
	}
	return nonzero;
}

/* A small loop with `pushf; popf` sites (each padded from 1 to 16 bytes): its backward
 * short branch and the forward one over the second block must widen. */
__attribute__((noinline)) static unsigned long widen_loop(int n)
{
	unsigned long acc = 0;
	for (int i = 0; i < n; i++) {
		__asm__ volatile("pushf; popf; pushf; popf" ::: "memory", "cc");
		acc += i & 3;
		if (acc & 0x10) {
			__asm__ volatile("pushf; popf; pushf; popf" ::: "memory", "cc");
			acc ^= 1;
		}
		__asm__ volatile("pushf; popf" ::: "memory", "cc");
	}
	return acc;
}

/* Flags round trips in a tight loop: pushf/popf sites between short branches. */
__attribute__((noinline)) static unsigned long flag_loop(int n)
{
	unsigned long acc = 0;
	for (int i = 0; i < n; i++) {
		unsigned long f = save_flags();
		restore_flags(f);
		acc += (f & 0x202);
		if (i & 1)
			acc ^= save_flags() & 0x2;
	}
	return acc;
}

/* Sites that would fault at CPL3: present, padded, never run. */
__attribute__((noinline)) static void privileged(void)
{
	__asm__ volatile("cli");
	__asm__ volatile("sti; hlt");
	__asm__ volatile("outb %%al, $0x80" ::"a"(0));
	unsigned char v;
	__asm__ volatile("inb $0x71, %0" : "=a"(v));
	(void)v;
}

typedef long (*op_fn)(long);
static long twice(long x) { return dispatch(0, x) * 2; }
static long thrice(long x) { return dispatch(3, x) * 3; }
static long flagged(long x) { return x + (long)(save_flags() & 0x2); }
static op_fn table[] = { twice, thrice, flagged };

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 1000)
		privileged();
	unsigned a, b, c, d;
	char vendor[13];
	cpuid(0, &a, &b, &c, &d);
	memcpy(vendor, &b, 4);
	memcpy(vendor + 4, &d, 4);
	memcpy(vendor + 8, &c, 4);
	vendor[12] = 0;
	printf("vendor %s max-leaf-positive %d\n", vendor, a > 0);
	long sum = 0;
	for (int op = 0; op < 22; op++) {
		for (long x = -3; x < 40; x += 7) {
			long r = dispatch(op, x);
			sum += r;
			printf("dispatch(%d,%ld)=%ld\n", op, x, r);
		}
	}
	for (int n = 0; n < 14; n++)
		printf("name_of(%d)=%s\n", n, name_of(n));
	printf("spin=%llu\n", (unsigned long long)spin(1000));
	printf("flag_loop=%lu\n", flag_loop(1001));
	printf("widen_loop=%lu\n", widen_loop(777));
	for (int i = 0; i < 3; i++)
		printf("table[%d](5)=%ld\n", i, table[i](5));
	printf("ds-readable=%d\n", readable(read_ds()) || read_ds() == 0);
	printf("sum=%ld\n", sum);
	return 0;
}
