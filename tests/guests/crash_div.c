/*
 * crash_div.c - an integer division by zero on vCPU 0 is a guest crash (#DE).
 *
 * vCPU 0 prints one line, then divides 100 by a volatile global that holds 0; gcc emits
 * an unsigned 64-bit DIV. Other vCPUs return at once.
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       crash_div: vcpu0 divides 100 by zero
 *   verdict: crash on vcpu0, "#DE divide error", the faulting instruction disassembled
 *   (a "div" with a register operand), and the registers; `weft` exit code 1.
 *   Nothing after the first line is printed.
 */
#include "weft.h"

static volatile unsigned long zero;

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    weft_puts("crash_div: vcpu0 divides 100 by zero\n");
    unsigned long q = 100 / zero;
    weft_printf("crash_div: 100 / 0 = %lu, but it should have crashed\n", q);
}
