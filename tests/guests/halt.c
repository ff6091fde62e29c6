/* halt.c - vCPU 0 ends with HLT, vCPU 1 with the HALT hypercall, the others by returning
 * from _start; each prints "vcpuN: ending" first. The machine passes when all have ended. */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    weft_printf("vcpu%lu: ending\n", id);
    if (id == 0) {
        __asm__ volatile("hlt");
        WEFT_ASSERT(!"HLT returned");
    }
    if (id == 1) {
        weft_halt();
    }
}
