/*
 * pic.c - the 8259A interrupt controllers and the 8254 timer (channel 0 on IRQ 0).
 */
#include "kernel.h"

static uint8_t pic_mask1 = 0xff, pic_mask2 = 0xff;

/* Remaps the master PIC to PIC_VECTOR_BASE and the slave to PIC_VECTOR_BASE + 8, all masked. */
void pic_init(void)
{
	outb(0xff, PIC1_DATA);
	outb(0xff, PIC2_DATA);
	outb(0x11, PIC1_CMD);                   /* ICW1: edge, cascade, ICW4 */
	io_delay();
	outb(PIC_VECTOR_BASE, PIC1_DATA);       /* ICW2: vector base */
	io_delay();
	outb(0x04, PIC1_DATA);                  /* ICW3: slave on IRQ 2 */
	io_delay();
	outb(0x01, PIC1_DATA);                  /* ICW4: 8086 mode */
	io_delay();
	outb(0x11, PIC2_CMD);
	io_delay();
	outb(PIC_VECTOR_BASE + 8, PIC2_DATA);
	io_delay();
	outb(0x02, PIC2_DATA);                  /* slave identity */
	io_delay();
	outb(0x01, PIC2_DATA);
	io_delay();
	pic_mask1 = 0xff;
	pic_mask2 = 0xff;
	outb(pic_mask1, PIC1_DATA);
	outb(pic_mask2, PIC2_DATA);
}

void pic_unmask(unsigned int irq)
{
	unsigned long flags;

	local_irq_save(flags);
	if (irq < 8) {
		pic_mask1 &= (uint8_t)~(1u << irq);
		outb(pic_mask1, PIC1_DATA);
	} else if (irq < 16) {
		pic_mask2 &= (uint8_t)~(1u << (irq - 8));
		pic_mask1 &= (uint8_t)~(1u << 2);
		outb(pic_mask2, PIC2_DATA);
		outb(pic_mask1, PIC1_DATA);
	}
	local_irq_restore(flags);
}

void pic_mask_all(void)
{
	unsigned long flags;

	local_irq_save(flags);
	pic_mask1 = 0xff;
	pic_mask2 = 0xff;
	outb(pic_mask1, PIC1_DATA);
	outb(pic_mask2, PIC2_DATA);
	local_irq_restore(flags);
}

void pic_eoi(unsigned int irq)
{
	if (irq >= 8)
		outb(0x20, PIC2_CMD);
	outb(0x20, PIC1_CMD);
}

/* Channel 0, mode 2 (rate generator), `hz` interrupts per second on IRQ 0. */
void pit_start_periodic(unsigned int hz)
{
	unsigned int divisor = (PIT_HZ + hz / 2) / hz;

	outb(0x34, PIT_CMD);
	outb((uint8_t)divisor, PIT_CH0);
	outb((uint8_t)(divisor >> 8), PIT_CH0);
}
