/*
 * norace_join_results.c - a correct program for `weft races`: the fork/join pattern.
 * Main fills an input array, four threads each sum their quarter into their own int of a
 * results array (adjacent ints) and return a heap value through pthread_join; main reads
 * both after joining. Prints "norace_join_results: ok" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define N 64
#define THREADS 4

static int input[N];
static int results[THREADS];

static void *worker(void *arg) {
    long id = (long)arg;
    int s = 0;
    for (int i = (int)id * (N / THREADS); i < ((int)id + 1) * (N / THREADS); i++)
        s += input[i];
    results[id] = s;
    long *ret = malloc(sizeof *ret);
    *ret = s;
    return ret;
}

int main(void) {
    for (int i = 0; i < N; i++)
        input[i] = i;
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long total = 0;
    int ok = 1;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        ok &= *(long *)ret == results[i];
        total += results[i];
        free(ret);
    }
    printf("norace_join_results: %s\n", ok && total == N * (N - 1) / 2 ? "ok" : "wrong");
    return ok ? 0 : 1;
}
