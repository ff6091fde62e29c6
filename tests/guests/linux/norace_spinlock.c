/*
 * norace_spinlock.c - a correct program for `weft races`: three threads add to a
 * two-field record under a pthread_spinlock. Prints "norace_spinlock: 30 60" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

static pthread_spinlock_t lock;
static struct {
    int count;
    int weight;
} record;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < 10; i++) {
        pthread_spin_lock(&lock);
        record.count++;
        record.weight += 2;
        pthread_spin_unlock(&lock);
    }
    return NULL;
}

int main(void) {
    pthread_t t[3];
    pthread_spin_init(&lock, PTHREAD_PROCESS_PRIVATE);
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("norace_spinlock: %d %d\n", record.count, record.weight);
    return record.count == 30 ? 0 : 1;
}
