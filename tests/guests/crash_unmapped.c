/* crash_unmapped.c - reads an address far beyond RAM: a crash verdict naming "unmapped
 * address 0x7ffff0000000". */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        volatile unsigned long *p = (volatile unsigned long *)0x7ffff0000000UL;
        weft_printf("%lu\n", *p);
    }
}
