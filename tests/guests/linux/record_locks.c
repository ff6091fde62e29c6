/*
 * record_locks.c - fcntl record locks as SQLite and lockf take them (POSIX locks: one
 * process never conflicts with itself) and open file description locks (F_OFD_*: each
 * open() is a description of its own, shared by its dups, and conflicts with the others
 * and with the process's POSIX locks). A second thread's F_OFD_SETLKW waits until the
 * main thread closes the description that holds the lock. Prints
 *     posix: set 0, getlk unlocked, again 0
 *     ofd: blocked by posix EAGAIN (pid 1000), after unlock 0, other EAGAIN, dup 0
 *     ofd wait: got the lock after the holder closed
 * and exits 0; exits 1 with a message on stderr if a call fails unexpectedly.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PATH "/tmp/weft-record-locks.db"

static struct flock range(short type) {
    struct flock f;
    memset(&f, 0, sizeof f);
    f.l_type = type;
    f.l_whence = SEEK_SET;
    return f; /* the whole file */
}

static int lock(int fd, int cmd, short type) {
    struct flock f = range(type);
    return fcntl(fd, cmd, &f) == 0 ? 0 : errno;
}

static volatile int holder_closed;
static int waiter_fd;

static void *waiter(void *arg) {
    (void)arg;
    int rc = lock(waiter_fd, F_OFD_SETLKW, F_WRLCK);
    printf("ofd wait: %s\n",
           rc == 0 && holder_closed ? "got the lock after the holder closed" : "wrong");
    return NULL;
}

int main(void) {
    int fd1 = open(PATH, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd1 < 0 || write(fd1, "0123456789", 10) != 10) {
        fprintf(stderr, "record_locks: %s: %s\n", PATH, strerror(errno));
        return 1;
    }
    int set = lock(fd1, F_SETLK, F_WRLCK);
    struct flock q = range(F_WRLCK);
    int get = fcntl(fd1, F_GETLK, &q) == 0 ? 0 : errno;
    int again = lock(fd1, F_SETLKW, F_RDLCK);
    printf("posix: set %d, getlk %s, again %d\n", set,
           get == 0 && q.l_type == F_UNLCK ? "unlocked" : "locked", again);

    int fd2 = open(PATH, O_RDWR);
    int blocked = lock(fd2, F_OFD_SETLK, F_WRLCK);
    struct flock who = range(F_WRLCK);
    fcntl(fd2, F_OFD_GETLK, &who);
    lock(fd1, F_SETLK, F_UNLCK);
    int after = lock(fd2, F_OFD_SETLK, F_WRLCK);
    int fd3 = open(PATH, O_RDWR);
    int other = lock(fd3, F_OFD_SETLK, F_RDLCK);
    int fd4 = dup(fd2);
    int dup_rc = lock(fd4, F_OFD_SETLK, F_WRLCK);
    printf("ofd: blocked by posix %s (pid %d), after unlock %d, other %s, dup %d\n",
           blocked == EAGAIN ? "EAGAIN" : strerror(blocked), (int)who.l_pid, after,
           other == EAGAIN ? "EAGAIN" : strerror(other), dup_rc);
    fflush(stdout);

    waiter_fd = fd3;
    pthread_t t;
    pthread_create(&t, NULL, waiter, NULL);
    for (int i = 0; i < 1000; i++)
        sched_yield();
    close(fd4); /* fd2 still holds the description open: still locked */
    for (int i = 0; i < 1000; i++)
        sched_yield();
    holder_closed = 1;
    close(fd2);
    pthread_join(t, NULL);
    return 0;
}
