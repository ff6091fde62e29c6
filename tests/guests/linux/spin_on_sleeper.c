/*
 * spin_on_sleeper.c - a thread that spins on a flag which a sleeping thread will set:
 * not a deadlock. The worker sleeps 2 s (sleep(2), a nanosleep), then sets `ready`; main
 * waits for it spinning, with PAUSE (argument "pause", the default) or sched_yield
 * (argument "yield"). Virtual time has to reach the sleeper's deadline while main only
 * spins. With argument "never" the worker sleeps and ends without setting the flag, and
 * main spins (PAUSE) forever: a real livelock once the sleeper is gone. Prints
 *     woke after at least 2 s
 * and exits 0. Exits 1 with a message on stderr if CLOCK_MONOTONIC says less than 2 s
 * passed, or a call fails.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile int ready;
static int never;

static void *sleeper(void *arg) {
    (void)arg;
    sleep(2);
    if (!never)
        ready = 1;
    return NULL;
}

int main(int argc, char **argv) {
    int use_yield = argc > 1 && strcmp(argv[1], "yield") == 0;
    never = argc > 1 && strcmp(argv[1], "never") == 0;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0) {
        fprintf(stderr, "spin_on_sleeper: pthread_create failed\n");
        return 1;
    }
    while (!ready) {
        if (use_yield)
            sched_yield();
        else
            __builtin_ia32_pause();
    }
    pthread_join(t, NULL);
    clock_gettime(CLOCK_MONOTONIC, &end);
    long long ns = (end.tv_sec - start.tv_sec) * 1000000000LL + (end.tv_nsec - start.tv_nsec);
    if (ns < 2000000000LL) {
        fprintf(stderr, "spin_on_sleeper: only %lld ns passed\n", ns);
        return 1;
    }
    printf("woke after at least 2 s\n");
    return 0;
}
