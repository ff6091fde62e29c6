/*
 * remap.c - memory that changes hands: one thread maps a page, fills it and unmaps it;
 * then another maps a page of the same size (weft's address space is deterministic, so
 * it gets the same address) and must find it zeroed, writes it, and hands it to main,
 * which checks it. The test of a page whose owner changes by munmap and mmap.
 *
 * What should happen: it prints `remap: ok` and exits 0 under every schedule.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define SIZE 4096

static unsigned char *first;
static unsigned char *second;

static void *fill(void *arg) {
    (void)arg;
    first = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (first == MAP_FAILED)
        return (void *)1;
    memset(first, 0xAB, SIZE);
    munmap(first, SIZE);
    return 0;
}

static void *reuse(void *arg) {
    (void)arg;
    second = mmap(0, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (second == MAP_FAILED)
        return (void *)1;
    for (int i = 0; i < SIZE; i++)
        if (second[i] != 0)
            return (void *)2;
    memset(second, 0x5A, SIZE);
    return 0;
}

int main(void) {
    pthread_t t;
    void *r;
    pthread_create(&t, 0, fill, 0);
    pthread_join(t, &r);
    if (r)
        return 1;
    pthread_create(&t, 0, reuse, 0);
    pthread_join(t, &r);
    if (r)
        return r == (void *)2 ? 2 : 1;
    for (int i = 0; i < SIZE; i++)
        if (second[i] != 0x5A)
            return 3;
    printf("remap: ok%s\n", first == second ? "" : " (another address)");
    return 0;
}
