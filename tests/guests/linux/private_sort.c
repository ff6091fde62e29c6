/*
 * private_sort.c - an ordinary program whose threads share almost nothing: four threads
 * each fill their own malloc'd array of 50,000 ints with a pseudo-random sequence and
 * qsort it, then add a checksum of it to a shared total under one mutex. The cost case of
 * `weft-bench linux` and docs/performance.md: what weft pays should follow what threads
 * share (a mutex and a counter), not what they compute.
 *
 * What should happen: it prints `private_sort: checksum N` with the same N on every run
 * and exits 0 (each array is sorted, and addition commutes).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 4
#define COUNT 50000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long checksum;

static int cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void *work(void *arg) {
    unsigned seed = 12345u + (unsigned)(long)arg * 7919u;
    int *v = malloc(COUNT * sizeof *v);
    if (!v)
        return (void *)1;
    for (int i = 0; i < COUNT; i++) {
        seed = seed * 1103515245u + 12345u;
        v[i] = (int)(seed >> 8);
    }
    qsort(v, COUNT, sizeof *v, cmp);
    unsigned long sum = 0;
    for (int i = 0; i < COUNT; i++) {
        if (i > 0 && v[i - 1] > v[i])
            return (void *)2;
        sum = sum * 31 + (unsigned)v[i];
    }
    free(v);
    pthread_mutex_lock(&lock);
    checksum += sum;
    pthread_mutex_unlock(&lock);
    return 0;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], 0, work, (void *)i))
            return 3;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r)
            return 4;
    }
    printf("private_sort: checksum %lu\n", checksum);
    return 0;
}
