/*
 * tm_elided_lock.c - lock elision with Intel RTM, done right.
 *
 * What it shows: weft_elided_lock from weft.h. Each vCPU makes ROUNDS transfers of 1 from
 * account `a` to account `b` under one lock, and every transfer also checks the invariant
 * a + b == TOTAL. Most transfers run as transactions that never take the lock ("elided");
 * every AUDIT_EVERY-th transfer is audited: it writes a MARK into the trace between its
 * two updates, and since a hypercall cannot run inside a transaction, audited transfers
 * take the real lock (the fallback path). The elided path reads the lock word inside its
 * transaction, so a vCPU that takes the lock for real conflicts with (and aborts) every
 * transaction in flight, and a transaction that finds the lock held aborts itself and
 * waits. No transaction ever sees a half-done audited transfer.
 *
 * What should happen: under every schedule, no vCPU ever sees a + b != TOTAL, and the last
 * vCPU to finish prints, for 2 vCPUs,
 *     tm_elided_lock: 2 vCPUs x 24 transfers, a=952 b=48, invariant held
 * and the run passes. Compare tm_elided_lock_buggy.c, which forgets to read the lock word.
 *
 * Try it:
 *     weft run tm_elided_lock.elf --vcpus 3 --strategy random --seed 7
 *     weft record tm_elided_lock.elf -o elided.weft --strategy random --seed 7
 *     weft tm elided.weft          # transactions per site, aborts by cause, conflicts
 */
#include "weft.h"

#define ROUNDS 24
#define AUDIT_EVERY 4
#define TOTAL 1000UL

static weft_spinlock lock;                                        /* the elided lock */
static volatile unsigned long a __attribute__((aligned(64))) = TOTAL; /* account a */
static volatile unsigned long b __attribute__((aligned(64)));    /* account b */
static unsigned long finished;                                   /* vCPUs done (LOCK XADD) */

void _start(unsigned long id, unsigned long n) {
    for (int r = 0; r < ROUNDS; r++) {
        unsigned long seen;
        if (r % AUDIT_EVERY == AUDIT_EVERY - 1) {
            weft_spin_lock(&lock); /* audited: a hypercall inside, so no transaction */
            seen = a + b;
            a = a - 1;
            WEFT_MARK("tm_elided_lock: audited transfer, half done");
            b = b + 1;
            weft_spin_unlock(&lock);
        } else {
            weft_elided_lock(&lock);
            seen = a + b;
            a = a - 1;
            b = b + 1;
            weft_elided_unlock(&lock);
        }
        /* Checked outside the critical section: an assertion (a hypercall) inside a
         * transaction would only abort it. */
        if (seen != TOTAL)
            weft_assert_failf("tm_elided_lock: vcpu%lu saw a + b = %lu, expected %lu (round %d)",
                              id, seen, TOTAL, r);
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    if (a + b != TOTAL || b != ROUNDS * n)
        weft_assert_failf("tm_elided_lock: a=%lu b=%lu after %lu transfers", a, b, ROUNDS * n);
    weft_printf("tm_elided_lock: %lu vCPUs x %d transfers, a=%lu b=%lu, invariant held\n", n,
                ROUNDS, a, b);
}
