/*
 * futex_timeout.c - exercises time: waits 10 ms on a condition variable nobody signals
 * (pthread_cond_timedwait, whose deadline is on CLOCK_REALTIME; glibc makes it a futex
 * wait with an absolute CLOCK_REALTIME timeout) and checks it returns ETIMEDOUT, then
 * sleeps 1 ms with nanosleep. Prints
 *     timed out
 * and exits 0. Exits 1 with a message on stderr if the wait returns anything else, or
 * if CLOCK_MONOTONIC says less than 11 ms passed across the wait and the sleep (time,
 * virtual or not, must advance by at least what was waited).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static int signalled; /* guarded by lock; nobody sets it */

static long long ns(const struct timespec *t) {
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int main(void) {
    struct timespec start, deadline, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 10 * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }

    int rc = 0;
    pthread_mutex_lock(&lock);
    while (!signalled && rc == 0)
        rc = pthread_cond_timedwait(&never, &lock, &deadline);
    pthread_mutex_unlock(&lock);
    if (rc != ETIMEDOUT) {
        fprintf(stderr, "futex_timeout: pthread_cond_timedwait returned %d (%s), not ETIMEDOUT\n",
                rc, strerror(rc));
        return 1;
    }

    struct timespec one_ms = {0, 1000000L};
    if (nanosleep(&one_ms, NULL) != 0) {
        fprintf(stderr, "futex_timeout: nanosleep failed: %s\n", strerror(errno));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long elapsed = ns(&end) - ns(&start);
    if (elapsed < 11 * 1000000LL) {
        fprintf(stderr, "futex_timeout: only %lld ns passed, expected at least 11 ms\n", elapsed);
        return 1;
    }
    printf("timed out\n");
    return 0;
}
