/* crash_ud.c - executes UD2 on vCPU 0: a crash verdict, "#UD invalid opcode", [ud2]. */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        __asm__ volatile("ud2");
}
