/* exit_status: prints one line and exits with STATUS (assemble with --defsym STATUS=n). */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $msg, %esi
        call puts
        EXIT STATUS
        PUTS_FUNC

        .section .rodata
msg:    .asciz "exiting with a status\n"
