/*
 * pipes.c - threads talking through pipes. A producer writes 100 numbered records of 1000
 * bytes into a pipe (more than its 64 KiB, so it blocks when full) and closes it; a
 * consumer polls, reads until end of file and checks every record; a second pipe
 * carries the consumer's answer back to main. Then: a write to a pipe with no reader
 * fails with EPIPE, a non-blocking read of an empty pipe with EAGAIN. Prints, under
 * every schedule:
 *     pipes: 100 records, 100000 bytes, in order
 *     pipes: EPIPE, EAGAIN ok
 * With the argument "stuck", main then reads a pipe whose write end it still holds
 * itself: nothing can ever arrive, a deadlock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RECORDS 100
#define SIZE 1000

static int data[2], answer[2];

static void *producer(void *arg) {
    (void)arg;
    char rec[SIZE];
    for (int i = 0; i < RECORDS; i++) {
        memset(rec, 'a' + i % 26, sizeof rec);
        memcpy(rec, &i, sizeof i);
        if (write(data[1], rec, sizeof rec) != (ssize_t)sizeof rec)
            return (void *)1;
    }
    close(data[1]);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    char buf[SIZE];
    long total = 0;
    int next = 0, have = 0, bad = 0;
    for (;;) {
        struct pollfd p = {.fd = data[0], .events = POLLIN};
        if (poll(&p, 1, -1) != 1)
            bad = 1;
        ssize_t n = read(data[0], buf + have, sizeof buf - have);
        if (n <= 0)
            break;
        total += n;
        have += n;
        if (have == SIZE) {
            int i;
            memcpy(&i, buf, sizeof i);
            if (i != next || buf[SIZE - 1] != 'a' + i % 26)
                bad = 1;
            next++;
            have = 0;
        }
    }
    char msg[64];
    int len = snprintf(msg, sizeof msg, "%d records, %ld bytes, %s", next, total,
                       bad ? "OUT OF ORDER" : "in order");
    write(answer[1], msg, len + 1);
    return NULL;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (pipe(data) != 0 || pipe2(answer, O_CLOEXEC) != 0)
        return 2;
    pthread_t p, c;
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    char msg[64] = {0};
    ssize_t n = 0;
    while (n < 1 || msg[n - 1] != '\0') {
        ssize_t r = read(answer[0], msg + n, sizeof msg - n);
        if (r <= 0)
            return 3;
        n += r;
    }
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    printf("pipes: %s\n", msg);

    int q[2];
    pipe(q);
    close(q[0]);
    int epipe = write(q[1], "x", 1) == -1 && errno == EPIPE;
    pipe2(q, O_NONBLOCK);
    char b;
    int eagain = read(q[0], &b, 1) == -1 && errno == EAGAIN;
    printf("pipes: %s\n", epipe && eagain ? "EPIPE, EAGAIN ok" : "EPIPE/EAGAIN WRONG");
    fflush(stdout);
    if (argc > 1 && strcmp(argv[1], "stuck") == 0) {
        fcntl(q[0], F_SETFL, 0);
        read(q[0], &b, 1);
    }
    return 0;
}
