/* bootinfo: checks the PVH start info at %ebx and prints what it says:
 *   "magic ok" (or "bad magic", exit 3), "cmdline: <command line>",
 *   "ram top: 0x<end of the highest RAM entry>", "entries: 0x<memmap entries>".
 * hvm_start_info offsets: magic 0, version 4, cmdline_paddr 24, memmap_paddr 40,
 * memmap_entries 48; a memmap entry is {u64 addr, u64 size, u32 type, u32 reserved}. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        mov %ebx, %ebp
        cmpl $HVM_START_MAGIC, (%ebp)
        je 1f
        mov $bad, %esi
        call puts
        EXIT 3
1:      mov $ok, %esi
        call puts
        mov $cmd, %esi
        call puts
        mov 24(%ebp), %esi
        call puts
        mov $nl, %esi
        call puts
        /* Highest end of a RAM (type 1) entry. */
        mov 40(%ebp), %edi
        mov 48(%ebp), %ecx
        xor %ebx, %ebx
2:      jecxz 4f
        cmpl $1, 16(%edi)
        jne 3f
        mov (%edi), %eax
        add 8(%edi), %eax
        cmp %ebx, %eax
        jbe 3f
        mov %eax, %ebx
3:      add $24, %edi
        dec %ecx
        jmp 2b
4:      mov $top, %esi
        call puts
        mov %ebx, %eax
        call puthex
        mov $ent, %esi
        call puts
        mov 48(%ebp), %eax
        call puthex
        EXIT 0

/* puthex: prints %eax as 0x%08x and a newline. Clobbers eax, ecx, edx, esi. */
puthex: mov %eax, %esi
        mov $COM1, %dx
        mov $'0', %al
        outb %al, %dx
        mov $'x', %al
        outb %al, %dx
        mov $8, %ecx
5:      rol $4, %esi
        mov %esi, %eax
        and $15, %eax
        mov hexdigits(%eax), %al
        outb %al, %dx
        loop 5b
        mov $'\n', %al
        outb %al, %dx
        ret
        PUTS_FUNC

        .section .rodata
hexdigits: .ascii "0123456789abcdef"
ok:     .asciz "magic ok\n"
bad:    .asciz "bad magic\n"
cmd:    .asciz "cmdline: "
nl:     .asciz "\n"
top:    .asciz "ram top: "
ent:    .asciz "entries: "
