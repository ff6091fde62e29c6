/*
 * tm_atomic.c - committed transactions are atomic: plain read-modify-writes inside
 * transactions never lose an update and no transaction sees a half-done transfer, under
 * any schedule.
 *
 * Each vCPU makes ROUNDS transfers of 1 between four shared accounts (each on its own
 * line), each transfer one transaction of two plain RMWs, retried until it commits, and
 * after each transfer an audit transaction that reads all four accounts and checks their
 * sum. Without transactional atomicity the RMWs of different vCPUs would interleave (lost
 * updates) and audits would see sums off by one.
 *
 * Expected (--vcpus 1..8, any strategy): console, exactly
 *     tm_atomic ok: N vCPUs, total 4000
 * verdict pass. On a violation: an assertion, e.g.
 *     tm_atomic: vcpu1: audit saw total 3999 (round 7)
 */
#include "weft.h"

#define ROUNDS 12
#define ACCOUNTS 4

struct account {
    volatile unsigned long balance;
    char pad[56];
};
static struct account acc[ACCOUNTS] __attribute__((aligned(64))) = {
    {1000, {0}}, {1000, {0}}, {1000, {0}}, {1000, {0}}};
static unsigned long finished; /* vCPUs done (LOCK XADD) */

static unsigned long sum(void) {
    unsigned long t = 0;
    for (int i = 0; i < ACCOUNTS; i++)
        t += acc[i].balance;
    return t;
}

void _start(unsigned long id, unsigned long n) {
    for (int r = 0; r < ROUNDS; r++) {
        int from = (int)((id + r) % ACCOUNTS), to = (int)((id + 2 * r + 1) % ACCOUNTS);
        if (to == from)
            to = (to + 1) % ACCOUNTS;
        while (weft_xbegin() != WEFT_XBEGIN_STARTED)
            ;
        acc[from].balance = acc[from].balance - 1;
        acc[to].balance = acc[to].balance + 1;
        weft_xend();

        unsigned long total;
        for (;;) {
            if (weft_xbegin() == WEFT_XBEGIN_STARTED) {
                total = sum();
                weft_xend();
                break;
            }
        }
        if (total != 1000 * ACCOUNTS)
            weft_assert_failf("tm_atomic: vcpu%lu: audit saw total %lu (round %d)", id, total, r);
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    if (sum() != 1000 * ACCOUNTS)
        weft_assert_failf("tm_atomic: final total %lu", sum());
    weft_printf("tm_atomic ok: %lu vCPUs, total %lu\n", n, sum());
}
