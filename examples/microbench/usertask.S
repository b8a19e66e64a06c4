/*
 * usertask.S - the user half of the syscall microbenchmark.
 *
 * Measured at CPL3: BENCH_ITERS round trips of syscall (user -> kernel entry -> dispatch ->
 * iretq -> user), timed with rdtsc; exits with the elapsed cycles. It needs no stack.
 */
#include "bench.h"

	.section .user, "ax", @progbits
	.globl user_bench_syscall
	.type user_bench_syscall, @function
user_bench_syscall:
	movl $BENCH_ITERS, %ebx
	rdtsc
	shlq $32, %rdx
	orq %rdx, %rax
	movq %rax, %r12
1:	movl $SYS_NULL, %eax
	syscall
	decl %ebx
	jnz 1b
	rdtsc
	shlq $32, %rdx
	orq %rdx, %rax
	subq %r12, %rax
	movq %rax, %rdi
	movl $SYS_EXIT, %eax
	syscall
	ud2
	.size user_bench_syscall, . - user_bench_syscall
