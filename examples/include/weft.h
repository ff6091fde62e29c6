/*
 * weft.h - the guest side of the weft board, ABI v1 (the contract is docs/board.md).
 *
 * Freestanding and header-only: hypercalls, console output, exit, assertions, atomics, a
 * test-and-set spinlock and a ticket lock for bare-metal x86-64 guests run by weft.
 * A guest is one C file that includes this header and defines its own entry point,
 *
 *     #include "weft.h"
 *     void _start(unsigned long vcpu_id, unsigned long vcpu_count) { ... }
 *
 * which every vCPU runs on its own stack (globals are shared by all vCPUs; returning ends
 * the vCPU). Build it with
 *
 *     gcc -O2 -g -ffreestanding -nostdlib -static -fno-pie -no-pie -mno-red-zone \
 *         -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none \
 *         -Wall -Wextra -Werror -Wl,--build-id=none -I examples/include -o guest.elf guest.c
 *
 * Everything here is `static inline` or a macro, except the four memory functions at the
 * end (weak; see there). Only freestanding headers are included.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__)
#error "weft.h: weft guests are x86-64 (static ELF64) programs"
#endif

/* The board ABI this header implements. */
#define WEFT_ABI_VERSION 1

/* The entry point every guest defines; each vCPU starts here (SysV: RDI, RSI). Define
 * WEFT_NO_START_PROTOTYPE to declare it yourself (e.g. in assembly with other arguments). */
#ifndef WEFT_NO_START_PROTOTYPE
void _start(unsigned long vcpu_id, unsigned long vcpu_count);
#endif

/* ------------------------------------------------------------------------------------- */
/* Hypercalls: VMCALL (0F 01 C1), RAX = number, RDI/RSI/RDX = arguments, result in RAX;    */
/* no other register changes. Every hypercall is a scheduling point.                      */
/* ------------------------------------------------------------------------------------- */

#define WEFT_HC_EXIT 0             /* (status): end the machine; 0 = pass, else failure */
#define WEFT_HC_WRITE 1            /* (ptr, len): bytes to the console; returns len */
#define WEFT_HC_ASSERT_FAIL 2      /* (msg, len): end the machine, verdict "assertion" */
#define WEFT_HC_YIELD 3            /* (): a scheduling point; returns 0 */
#define WEFT_HC_VCPU_ID 4          /* (): returns the calling vCPU's id (0-based) */
#define WEFT_HC_VCPU_COUNT 5       /* (): returns the number of vCPUs */
#define WEFT_HC_ANNOTATE_ACQUIRE 6 /* (addr): happens-before hint, acquire of addr; 0 */
#define WEFT_HC_ANNOTATE_RELEASE 7 /* (addr): happens-before hint, release of addr; 0 */
#define WEFT_HC_ANNOTATE_ATOMIC 8  /* (addr, len): [addr, addr+len) is atomic; returns 0 */
#define WEFT_HC_MARK 9             /* (label, len): a labelled event in the trace; 0 */
#define WEFT_HC_HALT 10            /* (): end the calling vCPU only */
#define WEFT_HC_ERROR (~(uint64_t)0) /* what an unknown hypercall number returns (-1) */

/* I/O ports: OUT a byte to WEFT_PORT_CONSOLE prints it; to WEFT_PORT_EXIT ends the run. */
#define WEFT_PORT_CONSOLE 0xE9
#define WEFT_PORT_EXIT 0xF4

/* Raw hypercall `nr` with three arguments; returns RAX. */
static inline uint64_t weft_hypercall3(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2) {
    uint64_t ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "0"(nr), "D"(a0), "S"(a1), "d"(a2) : "memory", "cc");
    return ret;
}

/* Raw hypercall `nr` with two arguments; returns RAX. */
static inline uint64_t weft_hypercall2(uint64_t nr, uint64_t a0, uint64_t a1) {
    uint64_t ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "0"(nr), "D"(a0), "S"(a1) : "memory", "cc");
    return ret;
}

/* Raw hypercall `nr` with one argument; returns RAX. */
static inline uint64_t weft_hypercall1(uint64_t nr, uint64_t a0) {
    uint64_t ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "0"(nr), "D"(a0) : "memory", "cc");
    return ret;
}

/* Raw hypercall `nr` without arguments; returns RAX. */
static inline uint64_t weft_hypercall0(uint64_t nr) {
    uint64_t ret;
    __asm__ volatile("vmcall" : "=a"(ret) : "0"(nr) : "memory", "cc");
    return ret;
}

/* EXIT: end the whole machine now with `status` (0 = pass, anything else = failure). */
static inline __attribute__((noreturn)) void weft_exit(uint64_t status) {
    weft_hypercall1(WEFT_HC_EXIT, status);
    __builtin_trap(); /* not reached: EXIT never returns */
}

/* WRITE: `len` bytes at `buf` to the console in one piece; returns len. */
static inline uint64_t weft_write(const void *buf, size_t len) {
    return weft_hypercall2(WEFT_HC_WRITE, (uint64_t)(uintptr_t)buf, len);
}

/* ASSERT_FAIL: end the machine with verdict "assertion" and message msg[0..len). */
static inline __attribute__((noreturn)) void weft_assert_fail(const char *msg, size_t len) {
    weft_hypercall2(WEFT_HC_ASSERT_FAIL, (uint64_t)(uintptr_t)msg, len);
    __builtin_trap(); /* not reached: ASSERT_FAIL never returns */
}

/* YIELD: a scheduling point that invites the scheduler to run another vCPU. */
static inline void weft_yield(void) { weft_hypercall0(WEFT_HC_YIELD); }

/* VCPU_ID: this vCPU's id, 0..vcpu_count-1 (the same as _start's first argument). */
static inline uint64_t weft_vcpu_id(void) { return weft_hypercall0(WEFT_HC_VCPU_ID); }

/* VCPU_COUNT: the number of vCPUs (the same as _start's second argument). */
static inline uint64_t weft_vcpu_count(void) { return weft_hypercall0(WEFT_HC_VCPU_COUNT); }

/* ANNOTATE_ACQUIRE: tell the race detector this vCPU acquired the sync object at `addr`. */
static inline void weft_annotate_acquire(const volatile void *addr) {
    weft_hypercall1(WEFT_HC_ANNOTATE_ACQUIRE, (uint64_t)(uintptr_t)addr);
}

/* ANNOTATE_RELEASE: tell the race detector this vCPU released the sync object at `addr`. */
static inline void weft_annotate_release(const volatile void *addr) {
    weft_hypercall1(WEFT_HC_ANNOTATE_RELEASE, (uint64_t)(uintptr_t)addr);
}

/* ANNOTATE_ATOMIC: tell the race detector accesses to [addr, addr+len) are atomic. */
static inline void weft_annotate_atomic(const volatile void *addr, size_t len) {
    weft_hypercall2(WEFT_HC_ANNOTATE_ATOMIC, (uint64_t)(uintptr_t)addr, len);
}

/* MARK: put a labelled event label[0..len) into the trace (see `weft inspect --events`). */
static inline void weft_mark(const char *label, size_t len) {
    weft_hypercall2(WEFT_HC_MARK, (uint64_t)(uintptr_t)label, len);
}

/* MARK with a string literal: WEFT_MARK("phase 2"). */
#define WEFT_MARK(literal) weft_mark("" literal, sizeof(literal) - 1)

/* HALT: end the calling vCPU only; the others go on. */
static inline __attribute__((noreturn)) void weft_halt(void) {
    weft_hypercall0(WEFT_HC_HALT);
    __builtin_trap(); /* not reached: HALT never returns */
}

/* HLT instruction: also ends the calling vCPU only (interrupts are off on the board). */
static inline __attribute__((noreturn)) void weft_hlt(void) {
    for (;;)
        __asm__ volatile("hlt" ::: "memory");
}

/* ------------------------------------------------------------------------------------- */
/* Console and exit port                                                                  */
/* ------------------------------------------------------------------------------------- */

/* Length of the NUL-terminated string `s`. */
static inline size_t weft_strlen(const char *s) {
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* One byte to the console with OUT to port 0xE9 (each byte is its own scheduling point). */
static inline void weft_putc(char c) {
    __asm__ volatile("outb %0, %1" : : "a"(c), "Nd"((uint16_t)WEFT_PORT_CONSOLE) : "memory");
}

/* The string `s` to the console with one WRITE; unlike libc puts, adds no newline. */
static inline void weft_puts(const char *s) { weft_write(s, weft_strlen(s)); }

/* End the machine with `status` (one byte, no shift) by OUT to port 0xF4; 0 = pass. */
static inline __attribute__((noreturn)) void weft_exit_port(uint8_t status) {
    __asm__ volatile("outb %0, %1" : : "a"(status), "Nd"((uint16_t)WEFT_PORT_EXIT) : "memory");
    __builtin_trap(); /* not reached: the exit port never returns */
}

/* Bytes weft_printf formats before it WRITEs (longer output goes out in several pieces). */
#ifndef WEFT_PRINTF_BUFFER
#define WEFT_PRINTF_BUFFER 256
#endif

/* Internal: a formatting destination (a buffer that is either cut or flushed when full). */
struct weft_fmt_out_ {
    char *buf;
    size_t cap;   /* bytes buf can hold */
    size_t len;   /* bytes in buf */
    size_t total; /* bytes produced in all */
    bool flush;   /* when full: WRITE and start over (printf) instead of cutting (snprintf) */
};

/* Internal: one byte out. */
static inline void weft_fmt_put_(struct weft_fmt_out_ *o, char c) {
    o->total++;
    if (o->len == o->cap) {
        if (!o->flush || o->cap == 0)
            return;
        weft_write(o->buf, o->len);
        o->len = 0;
    }
    o->buf[o->len++] = c;
}

/* Internal: `n` copies of `c`. */
static inline void weft_fmt_pad_(struct weft_fmt_out_ *o, char c, int n) {
    while (n-- > 0)
        weft_fmt_put_(o, c);
}

/* Internal: one integer conversion with its sign or prefix, width and precision. */
static inline void weft_fmt_int_(struct weft_fmt_out_ *o, uint64_t u, const char *prefix,
                                 unsigned base, bool upper, int width, int prec, bool left,
                                 bool zero) {
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int n = 0;
    if (u != 0 || prec != 0) {
        do {
            tmp[n++] = digits[u % base];
            u /= base;
        } while (u);
    }
    int zeros = prec > n ? prec - n : 0;
    int plen = (int)weft_strlen(prefix);
    int pad = width - n - zeros - plen;
    if (zero && !left && prec < 0) {
        zeros += pad > 0 ? pad : 0;
        pad = 0;
    }
    if (!left)
        weft_fmt_pad_(o, ' ', pad);
    while (*prefix)
        weft_fmt_put_(o, *prefix++);
    weft_fmt_pad_(o, '0', zeros);
    while (n)
        weft_fmt_put_(o, tmp[--n]);
    if (left)
        weft_fmt_pad_(o, ' ', pad);
}

/* Internal: the printf-lite formatter behind weft_printf and weft_snprintf. */
static inline void weft_vformat_(struct weft_fmt_out_ *o, const char *fmt, va_list ap) {
    while (*fmt) {
        if (*fmt != '%') {
            weft_fmt_put_(o, *fmt++);
            continue;
        }
        const char *spec = fmt++;
        bool left = false, zero = false, alt = false;
        for (;; fmt++) {
            if (*fmt == '-')
                left = true;
            else if (*fmt == '0')
                zero = true;
            else if (*fmt == '#')
                alt = true; /* %#x: 0x prefix on non-zero values */
            else
                break;
        }
        int width = 0;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            if (width < 0) {
                left = true;
                width = -width;
            }
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        int prec = -1;
        if (*fmt == '.') {
            fmt++;
            prec = 0;
            if (*fmt == '*') {
                prec = va_arg(ap, int);
                fmt++;
            } else {
                while (*fmt >= '0' && *fmt <= '9')
                    prec = prec * 10 + (*fmt++ - '0');
            }
        }
        int size = 0; /* -2 hh, -1 h, 0 int, 1 long / size_t, 2 long long */
        if (*fmt == 'l') {
            size = 1;
            if (*++fmt == 'l') {
                size = 2;
                fmt++;
            }
        } else if (*fmt == 'z') {
            size = 1;
            fmt++;
        } else if (*fmt == 'h') {
            size = -1;
            if (*++fmt == 'h') {
                size = -2;
                fmt++;
            }
        }
        char conv = *fmt;
        if (conv == '\0') { /* a lone '%' at the end: print it as written */
            while (spec < fmt)
                weft_fmt_put_(o, *spec++);
            break;
        }
        fmt++;
        switch (conv) {
        case 'd':
        case 'i': {
            int64_t v = size >= 2   ? (int64_t)va_arg(ap, long long)
                        : size == 1 ? (int64_t)va_arg(ap, long)
                                    : (int64_t)va_arg(ap, int);
            if (size == -1)
                v = (short)v;
            else if (size == -2)
                v = (signed char)v;
            uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            weft_fmt_int_(o, mag, v < 0 ? "-" : "", 10, false, width, prec, left, zero);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = size >= 2   ? (uint64_t)va_arg(ap, unsigned long long)
                         : size == 1 ? (uint64_t)va_arg(ap, unsigned long)
                                     : (uint64_t)va_arg(ap, unsigned int);
            if (size == -1)
                v = (unsigned short)v;
            else if (size == -2)
                v = (unsigned char)v;
            const char *prefix = alt && v != 0 && conv != 'u' ? (conv == 'X' ? "0X" : "0x") : "";
            weft_fmt_int_(o, v, prefix, conv == 'u' ? 10 : 16, conv == 'X', width, prec, left,
                          zero);
            break;
        }
        case 'p':
            weft_fmt_int_(o, (uint64_t)(uintptr_t)va_arg(ap, void *), "0x", 16, false, width,
                          prec, left, zero);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int n = 0;
            while (s[n] && (prec < 0 || n < prec))
                n++;
            if (!left)
                weft_fmt_pad_(o, ' ', width - n);
            for (int i = 0; i < n; i++)
                weft_fmt_put_(o, s[i]);
            if (left)
                weft_fmt_pad_(o, ' ', width - n);
            break;
        }
        case 'c':
            if (!left)
                weft_fmt_pad_(o, ' ', width - 1);
            weft_fmt_put_(o, (char)va_arg(ap, int));
            if (left)
                weft_fmt_pad_(o, ' ', width - 1);
            break;
        case '%':
            weft_fmt_put_(o, '%');
            break;
        default: /* not supported: print the conversion as written */
            while (spec < fmt)
                weft_fmt_put_(o, *spec++);
            break;
        }
    }
}

/* vsnprintf-lite: format into buf[0..size) (always NUL-terminated if size > 0); returns
 * the length the whole output has (as C's vsnprintf: a result >= size means it was cut). */
static inline size_t weft_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap) {
    struct weft_fmt_out_ o = {buf, size ? size - 1 : 0, 0, 0, false};
    weft_vformat_(&o, fmt, ap);
    if (size)
        buf[o.len] = '\0';
    return o.total;
}

/* snprintf-lite: as weft_vsnprintf, with the arguments inline. */
static inline __attribute__((format(printf, 3, 4))) size_t
weft_snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = weft_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* vprintf-lite: as weft_printf with a va_list. */
static inline size_t weft_vprintf(const char *fmt, va_list ap) {
    char buf[WEFT_PRINTF_BUFFER];
    struct weft_fmt_out_ o = {buf, sizeof buf, 0, 0, true};
    weft_vformat_(&o, fmt, ap);
    if (o.len)
        weft_write(buf, o.len);
    return o.total;
}

/* printf-lite to the console in ONE WRITE (so lines of different vCPUs never mix) unless
 * the output exceeds WEFT_PRINTF_BUFFER bytes. Conversions: %d %i %u %x %X %c %s %p %%
 * with l/ll/z/h/hh sizes, flags '-', '0' and '#', width and precision (also as '*'); e.g.
 * %d %u %x %lx %lu %ld %s %c %p %%. Returns the number of bytes printed. */
static inline __attribute__((format(printf, 1, 2))) size_t weft_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t n = weft_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

/* ------------------------------------------------------------------------------------- */
/* Assertions                                                                             */
/* ------------------------------------------------------------------------------------- */

#define WEFT_STR2_(x) #x
#define WEFT_STR_(x) WEFT_STR2_(x)

/* Check `cond`; if false, end the machine (ASSERT_FAIL) with "file:line: cond". */
#define WEFT_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (__builtin_expect(!(cond), 0)) {                                                 \
            static const char weft_assert_msg_[] = __FILE__ ":" WEFT_STR_(__LINE__) ": " #cond; \
            weft_assert_fail(weft_assert_msg_, sizeof weft_assert_msg_ - 1);                \
        }                                                                                   \
    } while (0)

/* End the machine (ASSERT_FAIL) with a printf-formatted message (cut at 256 bytes). */
static inline __attribute__((noreturn, format(printf, 1, 2))) void
weft_assert_failf(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    size_t n = weft_vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    weft_assert_fail(buf, n < sizeof buf ? n : sizeof buf - 1);
}

/* ------------------------------------------------------------------------------------- */
/* Atomics and fences (sequentially consistent; LOCK-prefixed or XCHG on x86)             */
/* ------------------------------------------------------------------------------------- */

/* Atomic load of *p. */
#define weft_load(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
/* Atomic store of v to *p (an XCHG on x86, so it also orders later loads). */
#define weft_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
/* Atomic *p += v; returns the old value (LOCK XADD). */
#define weft_fetch_add(p, v) __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
/* Atomic *p -= v; returns the old value (LOCK XADD). */
#define weft_fetch_sub(p, v) __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
/* Atomic swap: *p = v; returns the old value (XCHG). */
#define weft_xchg(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
/* Compare-and-swap: if *p == expected, *p = desired and true; else false (LOCK CMPXCHG). */
#define weft_cas(p, expected, desired)                                                    \
    __extension__({                                                                       \
        __typeof__((void)0, *(p)) weft_cas_expected_ = (expected);                        \
        __atomic_compare_exchange_n((p), &weft_cas_expected_, (desired), false,           \
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                  \
    })

/* Compiler barrier: no code motion of memory accesses across it; emits nothing. */
static inline void weft_barrier(void) { __asm__ volatile("" ::: "memory"); }
/* Full memory fence as the compiler emits it for seq_cst (MFENCE or a locked op). */
static inline void weft_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* MFENCE instruction. */
static inline void weft_mfence(void) { __asm__ volatile("mfence" ::: "memory"); }
/* PAUSE: a spin-wait hint and, on the board, a scheduling point (use it in every spin). */
static inline void weft_pause(void) { __asm__ volatile("pause" ::: "memory"); }

/* ------------------------------------------------------------------------------------- */
/* Locks                                                                                  */
/* ------------------------------------------------------------------------------------- */

/* Test-and-set spinlock: 0 = free, 1 = held; zero-initialised (or WEFT_SPINLOCK_INIT). */
typedef struct {
    volatile uint32_t locked;
} weft_spinlock;
#define WEFT_SPINLOCK_INIT {0}

/* Try once to take the spinlock with XCHG; true if this vCPU now holds it. */
static inline bool weft_spin_trylock(weft_spinlock *l) {
    return __atomic_exchange_n(&l->locked, 1u, __ATOMIC_ACQUIRE) == 0;
}

/* Take the spinlock: XCHG, and while held, spin with PAUSE reading it (plain MOV). */
static inline void weft_spin_lock(weft_spinlock *l) {
    while (!weft_spin_trylock(l)) {
        while (l->locked)
            weft_pause();
    }
}

/* Release with a plain MOV of 0 after a compiler barrier (correct on x86's TSO). */
static inline void weft_spin_unlock(weft_spinlock *l) {
    weft_barrier();
    l->locked = 0;
}

/* Ticket lock (FIFO): take a ticket from `next`, wait until `serving` shows it. */
typedef struct {
    volatile uint32_t next;    /* the next ticket to hand out */
    volatile uint32_t serving; /* the ticket that holds the lock */
} weft_ticketlock;
#define WEFT_TICKETLOCK_INIT {0, 0}

/* Take the ticket lock: LOCK XADD on `next`, then spin with PAUSE until it is served. */
static inline void weft_ticket_lock(weft_ticketlock *l) {
    uint32_t me = __atomic_fetch_add(&l->next, 1u, __ATOMIC_ACQUIRE);
    while (l->serving != me)
        weft_pause();
    weft_barrier();
}

/* Release the ticket lock: serve the next ticket (LOCK ADD, so `serving` is a sync
 * variable for weft's race detector; a plain store would also be correct on x86). */
static inline void weft_ticket_unlock(weft_ticketlock *l) {
    __atomic_fetch_add(&l->serving, 1u, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------------------- */
/* Intel RTM (transactional memory; weft emulates it, see docs/tm.md)                      */
/* ------------------------------------------------------------------------------------- */

/*
 * weft_xbegin() returns WEFT_XBEGIN_STARTED inside a new transaction; if the transaction
 * aborts, every write it made is undone, the registers are restored and weft_xbegin()
 * returns (again) with the abort status: EXPLICIT | code << 24 for weft_xabort(code),
 * CONFLICT | RETRY when another vCPU touched one of its 64-byte lines (requester wins),
 * CAPACITY when it read more than 4096 or wrote more than 512 lines (--tm-read-lines,
 * --tm-write-lines), NESTED added when the abort happened in a nested transaction (nesting
 * is flattened, 7 levels at most: the 8th XBEGIN aborts with NESTED), and 0 for anything
 * that may not run in a transaction: any hypercall (weft_printf, WEFT_ASSERT, weft_yield,
 * ...), CPUID, PAUSE, port I/O, HLT, and CPU exceptions (which are suppressed).
 */
#define WEFT_XBEGIN_STARTED (~0u)
#define WEFT_XABORT_EXPLICIT (1u << 0)
#define WEFT_XABORT_RETRY (1u << 1)
#define WEFT_XABORT_CONFLICT (1u << 2)
#define WEFT_XABORT_CAPACITY (1u << 3)
#define WEFT_XABORT_DEBUG (1u << 4)
#define WEFT_XABORT_NESTED (1u << 5)
/* The XABORT immediate of an explicit abort's status. */
#define WEFT_XABORT_CODE(status) (((status) >> 24) & 0xff)

/* XBEGIN: start (or nest) a transaction; see above for what it returns. */
static inline unsigned weft_xbegin(void) {
    unsigned status = WEFT_XBEGIN_STARTED;
    __asm__ volatile("xbegin 1f\n1:" : "+a"(status) : : "memory");
    return status;
}

/* XEND: commit (at the outermost level). Outside a transaction it is a #GP (a crash). */
static inline void weft_xend(void) { __asm__ volatile("xend" ::: "memory"); }

/* XABORT imm8: abort the transaction with `code` in bits 31:24; a no-op outside one. */
#define weft_xabort(code) __asm__ volatile("xabort %0" ::"i"(code) : "memory")

/* XTEST: 1 inside a transaction, 0 outside. */
static inline int weft_xtest(void) {
    unsigned char inside;
    __asm__ volatile("xtest\n\tsetnz %0" : "=r"(inside) : : "memory", "cc");
    return inside;
}

/* What weft_elided_lock does when a transaction finds the lock taken. */
#define WEFT_ELIDED_LOCK_BUSY 0xff

/*
 * Lock elision over weft_spinlock, done right: the transaction READS the lock word, so a
 * vCPU that takes the lock for real (the fallback path) conflicts with every transaction
 * running under the elided lock and aborts it. Tries a transaction up to `tries` times,
 * then takes the lock. Pair with weft_elided_unlock.
 */
static inline void weft_elided_lock_n(weft_spinlock *l, int tries) {
    for (int i = 0; i < tries; i++) {
        unsigned s = weft_xbegin();
        if (s == WEFT_XBEGIN_STARTED) {
            if (l->locked == 0)
                return; /* elided: the lock word is in our read set */
            weft_xabort(WEFT_ELIDED_LOCK_BUSY);
        }
        if ((s & WEFT_XABORT_EXPLICIT) && WEFT_XABORT_CODE(s) == WEFT_ELIDED_LOCK_BUSY) {
            while (l->locked) /* wait outside the transaction, then retry */
                weft_pause();
        } else if (!(s & WEFT_XABORT_RETRY)) {
            break; /* capacity, an instruction, an exception: retrying will not help */
        }
    }
    weft_spin_lock(l);
}
static inline void weft_elided_lock(weft_spinlock *l) { weft_elided_lock_n(l, 3); }

/* Release an elided lock: commit if in a transaction, else release the real lock. */
static inline void weft_elided_unlock(weft_spinlock *l) {
    if (weft_xtest())
        weft_xend();
    else
        weft_spin_unlock(l);
}

/* ------------------------------------------------------------------------------------- */
/* Compiler support                                                                       */
/* ------------------------------------------------------------------------------------- */

/*
 * GCC may emit calls to memcpy, memmove, memset and memcmp even with -ffreestanding (for
 * struct copies and array initialisers). There is no libc, so weft.h supplies them as weak
 * functions (a guest's own definitions win). Define WEFT_NO_MEMFUNCS to leave them out.
 */
#ifndef WEFT_NO_MEMFUNCS
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* memcpy with REP MOVSB. */
__attribute__((weak)) void *memcpy(void *dst, const void *src, size_t n) {
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

/* memmove with REP MOVSB, backwards (DF set, then cleared) when the ranges overlap so. */
__attribute__((weak)) void *memmove(void *dst, const void *src, size_t n) {
    if ((uintptr_t)dst - (uintptr_t)src >= n)
        return memcpy(dst, src, n);
    void *d = (char *)dst + n - 1;
    const void *s = (const char *)src + n - 1;
    __asm__ volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return dst;
}

/* memset with REP STOSB. */
__attribute__((weak)) void *memset(void *dst, int c, size_t n) {
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

/* memcmp, byte by byte. */
__attribute__((weak)) int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}
#endif /* WEFT_NO_MEMFUNCS */

#endif /* WEFT_H */
