/*
 * bank_account.c - a lost update on a shared bank balance, with POSIX threads.
 *
 * What it shows: `balance = balance + amount` is a load and a store with nothing in
 * between that stops another thread. A depositor and a withdrawer update one shared
 * balance without a lock; if one thread's load and store straddle the other's, one of the
 * updates is overwritten and lost, exactly as on real hardware. This is the unmodified
 * static glibc program (gcc -static -pthread) counterpart of racy_counter.c.
 *
 * What should happen: the balance starts at 100; the depositor adds 10 three times, the
 * withdrawer takes 5 three times; main joins both and expects 100 + 30 - 15 = 115. Most
 * schedules (and a schedule that runs each thread to completion in turn) pass and print
 *     bank_account: final balance 115
 * A schedule that switches threads between a load and its store loses an update; main
 * then prints to stderr, for example,
 *     bank_account: final balance 105, expected 115
 * and the assertion `balance == expected` fails: glibc prints the assertion message and
 * calls abort(), and the run ends with SIGABRT (verdict: failure). Natively the threads
 * rarely overlap (creating the second thread takes longer than the first one's work), so
 * the bug almost never shows there.
 *
 * Try it:
 *     ./bank_account.elf                                        # natively: nearly always 115
 *     weft record bank_account.elf                      # one schedule: passes
 *     weft explore bank_account.elf --schedules 1000    # finds a lost update
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>

#define OPERATIONS 3
#define INITIAL 100L
#define DEPOSIT 10L
#define WITHDRAWAL 5L

/* volatile keeps every update a separate load and store the compiler cannot merge. */
static volatile long balance = INITIAL;

static void update(long amount) {
    long seen = balance;      /* load */
    balance = seen + amount;  /* store: the race is another update between these two */
}

static void *depositor(void *arg) {
    (void)arg;
    for (int i = 0; i < OPERATIONS; i++)
        update(DEPOSIT);
    return NULL;
}

static void *withdrawer(void *arg) {
    (void)arg;
    for (int i = 0; i < OPERATIONS; i++)
        update(-WITHDRAWAL);
    return NULL;
}

int main(void) {
    pthread_t dep, wd;
    if (pthread_create(&dep, NULL, depositor, NULL) != 0 ||
        pthread_create(&wd, NULL, withdrawer, NULL) != 0) {
        fprintf(stderr, "bank_account: pthread_create failed\n");
        return 1;
    }
    pthread_join(dep, NULL);
    pthread_join(wd, NULL);

    long expected = INITIAL + OPERATIONS * (DEPOSIT - WITHDRAWAL);
    long got = balance;
    if (got != expected)
        fprintf(stderr, "bank_account: final balance %ld, expected %ld\n", got, expected);
    assert(got == expected);
    printf("bank_account: final balance %ld\n", got);
    return 0;
}
