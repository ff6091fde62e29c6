/*
 * norace_mutex_kinds.c - a correct program for `weft races`: a recursive mutex taken
 * twice per update, an error-checking mutex, and a trylock loop, each guarding its own
 * counter. Prints "norace_mutex_kinds: 24 24 24" and exits 0.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

static pthread_mutex_t rec, chk, tried = PTHREAD_MUTEX_INITIALIZER;
static int a, b, c;

static void add_a(int depth) {
    pthread_mutex_lock(&rec);
    if (depth > 0)
        add_a(depth - 1);
    else
        a++;
    pthread_mutex_unlock(&rec);
}

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 8; i++) {
        add_a(1);
        pthread_mutex_lock(&chk);
        b++;
        pthread_mutex_unlock(&chk);
        while (pthread_mutex_trylock(&tried) != 0)
            sched_yield();
        c++;
        pthread_mutex_unlock(&tried);
    }
    return NULL;
}

int main(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&chk, &attr);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("norace_mutex_kinds: %d %d %d\n", a, b, c);
    return a == 24 && b == 24 && c == 24 ? 0 : 1;
}
