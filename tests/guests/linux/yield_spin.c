/*
 * yield_spin.c - a waiter polls a flag under a mutex and calls sleep(0) between polls
 * (as the CHESS work-stealing queues do); another thread sets the flag. Every poll takes
 * and releases the mutex, so memory keeps changing: only the sleep(0) says "I am
 * waiting". A fair strategy must let the setter run. Prints "yield_spin: done".
 */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static int flag;

static void *waiter(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&m);
        int f = flag;
        pthread_mutex_unlock(&m);
        if (f)
            return NULL;
        sleep(0);
    }
}

static void *setter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&m);
    flag = 1;
    pthread_mutex_unlock(&m);
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, waiter, NULL);
    pthread_create(&b, NULL, setter, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    puts("yield_spin: done");
    return 0;
}
