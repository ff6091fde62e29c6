/*
 * norace_barrier.c - a correct program for `weft races` (no race): four threads work in
 * rounds separated by a pthread_barrier. In each round thread i writes its own element
 * of `phase` (adjacent 4-byte ints: one 8-byte word holds two threads' elements) and,
 * after the barrier, reads its neighbour's. Prints "norace_barrier: sum=..." and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 4
#define ROUNDS 3

static pthread_barrier_t barrier;
static int phase[THREADS];
static int seen[THREADS];

static void *worker(void *arg) {
    int me = (int)(long)arg;
    for (int r = 1; r <= ROUNDS; r++) {
        phase[me] = r * 10 + me;
        pthread_barrier_wait(&barrier);
        seen[me] += phase[(me + 1) % THREADS];
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS);
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    int sum = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        sum += seen[i];
    }
    printf("norace_barrier: sum=%d\n", sum);
    return sum == 4 * 60 + 3 * 6 ? 0 : 1;
}
