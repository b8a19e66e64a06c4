/*
 * usertask.S - the user-mode (CPL3) task of the paging kernel.
 *
 * Runs at USER_TEXT_VA (the kernel maps the .user pages there), so it addresses its own data
 * RIP-relatively. It
 *   1. writes a greeting (SYS_WRITE), then asks for its pid (SYS_GETPID);
 *   2. writes (i + 1) * pid into the first word of heap pages i = 0 .. USER_TOUCH_PAGES - 1
 *      (each store is a not-present page fault from CPL3, served by the kernel), calling a
 *      helper so its stack page is touched (another fault);
 *   3. reads the words back and sums them (no faults: the pages are mapped now);
 *   4. writes a second line, then exits with the sum (SYS_EXIT), which is
 *      pid * (1 + 2 + ... + USER_TOUCH_PAGES) = 7 * 36 = 252.
 */
#include "sys.h"

	.section .user, "ax", @progbits
	.globl user_main
	.type user_main, @function
user_main:
	leaq greeting(%rip), %rdi
	movl $(greeting_end - greeting), %esi
	movl $SYS_WRITE, %eax
	syscall

	movl $SYS_GETPID, %eax
	syscall
	movq %rax, %r12				/* pid */

	xorl %ebx, %ebx
1:	movq %rbx, %rdi
	movq %r12, %rsi
	call touch_page
	incl %ebx
	cmpl $USER_TOUCH_PAGES, %ebx
	jb 1b

	xorl %ebx, %ebx
	xorl %r13d, %r13d
2:	movq %rbx, %rax
	shlq $12, %rax
	addq $USER_HEAP_VA, %rax
	addq (%rax), %r13
	incl %ebx
	cmpl $USER_TOUCH_PAGES, %ebx
	jb 2b

	leaq done(%rip), %rdi
	movl $(done_end - done), %esi
	movl $SYS_WRITE, %eax
	syscall

	movq %r13, %rdi
	movl $SYS_EXIT, %eax
	syscall
	ud2					/* SYS_EXIT does not return */
	.size user_main, . - user_main

/* touch_page(i, pid): *(USER_HEAP_VA + i * 4096) = (i + 1) * pid */
	.type touch_page, @function
touch_page:
	pushq %rbp
	movq %rsp, %rbp
	leaq 1(%rdi), %rax
	imulq %rsi, %rax
	shlq $12, %rdi
	addq $USER_HEAP_VA, %rdi
	movq %rax, (%rdi)
	popq %rbp
	ret
	.size touch_page, . - touch_page

	/* Data lives beside the code in the user pages, but in a section of its own: bytes in an
	 * executable section must be instructions (the afterburner decodes every byte of code). */
	.section .user.rodata, "a", @progbits
greeting:
	.ascii "user: hello from user mode\n"
greeting_end:
done:
	.ascii "user: touched 8 heap pages\n"
done_end:
