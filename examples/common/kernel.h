/*
 * kernel.h - the runtime shared by the example kernels.
 */
#ifndef KERNEL_H
#define KERNEL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "cpu.h"
#include "layout.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define READ_ONCE(x) (*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#define barrier() asm volatile("" : : : "memory")
#define __noreturn __attribute__((noreturn))
#define __noinline __attribute__((noinline))
#define __aligned(n) __attribute__((aligned(n)))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Physical <-> kernel virtual for the kernel image and low memory (mapped in the high half). */
#define __pa(x) ((uint64_t)(x) - KERNEL_VMA)
#define __va(x) ((void *)((uint64_t)(x) + KERNEL_VMA))

/* Exit status through the debug-exit port (docs/examples.md). */
#define EXIT_OK          0
#define EXIT_PANIC       1      /* a self-check failed */
#define EXIT_UNEXPECTED  2      /* an unexpected trap */

/* Provided by each example kernel; its return value is the exit status. */
int kernel_main(uint64_t start_info_pa);

/* lib.c */
void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
__noreturn void guest_exit(uint32_t status);
__noreturn __printf(1, 2) void panic(const char *fmt, ...);

/* Deterministic checksums: 64-bit FNV-1a over 64-bit words (docs/examples.md). */
#define CSUM_INIT 0xcbf29ce484222325ULL
static inline uint64_t csum_mix(uint64_t h, uint64_t v)
{
	return (h ^ v) * 0x100000001b3ULL;
}
/* One event: a 32-bit tag and a 32-bit value. */
static inline uint64_t csum_event(uint64_t h, uint32_t tag, uint32_t value)
{
	return csum_mix(h, ((uint64_t)tag << 32) | value);
}

/* serial.c */
void serial_init(void);
void serial_putc(char c);
void serial_write(const char *s, size_t n);

/* printf.c */
__printf(1, 0) int kvprintf(const char *fmt, va_list ap);
__printf(1, 2) int kprintf(const char *fmt, ...);

/* trap.c, entry.S */
struct trap_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	/* pushed by the CPU (or by the syscall entry) */
	uint64_t rip, cs, rflags, rsp, ss;
};
typedef void (*trap_handler_t)(struct trap_frame *frame);
void set_trap_handler(unsigned int vector, trap_handler_t handler);
int fixup_exception(struct trap_frame *frame);
__noreturn void die(const char *what, struct trap_frame *frame);
static inline int user_mode(const struct trap_frame *frame)
{
	return (frame->cs & 3) == 3;
}

/* desc.c: GDT with user segments and TSS, IDT from entry.S's stubs */
void desc_init(void);
void set_kernel_stack(uint64_t top);

/* pic.c */
void pic_init(void);                /* remap to 32..47, everything masked */
void pic_unmask(unsigned int irq);
void pic_mask_all(void);
void pic_eoi(unsigned int irq);
void pit_start_periodic(unsigned int hz);

/* mm.c */
void mm_init(void *pool, size_t npages);
void *page_alloc(void);             /* zeroed; panics when the pool is empty */
size_t pages_free(void);
uint64_t *pte_lookup(uint64_t *pml4, uint64_t va, int create, uint64_t table_flags);
void map_page(uint64_t *pml4, uint64_t va, uint64_t pa, uint64_t flags);
uint64_t *mm_new_address_space(void);
/* The user-text address of a symbol in the .user section. */
#define USER_TEXT_ADDR(sym) (USER_TEXT_VA + (uint64_t)((char *)(sym) - __user_start))

/* syscall.c, usermode.S */
void syscall_init(void);
/* Runs user code at CPL3 from `rip` with stack `rsp` until it calls return_from_user(). */
uint64_t enter_user(uint64_t rip, uint64_t rsp);
__noreturn void return_from_user(uint64_t value);
/* A #PF handler calls this first: 1 when the fault was a syscall the host left at CPL3. */
int syscall_fault_fixup(struct trap_frame *frame, uint64_t cr2);
extern unsigned int syscall_fault_fixups;
/* Provided by a kernel that runs user code; returns the value for the user's rax. */
uint64_t do_syscall(struct trap_frame *frame);

/* Linker-script symbols. */
extern char __kernel_start[], __kernel_end[];
extern char __user_start[], __user_end[];
extern char __bss_start[], __bss_end[];

#endif
