/*
 * cpuid_rdtsc.c - CPUID, RDTSC and RDTSCP as the board defines them, on every vCPU.
 *
 * Each vCPU checks:
 *   CPUID.0: EAX (max basic leaf) >= 7 (0xB, the x2APIC leaf, is read below too);
 *            vendor EBX,EDX,ECX = "Genu","ineI","ntel" ("GenuineIntel");
 *   CPUID.1: EBX[31:24] (initial APIC id) = its vCPU id;
 *   CPUID.(7,0): EBX bit 11 (RTM) and bit 4 (HLE) set;
 *   CPUID.(0xB,0): EDX (x2APIC id) = its vCPU id;
 *   RDTSC, read 100 times in a row: every read is greater than the one before (never
 *            decreasing, and advancing between any two reads);
 *   RDTSCP: greater than the last RDTSC, and ECX (IA32_TSC_AUX) = its vCPU id;
 *   and after a YIELD (other vCPUs may run), RDTSC is still greater than before.
 * The last vCPU to finish (an atomic counter) prints the final line.
 *
 * Expected, with any number of vCPUs (1..64) and under every schedule:
 *   console (stdout), exactly:
 *       cpuid ok
 *   verdict: pass (every vCPU returns); `weft` exit code 0.
 * On a mismatch: verdict assertion with a message naming the check and the values, e.g.
 *       cpuid_rdtsc: vcpu2: CPUID.1 EBX[31:24] is 0, expected 2
 *       cpuid_rdtsc: vcpu0: RDTSC went from 1200 to 1200
 */
#include "weft.h"

static unsigned long finished;

static void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

static uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t rdtscp(uint32_t *aux) {
    uint32_t lo, hi, c;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(c));
    *aux = c;
    return ((uint64_t)hi << 32) | lo;
}

void _start(unsigned long id, unsigned long n) {
    uint32_t r[4];

    cpuid(0, 0, r);
    if (r[0] < 7)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID.0 max basic leaf is 0x%x, expected >= 7",
                          id, r[0]);
    if (r[1] != 0x756e6547 || r[3] != 0x49656e69 || r[2] != 0x6c65746e) {
        char v[13];
        for (int i = 0; i < 4; i++) {
            v[i] = (char)(r[1] >> (8 * i));
            v[4 + i] = (char)(r[3] >> (8 * i));
            v[8 + i] = (char)(r[2] >> (8 * i));
        }
        v[12] = 0;
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID vendor is \"%s\", expected \"GenuineIntel\"",
                          id, v);
    }
    cpuid(1, 0, r);
    if ((r[1] >> 24) != id)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID.1 EBX[31:24] is %u, expected %lu", id,
                          r[1] >> 24, id);
    cpuid(7, 0, r);
    if (!(r[1] & (1u << 11)))
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID.7 EBX bit 11 (RTM) is clear (EBX 0x%x)",
                          id, r[1]);
    if (!(r[1] & (1u << 4)))
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID.7 EBX bit 4 (HLE) is clear (EBX 0x%x)",
                          id, r[1]);
    cpuid(0xB, 0, r);
    if (r[3] != id)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: CPUID.0xB EDX (x2APIC id) is %u, expected %lu",
                          id, r[3], id);

    uint64_t last = rdtsc();
    for (int i = 0; i < 100; i++) {
        uint64_t now = rdtsc();
        if (now <= last)
            weft_assert_failf("cpuid_rdtsc: vcpu%lu: RDTSC went from %lu to %lu", id, last, now);
        last = now;
    }
    uint32_t aux = 0xffffffff;
    uint64_t t = rdtscp(&aux);
    if (t <= last)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: RDTSCP gave %lu after RDTSC gave %lu", id, t,
                          last);
    if (aux != id)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: RDTSCP ECX is %u, expected %lu", id, aux, id);
    weft_yield();
    uint64_t later = rdtsc();
    if (later <= t)
        weft_assert_failf("cpuid_rdtsc: vcpu%lu: RDTSC after YIELD is %lu, not above %lu", id,
                          later, t);

    if (weft_fetch_add(&finished, 1) + 1 == n)
        weft_puts("cpuid ok\n");
}
