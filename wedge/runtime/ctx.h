/*
 * ctx.h - the register frames the runtime's assembly builds and its C code reads and edits.
 * Shared by entry.S and wedge.c; offsets checked by _Static_assert.
 */
#ifndef WEDGE_CTX_H
#define WEDGE_CTX_H

/* struct ctx: an interrupted context, built on a STACK_AREA by wedge_trap_common.
 * The first 15 words are the general registers (r15 at the lowest address), then what the
 * per-vector entry and the CPU (through the CPL0 stub) left above them. */
#define CTX_R15		0x00
#define CTX_R14		0x08
#define CTX_R13		0x10
#define CTX_R12		0x18
#define CTX_R11		0x20
#define CTX_R10		0x28
#define CTX_R9		0x30
#define CTX_R8		0x38
#define CTX_RBP		0x40
#define CTX_RDI		0x48
#define CTX_RSI		0x50
#define CTX_RDX		0x58
#define CTX_RCX		0x60
#define CTX_RBX		0x68
#define CTX_RAX		0x70
#define CTX_VECTOR	0x78	/* on exit: address of the resume record */
#define CTX_ERROR	0x80
#define CTX_RIP		0x88
#define CTX_CS		0x90
#define CTX_RFLAGS	0x98
#define CTX_RSP		0xa0
#define CTX_SS		0xa8
#define CTX_SIZE	0xb0

/* struct site: a site routine's frame on the guest's stack: the general registers, the
 * flags pushed on entry, then (for routines that take one) the argument word pushed by the
 * site's thunk, then the return address into the site. */
#define SITE_RFLAGS	0x78
#define SITE_ARG	0x80

#ifndef __ASSEMBLER__
#include <stdint.h>
#include <stddef.h>

struct ctx {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

struct site {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t rflags;
	uint64_t arg;	/* the thunk's argument (routines that take one), else the return address */
};

_Static_assert(offsetof(struct ctx, rax) == CTX_RAX, "ctx.rax");
_Static_assert(offsetof(struct ctx, vector) == CTX_VECTOR, "ctx.vector");
_Static_assert(offsetof(struct ctx, rip) == CTX_RIP, "ctx.rip");
_Static_assert(offsetof(struct ctx, rsp) == CTX_RSP, "ctx.rsp");
_Static_assert(sizeof(struct ctx) == CTX_SIZE, "ctx size");
_Static_assert(offsetof(struct site, rflags) == SITE_RFLAGS, "site.rflags");
_Static_assert(offsetof(struct site, arg) == SITE_ARG, "site.arg");
#endif

#endif
