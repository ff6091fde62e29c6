/*
 * tm_atomic.c - committed transactions are atomic: plain read-modify-writes inside
 * transactions never lose an update and no transaction sees a half-done transfer, under
 * any schedule.
 *
 * Each vCPU makes ROUNDS transfers of 1 between four shared accounts (each on its own
 * line), each transfer two plain RMWs in one critical section, and after each transfer an
 * audit critical section that reads all four accounts and checks their sum. A critical
 * section is a transaction, retried up to TX_TRIES times; after that it falls back to
 * weft_elided_lock (three more transactions, then the real lock), so that no schedule,
 * strict round-robin included, can make the vCPUs abort each other forever. Every
 * transaction reads the lock word (elision done right), so taking the real lock aborts
 * all of them. Without transactional atomicity the RMWs of different vCPUs would
 * interleave (lost updates) and audits would see sums off by one.
 *
 * Expected (--vcpus 1..8, any strategy): console, exactly
 *     tm_atomic ok: N vCPUs, total 4000
 * verdict pass. On a violation: an assertion, e.g.
 *     tm_atomic: vcpu1: audit saw total 3999 (round 7)
 */
#include "weft.h"

#define ROUNDS 12
#define ACCOUNTS 4
#define TX_TRIES 10

struct account {
    volatile unsigned long balance;
    char pad[56];
};
static struct account acc[ACCOUNTS] __attribute__((aligned(64))) = {
    {1000, {0}}, {1000, {0}}, {1000, {0}}, {1000, {0}}};
static weft_spinlock lock __attribute__((aligned(64))); /* the fallback lock, own line */
static unsigned long finished;                          /* vCPUs done (LOCK XADD) */

static unsigned long sum(void) {
    unsigned long t = 0;
    for (int i = 0; i < ACCOUNTS; i++)
        t += acc[i].balance;
    return t;
}

/* Enter the critical section: up to TX_TRIES transactions, each reading the lock word
 * (and aborting with WEFT_ELIDED_LOCK_BUSY if it is held), then weft_elided_lock. Returns
 * inside a transaction or holding the lock; leave with weft_elided_unlock. */
static inline void enter(void) {
    for (int t = 0; t < TX_TRIES; t++) {
        unsigned s = weft_xbegin();
        if (s == WEFT_XBEGIN_STARTED) {
            if (lock.locked == 0)
                return; /* the lock word is now in the read set */
            weft_xabort(WEFT_ELIDED_LOCK_BUSY);
        }
        if ((s & WEFT_XABORT_EXPLICIT) && WEFT_XABORT_CODE(s) == WEFT_ELIDED_LOCK_BUSY) {
            while (lock.locked) /* wait outside the transaction, then retry */
                weft_pause();
        }
    }
    weft_elided_lock(&lock);
}

void _start(unsigned long id, unsigned long n) {
    for (int r = 0; r < ROUNDS; r++) {
        int from = (int)((id + r) % ACCOUNTS), to = (int)((id + 2 * r + 1) % ACCOUNTS);
        if (to == from)
            to = (to + 1) % ACCOUNTS;
        enter();
        acc[from].balance = acc[from].balance - 1;
        acc[to].balance = acc[to].balance + 1;
        weft_elided_unlock(&lock);

        enter();
        unsigned long total = sum();
        weft_elided_unlock(&lock);
        if (total != 1000 * ACCOUNTS)
            weft_assert_failf("tm_atomic: vcpu%lu: audit saw total %lu (round %d)", id, total, r);
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    if (sum() != 1000 * ACCOUNTS)
        weft_assert_failf("tm_atomic: final total %lu", sum());
    weft_printf("tm_atomic ok: %lu vCPUs, total %lu\n", n, sum());
}
