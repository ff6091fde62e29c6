/*
 * deadlock.c - two locks taken in opposite orders.
 *
 * vCPU 0 takes A then B; vCPU 1 takes B then A. If each gets its first lock before the
 * other gets its second, both spin forever: weft ends the run with a deadlock verdict,
 * naming where each vCPU spins. Schedules that run one critical section after the other
 * pass. Other vCPUs, if any, just return.
 */
#include "weft.h"

static weft_spinlock a, b;
static volatile unsigned long shared;

static void transfer(weft_spinlock *first, weft_spinlock *second, unsigned long id) {
    weft_spin_lock(first);
    shared += id;
    weft_spin_lock(second);
    shared += id;
    weft_spin_unlock(second);
    weft_spin_unlock(first);
}

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_count;
    if (vcpu_id == 0)
        transfer(&a, &b, 1);
    else if (vcpu_id == 1)
        transfer(&b, &a, 2);
    if (vcpu_id <= 1)
        weft_printf("vcpu%lu: done\n", vcpu_id);
}
