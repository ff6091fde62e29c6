/*
 * tm_elided_lock_buggy.c - the classic lock-elision bug: the transaction does not read the
 * lock word.
 *
 * What it shows: the same bank as tm_elided_lock.c (ROUNDS transfers of 1 from `a` to `b`
 * per vCPU, each checking a + b == TOTAL; every AUDIT_EVERY-th transfer is audited and takes
 * the real lock because its MARK hypercall cannot run in a transaction). The elided path
 * here starts a transaction and goes straight into the critical section without looking
 * at the lock. A transaction that runs while an audited transfer holds the lock, between
 * its two updates, sees a + b == TOTAL - 1 and, since it never read the lock word, nothing
 * aborts it: it commits having seen the broken invariant. (Real hardware has the same bug.)
 *
 * The lock holder is not safe either: a transaction that commits between its reads of `a`
 * and `b` makes it see a + b == TOTAL + 1 (and one between its load and store of `a` or `b`
 * makes it lose that update).
 *
 * What should happen: it passes under some schedules and fails under others (try seeds
 * 1..20; most fail, e.g. seed 1 passes), e.g.
 *     weft run tm_elided_lock_buggy.elf --strategy random --seed 2
 * fails with
 *     assertion failed on vcpu0 ...: tm_elided_lock_buggy: vcpu0 saw a + b = 1001,
 *     expected 1000 (round 7)
 * (the lock holder's view) and --seed 5 with "vcpu0 saw a + b = 999, expected 1000
 * (round 5)" (a transaction's view). Record a failing seed and ask `weft tm` which accesses
 * conflicted (or did not).
 *
 * Try it:
 *     weft record tm_elided_lock_buggy.elf -o buggy.weft --strategy random --seed 3
 *     weft tm buggy.weft
 */
#include "weft.h"

#define ROUNDS 24
#define AUDIT_EVERY 4
#define TOTAL 1000UL

static weft_spinlock lock;                                        /* the (not) elided lock */
static volatile unsigned long a __attribute__((aligned(64))) = TOTAL; /* account a */
static volatile unsigned long b __attribute__((aligned(64)));    /* account b */
static unsigned long finished;                                   /* vCPUs done (LOCK XADD) */

/* BUG: never reads lock.locked inside the transaction, so a real lock holder does not
 * conflict with it. */
static void buggy_elided_lock(weft_spinlock *l) {
    for (int i = 0; i < 3; i++) {
        unsigned s = weft_xbegin();
        if (s == WEFT_XBEGIN_STARTED)
            return;
        if (!(s & WEFT_XABORT_RETRY))
            break;
    }
    weft_spin_lock(l);
}

void _start(unsigned long id, unsigned long n) {
    for (int r = 0; r < ROUNDS; r++) {
        unsigned long seen;
        if (r % AUDIT_EVERY == AUDIT_EVERY - 1) {
            weft_spin_lock(&lock); /* audited: a hypercall inside, so no transaction */
            seen = a + b;
            a = a - 1;
            WEFT_MARK("tm_elided_lock_buggy: audited transfer, half done");
            b = b + 1;
            weft_spin_unlock(&lock);
        } else {
            buggy_elided_lock(&lock);
            seen = a + b;
            a = a - 1;
            b = b + 1;
            weft_elided_unlock(&lock);
        }
        if (seen != TOTAL)
            weft_assert_failf(
                "tm_elided_lock_buggy: vcpu%lu saw a + b = %lu, expected %lu (round %d)", id,
                seen, TOTAL, r);
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    if (a + b != TOTAL || b != ROUNDS * n)
        weft_assert_failf("tm_elided_lock_buggy: a=%lu b=%lu after %lu transfers", a, b,
                          ROUNDS * n);
    weft_printf("tm_elided_lock_buggy: %lu vCPUs x %d transfers, a=%lu b=%lu, invariant held\n",
                n, ROUNDS, a, b);
}
