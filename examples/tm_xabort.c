/*
 * tm_xabort.c - XABORT with a code: a transaction gives up on purpose and tells its
 * fallback path why.
 *
 * What it shows: explicit aborts. A tiny queue: vCPU 0 (the producer) pushes ITEMS items
 * under an elided lock; once it has pushed them all it sets `closed`. Every other vCPU (a
 * consumer) pops items in transactions. A consumer's transaction that finds the queue
 * empty aborts with XABORT(CODE_EMPTY), one that finds it closed and empty with
 * XABORT(CODE_CLOSED), one that finds the lock held with XABORT(CODE_BUSY); the status it
 * gets back is EXPLICIT | code << 24 (e.g. 0x42000001), checked bit for bit, and whatever
 * the transaction wrote before XABORT is rolled back (it bumps a shared `attempts` counter
 * first, which aborted attempts must leave unchanged). After 8 failed transactions a
 * consumer takes the lock instead, so consumers cannot starve the producer.
 *
 * What should happen: under every schedule every item is popped exactly once, every
 * explicit status has exactly the expected bits, and the last vCPU prints
 *     tm_xabort: 16 items popped once each; explicit aborts had status EXPLICIT | code << 24 exactly
 * and the run passes.
 *
 * Try it:
 *     weft record tm_xabort.elf -o xabort.weft --vcpus 3 && weft tm xabort.weft
 */
#include "weft.h"

#define ITEMS 16
#define CODE_EMPTY 0x42
#define CODE_CLOSED 0x43
#define CODE_BUSY 0x44

static volatile unsigned long head __attribute__((aligned(64))); /* next item to pop */
static volatile unsigned long tail __attribute__((aligned(64))); /* next slot to push */
static volatile unsigned long closed __attribute__((aligned(64))); /* no more pushes */
static volatile unsigned long attempts __attribute__((aligned(64))); /* committed pops */
static volatile unsigned long items[ITEMS] __attribute__((aligned(64)));
static unsigned long popped[ITEMS]; /* times each item was popped (LOCK XADD) */
static weft_spinlock lock;          /* the queue's lock: elided by push, pop's fallback */
static volatile int explicit_seen;  /* some consumer saw an explicit abort */
static unsigned long finished;      /* vCPUs done (LOCK XADD) */

/* Push one item (producer) under the elided lock. */
static void push(unsigned long v) {
    weft_elided_lock(&lock);
    items[tail] = v;
    tail = tail + 1;
    weft_elided_unlock(&lock);
}

/* Check an explicit abort's status word, bit for bit. */
static void check_explicit(unsigned long id, unsigned s) {
    unsigned code = WEFT_XABORT_CODE(s);
    if (s != (WEFT_XABORT_EXPLICIT | code << 24) ||
        (code != CODE_EMPTY && code != CODE_CLOSED && code != CODE_BUSY))
        weft_assert_failf("tm_xabort: vcpu%lu: explicit abort status %#x", id, s);
}

/* Pop one item into *out: 1 on success, 0 if the queue is closed and empty, -1 if it is
 * only empty for now. Tries transactions first, then takes the lock (so that a consumer
 * cannot starve the producer by aborting its transactions forever). */
static int pop(unsigned long id, unsigned long *out) {
    for (int tries = 0; tries < 8; tries++) {
        unsigned s = weft_xbegin();
        if (s == WEFT_XBEGIN_STARTED) {
            if (lock.locked)
                weft_xabort(CODE_BUSY); /* someone holds the real lock: wait for it */
            attempts = attempts + 1;    /* rolled back if we abort below */
            if (head == tail) {
                if (closed)
                    weft_xabort(CODE_CLOSED);
                weft_xabort(CODE_EMPTY);
            }
            *out = items[head];
            head = head + 1;
            weft_xend();
            return 1;
        }
        if (s & WEFT_XABORT_EXPLICIT) {
            check_explicit(id, s);
            explicit_seen = 1;
            if (WEFT_XABORT_CODE(s) == CODE_CLOSED)
                return 0;
            if (WEFT_XABORT_CODE(s) == CODE_EMPTY)
                return -1;
            while (lock.locked) /* CODE_BUSY */
                weft_pause();
        }
    }
    weft_spin_lock(&lock);
    int r = -1;
    if (head != tail) {
        *out = items[head];
        head = head + 1;
        attempts = attempts + 1;
        r = 1;
    } else if (closed) {
        r = 0;
    }
    weft_spin_unlock(&lock);
    return r;
}

/* Take items until the queue is closed and empty. */
static void consume(unsigned long id) {
    for (;;) {
        unsigned long v;
        int r = pop(id, &v);
        if (r == 0)
            return;
        if (r < 0) {
            weft_pause();
            continue;
        }
        if (v >= ITEMS)
            weft_assert_failf("tm_xabort: vcpu%lu popped %lu", id, v);
        weft_fetch_add(&popped[v], 1);
    }
}

void _start(unsigned long id, unsigned long n) {
    if (id == 0) {
        for (unsigned long i = 0; i < ITEMS; i++)
            push(i);
        weft_elided_lock(&lock);
        closed = 1;
        weft_elided_unlock(&lock);
        if (n == 1)
            consume(id);
    } else {
        consume(id);
    }
    if (weft_fetch_add(&finished, 1) + 1 != n)
        return;
    for (int i = 0; i < ITEMS; i++)
        if (popped[i] != 1)
            weft_assert_failf("tm_xabort: item %d popped %lu times", i, popped[i]);
    if (attempts != ITEMS)
        weft_assert_failf("tm_xabort: %lu committed pops, expected %d: aborted writes leaked",
                          attempts, ITEMS);
    if (n > 1 && !explicit_seen)
        weft_assert_failf("tm_xabort: no consumer saw the queue closed by an explicit abort");
    weft_printf("tm_xabort: %d items popped once each; explicit aborts had status "
                "EXPLICIT | code << 24 exactly\n", ITEMS);
}
