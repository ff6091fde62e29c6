/*
 * system_info.c - what a program asks the system about scheduling policy, the machine,
 * files and directories, and a program that makes more threads over its life (and more
 * at once) than weft runs at once. Prints what it learns; argv[1] is a directory to list.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/times.h>

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: system_info DIR\n");
        return 2;
    }
    printf("other %d..%d fifo %d..%d\n", sched_get_priority_min(SCHED_OTHER),
           sched_get_priority_max(SCHED_OTHER), sched_get_priority_min(SCHED_FIFO),
           sched_get_priority_max(SCHED_FIFO));
    struct sched_param sp = {.sched_priority = 5};
    int r = sched_setscheduler(0, SCHED_RR, &sp);
    printf("rr: %d %s\n", r, r ? strerror(errno) : "");
    sp.sched_priority = 0;
    r = sched_setscheduler(0, SCHED_BATCH, &sp);
    printf("batch: %d, policy now %d\n", r, sched_getscheduler(0));
    sp.sched_priority = 9;
    r = sched_getparam(0, &sp);
    printf("param: %d priority %d\n", r, sp.sched_priority);

    struct sysinfo si;
    r = sysinfo(&si);
    printf("sysinfo: %d procs %d ram %s\n", r, si.procs, si.totalram > 0 ? "some" : "none");
    struct tms t;
    printf("times: %s\n", times(&t) > 0 ? "ticking" : "stopped");
    void *m = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("msync: %d\n", msync(m, 4096, MS_SYNC));

    char path[4096];
    snprintf(path, sizeof path, "%s/a", argv[1]);
    printf("chmod: %d\n", chmod(path, 0600));
    DIR *d = opendir(argv[1]);
    if (!d) {
        printf("opendir: %s\n", strerror(errno));
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)))
        printf("entry %s%s\n", e->d_name, e->d_type == DT_DIR ? "/" : "");
    rewinddir(d);
    int n = 0;
    while (readdir(d))
        n++;
    printf("again: %d entries\n", n);
    closedir(d);

    /* 100 threads one after another, then 70 alive before any is joined. */
    int made = 0;
    for (int i = 0; i < 100; i++) {
        pthread_t th;
        if (pthread_create(&th, NULL, nothing, NULL) == 0 && pthread_join(th, NULL) == 0)
            made++;
    }
    pthread_t many[70];
    for (int i = 0; i < 70; i++)
        if (pthread_create(&many[i], NULL, nothing, NULL) == 0)
            made++;
    for (int i = 0; i < 70; i++)
        pthread_join(many[i], NULL);
    printf("threads: %d\n", made);
    return 0;
}
