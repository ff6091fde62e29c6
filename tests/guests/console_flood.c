/*
 * console_flood.c - one WRITE of all of RAM (64 MiB with the default --ram): the largest
 * buffer a hypercall may name. weft must record it (in pieces: no trace chunk may grow
 * past what readers accept) and replay it.
 *
 * Expected (default --ram, any vCPU count): vCPU 0 WRITEs [0, 0x4000000) and gets
 * 0x4000000 back; the others return at once. Console: 67,108,864 bytes (RAM as it is at
 * that step), verdict pass.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    uint64_t r = weft_write((const void *)0, 0x4000000UL);
    if (r != 0x4000000UL)
        weft_assert_failf("console_flood: WRITE returned 0x%lx", r);
}
