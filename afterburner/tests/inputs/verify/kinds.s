# Hand-written input for the verifier and the text padder: every site shape the padder must
# handle, branches that must widen, references into moved code from data and code.
	.text
	.globl	entry
	.type	entry, @function
entry:
	cli
	xor	%eax, %eax
	jmp	.Lover			# short now; must widen when the sites below are padded
	pushfq
	popfq
	sti; hlt			# one sti-hlt site
	sti
	nop
	hlt
	mov	%rax, %cr3
	mov	%cr0, %rbx
	mov	%r11, %cr4
	in	$0x60, %al
	out	%al, $0x80
	in	(%dx), %eax
	out	%ax, (%dx)
	rep; insb			# prefix on its own statement
	rep outsw
	rdmsr
	wrmsr
	cpuid
	rdtsc
	swapgs
	.byte	0x0f, 0x01, 0xca	# clac written as bytes
	invlpg	(%rdi)
	lgdt	gdt_desc(%rip)		# RIP-relative into .data: relocated
	lidt	idt_desc		# absolute: R_X86_64_32S
	mov	%eax, %ds
	mov	%fs, %ecx
	push	%fs
	pop	%gs
	int	$0x80
	wbinvd
	mov	%rdi, %dr7
.Lover:
	test	%edi, %edi
	jne	.Lcase_dispatch		# short jcc across padding growth
	lea	.Lhere(%rip), %rsi	# RIP-relative inside .text: no relocation
	call	helper			# local function: no relocation
	call	external_fn		# relocation R_X86_64_PLT32
	jmp	*.Ltable(,%rdi,8)	# jump table in .rodata
.Lhere:
	ret
.Lcase_dispatch:
	cmp	$2, %edi
	ja	.Lcase_default
	jmp	*.Ltable(,%rdi,8)
.Lcase0:
	mov	$1, %eax
	ret
.Lcase1:
	pushf
	popf
	mov	$2, %eax
	ret
.Lcase_default:
1:	rdmsr				# faulting instruction, in the exception table
2:	iretq
	.size	entry, .-entry

	.type	helper, @function
helper:
	lretq
	.size	helper, .-helper

	.section .rodata
	.balign	8
.Ltable:
	.quad	.Lcase0
	.quad	.Lcase1
	.quad	.Lcase_default
	.long	.Lcase1 - .		# PC-relative data reference into moved code

	.section __ex_table, "a"
	.balign	4
	.long	1b - .
	.long	2b - .

	.data
gdt_desc:
	.quad	0, 0
idt_desc:
	.quad	0, 0
	.quad	.Lhere			# section symbol + addend into moved code

	.section .text.unlikely, "ax", @progbits
	.globl	cold_path
	.type	cold_path, @function
cold_path:
	hlt
	jmp	.Lhere			# cross-section: relocation
	.size	cold_path, .-cold_path

	# An alternative: original `pushf; pop %rax; cli` (padded: lengths follow the map),
	# replacement `clac` in .altinstr_replacement (annotated and padded; it still fits).
	.text
	.globl	alt_user
	.type	alt_user, @function
alt_user:
661:	pushfq
	pop	%rax
	cli
662:
	ret
	.size	alt_user, .-alt_user
	.pushsection .altinstr_replacement, "ax"
663:	clac
664:
	.popsection
	.pushsection .altinstructions, "a"
	.long	661b - .
	.long	663b - .
	.long	0x1234
	.byte	662b - 661b
	.byte	664b - 663b
	.popsection
