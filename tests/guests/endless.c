/*
 * endless.c - runs until the step budget ends it: every vCPU increments a shared counter
 * (locked), writes its own slot of a shared array and reads its neighbour's, and prints a
 * line every 65536 rounds. For measuring weft's own memory over long recordings.
 *
 * Expected: with --max-steps N, exactly N steps, verdict budget, exit code 1.
 */
#include "weft.h"

static unsigned long counter;
static volatile unsigned long slots[64];

void _start(unsigned long id, unsigned long n) {
    for (unsigned long i = 0;; i++) {
        weft_fetch_add(&counter, 1);
        slots[id] = i;
        (void)slots[(id + 1) % n];
        if ((i & 0xffff) == 0)
            weft_printf("vcpu%lu round %lu\n", id, i);
    }
}
