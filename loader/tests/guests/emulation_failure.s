/* emulation_failure: prints a line, then executes an instruction that the PVM host's
 * instruction emulator cannot emulate at CPL0 (int3). On a VT-x/AMD-V host the same
 * instruction traps through the empty IDT into a triple fault instead. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $msg, %esi
        call puts
        int3
        EXIT 1                          /* not reached */
        PUTS_FUNC

        .section .rodata
msg:    .asciz "about to hit the emulator\n"
