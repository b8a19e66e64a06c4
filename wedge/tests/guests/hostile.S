/*
 * hostile.S - a small guest kernel that attacks the kvm backend.
 *
 * It boots like the example kernels (PVH note, 32-bit entry, its own page tables, long mode in
 * the high half), carries a hand-written .afterburn section for its few sites (format of
 * docs/annotation-format.md), and after its first site (where the host switches it to CPL3)
 * does what the first letter of its command line says:
 *
 *   o  out to the hypercall port from its own code
 *   h  a hypercall with an unknown number, through an `out` it finds in the wedge's code
 *   f  a hypercall with a pseudo-random number and arguments (seed: the second letter), through
 *      an `out` in the wedge's code
 *   r  moves the console ring's head far past the host's tail, then makes an exit
 *   w  writes into the wedge's code
 *   g  jumps into the wedge's CPL0 stubs
 *   v  fills the virtual CPU page with 0xff bytes, then touches an unmapped address
 *   t  points the real TSS.rsp0 at its own stack, then touches an unmapped address
 *   p  maps guest-physical 4 GiB (the wedge's memory) and reads it
 *   u  iretq to "user mode" with a DPL 0 code selector
 *   s  out to the user system-call port from kernel mode
 *   x  out to the CPL0 stub port from its own code
 *   n  nothing hostile: prints "hostile: alive" and exits with status 0 (the control)
 *
 * If the host lets an attack through, the guest exits with status 7 ("survived").
 */
#define KVMA		0xffffffff80000000
#define pa(x)		((x) - KVMA)
#define HOLE		0xffffffffc0000000
#define VCPU_PAGE	(HOLE + 0x300000)
#define HCALL_PAGE	(HOLE + 0x301000)
#define RING_PAGE	(HOLE + 0x302000)
#define TSS_RSP0	(HOLE + 0x334004)
#define CPL0_STUBS	(HOLE + 0x33a000)

/* The recommended NOPs (annotation-format.md) of 1..9 bytes. */
.macro PAD n
	.if \n >= 9
	.byte 0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0
	PAD (\n - 9)
	.elseif \n == 8
	.byte 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0
	.elseif \n == 7
	.byte 0x0f, 0x1f, 0x80, 0, 0, 0, 0
	.elseif \n == 6
	.byte 0x66, 0x0f, 0x1f, 0x44, 0, 0
	.elseif \n == 5
	.byte 0x0f, 0x1f, 0x44, 0, 0
	.elseif \n == 4
	.byte 0x0f, 0x1f, 0x40, 0
	.elseif \n == 3
	.byte 0x0f, 0x1f, 0
	.elseif \n == 2
	.byte 0x66, 0x90
	.elseif \n == 1
	.byte 0x90
	.endif
.endm

/* SITE kind, site_len, operands, instruction...: the instruction, its padding, its record. */
.macro SITE kind, slen, ops, insn:vararg
771:
	\insn
772:
	PAD (\slen - (772b - 771b))
	.pushsection .afterburn, "", @progbits
	.long 771b - .
	.byte 772b - 771b, \slen
	.short \kind
	.long \ops
	.long 0
	.popsection
.endm

#define K_OUT		13
#define K_IRET		7
#define OUT_IMM(port, size)	((1 << 24) | ((size) << 16) | ((port) << 8))

	.section .note.Xen, "a", @note
	.p2align 2
	.long 4, 8, 18
	.asciz "Xen"
	.quad pa(pvh_start32)

	.section .afterburn, "", @progbits
	.balign 8
	.long 0x4e424641
	.byte 0, 0
	.short 0xffff
	.long (afterburn_end - afterburn_start) / 16
	.short 1
	.short 16
afterburn_start:

	.section .text.boot32, "ax", @progbits
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	movl %ebx, pa(start_info)
	lgdt pa(gdt_desc)
	movl $0x10, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $pa(pml4), %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax
	movl %eax, %cr0
	ljmp $0x08, $pa(low64)
	.code64
low64:
	movabsq $start64, %rax
	jmp *%rax

	.text
start64:
	movq $stack_top, %rsp
	/* The first site: the host switches the kernel to CPL3 here. */
	SITE K_OUT, 8, OUT_IMM(0x80, 1), outb %al, $0x80
	/* The command line's first letter picks the attack. */
	movl start_info(%rip), %eax
	movq 24(%rax), %rax
	movzbl (%rax), %eax
	cmpb $'o', %al
	je attack_out_hc
	cmpb $'h', %al
	je attack_bad_number
	cmpb $'f', %al
	je attack_fuzz
	cmpb $'r', %al
	je attack_ring
	cmpb $'w', %al
	je attack_write_wedge
	cmpb $'g', %al
	je attack_jump_cpl0
	cmpb $'v', %al
	je attack_vcpu
	cmpb $'t', %al
	je attack_rsp0
	cmpb $'p', %al
	je attack_map_slot
	cmpb $'u', %al
	je attack_iret_user
	cmpb $'s', %al
	je attack_syscall_port
	cmpb $'x', %al
	je attack_stub_port
	cmpb $'n', %al
	je control
survived:
	movl $7, %eax
exit:
	SITE K_OUT, 8, OUT_IMM(0xf4, 4), outl %eax, $0xf4
1:	jmp 1b

control:
	leaq alive(%rip), %rsi
	movl $(alive_end - alive), %ecx
	movw $0x3f8, %dx
2:	lodsb
	SITE K_OUT, 8, (1 << 16), outb %al, %dx
	decl %ecx
	jnz 2b
	xorl %eax, %eax
	jmp exit

/* An `out %al, $0xf8` (e6 f8) inside the wedge's code, in %rdi. */
find_hypercall_out:
	movq $HOLE, %rdi
1:	cmpw $0xf8e6, (%rdi)
	je 2f
	incq %rdi
	jmp 1b
2:	ret

attack_out_hc:
	outb %al, $0xf8
	jmp survived

attack_bad_number:
	call find_hypercall_out
	movq $0xdead, HCALL_PAGE
	pushq $survived
	jmp *%rdi

attack_fuzz:
	call find_hypercall_out
	movq %rdi, %r15
	movl start_info(%rip), %eax
	movq 24(%rax), %rax
	movzbq 1(%rax), %rbx
	movabsq $0x9e3779b97f4a7c15, %rax
	imulq %rax, %rbx
	movl $8, %ecx
1:	movq %rbx, %rax			/* xorshift64 */
	shlq $13, %rax
	xorq %rax, %rbx
	movq %rbx, %rax
	shrq $7, %rax
	xorq %rax, %rbx
	movq %rbx, %rax
	shlq $17, %rax
	xorq %rax, %rbx
	decl %ecx
	jnz 1b
	movq %rbx, %rax
	andq $31, %rax
	movq %rax, HCALL_PAGE
	movq %rbx, HCALL_PAGE + 8
	rorq $11, %rbx
	movq %rbx, HCALL_PAGE + 16
	rorq $23, %rbx
	movq %rbx, HCALL_PAGE + 24
	pushq $survived
	jmp *%r15

attack_ring:
	movq $0x7fffffff, RING_PAGE
	SITE K_OUT, 8, OUT_IMM(0x70, 1), outb %al, $0x70
	jmp survived

attack_write_wedge:
	movq $HOLE, %rax
	movq $0, (%rax)
	jmp survived

attack_jump_cpl0:
	movq $CPL0_STUBS, %rax
	call *%rax
	jmp survived

attack_vcpu:
	movq $VCPU_PAGE, %rdi
	movl $512, %ecx
	movq $-1, %rax
	rep stosq
	movq $0x40000000, %rax		/* not mapped by the page tables */
	movq (%rax), %rax
	jmp survived

attack_rsp0:
	movq %rsp, %rax
	subq $256, %rax
	movq %rax, TSS_RSP0
	movq $0x40000000, %rax
	movq (%rax), %rax
	jmp survived

attack_map_slot:
	movabsq $(0x100000000 | 0x83), %rax		/* 2 MiB page at 4 GiB */
	movq %rax, pd + 511 * 8(%rip)
	movq $0x3fe00000, %rax				/* virtual 1022 MiB */
	movq (%rax), %rax
	jmp survived

attack_iret_user:
	movq %rsp, %rax
	pushq $0x13			/* ss: GDT entry 2, RPL 3 (a DPL 0 data segment) */
	pushq %rax
	pushq $0x202
	pushq $0x0b			/* cs: GDT entry 1, RPL 3 (a DPL 0 code segment) */
	pushq $survived
	SITE K_IRET, 8, 0, iretq

attack_syscall_port:
	outb %al, $0xfb
	jmp survived

attack_stub_port:
	outb %al, $0xf9
	jmp survived

	.section .rodata
alive:
	.ascii "hostile: alive\n"
alive_end:

	.section .data
	.p2align 3
start_info:
	.quad 0
gdt:
	.quad 0
	.quad 0x00af9b000000ffff	/* 0x08: 64-bit code, DPL 0 */
	.quad 0x00cf93000000ffff	/* 0x10: data, DPL 0 */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long pa(gdt)

	.p2align 12
pml4:
	.quad pa(pdpt_low) + 3
	.fill 510, 8, 0
	.quad pa(pdpt_high) + 3
pdpt_low:
	.quad pa(pd) + 3
	.fill 511, 8, 0
pdpt_high:
	.fill 510, 8, 0
	.quad pa(pd) + 3
	.quad 0
pd:				/* 2 MiB pages: physical 0 .. 512 MiB, the rest of the GiB unmapped */
	.set i, 0
	.rept 256
	.quad (i << 21) | 0x83
	.set i, i + 1
	.endr
	.fill 256, 8, 0

	.section .bss
	.p2align 12
stack:
	.skip 16384
stack_top:

	.section .afterburn, "", @progbits
afterburn_end:
