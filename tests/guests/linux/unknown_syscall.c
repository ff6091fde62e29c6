/*
 * unknown_syscall.c - makes one system call weft does not implement, io_uring_setup (425),
 * with harmless arguments (0 entries, no parameter block), and prints what came back:
 *     ret=-1 errno=38
 * under weft (ENOSYS); natively the kernel's answer (EFAULT, EINVAL or EPERM, whatever the
 * host allows). Exits 0 either way.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

int main(void) {
    errno = 0;
    long ret = syscall(SYS_io_uring_setup, 0L, 0L);
    printf("ret=%ld errno=%d\n", ret, errno);
    return 0;
}
