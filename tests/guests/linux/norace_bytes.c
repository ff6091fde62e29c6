/*
 * norace_bytes.c - a correct program for `weft races`: eight threads each own one byte
 * flag and one 16-bit counter of packed shared arrays, and write them concurrently
 * (every 8-byte word is shared by several threads, no byte is). Prints
 * "norace_bytes: ok" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

#define THREADS 8

static unsigned char done[THREADS];
static unsigned short counts[THREADS];

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 5; i++)
        counts[id] += (unsigned short)(id + 1);
    done[id] = 1;
    return NULL;
}

int main(void) {
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    int ok = 1;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok &= done[i] == 1 && counts[i] == 5 * (i + 1);
    }
    printf("norace_bytes: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
