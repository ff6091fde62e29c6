/*
 * hello.c - the smallest end-to-end check of process start and exit: prints a fixed line,
 * argc and each of argv[1..] on its own line, and the environment variable WEFT_TEST (or
 * "(unset)"), then exits with status 3 so the tests can check a non-zero exit status.
 * `hello.elf a b` with WEFT_TEST=x prints
 *     hello from a static glibc guest
 *     argc=3
 *     argv[1]=a
 *     argv[2]=b
 *     WEFT_TEST=x
 */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("hello from a static glibc guest\n");
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    const char *v = getenv("WEFT_TEST");
    printf("WEFT_TEST=%s\n", v ? v : "(unset)");
    return 3;
}
