/* System call numbers and user address-space layout of the paging kernel (C and assembly). */
#ifndef PAGING_SYS_H
#define PAGING_SYS_H

#define SYS_WRITE   1   /* write(buf, len): print len bytes of user memory; returns len */
#define SYS_GETPID  2   /* getpid(): returns USER_PID */
#define SYS_EXIT    3   /* exit(status): ends the user task */

#define USER_PID        7
#define USER_HEAP_VA    0x10000000      /* demand-paged, USER_HEAP_PAGES pages */
#define USER_HEAP_PAGES 16
#define USER_STACK_TOP  0x7fff0000      /* demand-paged downwards, USER_STACK_PAGES pages */
#define USER_STACK_PAGES 4
#define USER_TOUCH_PAGES 8              /* heap pages the user task writes */

#endif
