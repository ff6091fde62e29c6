/*
 * gives_up.c - a program that fails for a reason of its own, not a race. With argument
 * "enosys" it asks for io_uring (a system call weft does not emulate: ENOSYS), says so on
 * standard error and exits 1, as a program does when a call it needs fails. With "late"
 * it makes the same call, goes on without it, writes 20 lines, and only then exits 1:
 * too long after the call to blame it. Exits 0 without an argument.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

int main(int argc, char **argv) {
    if (argc < 2)
        return 0;
    long ret = syscall(SYS_io_uring_setup, 0L, 0L);
    if (strcmp(argv[1], "enosys") == 0 && ret < 0) {
        fprintf(stderr, "gives_up: io_uring_setup: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < 20; i++) {
        printf("working %d\n", i);
        fflush(stdout);
    }
    return 1;
}
