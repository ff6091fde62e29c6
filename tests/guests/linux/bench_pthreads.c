/*
 * bench_pthreads.c - the workload of `weft-bench linux`: four POSIX threads that each
 * walk a shared, read-only table and add into their own slot of a shared array, taking a
 * mutex every 4096 iterations to fold their slot into a shared total. Plain glibc, built
 * with gcc -O2 -static -pthread like any program a user brings.
 *
 * What should happen: it prints `bench_pthreads: total N` with the same N on every run
 * and exits 0 (the folding is correct under any schedule).
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ITERATIONS 2000000
#define TABLE 4096

static unsigned long table[TABLE];
static volatile unsigned long slot[THREADS * 8]; /* a cache line each */
static unsigned long total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *work(void *arg) {
    long id = (long)arg;
    volatile unsigned long *mine = &slot[id * 8];
    for (long i = 0; i < ITERATIONS; i++) {
        *mine += table[(i * 7 + id) % TABLE];
        if (i % 4096 == 4095) {
            pthread_mutex_lock(&lock);
            total += *mine;
            *mine = 0;
            pthread_mutex_unlock(&lock);
        }
    }
    pthread_mutex_lock(&lock);
    total += *mine;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void) {
    for (long i = 0; i < TABLE; i++)
        table[i] = (unsigned long)(i * 2654435761u) % 1000;
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, work, (void *)i) != 0)
            return 1;
    for (long i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("bench_pthreads: total %lu\n", total);
    return 0;
}
