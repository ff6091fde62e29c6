/* spin_forever.c - every vCPU waits with PAUSE for a flag nobody sets: a deadlock verdict. */
#include "weft.h"

static volatile unsigned long flag;

void _start(unsigned long id, unsigned long n) {
    (void)id;
    (void)n;
    while (!flag)
        weft_pause();
}
