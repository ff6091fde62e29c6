/*
 * norace_detached.c - a correct program for `weft races`: detached threads (never
 * joined) each fill their own heap record and report completion under a mutex with a
 * condition variable; main waits for all of them, then reads the records. Prints
 * "norace_detached: sum=..." and exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define THREADS 3

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finished;
static int *records[THREADS];

static void *worker(void *arg) {
    long id = (long)arg;
    int *r = malloc(4 * sizeof *r);
    for (int i = 0; i < 4; i++)
        r[i] = (int)id * 4 + i;
    pthread_mutex_lock(&m);
    records[id] = r;
    finished++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (long i = 0; i < THREADS; i++) {
        pthread_t t;
        pthread_create(&t, &attr, worker, (void *)i);
    }
    pthread_mutex_lock(&m);
    while (finished < THREADS)
        pthread_cond_wait(&cv, &m);
    pthread_mutex_unlock(&m);
    int sum = 0;
    for (int i = 0; i < THREADS; i++) {
        for (int k = 0; k < 4; k++)
            sum += records[i][k];
        free(records[i]);
    }
    printf("norace_detached: sum=%d\n", sum);
    return sum == 66 ? 0 : 1;
}
