/*
 * norace_rwlock.c - a correct program for `weft races`: two writers update a table
 * under pthread_rwlock_wrlock while three readers sum it under pthread_rwlock_rdlock.
 * Prints "norace_rwlock: ok" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

#define SLOTS 8

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static long table[SLOTS];
static long sums[3];

static void *writer(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 6; i++) {
        pthread_rwlock_wrlock(&lock);
        for (int s = 0; s < SLOTS; s++)
            table[s] += id;
        pthread_rwlock_unlock(&lock);
    }
    return NULL;
}

static void *reader(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 6; i++) {
        pthread_rwlock_rdlock(&lock);
        long s = 0;
        for (int k = 0; k < SLOTS; k++)
            s += table[k];
        pthread_rwlock_unlock(&lock);
        sums[id] += s;
    }
    return NULL;
}

int main(void) {
    pthread_t w[2], r[3];
    for (long i = 0; i < 2; i++)
        pthread_create(&w[i], NULL, writer, (void *)(i + 1));
    for (long i = 0; i < 3; i++)
        pthread_create(&r[i], NULL, reader, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i], NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(r[i], NULL);
    int ok = table[0] == 18;
    printf("norace_rwlock: %s\n", ok ? "ok" : "wrong");
    return ok ? 0 : 1;
}
