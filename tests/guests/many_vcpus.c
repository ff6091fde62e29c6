/*
 * many_vcpus.c - any vCPU count from 1 to 64: every vCPU runs, with a distinct id.
 *
 * Each vCPU checks id < count and count <= 64, sets bit `id` of a shared mask (LOCK OR),
 * and increments a shared counter (LOCK XADD). The vCPU that brings the counter to the
 * vCPU count checks that the mask has exactly bits 0..count-1 set and prints one line.
 *
 * Expected, with N vCPUs (1..64) and under every schedule:
 *   console (stdout), exactly:
 *       N vcpus ok              (e.g. "64 vcpus ok")
 *   verdict: pass; `weft` exit code 0.
 * On a mismatch: verdict assertion, e.g. "many_vcpus: vcpu3 is the second vCPU with id 3".
 */
#include "weft.h"

static unsigned long arrived; /* LOCK XADD only */
static uint64_t seen;         /* LOCK OR only: bit i = vCPU i ran */

void _start(unsigned long id, unsigned long n) {
    if (n < 1 || n > 64 || id >= n)
        weft_assert_failf("many_vcpus: vcpu%lu of %lu: id or count out of range", id, n);
    uint64_t bit = (uint64_t)1 << id;
    if (__atomic_fetch_or(&seen, bit, __ATOMIC_SEQ_CST) & bit)
        weft_assert_failf("many_vcpus: vcpu%lu is the second vCPU with id %lu", id, id);
    if (weft_fetch_add(&arrived, 1) + 1 != n)
        return;
    uint64_t all = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
    uint64_t got = weft_load(&seen);
    if (got != all)
        weft_assert_failf("many_vcpus: vCPUs seen 0x%lx, expected 0x%lx", got, all);
    weft_printf("%lu vcpus ok\n", n);
}
