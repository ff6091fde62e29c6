/*
 * devices.c - the device files programs open (SQLite reads /dev/urandom for its seed):
 * opens /dev/urandom as SQLite does (O_RDONLY | O_CLOEXEC, fstat, read), reads 16 bytes
 * and then 64 MiB in 1 MiB reads from it, reads 64 MiB of /dev/zero and checks they are
 * zeros, maps /dev/zero, reads /dev/null (end of file), writes to /dev/null and to
 * /dev/full (ENOSPC), and writes a line through /dev/stdout. Prints
 *     urandom: <32 hex digits>
 *     devices ok
 *     via /dev/stdout
 * and exits 0; exits 1 with a message on stderr if a check fails. Under weft the random
 * bytes depend on --random-seed only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what) {
    fprintf(stderr, "devices: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(void) {
    static unsigned char buf[1 << 20];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail("open /dev/urandom");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode))
        return fail("fstat /dev/urandom is not a character device");
    unsigned char seed[16];
    if (read(fd, seed, sizeof seed) != (ssize_t)sizeof seed)
        return fail("read /dev/urandom");
    for (int i = 0; i < 64; i++)
        if (read(fd, buf, sizeof buf) != (ssize_t)sizeof buf)
            return fail("read 1 MiB of /dev/urandom");
    close(fd);

    fd = open("/dev/zero", O_RDONLY);
    if (fd < 0)
        return fail("open /dev/zero");
    for (int i = 0; i < 64; i++) {
        buf[0] = buf[sizeof buf - 1] = 1;
        if (read(fd, buf, sizeof buf) != (ssize_t)sizeof buf || buf[0] || buf[sizeof buf - 1])
            return fail("read 1 MiB of zeros from /dev/zero");
    }
    unsigned char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED || m[0] || m[(1 << 16) - 1])
        return fail("mmap /dev/zero");
    close(fd);

    fd = open("/dev/null", O_RDWR);
    if (fd < 0 || read(fd, buf, 10) != 0 || write(fd, "x", 1) != 1)
        return fail("/dev/null");
    close(fd);

    fd = open("/dev/full", O_WRONLY);
    if (fd < 0)
        return fail("open /dev/full");
    errno = 0;
    if (write(fd, "x", 1) != -1 || errno != ENOSPC)
        return fail("write to /dev/full is not ENOSPC");
    close(fd);

    printf("urandom: ");
    for (size_t i = 0; i < sizeof seed; i++)
        printf("%02x", seed[i]);
    printf("\ndevices ok\n");
    fflush(stdout);
    FILE *out = fopen("/dev/stdout", "w");
    if (!out)
        return fail("fopen /dev/stdout");
    fprintf(out, "via /dev/stdout\n");
    fclose(out);
    return 0;
}
