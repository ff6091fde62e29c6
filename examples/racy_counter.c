/*
 * racy_counter.c - a lost update: every vCPU increments a shared counter without a lock.
 *
 * `counter++` compiles to a load and a store; if another vCPU's increment falls between
 * them, one update is lost. The last vCPU to finish checks the total and fails the
 * assertion when it is short. Most schedules pass; some fail. This is the guest of
 * `weft demo`; try `weft record racy_counter.elf --strategy random --seed N` for a few N.
 */
#include "weft.h"

#define INCREMENTS 3

static volatile unsigned long counter;
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    for (int i = 0; i < INCREMENTS; i++)
        counter++; /* the race: load, add, store */
    if (weft_fetch_add(&finished, 1) + 1 == vcpu_count) {
        unsigned long expected = INCREMENTS * vcpu_count;
        if (counter != expected) {
            weft_printf("vcpu%lu: counter is %lu, expected %lu: an update was lost\n", vcpu_id, counter, expected);
            WEFT_ASSERT(counter == expected);
        }
        weft_printf("vcpu%lu: counter is %lu as expected\n", vcpu_id, counter);
    }
}
