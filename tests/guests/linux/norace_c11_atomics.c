/*
 * norace_c11_atomics.c - a correct program for `weft races`: C11 atomics that compile to
 * plain MOVs on x86. A producer fills a heap buffer and publishes it with a release store
 * of an `_Atomic` pointer and a release store of an `_Atomic int` flag (no LOCK-prefixed
 * instruction ever touches either); the consumer spins on acquire loads, then reads the
 * buffer. The only evidence that the flag is atomic is its DWARF type. Prints
 * "norace_c11_atomics: sum=..." and exits 0.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int *_Atomic shared_buf;
static _Atomic int ready;
static long sum;

static void *producer(void *arg) {
    (void)arg;
    int *buf = malloc(8 * sizeof *buf);
    for (int i = 0; i < 8; i++)
        buf[i] = i + 1;
    atomic_store_explicit(&shared_buf, buf, memory_order_release);
    atomic_store_explicit(&ready, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&ready, memory_order_acquire))
        sched_yield();
    int *buf = atomic_load_explicit(&shared_buf, memory_order_acquire);
    for (int i = 0; i < 8; i++)
        sum += buf[i];
    return NULL;
}

int main(void) {
    pthread_t p, c;
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("norace_c11_atomics: sum=%ld\n", sum);
    free(atomic_load_explicit(&shared_buf, memory_order_relaxed));
    return sum == 36 ? 0 : 1;
}
