/*
 * norace_printf.c - a correct program for `weft races`: four threads print lines with
 * printf, puts and fputs at once (stdio takes its own locks). Exits 0.
 */
#include <pthread.h>
#include <stdio.h>

static void *talker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 3; i++) {
        printf("norace_printf: thread %ld line %d\n", id, i);
        fputs("norace_printf: fputs\n", stdout);
        puts("norace_printf: puts");
    }
    return NULL;
}

int main(void) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, talker, (void *)i);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("norace_printf: done\n");
    return 0;
}
