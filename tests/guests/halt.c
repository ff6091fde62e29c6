/*
 * halt.c - the three ways one vCPU ends while the others go on: HLT, the HALT hypercall,
 * and returning from _start. The machine passes once every vCPU has ended.
 *
 * The vCPUs take turns in id order (each spins with PAUSE until a shared `turn` equals
 * its id): vCPU k prints its line, sets `turn` to k + 1 (LOCK XADD), then ends:
 *   vCPU 0 with the HLT instruction, vCPU 1 with the HALT hypercall (10), vCPU 2 and up
 *   by returning from _start.
 * So the output order is fixed, and vCPUs that have ended must not hold the others up (nor
 * count as deadlocked). If HLT or HALT returned, that vCPU fails an assertion.
 *
 * Expected, under every schedule, with N vCPUs: the lines for vCPUs 0..N-1, in order;
 * e.g. for --vcpus 4 the console (stdout) is exactly
 *       halt: vcpu0 ends with HLT
 *       halt: vcpu1 ends with the HALT hypercall
 *       halt: vcpu2 returns from _start
 *       halt: vcpu3 returns from _start
 *   (--vcpus 1: only the first line); verdict: pass; `weft` exit code 0.
 */
#include "weft.h"

static unsigned long turn; /* LOCK XADD only */

void _start(unsigned long id, unsigned long n) {
    (void)n;
    while (weft_load(&turn) != id)
        weft_pause();
    if (id == 0) {
        weft_puts("halt: vcpu0 ends with HLT\n");
        weft_fetch_add(&turn, 1);
        __asm__ volatile("hlt" ::: "memory");
        weft_assert_failf("halt: vcpu0 ran past HLT");
    } else if (id == 1) {
        weft_puts("halt: vcpu1 ends with the HALT hypercall\n");
        weft_fetch_add(&turn, 1);
        weft_hypercall0(WEFT_HC_HALT);
        weft_assert_failf("halt: vcpu1 returned from the HALT hypercall");
    } else {
        weft_printf("halt: vcpu%lu returns from _start\n", id);
        weft_fetch_add(&turn, 1);
    }
}
