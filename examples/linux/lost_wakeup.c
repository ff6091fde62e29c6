/*
 * lost_wakeup.c - a lost wakeup: the waiter tests its condition without holding the mutex.
 *
 * What it shows: a condition variable has no memory. pthread_cond_signal wakes a thread
 * that is already waiting; a signal sent while nobody waits is simply gone. That is why
 * the predicate must be tested and the wait entered under the same mutex the signaller
 * holds when it sets the predicate. Here the waiter reads `ready` before taking the mutex.
 * If the signaller runs entirely between that read and the waiter's pthread_cond_wait
 * (sets `ready`, signals nobody, unlocks), the waiter then waits for a signal that has
 * already come and gone, and sleeps forever.
 *
 * What should happen: the signaller publishes message 42 and signals; the waiter waits for
 * it; main joins both and prints
 *     lost_wakeup: waiter got message 42
 * Schedules that run the waiter until it waits and then the signaller, or the signaller
 * first and then the waiter, pass. A schedule that preempts the waiter between its
 * unlocked test of `ready` and its pthread_cond_wait loses the wakeup: the waiter blocks
 * in futex wait on the condition variable, main blocks in futex wait in pthread_join, the
 * signaller has exited, and the run ends with verdict deadlock (every thread blocked,
 * nothing left to wake them). Natively the window is a few instructions wide and the
 * program almost always finishes, but it can hang, rarely; that hang is the bug.
 *
 * Try it:
 *     ./lost_wakeup.elf                                          # natively: nearly always ok
 *     weft record lost_wakeup.elf                        # one schedule: passes
 *     weft explore lost_wakeup.elf --schedules 1000      # finds the deadlock
 * The fix: take the mutex before testing `ready` (see bank_account_fixed.c).
 */
#include <pthread.h>
#include <stdio.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
/* volatile so the unlocked test really reads memory each time round the loop. */
static volatile int ready;
static int message;
static int received;

static void *waiter(void *arg) {
    (void)arg;
    while (!ready) { /* BUG: tested without the mutex */
        /* A signal sent here, before the wait below begins, is lost. */
        pthread_mutex_lock(&lock);
        pthread_cond_wait(&changed, &lock);
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    received = message;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *signaller(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    message = 42;
    ready = 1;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void) {
    pthread_t w, s;
    if (pthread_create(&w, NULL, waiter, NULL) != 0 ||
        pthread_create(&s, NULL, signaller, NULL) != 0) {
        fprintf(stderr, "lost_wakeup: pthread_create failed\n");
        return 1;
    }
    pthread_join(s, NULL);
    pthread_join(w, NULL); /* never returns once the wakeup is lost */
    printf("lost_wakeup: waiter got message %d\n", received);
    return 0;
}
