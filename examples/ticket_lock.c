/*
 * ticket_lock.c - a FIFO ticket lock guarding a shared log that every vCPU appends to.
 *
 * What it shows: the ticket lock of weft.h. A vCPU takes a ticket with LOCK XADD on
 * `next` and spins with PAUSE until `serving` equals its ticket; releasing serves the next
 * ticket. Tickets are served in the order they were taken, so no vCPU starves. Under the
 * lock each vCPU appends its id to a shared log (a plain load of the length, a store of the
 * entry, a store of the new length: racy without the lock). MARK events label each round
 * in the trace.
 *
 * What should happen: under every schedule and any number of vCPUs, the log ends with
 * ROUNDS (8) entries per vCPU and ROUNDS * N entries in all; the last vCPU to finish checks
 * that and prints, for 2 vCPUs,
 *     ticket_lock: 16 entries, 8 from each of 2 vCPUs
 * and the run passes.
 *
 * Try it:
 *     weft run ticket_lock.elf --vcpus 4 --strategy random --seed 3          # passes
 *     weft record ticket_lock.elf --vcpus 3 && weft inspect --events ticket_lock.weft
 */
#include "weft.h"

#define ROUNDS 8
#define MAX_VCPUS 64

static weft_ticketlock lock = WEFT_TICKETLOCK_INIT;
static volatile unsigned long log_len;
static volatile unsigned char log_entries[ROUNDS * MAX_VCPUS];
static unsigned long finished;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    WEFT_ASSERT(vcpu_count <= MAX_VCPUS);
    for (int r = 0; r < ROUNDS; r++) {
        weft_ticket_lock(&lock);
        WEFT_MARK("ticket_lock: in critical section");
        unsigned long n = log_len;
        log_entries[n] = (unsigned char)vcpu_id;
        log_len = n + 1;
        weft_ticket_unlock(&lock);
    }

    if (weft_fetch_add(&finished, 1) + 1 != vcpu_count)
        return;

    unsigned long len = log_len;
    if (len != ROUNDS * vcpu_count)
        weft_assert_failf("ticket_lock: %lu entries, expected %lu", len, ROUNDS * vcpu_count);
    unsigned long per_vcpu[MAX_VCPUS] = {0};
    for (unsigned long i = 0; i < len; i++)
        per_vcpu[log_entries[i]]++;
    for (unsigned long v = 0; v < vcpu_count; v++)
        if (per_vcpu[v] != ROUNDS)
            weft_assert_failf("ticket_lock: vcpu%lu has %lu entries, expected %d", v,
                              per_vcpu[v], ROUNDS);
    weft_printf("ticket_lock: %lu entries, %d from each of %lu vCPUs\n", len, ROUNDS,
                vcpu_count);
}
