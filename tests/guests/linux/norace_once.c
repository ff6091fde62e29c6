/*
 * norace_once.c - a correct program for `weft races`: every thread calls pthread_once to
 * build a lookup table (done by exactly one of them) and then reads it. Prints
 * "norace_once: sum=..." and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int squares[16];
static int sums[4];

static void build(void) {
    for (int i = 0; i < 16; i++)
        squares[i] = i * i;
}

static void *worker(void *arg) {
    long id = (long)arg;
    pthread_once(&once, build);
    for (int i = 0; i < 16; i++)
        sums[id] += squares[i];
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    int sum = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        sum += sums[i];
    }
    printf("norace_once: sum=%d\n", sum);
    return sum == 4 * 1240 ? 0 : 1;
}
