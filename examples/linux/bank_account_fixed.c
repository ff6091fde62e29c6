/*
 * bank_account_fixed.c - the bank account done right: a mutex around the balance and a
 * condition variable used with its predicate loop.
 *
 * What it shows: two depositors and one withdrawer share a balance. Every update happens
 * with the mutex held, so no update is lost. The withdrawer needs more than any single
 * deposit: it waits on a condition variable until the balance covers its withdrawal,
 * testing that predicate in a loop with the mutex held, and the depositors signal after
 * each deposit, also with the mutex held. A signal therefore cannot fall between the test
 * and the wait (compare lost_wakeup.c), and a wakeup that finds the balance still short
 * just waits again. This is the program to check that weft reports no failure when there
 * is none.
 *
 * What should happen: the balance starts at 0; each depositor adds 10 three times (60 in
 * all); the withdrawer takes 50 as soon as the balance reaches 50; main joins all three.
 * Under every schedule the program prints
 *     bank_account_fixed: final balance 10, withdrew 50
 * and exits 0.
 *
 * Try it:
 *     ./bank_account_fixed.elf                                     # natively: always passes
 *     weft record bank_account_fixed.elf --strategy random --seed N   # passes
 *     weft explore bank_account_fixed.elf --schedules 1000 # no failure found
 */
#include <pthread.h>
#include <stdio.h>

#define DEPOSITS 3
#define DEPOSIT 10L
#define WITHDRAWAL 50L

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t deposited = PTHREAD_COND_INITIALIZER;
static long balance;  /* guarded by lock */
static long withdrawn; /* guarded by lock */

static void *depositor(void *arg) {
    (void)arg;
    for (int i = 0; i < DEPOSITS; i++) {
        pthread_mutex_lock(&lock);
        balance += DEPOSIT;
        pthread_cond_signal(&deposited);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *withdrawer(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (balance < WITHDRAWAL) /* the predicate, tested with the mutex held */
        pthread_cond_wait(&deposited, &lock);
    balance -= WITHDRAWAL;
    withdrawn = WITHDRAWAL;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void) {
    pthread_t d1, d2, w;
    if (pthread_create(&w, NULL, withdrawer, NULL) != 0 ||
        pthread_create(&d1, NULL, depositor, NULL) != 0 ||
        pthread_create(&d2, NULL, depositor, NULL) != 0) {
        fprintf(stderr, "bank_account_fixed: pthread_create failed\n");
        return 1;
    }
    pthread_join(d1, NULL);
    pthread_join(d2, NULL);
    pthread_join(w, NULL);
    pthread_mutex_lock(&lock);
    printf("bank_account_fixed: final balance %ld, withdrew %ld\n", balance, withdrawn);
    pthread_mutex_unlock(&lock);
    return 0;
}
