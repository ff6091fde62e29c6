/*
 * atomics.c - LOCK-prefixed read-modify-writes and XCHG are indivisible: no schedule can
 * split one, so no update is ever lost.
 *
 * Each vCPU runs ROUNDS (50) rounds of, on shared globals:
 *   LOCK XADD  (weft_fetch_add)        on by_xadd, adding the old value to a private sum,
 *   LOCK CMPXCHG in a retry loop (weft_cas) on by_cas,
 *   LOCK ADD   (__atomic_add_fetch, result unused) on by_add,
 *   XCHG       (weft_xchg) of id + 1 into `slot`, adding the old value to a private sum.
 * No hypercall runs before the last check. Afterwards, by the vCPU that finishes last
 * (LOCK XADD on `finished`): by_xadd = by_cas = by_add = ROUNDS * N, and what went into
 * `slot` equals what came out: sum of the private sums + final slot = ROUNDS * N(N+1)/2,
 * and LOCK XADD handed out every value 0 .. ROUNDS*N-1 exactly once (their sum checked).
 *
 * Expected, with N vCPUs (1..64) and under every schedule:
 *   console (stdout), exactly:
 *       atomics ok: N vCPUs x 50 rounds
 *   verdict: pass; `weft` exit code 0.
 * On a lost update: verdict assertion, e.g. "atomics: by_cas is 99, expected 100".
 */
#include "weft.h"

#define ROUNDS 50

static unsigned long by_xadd, by_cas, by_add, slot, taken_out, xadd_sum, finished;

void _start(unsigned long id, unsigned long n) {
    unsigned long mine = 0, mine_x = 0;
    for (int r = 0; r < ROUNDS; r++) {
        mine_x += weft_fetch_add(&by_xadd, 1);
        unsigned long old;
        do
            old = weft_load(&by_cas);
        while (!weft_cas(&by_cas, old, old + 1));
        __atomic_add_fetch(&by_add, 1, __ATOMIC_SEQ_CST);
        mine += weft_xchg(&slot, id + 1);
    }
    weft_fetch_add(&taken_out, mine);
    weft_fetch_add(&xadd_sum, mine_x);
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;

    unsigned long want = ROUNDS * n;
    unsigned long x = weft_load(&by_xadd), c = weft_load(&by_cas), a = weft_load(&by_add);
    if (x != want)
        weft_assert_failf("atomics: by_xadd is %lu, expected %lu", x, want);
    if (c != want)
        weft_assert_failf("atomics: by_cas is %lu, expected %lu", c, want);
    if (a != want)
        weft_assert_failf("atomics: by_add is %lu, expected %lu", a, want);
    unsigned long xs = weft_load(&xadd_sum);
    if (xs != want * (want - 1) / 2)
        weft_assert_failf("atomics: LOCK XADD handed out values summing to %lu, expected %lu", xs,
                          want * (want - 1) / 2);
    unsigned long in = ROUNDS * n * (n + 1) / 2;
    unsigned long out = weft_load(&taken_out) + weft_load(&slot);
    if (out != in)
        weft_assert_failf("atomics: XCHG put %lu into slot but %lu came out", in, out);
    weft_printf("atomics ok: %lu vCPUs x %d rounds\n", n, ROUNDS);
}
