/* bad_pointer.c - WRITE with a buffer whose end wraps around the address space: weft reports
 * a guest crash ("not inside RAM"), and never crashes itself. */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        weft_hypercall3(WEFT_HC_WRITE, 0x1000, ~(uint64_t)0 - 0x10, 0);
}
