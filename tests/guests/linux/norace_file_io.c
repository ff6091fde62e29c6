/*
 * norace_file_io.c - a correct program for `weft races`: three threads append records to
 * one stdio FILE (fprintf takes the FILE's lock; a flockfile/funlockfile pair keeps one
 * record's two writes together), then main reads the file back. Prints
 * "norace_file_io: 9 records" and exits 0.
 */
#include <pthread.h>
#include <stdio.h>

static FILE *out;

static void *writer(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 3; i++) {
        flockfile(out);
        fprintf(out, "record %ld/", id);
        fprintf(out, "%d\n", i);
        funlockfile(out);
    }
    return NULL;
}

int main(void) {
    out = fopen("norace_file_io.txt", "w");
    if (!out)
        return 2;
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    fclose(out);
    FILE *in = fopen("norace_file_io.txt", "r");
    if (!in)
        return 2;
    int lines = 0;
    char buf[64];
    while (fgets(buf, sizeof buf, in))
        lines++;
    fclose(in);
    printf("norace_file_io: %d records\n", lines);
    return lines == 9 ? 0 : 1;
}
