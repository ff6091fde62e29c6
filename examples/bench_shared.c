/*
 * bench_shared.c - bench_workload with every access shared: the cost of what weft must
 * decide and record (weft-bench).
 *
 * What it shows: the same work as bench_workload.c (each vCPU adds 1 to each of its SLICE
 * elements, PASSES times, and to a shared total with LOCK ADD after every pass), but the
 * vCPUs' elements are interleaved in one array: element i of vCPU v is array[i][v], so
 * every page of the array holds elements of every vCPU and every access is to shared
 * memory: a scheduling point, and recorded. About 6.3 million instructions and 2.1 million
 * shared accesses per vCPU.
 *
 * What should happen: under every schedule, for 4 vCPUs,
 *     bench_shared: 4 vCPUs x 4096 passes x 256 elements, total 16384 ok
 * and the run passes. Any mismatch is an assertion (it would be a weft bug).
 *
 * Try it:
 *     cargo run --release --bin weft-bench
 *     weft run bench_shared.elf --vcpus 4                               # passes
 *     weft record bench_shared.elf --vcpus 2 --max-steps 200000         # budget verdict
 */
#include "weft.h"

#define SLICE 256    /* elements per vCPU, one pass */
#define PASSES 4096  /* passes per vCPU */
#define MAX_VCPUS 64 /* the board's largest vCPU count */

/* Element i of vCPU v is array[i][v]: neighbours belong to different vCPUs. */
static volatile unsigned long array[SLICE][MAX_VCPUS];
static unsigned long total;    /* LOCK ADD only */
static unsigned long finished; /* LOCK XADD only */

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    WEFT_ASSERT(vcpu_count <= MAX_VCPUS);
    volatile unsigned long *mine = &array[0][vcpu_id];

    for (unsigned pass = 0; pass < PASSES; pass++) {
        for (unsigned long i = 0; i < SLICE; i++)
            mine[i * MAX_VCPUS] += 1; /* load, add, store */
        __atomic_fetch_add(&total, 1, __ATOMIC_SEQ_CST); /* contended LOCK ADD */
    }

    for (unsigned long i = 0; i < SLICE; i++)
        if (mine[i * MAX_VCPUS] != PASSES)
            weft_assert_failf("bench_shared: vcpu%lu element %lu is %lu, expected %d", vcpu_id,
                              i, mine[i * MAX_VCPUS], PASSES);

    if (weft_fetch_add(&finished, 1) + 1 != vcpu_count)
        return;
    unsigned long got = weft_load(&total);
    unsigned long expected = (unsigned long)PASSES * vcpu_count;
    if (got != expected)
        weft_assert_failf("bench_shared: total is %lu, expected %lu", got, expected);
    weft_printf("bench_shared: %lu vCPUs x %d passes x %d elements, total %lu ok\n", vcpu_count,
                PASSES, SLICE, got);
}
