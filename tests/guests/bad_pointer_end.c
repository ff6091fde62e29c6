/*
 * bad_pointer_end.c - WRITE with a buffer that starts inside RAM and runs past its end:
 * weft reports a guest crash, and never crashes itself.
 *
 * Run with the default --ram (64 MiB = 0x4000000). vCPU 0 prints one line, then calls
 * WRITE(0x3fffff8, 16): the first 8 bytes are the last 8 bytes of RAM, the other 8 lie
 * beyond it. Other vCPUs return at once. Should WRITE return, vCPU 0 fails an assertion
 * instead ("... WRITE returned ...").
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       bad_pointer_end: vcpu0 calls WRITE(0x3fffff8, 16)
 *   verdict: crash on vcpu0 at the VMCALL, with a message saying that the WRITE buffer
 *   0x3fffff8+0x10 is not inside RAM; `weft` exit code 1. No byte of the buffer reaches
 *   the console (a WRITE is checked whole before any of it is written).
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("bad_pointer_end: vcpu0 calls WRITE(0x3fffff8, 16)\n");
    uint64_t r = weft_write((const void *)0x3fffff8UL, 16);
    weft_assert_failf("bad_pointer_end: WRITE returned 0x%lx instead of crashing", r);
}
