/*
 * threads_many.c - 8 threads each add 1 to a shared counter 10 times with an atomic
 * fetch-add (LOCK XADD); main joins them all and prints
 *     threads_many: counter=80
 * under every schedule. Exercises many clones, many exits and many joins.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define THREADS 8
#define ADDS 10

static atomic_long counter;

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < ADDS; i++)
        atomic_fetch_add(&counter, 1);
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, adder, NULL) != 0) {
            fprintf(stderr, "threads_many: pthread_create %d failed\n", i);
            return 1;
        }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("threads_many: counter=%ld\n", atomic_load(&counter));
    return 0;
}
