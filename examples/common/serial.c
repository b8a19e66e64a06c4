/*
 * serial.c - polled output on the 16550 UART at COM1 (I/O 0x3f8), like Linux's early_serial.
 */
#include "kernel.h"

#define UART_TX   0     /* out: transmit holding register */
#define UART_DLL  0     /* out: divisor latch low (DLAB=1) */
#define UART_IER  1     /* out: interrupt enable */
#define UART_DLH  1     /* out: divisor latch high (DLAB=1) */
#define UART_FCR  2     /* out: FIFO control */
#define UART_LCR  3     /* out: line control */
#define UART_MCR  4     /* out: modem control */
#define UART_LSR  5     /* in:  line status */
#define UART_LSR_THRE 0x20

void serial_init(void)
{
	outb(0x00, COM1_PORT + UART_IER);       /* no interrupts */
	outb(0x80, COM1_PORT + UART_LCR);       /* DLAB */
	outb(0x01, COM1_PORT + UART_DLL);       /* 115200 baud */
	outb(0x00, COM1_PORT + UART_DLH);
	outb(0x03, COM1_PORT + UART_LCR);       /* 8N1 */
	outb(0xc7, COM1_PORT + UART_FCR);       /* FIFOs on, cleared */
	outb(0x03, COM1_PORT + UART_MCR);       /* DTR, RTS; OUT2 off: no IRQ */
}

void serial_putc(char c)
{
	unsigned int timeout = 0xffff;

	while ((inb(COM1_PORT + UART_LSR) & UART_LSR_THRE) == 0 && --timeout)
		cpu_relax();
	outb((uint8_t)c, COM1_PORT + UART_TX);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		serial_putc(s[i]);
}
