/*
 * private_loop.c - vCPU 0 prints one line, then loops forever on a local variable: no
 * shared access, no hypercall, no PAUSE, so none of its instructions is a scheduling
 * point. weft must still bound it: every 1024 translated blocks without a point count as a
 * spin point, so --max-steps ends the run (budget) and, without a budget, the run ends as a
 * livelock (deadlock verdict) after --deadlock-window such points. Other vCPUs return.
 *
 * Expected (any vCPU count): console, exactly
 *     private_loop: vcpu0 spins on its own stack
 * then verdict budget with --max-steps, or deadlock with a small --deadlock-window;
 * `weft` exit code 1. Never a hang.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_printf("private_loop: vcpu0 spins on its own stack\n");
    volatile unsigned long x = 0;
    for (;;)
        x = x + 1;
}
