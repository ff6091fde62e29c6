/*
 * console.c - console output through port 0xE9 (byte by byte) and through WRITE, in order.
 *
 * vCPU 0 prints the text below; other vCPUs return at once, so the output is the same
 * for any number of vCPUs and under every schedule. It covers: OUT to port 0xE9 one byte
 * at a time; one WRITE of one line; one WRITE of two lines; a WRITE of 0 bytes (prints
 * nothing); port bytes and a WRITE on the same line (their order must hold); weft_printf's
 * conversions; a printf line longer than weft.h's 256-byte buffer (two WRITEs).
 *
 * Expected:
 *   console (stdout), byte for byte, the contents of tests/guests/console.expected:
 *       console: port 0xE9, one byte at a time
 *       console: WRITE, one line
 *       console: WRITE, two lines
 *       console: in one call
 *       console: port then WRITE on one line
 *       console: printf -42 42 ff FF deadbeef 18446744073709551615 -9223372036854775808 str c %
 *       console: printf [   42] [42   ] [-0042] [00ff] [abc  ] [ab] [0x1234]
 *       console: 000...0007            (300 digits: 299 zeros, then 7)
 *       console: done
 *   verdict: pass; `weft` exit code 0.
 */
#include "weft.h"

static void port_puts(const char *s) {
    while (*s)
        weft_putc(*s++);
}

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id != 0)
        return;
    port_puts("console: port 0xE9, one byte at a time\n");
    static const char one[] = "console: WRITE, one line\n";
    WEFT_ASSERT(weft_write(one, sizeof one - 1) == sizeof one - 1);
    static const char two[] = "console: WRITE, two lines\nconsole: in one call\n";
    WEFT_ASSERT(weft_write(two, sizeof two - 1) == sizeof two - 1);
    WEFT_ASSERT(weft_write(two, 0) == 0);
    port_puts("console: port then ");
    weft_puts("WRITE on one line\n");
    weft_printf("console: printf %d %u %x %X %lx %lu %ld %s %c %%\n", -42, 42u, 255u, 255u,
                0xdeadbeefUL, 18446744073709551615UL, -9223372036854775807L - 1, "str", 'c');
    weft_printf("console: printf [%5d] [%-5d] [%05d] [%04x] [%-5s] [%.2s] [%p]\n", 42, 42, -42,
                255u, "abc", "abc", (void *)0x1234);
    weft_printf("console: printf [%#x] [%#X] [%#x] [%#10x]\n", 0x5a000001u, 255u, 0u, 66u);
    size_t len = weft_printf("console: %0300d\n", 7);
    WEFT_ASSERT(len == 9 + 300 + 1);
    weft_puts("console: done\n");
}
