/* assert_fail.c - WEFT_ASSERT(1 == 2) on vCPU 0: an assertion verdict whose message ends
 * in ": 1 == 2". */
#include "weft.h"

static volatile int one = 1;

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        WEFT_ASSERT(one + 1 == 2 + one && 1 == 2);
}
