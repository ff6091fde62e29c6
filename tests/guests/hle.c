/*
 * hle.c - HLE prefixes run as plain locked instructions (never elided): a spinlock taken
 * with XACQUIRE LOCK XCHG and released with XRELEASE MOV protects a plain counter.
 *
 * Each vCPU adds 1 to `counter` ROUNDS times under the HLE lock; the last one checks it.
 *
 * Expected (--vcpus 1..8, any strategy): console, exactly
 *     hle ok: N vCPUs x 50 increments
 * verdict pass. On a lost update: "hle: counter is 99, expected 100".
 */
#include "weft.h"

#define ROUNDS 50

static volatile unsigned int lock;  /* 0 free, 1 held */
static volatile unsigned long counter;
static unsigned long finished;      /* vCPUs done (LOCK XADD) */

static void hle_lock(void) {
    for (;;) {
        unsigned int v = 1;
        __asm__ volatile("xacquire lock xchgl %0, %1" : "+r"(v), "+m"(lock) : : "memory");
        if (v == 0)
            return;
        while (lock)
            weft_pause();
    }
}

static void hle_unlock(void) {
    __asm__ volatile("xrelease movl $0, %0" : "=m"(lock) : : "memory");
}

void _start(unsigned long id, unsigned long n) {
    (void)id;
    for (int r = 0; r < ROUNDS; r++) {
        hle_lock();
        counter = counter + 1;
        hle_unlock();
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    if (counter != ROUNDS * n)
        weft_assert_failf("hle: counter is %lu, expected %lu", counter, ROUNDS * n);
    weft_printf("hle ok: %lu vCPUs x %d increments\n", n, ROUNDS);
}
