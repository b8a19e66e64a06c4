/* random_io: ITERATIONS times (--defsym ITERATIONS=n), a random port access (in or out of
 * 1, 2 or 4 bytes, random value) and a random memory access (read or write of 1, 2 or 4
 * bytes) to an address beyond RAM (an MMIO hole) or to a scratch buffer in RAM. It leaves
 * alone COM1 (to keep the output clean), the debug-exit ports and the in-kernel IOAPIC and
 * local APIC pages (0xfec00000..0xfeefffff). RAM's end comes from the PVH memory map.
 * Interrupts stay off. Then prints "random io done" and exits with 0. */
        .include "common.inc"
        PVH_NOTE _start
        STACK stack_top

        .text
        .code32
        .globl _start
_start: mov $stack_top, %esp
        /* ram_top = highest end of a RAM entry in the PVH memory map */
        mov 40(%ebx), %edi
        mov 48(%ebx), %ecx
        xor %ebp, %ebp
1:      jecxz 3f
        cmpl $1, 16(%edi)
        jne 2f
        mov (%edi), %eax
        add 8(%edi), %eax
        cmp %ebp, %eax
        jbe 2f
        mov %eax, %ebp
2:      add $24, %edi
        dec %ecx
        jmp 1b
3:      mov %ebp, ram_top
        movl $ITERATIONS, left

next:   call rand
        mov %eax, %edx
        and $0xffff, %edx               /* port */
        mov %edx, %ecx
        and $0xfff8, %ecx
        cmp $0x3f8, %ecx
        je mem                          /* COM1 */
        mov %edx, %ecx
        and $0xfffc, %ecx
        cmp $0xf4, %ecx
        je mem                          /* debug exit */
        shr $16, %eax
        and $7, %eax
        mov %eax, %ebx                  /* operation */
        call rand                       /* value */
        cmp $0, %ebx
        jne 1f
        outb %al, %dx
        jmp mem
1:      cmp $1, %ebx
        jne 1f
        outw %ax, %dx
        jmp mem
1:      cmp $2, %ebx
        jne 1f
        outl %eax, %dx
        jmp mem
1:      cmp $3, %ebx
        jne 1f
        inb %dx, %al
        jmp mem
1:      cmp $4, %ebx
        jne 1f
        inw %dx, %ax
        jmp mem
1:      inl %dx, %eax

mem:    call rand
        mov %eax, %edi                  /* address */
        cmp ram_top, %edi
        jae 1f
        and $0xffc, %edi                /* in RAM: the scratch buffer instead */
        add $scratch, %edi
        jmp 2f
1:      cmp $0xfec00000, %edi
        jb 2f
        cmp $0xfef00000, %edi
        jb done_one                     /* IOAPIC / local APIC: leave alone */
2:      call rand
        mov %eax, %ebx
        shr $29, %ebx                   /* operation 0..7 */
        cmp $0, %ebx
        jne 1f
        movb %al, (%edi)
        jmp done_one
1:      cmp $1, %ebx
        jne 1f
        movw %ax, (%edi)
        jmp done_one
1:      cmp $2, %ebx
        jne 1f
        movl %eax, (%edi)
        jmp done_one
1:      cmp $3, %ebx
        jne 1f
        movb (%edi), %al
        jmp done_one
1:      cmp $4, %ebx
        jne 1f
        movw (%edi), %ax
        jmp done_one
1:      movl (%edi), %eax

done_one:
        decl left
        jnz next
        mov $msg, %esi
        call puts
        EXIT 0

/* rand: xorshift32 of `state` into %eax. */
rand:   mov state, %eax
        mov %eax, %ecx
        shl $13, %ecx
        xor %ecx, %eax
        mov %eax, %ecx
        shr $17, %ecx
        xor %ecx, %eax
        mov %eax, %ecx
        shl $5, %ecx
        xor %ecx, %eax
        mov %eax, state
        ret
        PUTS_FUNC

        .data
        .p2align 2
state:  .long 0x2545f491
ram_top: .long 0
left:   .long 0

        .bss
        .p2align 12
scratch: .skip 4096

        .section .rodata
msg:    .asciz "random io done\n"
