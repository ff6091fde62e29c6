/* budget.c - a long, finite loop of shared accesses; the test cuts it with --max-steps and
 * expects a budget verdict. Without a budget it passes after ~10^7 steps. */
#include "weft.h"

static volatile unsigned long cells[64];

void _start(unsigned long id, unsigned long n) {
    (void)n;
    for (unsigned long i = 0; i < 5000000; i++)
        cells[id % 64] += i;
}
