/*
 * read_file.c - prints the file named by argv[1] to stdout: open, fstat, read, close.
 * Exits 0 on success; 1 with a message on stderr if the file cannot be opened, sized or
 * read, or if fewer bytes arrive than fstat promised; 2 without an argument.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: read_file PATH\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "read_file: cannot open %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "read_file: cannot fstat %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    char buf[256];
    long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            fprintf(stderr, "read_file: cannot read %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        fwrite(buf, 1, (size_t)n, stdout);
        total += n;
    }
    close(fd);
    if (total != (long long)st.st_size) {
        fprintf(stderr, "read_file: read %lld bytes, fstat said %lld\n", total,
                (long long)st.st_size);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
