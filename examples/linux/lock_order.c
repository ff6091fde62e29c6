/*
 * lock_order.c - a lock-order (ABBA) deadlock between two POSIX threads.
 *
 * What it shows: thread 1 moves money from account A to account B and locks A then B;
 * thread 2 moves money from B to A and locks B then A. If each takes its first mutex
 * before the other takes its second, each waits for the mutex the other holds, forever.
 * Unlike the spinlocks of deadlock.c, a blocked pthread_mutex_lock sleeps in futex wait,
 * so weft sees every thread blocked (main too, in pthread_join) and ends the run with a
 * deadlock verdict naming where each thread waits. The usual fix: every thread takes the
 * mutexes in one global order (e.g. by address).
 *
 * What should happen: A and B start at 100; thread 1 moves 10 from A to B, thread 2 moves
 * 20 from B to A. Schedules that let one thread take both mutexes before the other takes
 * its first (including running each thread to completion in turn) print
 *     lock_order: a=110 b=90
 * and exit 0. Schedules that interleave the two first acquisitions print nothing and end
 * with verdict deadlock. Natively the second thread usually starts after the first has
 * finished, so the program almost always completes; it can hang, rarely.
 *
 * Try it:
 *     ./lock_order.elf                                            # natively: nearly always ok
 *     weft record lock_order.elf                          # one schedule: passes
 *     weft explore lock_order.elf --schedules 1000        # finds the deadlock
 */
#include <pthread.h>
#include <stdio.h>

struct account {
    pthread_mutex_t lock;
    long balance;
};

static struct account a = {PTHREAD_MUTEX_INITIALIZER, 100};
static struct account b = {PTHREAD_MUTEX_INITIALIZER, 100};

struct transfer {
    struct account *from, *to;
    long amount;
};

static void *transfer(void *arg) {
    const struct transfer *t = arg;
    pthread_mutex_lock(&t->from->lock); /* thread 1 takes A here, thread 2 takes B */
    t->from->balance -= t->amount;
    pthread_mutex_lock(&t->to->lock); /* ... and each then waits for the other's */
    t->to->balance += t->amount;
    pthread_mutex_unlock(&t->to->lock);
    pthread_mutex_unlock(&t->from->lock);
    return NULL;
}

int main(void) {
    static const struct transfer a_to_b = {&a, &b, 10}, b_to_a = {&b, &a, 20};
    pthread_t t1, t2;
    if (pthread_create(&t1, NULL, transfer, (void *)&a_to_b) != 0 ||
        pthread_create(&t2, NULL, transfer, (void *)&b_to_a) != 0) {
        fprintf(stderr, "lock_order: pthread_create failed\n");
        return 1;
    }
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    printf("lock_order: a=%ld b=%ld\n", a.balance, b.balance);
    return 0;
}
