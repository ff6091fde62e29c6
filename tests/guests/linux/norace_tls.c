/*
 * norace_tls.c - a correct program for `weft races`: each thread counts in its own
 * __thread variables (initialised and zero TLS), and publishes its count into its own
 * slot of a short array once done. Prints "norace_tls: sum=..." and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

static __thread long tls_count;
static __thread int tls_init = 7;
static short results[4];

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 20; i++)
        tls_count += tls_init + id;
    results[id] = (short)tls_count;
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    int sum = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        sum += results[i];
    }
    printf("norace_tls: sum=%d\n", sum);
    return sum == 20 * (4 * 7 + 6) ? 0 : 1;
}
