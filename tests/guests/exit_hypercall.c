/*
 * exit_hypercall.c - EXIT(5) from vCPU 0 ends the whole machine at once with status 5.
 *
 * vCPU 0 prints one line and calls the EXIT hypercall with status 5. Every other vCPU
 * spins forever with PAUSE, so the machine can only end through EXIT. Should EXIT return,
 * vCPU 0 executes UD2 (a crash verdict instead).
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       exit_hypercall: vcpu0 calls EXIT(5)
 *   verdict: exit status 5 from vcpu0 (a failure); `weft` exit code 1.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        weft_puts("exit_hypercall: vcpu0 calls EXIT(5)\n");
        weft_exit(5);
    }
    for (;;)
        weft_pause();
}
