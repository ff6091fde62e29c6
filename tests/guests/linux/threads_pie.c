/*
 * threads_pie.c - a static-pie executable (build.rs builds *_pie.c with -static-pie):
 * weft loads it at its fixed static-pie base, glibc relocates itself, and symbols, lines,
 * stacks and gdb see the loaded addresses. Two threads add to a counter under a mutex,
 * main prints "threads_pie: counter=20", then a thread stores through NULL in
 * store_through(), a crash whose stack names store_through, worker and start_thread.
 */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static volatile long *volatile target;

__attribute__((noinline)) static void store_through(volatile long *p) {
    *p = 1;
}

static void *adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        pthread_mutex_lock(&m);
        counter++;
        pthread_mutex_unlock(&m);
    }
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    store_through(target);
    __asm__ volatile("" ::: "memory");
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, adder, NULL);
    pthread_create(&b, NULL, adder, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("threads_pie: counter=%ld\n", counter);
    fflush(stdout);
    pthread_t c;
    pthread_create(&c, NULL, worker, NULL);
    pthread_join(c, NULL);
    return 0;
}
