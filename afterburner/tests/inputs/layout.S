/* Layout cases that gcc output rarely shows: a short jcc spanning many sites, short jumps
 * that must stay short, a backward loop, a RIP-relative reference and calls resolved by the
 * assembler, relocations (from another section) to the instruction right after a site,
 * sti; hlt pairs, and an ORC-style table. Assembled by gcc, burnt, then compared with
 * objdump by tests/burn_asm.rs. */
	.text
	.globl	widen
	.type	widen, @function
widen:
	jne	1f			/* jcc rel8 over 30 padded rdtsc: must widen */
	.rept	30
	rdtsc
	.endr
1:	jmp	2f			/* short jmp over no site: stays short */
	nop
2:	loop	2b			/* loop with no site inside: fine */
	jmp	1b			/* backward short jmp: stays short */
	lea	3f(%rip), %rax		/* RIP-relative, resolved by the assembler */
	call	local_fn		/* call resolved by the assembler */
	jmp	4f			/* forward jmp over 20 padded cpuid: must widen */
	.rept	20
	cpuid
	.endr
4:	ret
3:	.size	widen, .-widen

	.type	local_fn, @function
local_fn:
	pushfq
.Lafter_pushf:				/* the instruction right after a site */
	popfq
.Lafter_popf:
	sti
	hlt				/* sti; hlt: one pair site */
	sti
	nop
	hlt				/* not a pair */
	sti
.Lhlt:	hlt				/* not a pair either: a branch enters at the hlt */
	jmp	.Lhlt
	ret
	.size	local_fn, .-local_fn

	.section .text.other, "ax", @progbits
	.globl	other
	.type	other, @function
other:
	jmp	.Lafter_pushf		/* PC32 against .text: target right after a site */
	call	local_fn
	movq	$.Lafter_popf, %rax	/* absolute reference right after a site */
	ret
	.size	other, .-other

	/* ORC-style table: entries at the start of a site and right after it */
	.section .orc_unwind_ip, "a"
	.balign 4
	.long	local_fn - .
	.long	.Lafter_pushf - .

	.section .rodata, "a"
	.balign 8
ptrs:	.quad	.Lafter_pushf
	.quad	widen + 2
