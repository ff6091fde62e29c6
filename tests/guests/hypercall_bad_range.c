/*
 * hypercall_bad_range.c - hypercall buffers that are not wholly inside RAM, one case per
 * run, chosen by the number of vCPUs (only vCPU 0 acts; the others return at once).
 * Run with the default --ram (64 MiB = 0x4000000).
 *
 *   --vcpus 1: MARK(0x1000, 0xfffffffffffff001): 0x1000 + len wraps around to 0x1
 *   --vcpus 2: ASSERT_FAIL(0x1000, 1 << 40): a huge length, far past the end of RAM
 *   --vcpus 3: ANNOTATE_ATOMIC(0x3fffffc, 8): straddles the end of RAM
 *   --vcpus 4: WRITE(0xffffffffffffffff, 1): starts past RAM, its end wraps to 0
 *   --vcpus 5: WRITE(0x4000000, 1): the first byte after RAM
 *
 * Expected: console "hypercall_bad_range: case N" then a crash verdict on vCPU 0 at the
 * VMCALL naming the hypercall and the range ("... is not inside RAM"); exit code 1. Should
 * the hypercall return, an assertion fails instead.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    if (id != 0)
        return;
    weft_printf("hypercall_bad_range: case %lu\n", n);
    switch (n) {
    case 1:
        weft_hypercall2(WEFT_HC_MARK, 0x1000, 0xfffffffffffff001UL);
        break;
    case 2:
        weft_hypercall2(WEFT_HC_ASSERT_FAIL, 0x1000, 1UL << 40);
        break;
    case 3:
        weft_hypercall2(WEFT_HC_ANNOTATE_ATOMIC, 0x3fffffcUL, 8);
        break;
    case 4:
        weft_hypercall2(WEFT_HC_WRITE, 0xffffffffffffffffUL, 1);
        break;
    case 5:
        weft_hypercall2(WEFT_HC_WRITE, 0x4000000UL, 1);
        break;
    default:
        weft_exit(0);
    }
    weft_assert_failf("hypercall_bad_range: case %lu returned", n);
}
