/*
 * spin_nopause.c - every vCPU spins re-reading a flag that nobody sets, WITHOUT PAUSE: weft
 * must still see that nobody makes progress and give a deadlock (livelock) verdict.
 *
 * vCPU 0 prints one line; then every vCPU loops on `while (!flag) ;` where `flag` is a
 * volatile global that no code writes (a plain load, test and branch: no PAUSE, no
 * hypercall). weft's spin detection (re-reading an unchanged location) must yield from
 * these loops and, after --deadlock-window steps without progress, end the run. Should a
 * vCPU ever see the flag set, it fails an assertion.
 *
 * Expected, with any number of vCPUs (1 too) and under every schedule:
 *   console (stdout), exactly:
 *       spin_nopause: every vCPU re-reads a flag nobody sets, without PAUSE
 *   verdict: deadlock; `weft` exit code 1. (Use e.g. --deadlock-window 20000 to keep it
 *   short.)
 */
#include "weft.h"

static volatile unsigned long flag;

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        weft_puts("spin_nopause: every vCPU re-reads a flag nobody sets, without PAUSE\n");
    while (!flag)
        ;
    weft_assert_failf("spin_nopause: vcpu%lu saw the flag set", id);
}
