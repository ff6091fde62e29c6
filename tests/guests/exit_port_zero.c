/*
 * exit_port_zero.c - OUT of the byte 0 to port 0xF4 ends the machine at once with a pass,
 * even though other vCPUs are still running.
 *
 * vCPU 0 prints one line, then writes 0 to port 0xF4. Every other vCPU spins forever with
 * PAUSE, so the machine can only end through the port. Should the OUT return, vCPU 0
 * executes UD2 (a crash verdict instead).
 *
 * Expected, with any number of vCPUs and under every schedule:
 *   console (stdout), exactly:
 *       exit_port_zero: vcpu0 writes 0 to port 0xF4
 *   verdict: pass (exit status 0); `weft` exit code 0.
 */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        weft_puts("exit_port_zero: vcpu0 writes 0 to port 0xF4\n");
        weft_exit_port(0);
    }
    for (;;)
        weft_pause();
}
