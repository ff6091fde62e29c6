/*
 * norace_sem.c - a correct program for `weft races`: a ping-pong between two threads
 * through two POSIX semaphores; each writes the shared message only when it holds the
 * turn. Prints "norace_sem: value=..." and exits 0.
 */
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>

static sem_t ping, pong;
static long message;

static void *other(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) {
        sem_wait(&ping);
        message = message * 2 + 1;
        sem_post(&pong);
    }
    return NULL;
}

int main(void) {
    pthread_t t;
    sem_init(&ping, 0, 0);
    sem_init(&pong, 0, 0);
    pthread_create(&t, NULL, other, NULL);
    for (int i = 0; i < 5; i++) {
        message += 1;
        sem_post(&ping);
        sem_wait(&pong);
    }
    pthread_join(t, NULL);
    printf("norace_sem: value=%ld\n", message);
    return 0;
}
