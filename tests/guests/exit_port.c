/*
 * exit_port.c - OUT of the byte 3 to port 0xF4 ends the whole machine with status 3.
 *
 * vCPU 0 prints one line, then writes 3 to port 0xF4 (weft_exit_port). Every other vCPU
 * spins forever with PAUSE, so the machine can only end through the port. Should the OUT
 * return, vCPU 0 executes UD2 (a crash verdict instead).
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       exit_port: vcpu0 writes 3 to port 0xF4
 *   verdict: exit status 3 (a failure, status taken as is: not shifted as QEMU's
 *   isa-debug-exit would), from vcpu0; `weft` exit code 1.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        weft_puts("exit_port: vcpu0 writes 3 to port 0xF4\n");
        weft_exit_port(3);
    }
    for (;;)
        weft_pause();
}
