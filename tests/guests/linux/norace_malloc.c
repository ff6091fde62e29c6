/*
 * norace_malloc.c - a correct program for `weft races`: three threads allocate, fill,
 * resize and free blocks of many sizes (small ones from per-thread caches and arenas,
 * large ones mmapped), and hand some blocks to another thread through a mutex-protected
 * slot, which frees them. Prints "norace_malloc: ok" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 3

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static char *handed[THREADS];
static long checks[THREADS];

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 12; i++) {
        size_t n = (size_t)(16 << (i % 7)) + (size_t)id;
        char *p = malloc(n);
        memset(p, (int)id + 1, n);
        p = realloc(p, n * 2);
        char *q = calloc(n, 1);
        checks[id] += p[n - 1] + q[0];
        free(q);
        if (i % 4 == 0) {
            pthread_mutex_lock(&m);
            char *old = handed[(id + 1) % THREADS];
            handed[(id + 1) % THREADS] = p;
            pthread_mutex_unlock(&m);
            free(old);
        } else {
            free(p);
        }
    }
    char *big = malloc(300000);
    memset(big, 1, 300000);
    checks[id] += big[299999];
    free(big);
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        sum += checks[i];
    }
    /* Every thread hands blocks on to its neighbour: free them once all are joined. */
    for (int i = 0; i < THREADS; i++)
        free(handed[i]);
    printf("norace_malloc: %s\n", sum == 12 * (1 + 2 + 3) + 3 ? "ok" : "wrong");
    return 0;
}
