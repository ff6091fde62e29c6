/*
 * weft.h - the guest side of the weft board, ABI v1 (see docs/board.md).
 *
 * Freestanding and header-only: hypercalls, console output, exit, assertions, atomics,
 * a test-and-set spinlock and a ticket lock. Build guests with
 *   gcc -O2 -ffreestanding -nostdlib -static -fno-pie -no-pie -mno-red-zone \
 *       -fno-stack-protector -I path/to/include -o guest.elf guest.c
 * and define `void _start(unsigned long vcpu_id, unsigned long vcpu_count)`.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_ABI_VERSION 1

/* Hypercall numbers: VMCALL with RAX = number, RDI/RSI/RDX = arguments, result in RAX. */
#define WEFT_HC_EXIT 0             /* (status): end the machine; 0 = pass */
#define WEFT_HC_WRITE 1            /* (ptr, len): console output; returns len */
#define WEFT_HC_ASSERT_FAIL 2      /* (msg, len): end with an assertion verdict */
#define WEFT_HC_YIELD 3            /* scheduling point; returns 0 */
#define WEFT_HC_VCPU_ID 4          /* returns this vCPU's id */
#define WEFT_HC_VCPU_COUNT 5       /* returns the number of vCPUs */
#define WEFT_HC_ANNOTATE_ACQUIRE 6 /* (addr): happens-before hint, an acquire of addr */
#define WEFT_HC_ANNOTATE_RELEASE 7 /* (addr): happens-before hint, a release of addr */
#define WEFT_HC_ANNOTATE_ATOMIC 8  /* (addr, len): treat [addr, addr+len) as atomic */
#define WEFT_HC_MARK 9             /* (label, len): a labelled event in the trace */
#define WEFT_HC_HALT 10            /* end this vCPU only */

/* Ports: OUT a byte to WEFT_PORT_CONSOLE prints it; to WEFT_PORT_EXIT ends the machine. */
#define WEFT_PORT_CONSOLE 0xE9
#define WEFT_PORT_EXIT 0xF4

/* Raw hypercall with three arguments. */
static inline uint64_t weft_hypercall3(uint64_t nr, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "memory");
    return ret;
}

static inline uint64_t weft_hypercall0(uint64_t nr) { return weft_hypercall3(nr, 0, 0, 0); }

/* End the whole machine with `status` (0 = pass). Never returns. */
static inline __attribute__((noreturn)) void weft_exit(uint64_t status) {
    weft_hypercall3(WEFT_HC_EXIT, status, 0, 0);
    __builtin_unreachable();
}

/* Print `len` bytes at once (lines from different vCPUs do not interleave). */
static inline uint64_t weft_write(const void *buf, size_t len) {
    return weft_hypercall3(WEFT_HC_WRITE, (uint64_t)buf, len, 0);
}

/* End the machine with an assertion verdict carrying `msg`. Never returns. */
static inline __attribute__((noreturn)) void weft_assert_fail(const char *msg, size_t len) {
    weft_hypercall3(WEFT_HC_ASSERT_FAIL, (uint64_t)msg, len, 0);
    __builtin_unreachable();
}

static inline void weft_yield(void) { weft_hypercall0(WEFT_HC_YIELD); }
static inline uint64_t weft_vcpu_id(void) { return weft_hypercall0(WEFT_HC_VCPU_ID); }
static inline uint64_t weft_vcpu_count(void) { return weft_hypercall0(WEFT_HC_VCPU_COUNT); }
static inline void weft_annotate_acquire(const volatile void *a) { weft_hypercall3(WEFT_HC_ANNOTATE_ACQUIRE, (uint64_t)a, 0, 0); }
static inline void weft_annotate_release(const volatile void *a) { weft_hypercall3(WEFT_HC_ANNOTATE_RELEASE, (uint64_t)a, 0, 0); }
static inline void weft_annotate_atomic(const volatile void *a, size_t len) { weft_hypercall3(WEFT_HC_ANNOTATE_ATOMIC, (uint64_t)a, len, 0); }

/* Put a labelled mark into the trace. */
static inline void weft_mark(const char *label, size_t len) { weft_hypercall3(WEFT_HC_MARK, (uint64_t)label, len, 0); }

/* End this vCPU only; the others go on. Never returns. */
static inline __attribute__((noreturn)) void weft_halt(void) {
    weft_hypercall0(WEFT_HC_HALT);
    __builtin_unreachable();
}

static inline size_t weft_strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

/* One console byte through port 0xE9. */
static inline void weft_putc(char c) { __asm__ volatile("outb %0, %1" : : "a"(c), "Nd"((uint16_t)WEFT_PORT_CONSOLE) : "memory"); }

/* A string through the WRITE hypercall. */
static inline void weft_puts(const char *s) { weft_write(s, weft_strlen(s)); }

/* End the machine with `status` through the exit port (status is one byte). */
static inline __attribute__((noreturn)) void weft_exit_port(uint8_t status) {
    __asm__ volatile("outb %0, %1" : : "a"(status), "Nd"((uint16_t)WEFT_PORT_EXIT) : "memory");
    __builtin_unreachable();
}

/* printf-lite: %d %i %u %x %ld %li %lu %lx %s %c %p %%, formatted into a buffer and
 * written with one WRITE hypercall. Output longer than 256 bytes is cut. */
static inline void weft_printf(const char *fmt, ...) {
    char buf[256];
    size_t n = 0;
    va_list ap;
    va_start(ap, fmt);
#define WEFT_PUT(ch) do { if (n < sizeof buf) buf[n++] = (ch); } while (0)
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') { WEFT_PUT(*p); continue; }
        p++;
        bool is_long = false;
        if (*p == 'l') { is_long = true; p++; }
        char tmp[24];
        int t = 0;
        uint64_t u = 0;
        unsigned base = 10;
        bool neg = false;
        switch (*p) {
        case 'd': case 'i': {
            int64_t v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0) { neg = true; u = (uint64_t)0 - (uint64_t)v; } else u = (uint64_t)v;
            break;
        }
        case 'u': u = is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned); break;
        case 'x': u = is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned); base = 16; break;
        case 'p': u = (uint64_t)va_arg(ap, void *); base = 16; WEFT_PUT('0'); WEFT_PUT('x'); break;
        case 's': { const char *s = va_arg(ap, const char *); while (s && *s) WEFT_PUT(*s++); continue; }
        case 'c': WEFT_PUT((char)va_arg(ap, int)); continue;
        case '%': WEFT_PUT('%'); continue;
        case '\0': p--; continue;
        default: WEFT_PUT('%'); WEFT_PUT(*p); continue;
        }
        do { tmp[t++] = "0123456789abcdef"[u % base]; u /= base; } while (u);
        if (neg) WEFT_PUT('-');
        while (t) WEFT_PUT(tmp[--t]);
    }
#undef WEFT_PUT
    va_end(ap);
    weft_write(buf, n);
}

#define WEFT_STR2(x) #x
#define WEFT_STR(x) WEFT_STR2(x)
/* Assert `cond`; on failure end the machine with "file:line: cond". */
#define WEFT_ASSERT(cond)                                                              \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            static const char weft_msg_[] = __FILE__ ":" WEFT_STR(__LINE__) ": " #cond; \
            weft_assert_fail(weft_msg_, sizeof weft_msg_ - 1);                         \
        }                                                                              \
    } while (0)

/* Atomics: thin wrappers over the compiler's, sequentially consistent. */
#define weft_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define weft_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define weft_fetch_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define weft_xchg(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
/* Compare-and-swap: true if *p was `expected` and is now `desired`. */
#define weft_cas(p, expected, desired) \
    __sync_bool_compare_and_swap((p), (expected), (desired))

/* PAUSE: a spin hint, and a scheduling point on the board. */
static inline void weft_pause(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void weft_mfence(void) { __asm__ volatile("mfence" ::: "memory"); }
static inline void weft_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* Test-and-set spinlock: XCHG to acquire, a plain store to release (a "MOV release",
 * correct on x86's TSO). Initialise to 0. */
typedef struct { volatile uint32_t locked; } weft_spinlock;

static inline void weft_spin_lock(weft_spinlock *l) {
    while (weft_xchg(&l->locked, 1u)) {
        while (l->locked) weft_pause();
    }
}

static inline void weft_spin_unlock(weft_spinlock *l) {
    weft_barrier();
    l->locked = 0;
}

/* Ticket lock: LOCK XADD takes a ticket, wait (PAUSE) until it is served. Initialise to 0. */
typedef struct { volatile uint32_t next; volatile uint32_t serving; } weft_ticket_lock;

static inline void weft_ticket_lock_acquire(weft_ticket_lock *l) {
    uint32_t me = weft_fetch_add(&l->next, 1u);
    while (l->serving != me) weft_pause();
    weft_barrier();
}

static inline void weft_ticket_lock_release(weft_ticket_lock *l) {
    weft_barrier();
    l->serving = l->serving + 1;
}

#endif /* WEFT_H */
