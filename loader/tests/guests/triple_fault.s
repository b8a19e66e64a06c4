/* triple_fault: prints a line, then raises #UD with an empty IDT: #UD -> #GP -> #DF ->
 * shutdown (triple fault). */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $msg, %esi
        call puts
        lidt empty_idt
        ud2
        EXIT 1                          /* not reached */
        PUTS_FUNC

        .section .rodata
        .p2align 2
empty_idt:
        .word 0                         /* limit */
        .long 0                         /* base */
msg:    .asciz "about to triple fault\n"
