/* exit_hypercall.c - vCPU 0 calls EXIT(5) while the other vCPUs spin: the machine ends at
 * once with exit status 5 from vcpu0. */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        weft_exit(5);
    for (;;)
        weft_pause();
}
