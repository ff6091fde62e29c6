/*
 * lock_heavy.c - threads that share all the time: four threads each take one mutex
 * 20,000 times to add to a shared counter and a shared histogram. The other cost case of
 * docs/performance.md: nearly every access is to memory more than one thread uses.
 *
 * What should happen: it prints `lock_heavy: 80000 increments, histogram ok` and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long counter;
static unsigned long histogram[64];

static void *work(void *arg) {
    long id = (long)arg;
    for (long i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        histogram[(i * 13 + id) % 64]++;
        pthread_mutex_unlock(&lock);
    }
    return 0;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], 0, work, (void *)i))
            return 3;
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], 0);
    unsigned long sum = 0;
    for (int i = 0; i < 64; i++)
        sum += histogram[i];
    if (counter != THREADS * ROUNDS || sum != counter)
        return 1;
    printf("lock_heavy: %lu increments, histogram ok\n", counter);
    return 0;
}
