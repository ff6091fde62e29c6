/* cpuid_rdtsc.c - CPUID and RDTSC/RDTSCP as the board defines them: vendor GenuineIntel,
 * max basic leaf >= 7, leaf 1 EBX[31:24] = vCPU id, leaf 7 EBX bits 11 (RTM) and 4 (HLE),
 * RDTSC never decreasing and advancing between reads, RDTSCP ECX = vCPU id. Prints
 * "vcpuN: cpuid ok" on each vCPU; any mismatch is an assertion. */
#include "weft.h"

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t rdtscp(uint32_t *aux) {
    uint32_t lo, hi;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(*aux));
    return ((uint64_t)hi << 32) | lo;
}

void _start(unsigned long id, unsigned long n) {
    (void)n;
    uint32_t r[4];
    cpuid(0, 0, r);
    WEFT_ASSERT(r[0] >= 7);
    WEFT_ASSERT(r[1] == 0x756e6547 && r[3] == 0x49656e69 && r[2] == 0x6c65746e);
    cpuid(1, 0, r);
    WEFT_ASSERT((r[1] >> 24) == id);
    cpuid(7, 0, r);
    WEFT_ASSERT(r[1] & (1u << 11));
    WEFT_ASSERT(r[1] & (1u << 4));
    uint64_t last = rdtsc();
    for (int i = 0; i < 100; i++) {
        uint64_t now = rdtsc();
        WEFT_ASSERT(now > last);
        last = now;
    }
    uint32_t aux = 0xffffffff;
    uint64_t t = rdtscp(&aux);
    WEFT_ASSERT(t > last);
    WEFT_ASSERT(aux == id);
    weft_printf("vcpu%lu: cpuid ok\n", id);
}
