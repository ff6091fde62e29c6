/*
 * bench_workload.c - a correct multi-vCPU workload for measuring weft's speed (weft-bench).
 *
 * What it shows: the cost of running and recording ordinary multi-vCPU code. Each vCPU
 * makes PASSES passes over its own SLICE of a global array, each pass a simple loop of
 * load / add / store / pointer increment / compare / branch per element (6 instructions,
 * 2 accesses). Each slice has a page of its own, as the per-thread data of a program
 * written for parallel speed has (no false sharing), so the slices are memory only their
 * vCPU touches: weft runs those accesses at full speed and records none of them. After
 * every pass (every 256 elements) each vCPU adds 1 to a shared total with LOCK ADD, so
 * the vCPUs contend on one cache line now and then: those are the shared accesses. The
 * work per vCPU does not depend on the vCPU count: about 6.3 million instructions per
 * vCPU, 25 million for 4 vCPUs. No hypercall or port I/O runs before the loop ends
 * (weft-bench runs vCPU 0's loop alone on bare unicorn). bench_shared.c is the same loop
 * with the slices interleaved, so that every access is to shared memory.
 *
 * What should happen: under every schedule, each vCPU checks its slice (every element
 * equal to PASSES) and the last vCPU to finish checks the total and prints, for 4 vCPUs,
 *     bench_workload: 4 vCPUs x 4096 passes x 256 elements, total 16384 ok
 * and the run passes. Any mismatch is an assertion (it would be a weft bug).
 *
 * Try it:
 *     make bench                                   # or: cargo run --release --bin weft-bench
 *     weft run bench_workload.elf --vcpus 4        # passes
 *     weft record bench_workload.elf --vcpus 2 --max-steps 2000     # budget verdict
 */
#include "weft.h"

#define SLICE 256    /* elements per vCPU, one pass */
#define ROW 512      /* words per vCPU's row: 4 KiB, a page */
#define PASSES 4096  /* passes per vCPU: SLICE * PASSES = 1048576 iterations */
#define MAX_VCPUS 64 /* the board's largest vCPU count */

/* A page per vCPU: row i is only vCPU i's. */
static volatile unsigned long array[MAX_VCPUS][ROW] __attribute__((aligned(4096)));
static unsigned long total;    /* LOCK ADD only */
static unsigned long finished; /* LOCK XADD only */

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    WEFT_ASSERT(vcpu_count <= MAX_VCPUS);
    volatile unsigned long *mine = array[vcpu_id];

    for (unsigned pass = 0; pass < PASSES; pass++) {
        for (unsigned long i = 0; i < SLICE; i++)
            mine[i] += 1; /* load, add, store */
        __atomic_fetch_add(&total, 1, __ATOMIC_SEQ_CST); /* contended LOCK ADD */
    }

    for (unsigned long i = 0; i < SLICE; i++)
        if (mine[i] != PASSES)
            weft_assert_failf("bench_workload: vcpu%lu element %lu is %lu, expected %d",
                              vcpu_id, i, mine[i], PASSES);

    if (weft_fetch_add(&finished, 1) + 1 != vcpu_count)
        return;
    unsigned long got = weft_load(&total);
    unsigned long expected = (unsigned long)PASSES * vcpu_count;
    if (got != expected)
        weft_assert_failf("bench_workload: total is %lu, expected %lu", got, expected);
    weft_printf("bench_workload: %lu vCPUs x %d passes x %d elements, total %lu ok\n",
                vcpu_count, PASSES, SLICE, got);
}
