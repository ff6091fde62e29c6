/*
 * tm_capacity.c - a transaction that writes more cache lines than the write set holds
 * aborts with the CAPACITY bit, every time; the fallback path must do the work.
 *
 * What it shows: RTM capacity. Each vCPU adds 1 to every counter of its own row of
 * BIG_LINES (1024) counters, one per 64-byte line, first trying one transaction for the
 * whole row. The board's write set holds 512 lines (a 32 KiB L1D; --tm-write-lines), so
 * that transaction always aborts with status WEFT_XABORT_CAPACITY (0x8), rolled back
 * completely; the vCPU then updates the row under a spinlock. A second, small transaction
 * (SMALL_LINES = 8 lines) fits and commits.
 *
 * What should happen: each vCPU checks the capacity status and its row, and the last vCPU
 * to finish prints, for 2 vCPUs,
 *     tm_capacity: 2 vCPUs: 1024-line transactions aborted (status 0x8, capacity), fallback
 *     did the work; 8-line transactions committed
 * (one line) and the run passes. With --tm-write-lines 2048 the big transaction commits and
 * the guest fails, saying so.
 *
 * Try it:
 *     weft record tm_capacity.elf -o cap.weft && weft tm cap.weft
 */
#include "weft.h"

#define BIG_LINES 1024
#define SMALL_LINES 8
#define MAX_VCPUS 4

/* One counter per 64-byte line: row[v][i].n is vCPU v's i-th counter. */
struct line {
    volatile unsigned long n;
    char pad[56];
};
static struct line rows[MAX_VCPUS][BIG_LINES] __attribute__((aligned(64)));
static weft_spinlock lock;     /* the fallback path's lock */
static unsigned long finished; /* vCPUs done (LOCK XADD) */

void _start(unsigned long id, unsigned long n) {
    if (id >= MAX_VCPUS)
        return;
    struct line *row = rows[id];
    unsigned s = weft_xbegin();
    if (s == WEFT_XBEGIN_STARTED) {
        for (int i = 0; i < BIG_LINES; i++)
            row[i].n += 1;
        weft_xend();
        weft_assert_failf("tm_capacity: vcpu%lu: a %d-line transaction committed (is "
                          "--tm-write-lines above %d?)", id, BIG_LINES, BIG_LINES);
    }
    if (s != WEFT_XABORT_CAPACITY)
        weft_assert_failf("tm_capacity: vcpu%lu: big transaction aborted with status %#x, "
                          "expected 0x8 (capacity)", id, s);
    for (int i = 0; i < BIG_LINES; i++)
        if (row[i].n != 0)
            weft_assert_failf("tm_capacity: vcpu%lu: line %d kept a write of the aborted "
                              "transaction", id, i);
    weft_spin_lock(&lock); /* fallback: the same work, not transactional */
    for (int i = 0; i < BIG_LINES; i++)
        row[i].n += 1;
    weft_spin_unlock(&lock);

    unsigned t;
    do {
        t = weft_xbegin();
        if (t == WEFT_XBEGIN_STARTED) {
            for (int i = 0; i < SMALL_LINES; i++)
                row[i].n += 1;
            weft_xend();
        }
    } while (t != WEFT_XBEGIN_STARTED && (t & WEFT_XABORT_RETRY));
    if (t != WEFT_XBEGIN_STARTED)
        weft_assert_failf("tm_capacity: vcpu%lu: small transaction aborted, status %#x", id, t);
    for (int i = 0; i < BIG_LINES; i++)
        if (row[i].n != (i < SMALL_LINES ? 2u : 1u))
            weft_assert_failf("tm_capacity: vcpu%lu: line %d is %lu", id, i, row[i].n);

    if (weft_fetch_add(&finished, 1) + 1 != (n < MAX_VCPUS ? n : MAX_VCPUS))
        return;
    weft_printf("tm_capacity: %lu vCPUs: %d-line transactions aborted (status 0x8, capacity), "
                "fallback did the work; %d-line transactions committed\n",
                n < MAX_VCPUS ? n : MAX_VCPUS, BIG_LINES, SMALL_LINES);
}
