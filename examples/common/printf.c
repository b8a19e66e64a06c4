/*
 * printf.c - a small printf for the serial console.
 *
 * Conversions: %c %s %d %i %u %x %X %p %%, with flags '0' and '-', a field width, and the
 * length modifiers l, ll and z. Output goes straight to the UART; lines end in "\n" only.
 */
#include <stdbool.h>
#include "kernel.h"

struct out {
	int count;
};

static void put(struct out *o, char c)
{
	serial_putc(c);
	o->count++;
}

static void pad(struct out *o, char c, int n)
{
	while (n-- > 0)
		put(o, c);
}

static void emit_number(struct out *o, uint64_t v, unsigned int base, bool neg, bool upper,
			int width, bool zero, bool left)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char buf[24];
	int n = 0;

	do {
		buf[n++] = digits[v % base];
		v /= base;
	} while (v);
	int len = n + (neg ? 1 : 0);
	if (!left && !zero)
		pad(o, ' ', width - len);
	if (neg)
		put(o, '-');
	if (!left && zero)
		pad(o, '0', width - len);
	while (n)
		put(o, buf[--n]);
	if (left)
		pad(o, ' ', width - len);
}

int kvprintf(const char *fmt, va_list ap)
{
	struct out o = { 0 };

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&o, *fmt);
			continue;
		}
		fmt++;
		bool zero = false, left = false;
		for (;; fmt++) {
			if (*fmt == '0')
				zero = true;
			else if (*fmt == '-')
				left = true;
			else
				break;
		}
		int width = 0;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		int lng = 0;
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		uint64_t u;
		int64_t s;
		switch (*fmt) {
		case 'c':
			pad(&o, ' ', left ? 0 : width - 1);
			put(&o, (char)va_arg(ap, int));
			pad(&o, ' ', left ? width - 1 : 0);
			break;
		case 's': {
			const char *str = va_arg(ap, const char *);
			if (!str)
				str = "(null)";
			int len = (int)strlen(str);
			if (!left)
				pad(&o, ' ', width - len);
			while (*str)
				put(&o, *str++);
			if (left)
				pad(&o, ' ', width - len);
			break;
		}
		case 'd':
		case 'i':
			s = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
			emit_number(&o, s < 0 ? -(uint64_t)s : (uint64_t)s, 10, s < 0, false, width,
				    zero, left);
			break;
		case 'u':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			emit_number(&o, u, 10, false, false, width, zero, left);
			break;
		case 'x':
		case 'X':
			u = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			emit_number(&o, u, 16, false, *fmt == 'X', width, zero, left);
			break;
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			emit_number(&o, (uint64_t)va_arg(ap, void *), 16, false, false, 16, true, false);
			break;
		case '%':
			put(&o, '%');
			break;
		case '\0':
			return o.count;
		default:
			put(&o, '%');
			put(&o, *fmt);
			break;
		}
	}
	return o.count;
}

int kprintf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int n = kvprintf(fmt, ap);
	va_end(ap);
	return n;
}
