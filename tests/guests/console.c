/* console.c - console output through port 0xE9 byte by byte and through WRITE, in order.
 * Run with one vCPU; stdout must be exactly console.expected. */
#include "weft.h"

void _start(unsigned long id, unsigned long n) {
    (void)id;
    (void)n;
    const char *port = "one byte at a time\n";
    for (const char *p = port; *p; p++)
        weft_putc(*p);
    weft_puts("a whole line at once\n");
    weft_printf("%d %u %x %lx %s %c %%\n", -42, 42u, 255u, 0xdeadbeefUL, "str", 'c');
}
