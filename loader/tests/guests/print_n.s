/* print_n: prints exactly COUNT bytes (--defsym COUNT=n, n >= 1): lines of '.' with a
 * newline every 64th byte and as the last byte, one `out` per byte. Exits with 0. */
        .include "common.inc"
        PVH_NOTE _start

        .text
        .code32
        .globl _start
_start: mov $COM1, %dx
        mov $1, %ecx                    /* byte number, 1..=COUNT */
1:      mov $'.', %al
        test $63, %ecx
        jnz 2f
        mov $'\n', %al
2:      cmp $COUNT, %ecx
        jne 3f
        mov $'\n', %al
3:      outb %al, %dx
        inc %ecx
        cmp $COUNT, %ecx
        jbe 1b
        EXIT 0
