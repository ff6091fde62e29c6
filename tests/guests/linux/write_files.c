/*
 * write_files.c - files a program writes stay inside the run. Four threads each append
 * lines to one shared log (O_APPEND, a mutex around each line), main reads the log back
 * with stdio, writes a second file through a temporary and rename, truncates, unlinks,
 * and checks what stat, access, pread and pwrite say. The host's file system is never
 * touched: argv[1] names a host file that must be unchanged afterwards (the test checks).
 * Prints, under every schedule:
 *     write_files: log has 40 lines
 *     write_files: renamed ok
 *     write_files: host file hidden, then gone
 *     write_files: ok
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG "/tmp/weft-test-log.txt"
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;

static void *logger(void *arg) {
    long id = (long)arg;
    int fd = open(LOG, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0)
        return (void *)1;
    for (int i = 0; i < 10; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "thread %ld line %d\n", id, i);
        pthread_mutex_lock(&m);
        write(fd, line, n);
        pthread_mutex_unlock(&m);
    }
    close(fd);
    return NULL;
}

static int fail(const char *what) {
    printf("write_files: %s failed (errno %d)\n", what, errno);
    return 1;
}

int main(int argc, char **argv) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, logger, (void *)i);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r)
            return fail("logger open");
    }
    FILE *f = fopen(LOG, "r");
    if (!f)
        return fail("fopen log");
    char buf[64];
    int lines = 0;
    while (fgets(buf, sizeof buf, f))
        lines++;
    fclose(f);
    printf("write_files: log has %d lines\n", lines);

    /* Write a temporary, rename it over a new name, read it back. */
    FILE *tmp = fopen("/tmp/weft-test.tmp", "w");
    if (!tmp)
        return fail("fopen tmp");
    fprintf(tmp, "hello, file\n");
    fclose(tmp);
    if (rename("/tmp/weft-test.tmp", "/tmp/weft-test.out") != 0)
        return fail("rename");
    if (access("/tmp/weft-test.tmp", F_OK) == 0 || errno != ENOENT)
        return fail("old name gone");
    struct stat st;
    if (stat("/tmp/weft-test.out", &st) != 0 || st.st_size != 12)
        return fail("stat");
    int fd = open("/tmp/weft-test.out", O_RDWR);
    if (fd < 0)
        return fail("open rdwr");
    if (pwrite(fd, "J", 1, 0) != 1 || pread(fd, buf, 5, 0) != 5 || memcmp(buf, "Jello", 5))
        return fail("pwrite/pread");
    if (ftruncate(fd, 5) != 0 || fstat(fd, &st) != 0 || st.st_size != 5)
        return fail("ftruncate");
    close(fd);
    if (open("/tmp/weft-test.out", O_CREAT | O_EXCL | O_WRONLY, 0644) >= 0 || errno != EEXIST)
        return fail("O_EXCL");
    printf("write_files: renamed ok\n");

    /* A host file: overwritten and removed inside the run only. */
    if (argc > 1) {
        FILE *h = fopen(argv[1], "w");
        if (!h)
            return fail("fopen host");
        fputs("changed inside weft\n", h);
        fclose(h);
        h = fopen(argv[1], "r");
        if (!h || !fgets(buf, sizeof buf, h) || strcmp(buf, "changed inside weft\n"))
            return fail("read back host");
        fclose(h);
        if (unlink(argv[1]) != 0 || access(argv[1], F_OK) == 0)
            return fail("unlink host");
        printf("write_files: host file hidden, then gone\n");
    }
    if (unlink("/tmp/weft-test.out") != 0 || unlink("/tmp/weft-test.out") == 0)
        return fail("unlink");
    printf("write_files: ok\n");
    return 0;
}
