# Kernel tables whose rules constrain the burnt layout (see afterburner/src/verify/special.rs).

	# An alternative written like Linux 6.12's ALTERNATIVE macro: the original region ends
	# with `.skip` padding sized by the assembler, so it grows when the padded replacement does.
	.text
	.globl	alt_macro
	.type	alt_macro, @function
alt_macro:
771:	cli
772:
	.skip -(((775f-774f)-(772b-771b)) > 0) * ((775f-774f)-(772b-771b)),0x90
773:
	ret
	.size	alt_macro, .-alt_macro
	.pushsection .altinstr_replacement, "ax"
774:	pushfq
	pop	%rax
775:
	.popsection
	.pushsection .altinstructions, "a"
	.long	771b - .
	.long	774b - .
	.long	0x5678
	.byte	773b - 771b
	.byte	775b - 774b
	.popsection

	# A disabled 2-byte jump label whose target is in rel8 reach before padding, not after.
	.globl	jl_user
	.type	jl_user, @function
jl_user:
1:	.byte	0x66, 0x90		# jump label
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
	cli
2:	ret
	.size	jl_user, .-jl_user
	.pushsection __jump_table, "aw"
	.balign	8
	.long	1b - .
	.long	2b - .
	.quad	jl_key - .
	.popsection

	# An ORC entry right after a padded site (state after pushfq holds in the padding).
	.globl	orc_user
	.type	orc_user, @function
orc_user:
	pushfq				# orc site
3:	pop	%rax
	ret
	.size	orc_user, .-orc_user
	.section .orc_unwind_ip, "a"
	.long	orc_user - .
	.long	3b - .
	.section .orc_unwind, "a"
	.zero	12

	# LKGS (a sensitive mov-to-seg) written as bytes: binutils 2.40 cannot decode it.
	.text
	.globl	lkgs_user
	.type	lkgs_user, @function
lkgs_user:
	.byte	0xf2, 0x0f, 0x00, 0xf7	# lkgs %di
	ret
	.size	lkgs_user, .-lkgs_user

	.data
jl_key:
	.quad	0
