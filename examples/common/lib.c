/*
 * lib.c - string helpers, exit and panic.
 *
 * memset/memcpy use the string instructions, eight bytes at a time, as Linux's x86-64 versions
 * do: under an emulating host one `rep stosq` is far cheaper than a compiled loop.
 */
#include "kernel.h"

void *memset(void *s, int c, size_t n)
{
	uint64_t pattern = 0x0101010101010101ULL * (uint8_t)c;
	size_t quads = n >> 3;
	void *d = s;

	asm volatile("rep stosq\n\t"
		     "movl %k[tail], %%ecx\n\t"
		     "rep stosb"
		     : "+D" (d), "+c" (quads)
		     : "a" (pattern), [tail] "r" ((uint32_t)(n & 7))
		     : "memory");
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	size_t quads = n >> 3;
	void *d = dst;

	asm volatile("rep movsq\n\t"
		     "movl %k[tail], %%ecx\n\t"
		     "rep movsb"
		     : "+D" (d), "+S" (src), "+c" (quads)
		     : [tail] "r" ((uint32_t)(n & 7))
		     : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/* Ends the VM: a 32-bit write of the status to the debug-exit port. */
__noreturn void guest_exit(uint32_t status)
{
	outl(status, DEBUG_EXIT_PORT);
	for (;;) {
		native_irq_disable();
		native_halt();
	}
}

__noreturn void panic(const char *fmt, ...)
{
	va_list ap;

	native_irq_disable();
	kprintf("panic: ");
	va_start(ap, fmt);
	kvprintf(fmt, ap);
	va_end(ap);
	kprintf("\n");
	guest_exit(EXIT_PANIC);
}
