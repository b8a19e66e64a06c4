/* serial_irq: programs the 8259 PIC (IRQ 0-7 at vectors 0x20-0x27, only IRQ 4 unmasked),
 * enables the UART's THR-empty interrupt and halts with interrupts on until IRQ 4 arrives.
 * The handler reads IIR, sends EOI, prints "irq 4 received" and exits with 0 (it never
 * returns: a 32-bit iret at CPL0 is beyond the PVM host's instruction emulator). Without
 * the interrupt the guest halts forever. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .set VECTOR, 0x24               /* IRQ 4 */

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        /* IDT gate for VECTOR: 32-bit interrupt gate, selector 0x10 (the boot code segment). */
        mov $handler, %eax
        mov %ax, idt + VECTOR * 8
        movw $0x10, idt + VECTOR * 8 + 2
        movw $0x8e00, idt + VECTOR * 8 + 4
        shr $16, %eax
        mov %ax, idt + VECTOR * 8 + 6
        lidt idt_desc
        /* PIC: ICW1..ICW4, then mask everything but IRQ 4. */
        mov $0x11, %al
        outb %al, $0x20
        outb %al, $0xa0
        mov $0x20, %al
        outb %al, $0x21
        mov $0x28, %al
        outb %al, $0xa1
        mov $0x04, %al
        outb %al, $0x21
        mov $0x02, %al
        outb %al, $0xa1
        mov $0x01, %al
        outb %al, $0x21
        outb %al, $0xa1
        mov $0xef, %al
        outb %al, $0x21
        mov $0xff, %al
        outb %al, $0xa1
        /* UART: OUT2 (the PC's interrupt gate), then IER = THR empty. */
        mov $0x3fc, %dx
        mov $0x08, %al
        outb %al, %dx
        mov $0x3f9, %dx
        mov $0x02, %al
        outb %al, %dx
        sti
1:      hlt
        jmp 1b

handler:
        mov $0x3fa, %dx                 /* IIR: acknowledge THR empty */
        inb %dx, %al
        mov $0x20, %al                  /* EOI */
        outb %al, $0x20
        mov $0x3f9, %dx                 /* IER = 0: no more interrupts */
        xor %al, %al
        outb %al, %dx
        mov $msg, %esi
        call puts
        EXIT 0
        PUTS_FUNC

        .data
        .p2align 3
idt:    .skip 0x30 * 8
idt_desc:
        .word 0x30 * 8 - 1
        .long idt

        .section .rodata
msg:    .asciz "irq 4 received\n"
