/*
 * clock.c - the time and randomness calls a program makes: clock_gettime(CLOCK_MONOTONIC)
 * twice, time(NULL), gettimeofday and getrandom (16 bytes). Prints
 *     monotonic ok
 *     realtime ok
 *     random: <32 hex digits>
 * "realtime ok" when time() and gettimeofday() agree within a second and are after
 * 2000-01-01. The random bytes differ natively on every run; under weft they are fixed by
 * the seed. Exits 1 with a message on stderr if a check or a call fails.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

int main(void) {
    struct timespec a, b;
    if (clock_gettime(CLOCK_MONOTONIC, &a) != 0 || clock_gettime(CLOCK_MONOTONIC, &b) != 0) {
        fprintf(stderr, "clock: clock_gettime failed\n");
        return 1;
    }
    if (b.tv_sec < a.tv_sec || (b.tv_sec == a.tv_sec && b.tv_nsec < a.tv_nsec)) {
        fprintf(stderr, "clock: CLOCK_MONOTONIC went back\n");
        return 1;
    }
    printf("monotonic ok\n");

    time_t t = time(NULL);
    struct timeval tv;
    if (gettimeofday(&tv, NULL) != 0) {
        fprintf(stderr, "clock: gettimeofday failed\n");
        return 1;
    }
    long long diff = (long long)tv.tv_sec - (long long)t;
    if (t < 946684800 || diff < -1 || diff > 1) {
        fprintf(stderr, "clock: time()=%lld, gettimeofday()=%lld\n", (long long)t,
                (long long)tv.tv_sec);
        return 1;
    }
    printf("realtime ok\n");

    unsigned char bytes[16];
    memset(bytes, 0, sizeof bytes);
    if (getrandom(bytes, sizeof bytes, 0) != (ssize_t)sizeof bytes) {
        fprintf(stderr, "clock: getrandom failed\n");
        return 1;
    }
    printf("random: ");
    for (size_t i = 0; i < sizeof bytes; i++)
        printf("%02x", bytes[i]);
    printf("\n");
    return 0;
}
