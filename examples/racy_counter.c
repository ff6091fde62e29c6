/*
 * racy_counter.c - a lost update: every vCPU increments a shared counter without a lock.
 *
 * What it shows: `counter++` on shared memory is a load, an add and a store (three
 * instructions, two memory accesses), not one atomic step. If another vCPU's increment
 * falls between this vCPU's load and store, both store the same value and one update is
 * lost, exactly as on real hardware. This is the guest of `weft demo`.
 *
 * What should happen: each of the N vCPUs adds INCREMENTS (3) to `counter`. The last vCPU
 * to finish (found with an atomic counter of finished vCPUs) expects 3 * N. Most schedules
 * pass and print
 *     racy_counter: counter is 6, as expected (3 increments x 2 vCPUs)
 * (for 2 vCPUs). A schedule that switches vCPUs between a load and its store loses an
 * update; the last vCPU then prints
 *     racy_counter: counter is 5, expected 6: 1 update(s) lost
 * and fails the assertion `got == expected` (verdict: assertion).
 *
 * Try it:
 *     weft demo                                  # searches schedules, records, replays
 *     weft run racy_counter.elf                  # round-robin, large quantum: passes
 *     weft run racy_counter.elf --strategy round-robin:quantum=1   # interleaves: fails
 *     weft record racy_counter.elf --strategy random --seed N      # some seeds fail
 */
#include "weft.h"

#define INCREMENTS 3

/* volatile keeps the three increments as three separate load/add/store sequences. */
static volatile unsigned long counter;
/* How many vCPUs have finished their increments (updated with LOCK XADD only). */
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_id;
    for (int i = 0; i < INCREMENTS; i++)
        counter++; /* the race: mov counter,%rax; add $1,%rax; mov %rax,counter */

    if (weft_fetch_add(&finished, 1) + 1 != vcpu_count)
        return; /* not the last one */

    unsigned long expected = INCREMENTS * vcpu_count;
    unsigned long got = counter;
    if (got != expected)
        weft_printf("racy_counter: counter is %lu, expected %lu: %lu update(s) lost\n", got,
                    expected, expected - got);
    WEFT_ASSERT(got == expected);
    weft_printf("racy_counter: counter is %lu, as expected (%d increments x %lu vCPUs)\n", got,
                INCREMENTS, vcpu_count);
}
