/*
 * bench_workload.c - a correct multi-vCPU workload for benchmarks (`make bench`).
 *
 * Each vCPU runs a long load/add/store loop over its own slice of a shared array and, every
 * 256 iterations, adds to a shared total with a locked add. The last vCPU to finish checks
 * the total and prints it. It passes under every schedule.
 */
#include "weft.h"

#define SLICE 512          /* elements per vCPU */
#define ITERATIONS 2000000 /* loop iterations per vCPU */
#define MAX_VCPUS 64

static volatile unsigned long array[MAX_VCPUS * SLICE];
static unsigned long total;
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    volatile unsigned long *mine = &array[(vcpu_id % MAX_VCPUS) * SLICE];
    for (unsigned long i = 0; i < ITERATIONS; i++) {
        mine[i % SLICE] += i;
        if (i % 256 == 255)
            weft_fetch_add(&total, 1);
    }
    if (weft_fetch_add(&finished, 1) + 1 == vcpu_count) {
        unsigned long expected = vcpu_count * (ITERATIONS / 256);
        WEFT_ASSERT(weft_load(&total) == expected);
        weft_printf("bench: %lu vCPUs, total %lu\n", vcpu_count, weft_load(&total));
    }
}
