/* hello: prints one line and exits with status 0. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $msg, %esi
        call puts
        EXIT 0
        PUTS_FUNC

        .section .rodata
msg:    .asciz "hello from the guest\n"
