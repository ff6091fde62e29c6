/* many_vcpus.c - for any vCPU count up to 64: each vCPU atomically increments a shared
 * counter; the last one checks it equals the vCPU count and prints "N vcpus ok". */
#include "weft.h"

static unsigned long arrived;

void _start(unsigned long id, unsigned long n) {
    (void)id;
    unsigned long mine = weft_fetch_add(&arrived, 1) + 1;
    if (mine == n) {
        WEFT_ASSERT(weft_load(&arrived) == n);
        weft_printf("%lu vcpus ok\n", n);
    }
}
