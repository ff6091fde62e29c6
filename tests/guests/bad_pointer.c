/*
 * bad_pointer.c - WRITE with a buffer whose end wraps around the 64-bit address space:
 * weft reports a guest crash, and never crashes itself.
 *
 * vCPU 0 prints one line, then calls WRITE(0x1000, 0xffffffffffffffef): the range starts
 * inside RAM but 0x1000 + len wraps around to 0xfef. Other vCPUs return at once. Should
 * WRITE return, vCPU 0 fails an assertion instead ("... WRITE returned ...").
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       bad_pointer: vcpu0 calls WRITE(0x1000, 0xffffffffffffffef)
 *   verdict: crash on vcpu0 at the VMCALL, with a message saying that the WRITE buffer
 *   0x1000+0xffffffffffffffef is not inside RAM; `weft` exit code 1; weft itself does not
 *   panic or abort.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("bad_pointer: vcpu0 calls WRITE(0x1000, 0xffffffffffffffef)\n");
    uint64_t r = weft_write((const void *)0x1000, 0xffffffffffffffefUL);
    weft_assert_failf("bad_pointer: WRITE returned 0x%lx instead of crashing", r);
}
