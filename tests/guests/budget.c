/*
 * budget.c - a long but finite loop of shared accesses, for cutting with --max-steps.
 *
 * Each vCPU adds 1 to its own element of a global array ITERATIONS (1,000,000) times
 * (a load and a store of shared memory per iteration, so about 2,000,000 steps per vCPU).
 * Nothing is printed before the loops end. Then the last vCPU to finish checks every
 * element and prints one line.
 *
 * Expected:
 *   with --max-steps S (S well below 2,000,000, e.g. 5000): no console output; verdict
 *   budget exceeded after exactly S steps; `weft` exit code 1.
 *   without a budget, any number of vCPUs N (1..64), every schedule: console exactly
 *       budget: N vCPUs x 1000000 iterations done
 *   verdict: pass; `weft` exit code 0 (about 2,000,000 x N steps: slow on purpose).
 */
#include "weft.h"

#define ITERATIONS 1000000UL
#define MAX_VCPUS 64

static volatile unsigned long cells[MAX_VCPUS];
static unsigned long finished;

void _start(unsigned long id, unsigned long n) {
    if (n > MAX_VCPUS)
        weft_assert_failf("budget: at most %d vCPUs", MAX_VCPUS);
    for (unsigned long i = 0; i < ITERATIONS; i++)
        cells[id] += 1;
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    for (unsigned long v = 0; v < n; v++)
        if (cells[v] != ITERATIONS)
            weft_assert_failf("budget: vcpu%lu's cell is %lu, expected %lu", v, cells[v],
                              ITERATIONS);
    weft_printf("budget: %lu vCPUs x %lu iterations done\n", n, ITERATIONS);
}
