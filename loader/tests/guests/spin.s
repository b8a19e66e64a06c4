/* spin: prints a line and never stops. Default: hlt loop with interrupts off;
 * with --defsym BUSY=1: a busy loop. Only --timeout ends it. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $msg, %esi
        call puts
        cli
        .ifdef BUSY
1:      inc %eax
        jmp 1b
        .else
1:      hlt
        jmp 1b
        .endif
        PUTS_FUNC

        .section .rodata
msg:    .asciz "spinning\n"
