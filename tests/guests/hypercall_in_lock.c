/*
 * hypercall_in_lock.c - locked instructions stay atomic after a hypercall: mutual exclusion
 * of an XCHG spinlock whose critical section makes a hypercall, and a LOCK XADD counter.
 *
 * Each vCPU runs ROUNDS (20) rounds of: take the weft.h spinlock (XCHG), check that nobody
 * else is inside (`owner` is 0), set `owner` to its id + 1, call YIELD (a VMCALL: weft
 * emulates it and moves RIP past it), check `owner` is still its own, clear it, release
 * the lock (MOV 0); then LOCK XADD 1 to `entries`. Instructions after an emulated VMCALL
 * must still be recognised as locked/XCHG (one indivisible step each), or two vCPUs end up
 * in the critical section together or the counter loses an update.
 *
 * Expected, with any number of vCPUs (1..64) and under every schedule:
 *   console (stdout), exactly, with N the number of vCPUs:
 *       hypercall_in_lock: N vCPUs x 20 rounds, mutual exclusion held
 *   verdict: pass; `weft` exit code 0.
 * On a failure: verdict assertion with one of
 *       hypercall_in_lock: vcpu1 entered while vcpu0 was inside (round 3)
 *       hypercall_in_lock: vcpu1: owner changed to 1 (id + 1, 0 = nobody) during YIELD (round 3)
 *   or, from the last vCPU to finish, "hypercall_in_lock: entries is 39, expected 40".
 */
#include "weft.h"

#define ROUNDS 20

static weft_spinlock lock;
static volatile unsigned long owner; /* id + 1 of the vCPU inside; 0 = nobody */
static unsigned long entries;        /* LOCK XADD only */

void _start(unsigned long id, unsigned long n) {
    for (int r = 0; r < ROUNDS; r++) {
        weft_spin_lock(&lock);
        unsigned long o = owner;
        if (o != 0)
            weft_assert_failf("hypercall_in_lock: vcpu%lu entered while vcpu%lu was inside "
                              "(round %d)", id, o - 1, r);
        owner = id + 1;
        weft_yield();
        o = owner;
        if (o != id + 1)
            weft_assert_failf("hypercall_in_lock: vcpu%lu: owner changed to %lu (id + 1, 0 = "
                              "nobody) during YIELD (round %d)", id, o, r);
        owner = 0;
        weft_spin_unlock(&lock);
        weft_fetch_add(&entries, 1);
    }
    /* `entries` counts every vCPU's rounds; the vCPU that brings it to the total reports. */
    static unsigned long finished;
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    unsigned long got = weft_load(&entries);
    if (got != ROUNDS * n)
        weft_assert_failf("hypercall_in_lock: entries is %lu, expected %lu", got, ROUNDS * n);
    weft_printf("hypercall_in_lock: %lu vCPUs x %d rounds, mutual exclusion held\n", n, ROUNDS);
}
