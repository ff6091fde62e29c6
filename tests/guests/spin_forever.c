/*
 * spin_forever.c - every vCPU waits with PAUSE for a flag that nobody sets: a deadlock
 * (livelock) verdict.
 *
 * vCPU 0 prints one line; then every vCPU (vCPU 0 included) loops on
 * `while (!flag) pause;` where `flag` is a global that no code writes. No vCPU can make
 * progress, so weft must end the run with a deadlock verdict after --deadlock-window
 * steps without progress, naming where each vCPU spins (the load of `flag` or the PAUSE
 * after it). Should a vCPU ever see the flag set, it fails an assertion.
 *
 * Expected, with any number of vCPUs (1 too) and under every schedule:
 *   console (stdout), exactly:
 *       spin_forever: every vCPU waits for a flag nobody sets
 *   verdict: deadlock; `weft` exit code 1. (Use e.g. --deadlock-window 20000 to keep it
 *   short.)
 */
#include "weft.h"

static volatile unsigned long flag;

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        weft_puts("spin_forever: every vCPU waits for a flag nobody sets\n");
    while (!flag)
        weft_pause();
    weft_assert_failf("spin_forever: vcpu%lu saw the flag set", id);
}
