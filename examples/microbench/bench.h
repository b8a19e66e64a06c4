/* Shared by microbench.c and usertask.S. */
#ifndef BENCH_H
#define BENCH_H

#define BENCH_ITERS     256     /* iterations of every benchmark */
#define SYS_NULL        1       /* does nothing, returns 0 */
#define SYS_EXIT        2       /* exit(value): ends the user task, enter_user returns value */
#define USER_STACK_TOP  0x7fff0000

#endif
