/*
 * message_passing.c - a publication-order bug: the flag is set before the data is written.
 *
 * vCPU 0 (producer) should write `data` and then set `ready`; it does it the other way
 * round. vCPU 1 (consumer) waits for `ready` and reads `data`. When the consumer runs
 * between the producer's two stores it reads the old data (a read-after-write ordering
 * violation), and its assertion fails. Other vCPUs, if any, just return.
 */
#include "weft.h"

static volatile unsigned long data;
static volatile unsigned long ready;

void _start(unsigned long vcpu_id, unsigned long vcpu_count) {
    (void)vcpu_count;
    if (vcpu_id == 0) {
        ready = 1;   /* bug: published before the data below */
        weft_barrier();
        data = 42;
    } else if (vcpu_id == 1) {
        while (!ready)
            weft_pause();
        unsigned long got = data;
        if (got != 42)
            weft_printf("consumer: read data %lu before the producer wrote it\n", got);
        WEFT_ASSERT(got == 42);
        weft_puts("consumer: got 42\n");
    }
}
