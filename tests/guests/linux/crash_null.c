/*
 * crash_null.c - a thread stores through a NULL pointer: SIGSEGV, a crash verdict naming
 * the faulting thread and address 0. main only creates and joins it; nothing is printed
 * on stdout.
 */
#include <pthread.h>
#include <stdio.h>

/* A volatile pointer variable, so the compiler neither sees the NULL at compile time
 * (it would otherwise turn the store into a trap instruction) nor drops the store. */
static int *volatile target;

static void *crasher(void *arg) {
    (void)arg;
    *target = 1; /* target is NULL: page fault at address 0 */
    return NULL;
}

int main(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, crasher, NULL) != 0) {
        fprintf(stderr, "crash_null: pthread_create failed\n");
        return 1;
    }
    pthread_join(t, NULL);
    printf("crash_null: survived a NULL store?\n");
    return 1;
}
