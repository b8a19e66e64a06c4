/* Test input for the DWARF rewrite tests: loops, inlining, hot/cold splitting, a switch, static
 * and thread-local data, variadic calls, alloca (frame-pointer CFA), recursion, and inline asm
 * with virtualization-sensitive instructions. Compiled with several gcc flag sets. */
#include <stdarg.h>
#include <stddef.h>

static int table[64];
static __thread int tls_counter;
int global_flag;

extern void sink(int);
extern void sink_ptr(void *);
extern int vsum(int n, ...);

static inline unsigned long save_flags(void)
{
	unsigned long f;
	asm volatile("pushf; pop %0" : "=r"(f)::"memory");
	return f;
}

static inline void restore_flags(unsigned long f)
{
	asm volatile("push %0; popf" ::"r"(f) : "memory", "cc");
}

static inline void irq_off(void) { asm volatile("cli" ::: "memory"); }
static inline void irq_on(void) { asm volatile("sti" ::: "memory"); }

__attribute__((noinline)) int helper(int x)
{
	int s = 0;
	for (int i = 0; i < x; i++) {
		s += i * table[i & 63];
		if (s > 1000)
			s -= 7;
	}
	return s;
}

static inline int inl(int a) { return a * 3 + table[a & 63]; }

__attribute__((noinline)) int locked_update(int v)
{
	unsigned long f = save_flags();
	irq_off();
	table[v & 63] += v;
	tls_counter++;
	int r = table[(v + 1) & 63];
	restore_flags(f);
	return r;
}

int work(int n)
{
	int r = 0;
	if (__builtin_expect(n > 100, 0)) {
		r = helper(n) + inl(n);
		sink(r);
		sink(vsum(3, r, n, global_flag));
	} else {
		for (int i = 0; i < n; i++)
			r += inl(i);
	}
	return r;
}

int dispatch(int op, int a, int b)
{
	switch (op) {
	case 0: return a + b;
	case 1: return a - b;
	case 2: return a * b;
	case 3: return b ? a / b : 0;
	case 4: return a << (b & 31);
	case 5: return a >> (b & 31);
	case 6: return locked_update(a) + b;
	case 7: return helper(a + b);
	default: return -1;
	}
}

int with_alloca(int n)
{
	char *p = __builtin_alloca(n + 16);
	for (int i = 0; i < n; i++)
		p[i] = (char)i;
	sink_ptr(p);
	return p[n / 2];
}

int fib(int n)
{
	if (n < 2)
		return n;
	return fib(n - 1) + fib(n - 2);
}

int vsum(int n, ...)
{
	va_list ap;
	int s = 0;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		s += va_arg(ap, int);
	va_end(ap);
	return s;
}

void idle_loop(volatile int *stop)
{
	while (!*stop) {
		irq_on();
		asm volatile("hlt" ::: "memory");
		irq_off();
		sink(*stop);
	}
	irq_on();
}

int main(int argc, char **argv)
{
	(void)argv;
	global_flag = argc;
	return work(argc * 50) + helper(3) + dispatch(argc, 2, 3) + with_alloca(argc) + fib(argc);
}
