/*
 * stuck_flag.c - the classic missing `volatile`: vCPU 1 waits for a flag that the compiler
 * reads once, so if it is not yet set, vCPU 1 spins forever in `jmp .` on registers alone
 * (no shared access, no PAUSE, no scheduling point). vCPU 0 does 2000 shared writes first
 * (so that under every strategy vCPU 1 reads the flag before it is set), sets the flag
 * and ends. Other vCPUs return at once.
 *
 * Expected (2 or more vCPUs, any strategy): console "stuck_flag: vcpu0 done", then a
 * deadlock (livelock) verdict naming vcpu1, a few thousand steps after vCPU 0 ended:
 * weft proves that vCPU 1's state repeats exactly, instead of waiting out
 * --deadlock-window (a million ticks of 1024 blocks). Exit code 1.
 */
#include "weft.h"

static int flag; /* BUG: not volatile */
static volatile unsigned long work[8];

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        for (unsigned long i = 0; i < 2000; i++)
            work[i % 8] = i;
        flag = 1;
        weft_printf("stuck_flag: vcpu0 done\n");
    } else if (id == 1) {
        while (!flag)
            ;
        weft_printf("stuck_flag: vcpu1 saw the flag\n");
    }
}
