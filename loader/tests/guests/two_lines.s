/* two_lines: prints a fixed first line, a second line chosen by --defsym LINE=n (0: "second
 * line: as compiled", otherwise "second line: changed"), and a timing line
 * "bench ticks <BENCH>" (--defsym BENCH=0..9), then exits with 0. Two builds that differ only
 * in BENCH must compare equal; builds that differ in LINE must not. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov $first, %esi
        call puts
        mov $second, %esi
        call puts
        mov $bench, %esi
        call puts
        EXIT 0
        PUTS_FUNC

        .section .rodata
first:  .asciz "first line: the same in every build\n"
        .if LINE
second: .asciz "second line: changed\n"
        .else
second: .asciz "second line: as compiled\n"
        .endif
bench:  .ascii "bench ticks "
        .byte '0' + BENCH
        .asciz "\n"
