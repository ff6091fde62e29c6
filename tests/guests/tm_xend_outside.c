/*
 * tm_xend_outside.c - XEND outside a transaction raises #GP (SDM), a guest crash on the
 * board (there is no transaction to abort).
 *
 * Expected (any vCPU count; others return at once): console, exactly
 *     tm_xend_outside: calling XEND outside a transaction
 * then verdict crash on vcpu0 at the XEND ("#GP ... XEND outside a transaction",
 * instruction `xend`); `weft` exit code 1. Should XEND return, an assertion instead.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_printf("tm_xend_outside: calling XEND outside a transaction\n");
    weft_xend();
    weft_assert_failf("tm_xend_outside: XEND outside a transaction returned");
}
