/*
 * message_passing.c - a publication-order bug: the producer sets the flag before the data.
 *
 * What it shows: vCPU 0 (the producer) should compute `data` (from `input`) and only then
 * set `ready`; it does it the other way round. vCPU 1 (the consumer) waits for `ready`,
 * spinning with PAUSE, and then reads `data`. If the consumer runs between the producer's
 * two stores it sees the flag but reads the old data: its read of `data` comes before the
 * producer's write in the trace (the intended read-after-write became a write-after-read
 * on `data`). The accesses are volatile, so the compiler keeps them in program order.
 *
 * What should happen: with 2 or more vCPUs (vCPUs 2 and up just return; with 1 vCPU only
 * the producer runs and the run passes),
 *   - when the consumer reads after the producer's second store it prints
 *         message_passing: consumer got 42
 *     and the run passes;
 *   - when it reads in between it prints
 *         message_passing: consumer saw ready but data is 0, not 42
 *     and fails the assertion `got == 42` (verdict: assertion).
 * With a large round-robin quantum the producer runs both stores first and the run
 * passes; with quantum=1 the consumer's two reads fall between the producer's two stores
 * and it fails; about one random seed in three fails. Moving `ready = 1` below the store
 * of `data` fixes it. The trace also holds two MARK events, "published" and "consumed".
 *
 * Try it:
 *     weft run message_passing.elf                                   # passes
 *     weft run message_passing.elf --strategy round-robin:quantum=1  # fails
 *     weft record message_passing.elf --strategy random --seed N     # some seeds fail
 */
#include "weft.h"

static volatile unsigned long input = 21; /* what the producer computes the message from */
static volatile unsigned long data;       /* the message */
static volatile unsigned long ready;      /* the flag that publishes it */

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_count;
    if (vcpu_id == 0) {
        /* producer */
        ready = 1; /* BUG: published before the data is written */
        weft_barrier();
        data = input * 2; /* a load of `input`, then the store of the data */
        WEFT_MARK("published");
    } else if (vcpu_id == 1) {
        /* consumer */
        while (!ready)
            weft_pause();
        weft_barrier();
        unsigned long got = data;
        WEFT_MARK("consumed");
        if (got != 42)
            weft_printf("message_passing: consumer saw ready but data is %lu, not 42\n", got);
        WEFT_ASSERT(got == 42);
        weft_printf("message_passing: consumer got %lu\n", got);
    }
}
