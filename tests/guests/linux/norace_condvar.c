/*
 * norace_condvar.c - a correct program for `weft races`: a bounded queue (mutex and two
 * condition variables) between two producers and two consumers; the items are heap
 * blocks the producer fills and the consumer reads and frees. Prints
 * "norace_condvar: total=..." and exits 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define CAP 3
#define ITEMS 8

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static int *queue[CAP];
static int head, count;
static long total;

static void *producer(void *arg) {
    int base = (int)(long)arg;
    for (int i = 0; i < ITEMS; i++) {
        int *item = malloc(4 * sizeof *item);
        for (int k = 0; k < 4; k++)
            item[k] = base + i + k;
        pthread_mutex_lock(&m);
        while (count == CAP)
            pthread_cond_wait(&not_full, &m);
        queue[(head + count) % CAP] = item;
        count++;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    long mine = 0;
    for (int i = 0; i < ITEMS; i++) {
        pthread_mutex_lock(&m);
        while (count == 0)
            pthread_cond_wait(&not_empty, &m);
        int *item = queue[head];
        head = (head + 1) % CAP;
        count--;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&m);
        for (int k = 0; k < 4; k++)
            mine += item[k];
        free(item);
    }
    pthread_mutex_lock(&m);
    total += mine;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void) {
    pthread_t p[2], c[2];
    for (long i = 0; i < 2; i++) {
        pthread_create(&p[i], NULL, producer, (void *)(i * 100));
        pthread_create(&c[i], NULL, consumer, NULL);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(p[i], NULL);
        pthread_join(c[i], NULL);
    }
    printf("norace_condvar: total=%ld\n", total);
    return 0;
}
