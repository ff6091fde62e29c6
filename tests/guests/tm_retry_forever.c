/*
 * tm_retry_forever.c - a transaction retried until it commits, with no fallback path: a
 * classic mistake. With every transaction aborted (--tm-abort-rate 100%) it can never
 * commit; weft must end the run with a livelock (deadlock verdict), not run forever.
 * Without injected aborts it commits and passes.
 *
 * Expected: with --tm-abort-rate 100%: verdict deadlock, `weft` exit code 1, no console
 * output. Without it: console, exactly
 *     tm_retry_forever: committed
 * (from vCPU 0; other vCPUs return at once) and verdict pass.
 */
#include "weft.h"

static volatile unsigned long counter __attribute__((aligned(64))); /* bumped in the tx */

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    while (weft_xbegin() != WEFT_XBEGIN_STARTED)
        ; /* BUG: no fallback */
    counter = counter + 1;
    weft_xend();
    weft_printf("tm_retry_forever: committed\n");
}
