/*
 * crash_ud.c - UD2 on vCPU 0: an invalid-opcode exception is a guest crash.
 *
 * vCPU 0 prints one line, then executes UD2 (0F 0B) at the global label crash_ud_site.
 * Other vCPUs return at once.
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       crash_ud: vcpu0 executes ud2
 *   verdict: crash on vcpu0, "#UD" (invalid opcode), RIP = the address of crash_ud_site
 *   (`nm crash_ud.elf`), the instruction disassembled as "ud2", and the registers;
 *   `weft` exit code 1.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("crash_ud: vcpu0 executes ud2\n");
    __asm__ volatile(".globl crash_ud_site\n"
                     "crash_ud_site:\n\t"
                     "ud2");
}
