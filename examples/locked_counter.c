/*
 * locked_counter.c - the racy counter fixed: increments under a spinlock.
 *
 * The lock is a test-and-set spinlock (XCHG to take it, a plain store to release it,
 * correct on x86). No schedule loses an update, so every run passes; the vCPUs that wait
 * spin with PAUSE, which weft sees as spinning and schedules around.
 */
#include "weft.h"

#define INCREMENTS 50

static weft_spinlock lock;
static volatile unsigned long counter;
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    for (int i = 0; i < INCREMENTS; i++) {
        weft_spin_lock(&lock);
        counter++;
        weft_spin_unlock(&lock);
    }
    if (weft_fetch_add(&finished, 1) + 1 == vcpu_count) {
        WEFT_ASSERT(counter == INCREMENTS * vcpu_count);
        weft_printf("vcpu%lu: counter is %lu as expected\n", vcpu_id, counter);
    }
}
