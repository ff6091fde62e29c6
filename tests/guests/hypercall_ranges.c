/*
 * hypercall_ranges.c - hypercall buffers that are legal though unusual: on the caller's
 * own stack, on another vCPU's stack, empty at the very end of RAM, and ending exactly at
 * the end of RAM. Stacks are ordinary RAM, so all of these work.
 *
 * Run with the default --ram (64 MiB = 0x4000000) and --stack, and 2 vCPUs.
 * - vCPU 0 WRITEs, MARKs and ANNOTATE_ATOMICs a buffer on its own stack;
 * - vCPU 1 puts a line in a buffer on its own stack and publishes its address; vCPU 0
 *   WRITEs it (another vCPU's stack), then lets vCPU 1 return;
 * - vCPU 0 WRITEs 0 bytes at 0x4000000 (an empty range that ends at the end of RAM: inside);
 * - vCPU 0 copies 8 bytes over its own return address, the last 8 bytes of RAM, WRITEs
 *   them, and ends with HALT (it cannot return any more).
 *
 * Expected, under every schedule: console, exactly
 *     own stack ok
 *     from vcpu1's stack
 *     tail ok
 * and verdict pass; every hypercall returns what docs/board.md says (else an assertion).
 */
#include "weft.h"

#define RAM_TOP 0x4000000UL

static const char *volatile other_buf;
static volatile unsigned long other_len;
static volatile unsigned long stage;

static void check(uint64_t got, uint64_t want, const char *what) {
    if (got != want)
        weft_assert_failf("hypercall_ranges: %s returned %lu, expected %lu", what, got, want);
}

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 1) {
        volatile char line[] = "from vcpu1's stack\n";
        other_buf = (const char *)line;
        other_len = sizeof line - 1;
        weft_store(&stage, 1);
        while (weft_load(&stage) != 2)
            weft_pause();
        (void)line[0];
        return;
    }
    if (id != 0)
        return;
    volatile char own[] = "own stack ok\n";
    check(weft_write((const void *)own, sizeof own - 1), sizeof own - 1, "WRITE(own stack)");
    check(weft_hypercall2(WEFT_HC_MARK, (uintptr_t)own, 3), 0, "MARK(own stack)");
    check(weft_hypercall2(WEFT_HC_ANNOTATE_ATOMIC, (uintptr_t)own, sizeof own), 0,
          "ANNOTATE_ATOMIC(own stack)");

    while (weft_load(&stage) != 1)
        weft_pause();
    check(weft_write(other_buf, other_len), other_len, "WRITE(vcpu1's stack)");
    weft_store(&stage, 2);

    check(weft_write((const void *)RAM_TOP, 0), 0, "WRITE(end of RAM, 0)");

    volatile char *tail = (volatile char *)(RAM_TOP - 8);
    const char msg[8] = {'t', 'a', 'i', 'l', ' ', 'o', 'k', '\n'};
    for (int i = 0; i < 8; i++)
        tail[i] = msg[i];
    check(weft_write((const void *)tail, 8), 8, "WRITE(last 8 bytes of RAM)");
    weft_halt();
}
