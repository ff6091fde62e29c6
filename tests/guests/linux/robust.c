/*
 * robust.c - a thread locks a robust mutex and exits without unlocking it. The kernel
 * (weft's exit) walks the thread's robust list, marks the futex owner-died and wakes a
 * waiter; main's pthread_mutex_lock then returns EOWNERDEAD, main makes the mutex
 * consistent and prints
 *     robust: EOWNERDEAD, made consistent
 * under every schedule.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t m;

static void *dies_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    return NULL; /* exits with the lock held */
}

int main(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m, &a);
    pthread_t t;
    if (pthread_create(&t, NULL, dies_holding, NULL) != 0)
        return 2;
    pthread_join(t, NULL);
    int r = pthread_mutex_lock(&m);
    if (r != EOWNERDEAD) {
        printf("robust: lock returned %d\n", r);
        return 1;
    }
    if (pthread_mutex_consistent(&m) != 0)
        return 3;
    pthread_mutex_unlock(&m);
    printf("robust: EOWNERDEAD, made consistent\n");
    return 0;
}
