/*
 * lib.c - string helpers, exit and panic.
 *
 * memset/memcpy use the string instructions, as Linux's x86-64 versions do: under an emulating
 * host one `rep stos` is far cheaper than a compiled loop.
 */
#include "kernel.h"

void *memset(void *s, int c, size_t n)
{
	void *d = s;

	asm volatile("rep stosb" : "+D" (d), "+c" (n) : "a" (c) : "memory");
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	asm volatile("rep movsb" : "+D" (d), "+S" (src), "+c" (n) : : "memory");
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
