/* Kernel-style special sections built by hand (Linux 6.12 layouts): .altinstructions with
 * .altinstr_replacement, __ex_table, __jump_table. */
	.text
	.globl	f_alt
	.type	f_alt, @function
f_alt:
	/* 1: a 3-byte original (nop3) whose replacement `stac` (3 bytes) grows to 8 when
	 * padded: the original region must grow to 8 too (replacementlen <= instrlen). */
661:	.byte	0x0f, 0x1f, 0x00
662:
	.pushsection .altinstructions, "a"
	.long	661b - .
	.long	671f - .
	.4byte	(9*32+20)		/* ft_flags: X86_FEATURE_SMAP */
	.byte	662b - 661b
	.byte	672f - 671f
	.popsection
	.pushsection .altinstr_replacement, "ax"
671:	stac
672:
	.popsection

	/* 2: an original region holding a site (cli, padded 1 -> 8): instrlen grows. */
663:	cli
	xor	%ecx, %ecx
664:
	.pushsection .altinstructions, "a"
	.long	663b - .
	.long	673f - .
	.4byte	0
	.byte	664b - 663b
	.byte	674f - 673f
	.popsection
	.pushsection .altinstr_replacement, "ax"
673:	xor	%eax, %eax
674:
	.popsection

	/* 3: an empty replacement. */
665:	.byte	0x66, 0x90
666:
	.pushsection .altinstructions, "a"
	.long	665b - .
	.long	675f - .
	.4byte	0
	.byte	666b - 665b
	.byte	0
	.popsection
	.pushsection .altinstr_replacement, "ax"
675:
	.popsection

	/* __ex_table: a faulting rdmsr after padded sites, its fixup label. */
	cpuid
1:	rdmsr
2:	ret
	.pushsection __ex_table, "a"
	.balign	4
	.long	1b - .
	.long	2b - .
	.long	0
	.popsection
	.size	f_alt, .-f_alt

	.globl	f_jl
	.type	f_jl, @function
f_jl:
	/* a 2-byte jump-label NOP whose target moves out of rel8 range: becomes a 5-byte NOP */
10:	.byte	0x66, 0x90
	.rept	20
	cli
	.endr
11:	ret
	/* a 2-byte jump-label NOP whose target stays in range: stays 2 bytes */
12:	.byte	0x66, 0x90
	xor	%eax, %eax
13:	ret
	.size	f_jl, .-f_jl
	.pushsection __jump_table, "aw"
	.balign	8
	.long	10b - .
	.long	11b - .
	.quad	key - .
	.long	12b - .
	.long	13b - .
	.quad	key + 1 - .
	.popsection

	.data
key:	.quad	0
