/* crash_div.c - an integer division by zero on vCPU 0: a crash verdict, "#DE divide error",
 * the faulting div instruction disassembled. */
#include "weft.h"

static volatile unsigned long zero;

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        unsigned long q = 100 / zero;
        weft_printf("%lu\n", q);
    }
}
