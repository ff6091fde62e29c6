/*
 * tm_conflict.c - conflicts abort the transaction, not the requester, with status
 * CONFLICT | RETRY (0x6), and no vCPU ever reads a transaction's uncommitted data.
 *
 * vCPU 0 repeats: XBEGIN; write `secret` = 0xdead (uncommitted); spin INSIDE the
 * transaction re-reading `flag` until it is set; XEND. vCPU 1 first reads `secret` (a read
 * of a line in vCPU 0's write set: RaW, vCPU 0 aborts and vCPU 1 must read 0), then sets
 * `flag` (a write of a line in vCPU 0's read set: WaR). Every abort vCPU 0 sees must have
 * status exactly 0x6; its final transaction commits after seeing the flag. Other vCPUs
 * return at once.
 *
 * Expected (--vcpus 2, any strategy): console, exactly
 *     tm_conflict ok: vcpu1 read secret 0, N conflict aborts
 * with N >= 0 depending on the schedule; verdict pass.
 */
#include "weft.h"

static volatile unsigned long flag __attribute__((aligned(64)));   /* set by vCPU 1 */
static volatile unsigned long secret __attribute__((aligned(64))); /* written in txs */
static volatile unsigned long aborts;  /* conflict aborts vCPU 0 saw (plain: vCPU 0 only) */
static unsigned long done;             /* both sides finished (LOCK XADD) */
static volatile unsigned long seen;    /* what vCPU 1 read from secret */

void _start(unsigned long id, unsigned long n) {
    if (id == 0) {
        for (;;) {
            unsigned s = weft_xbegin();
            if (s == WEFT_XBEGIN_STARTED) {
                secret = 0xdead;
                while (!flag)
                    ;
                weft_xend();
                break;
            }
            if (s != (WEFT_XABORT_CONFLICT | WEFT_XABORT_RETRY))
                weft_assert_failf("tm_conflict: abort status %#x, expected 0x6", s);
            aborts = aborts + 1;
        }
        if (secret != 0xdead)
            weft_assert_failf("tm_conflict: the committed write is lost");
    } else if (id == 1) {
        seen = secret; /* before the flag: no transaction can have committed yet */
        flag = 1;
        if (seen != 0)
            weft_assert_failf("tm_conflict: vcpu1 read uncommitted data %#lx", seen);
    } else {
        return;
    }
    if (weft_fetch_add(&done, 1) + 1 == (n < 2 ? n : 2))
        weft_printf("tm_conflict ok: vcpu1 read secret %lu, %lu conflict aborts\n", seen, aborts);
}
