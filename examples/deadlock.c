/*
 * deadlock.c - two spinlocks taken in opposite orders by two vCPUs (an ABBA deadlock).
 *
 * What it shows: vCPU 0 takes lock A then lock B; vCPU 1 takes B then A, each doing some
 * work on shared data between the two acquisitions. If each gets its first lock before the
 * other gets its second, both spin forever (PAUSE) on the lock the other holds. weft sees
 * every live vCPU spinning without progress and ends the run with a deadlock verdict that
 * says where each vCPU spins. Schedules that let one vCPU take both locks before the other
 * takes its first pass.
 *
 * What should happen: with 2 or more vCPUs (vCPUs 2 and up just return; with 1 vCPU there
 * is nobody to deadlock with and it passes),
 *   - passing schedules print, from each of vCPU 0 and vCPU 1,
 *         deadlock: vcpu0 took both locks
 *         deadlock: vcpu1 took both locks
 *     (in either order) and the run passes;
 *   - deadlocking schedules print nothing and end with verdict deadlock.
 * With a large round-robin quantum vCPU 0 finishes first and the run passes; with
 * quantum=1 both take their first lock and it deadlocks.
 *
 * Try it:
 *     weft run deadlock.elf                                          # passes
 *     weft run deadlock.elf --strategy round-robin:quantum=1         # deadlock
 *     weft run deadlock.elf --strategy random --seed N --deadlock-window 20000
 */
#include "weft.h"

static weft_spinlock lock_a = WEFT_SPINLOCK_INIT;
static weft_spinlock lock_b = WEFT_SPINLOCK_INIT;
static volatile unsigned long balance_a = 100, balance_b = 100;

/* Move `amount` from the first account to the second, holding both locks. */
static void transfer(weft_spinlock *first, volatile unsigned long *from, weft_spinlock *second,
                     volatile unsigned long *to, unsigned long amount) {
    weft_spin_lock(first);
    *from -= amount; /* work under the first lock widens the window */
    weft_spin_lock(second);
    *to += amount;
    weft_spin_unlock(second);
    weft_spin_unlock(first);
}

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_count;
    if (vcpu_id == 0)
        transfer(&lock_a, &balance_a, &lock_b, &balance_b, 10); /* A then B */
    else if (vcpu_id == 1)
        transfer(&lock_b, &balance_b, &lock_a, &balance_a, 20); /* B then A */
    else
        return;
    weft_printf("deadlock: vcpu%lu took both locks\n", vcpu_id);
}
