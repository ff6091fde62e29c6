/*
 * crash_unmapped.c - a load from an address far beyond RAM on vCPU 0 is a guest crash.
 *
 * vCPU 0 prints one line, then loads 8 bytes from 0x7ffff0000000 (a canonical address,
 * 128 TiB up, far above any --ram). Other vCPUs return at once.
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       crash_unmapped: vcpu0 reads 0x7ffff0000000
 *   verdict: crash on vcpu0, naming the address: "unmapped address 0x7ffff0000000",
 *   the faulting load disassembled (a "mov" from memory) and the registers; `weft` exit
 *   code 1. Nothing after the first line is printed.
 */
#include "weft.h"

#define FAR_AWAY 0x7ffff0000000UL

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("crash_unmapped: vcpu0 reads 0x7ffff0000000\n");
    unsigned long v = *(volatile unsigned long *)FAR_AWAY;
    weft_printf("crash_unmapped: read 0x%lx, but it should have crashed\n", v);
}
