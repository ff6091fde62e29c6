/*
 * assert_fail.c - WEFT_ASSERT(1 == 2) on vCPU 0: an assertion verdict carrying the message.
 *
 * vCPU 0 prints one line, then WEFT_ASSERT(1 == 2) calls ASSERT_FAIL with the message
 * "FILE:LINE: 1 == 2". Other vCPUs return at once.
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       assert_fail: vcpu0 asserts 1 == 2
 *   verdict: assertion on vcpu0, message exactly
 *       tests/guests/assert_fail.c:23: 1 == 2
 *   (FILE is the path given to gcc: build.rs maps the repository root away with
 *   -ffile-prefix-map, so it is relative to the repository); `weft` exit code 1.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("assert_fail: vcpu0 asserts 1 == 2\n");
    /* The next line must stay line 23: the expected message above names it. */
    WEFT_ASSERT(1 == 2);
}
