/*
 * locked_counter.c - the racy counter fixed: every increment happens under a spinlock.
 *
 * What it shows: the test-and-set spinlock of weft.h. It is taken with XCHG (one
 * indivisible step on the board) and released with a plain MOV of 0, which is correct on
 * x86's TSO; weft's race detector treats the lock word as a synchronization variable
 * because it is touched by a locked instruction, so the counter accesses are ordered and
 * not reported as races. A vCPU that finds the lock held spins with PAUSE, which weft
 * sees as spinning and schedules around.
 *
 * What should happen: under every schedule and any number of vCPUs the counter ends at
 * INCREMENTS (50) times the vCPU count; the last vCPU to finish prints, for 2 vCPUs,
 *     locked_counter: counter is 100, as expected (50 increments x 2 vCPUs)
 * and the run passes.
 *
 * Try it:
 *     weft run locked_counter.elf --vcpus 3 --strategy random --seed 7   # passes
 *     weft record locked_counter.elf --strategy pct:depth=3               # passes
 */
#include "weft.h"

#define INCREMENTS 50

static weft_spinlock lock = WEFT_SPINLOCK_INIT;
static volatile unsigned long counter;
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_id;
    for (int i = 0; i < INCREMENTS; i++) {
        weft_spin_lock(&lock);
        counter++; /* a plain load and store, but only ever by the lock holder */
        weft_spin_unlock(&lock);
    }

    if (weft_fetch_add(&finished, 1) + 1 != vcpu_count)
        return;

    unsigned long expected = INCREMENTS * vcpu_count;
    unsigned long got = counter;
    if (got != expected)
        weft_printf("locked_counter: counter is %lu, expected %lu\n", got, expected);
    WEFT_ASSERT(got == expected);
    weft_printf("locked_counter: counter is %lu, as expected (%d increments x %lu vCPUs)\n",
                got, INCREMENTS, vcpu_count);
}
