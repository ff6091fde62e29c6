/*
 * tm_semantics.c - every row of docs/tm.md that one vCPU can show: XTEST, XABORT inside and
 * outside, commit, nesting (commit only at the outermost XEND, the NESTED bit, overflow at
 * the 8th level), aborting instructions (CPUID, PAUSE, OUT, IN, VMCALL, HLT), exceptions
 * (#UD, #DE, an access outside RAM: suppressed, the transaction aborts), registers and
 * memory (globals and the own stack) restored on abort, and capacity at the default sizes.
 * Each status word is compared whole, so any wrong bit fails.
 *
 * Expected (run with --vcpus 1, default --tm-* options): console, exactly
 *     tm_semantics ok: 31 checks
 * verdict pass. On a mismatch: an assertion naming the check, e.g.
 *     tm_semantics: xabort 0x5a: status 0x5a000021, expected 0x5a000001
 */
#include "weft.h"

#define STARTED WEFT_XBEGIN_STARTED

static volatile unsigned long g __attribute__((aligned(64)));  /* a global written in txs */
static volatile unsigned long h __attribute__((aligned(64)));  /* another, on its own line */
static volatile unsigned char big[4200][64] __attribute__((aligned(64))); /* capacity */
static int checks;                                              /* checks passed */

static void expect(const char *what, unsigned got, unsigned want) {
    if (got != want)
        weft_assert_failf("tm_semantics: %s: status %#x, expected %#x", what, got, want);
    checks++;
}

static void expect_val(const char *what, unsigned long got, unsigned long want) {
    if (got != want)
        weft_assert_failf("tm_semantics: %s: %lu, expected %lu", what, got, want);
    checks++;
}

/* Registers before XBEGIN, as the fallback path sees them after an abort (see below). */
struct regs {
    uint64_t status, rbx, rbp, r12, r13, r14, rcx, rdx, rsi, r8, r9, r10, r11, xmm0, rsp, cf, rdi;
};
void tm_regs_test(struct regs *out);
uint64_t rsp_before; /* RSP just before XBEGIN, saved by tm_regs_test (used from asm) */

/* Set known values in every register, XBEGIN, clobber them all (RSP and XMM0 too), XABORT;
 * at the fallback label store what the registers hold. R15 holds `out` throughout: were it
 * not restored, the stores at the fallback label would go outside RAM (a crash). */
__asm__(".text\n"
        ".globl tm_regs_test\n"
        "tm_regs_test:\n"
        "  push %rbx\n push %rbp\n push %r12\n push %r13\n push %r14\n push %r15\n"
        "  mov %rdi, %r15\n"
        "  mov $0x1111, %rbx\n mov $0x2222, %rbp\n mov $0x3333, %r12\n mov $0x4444, %r13\n"
        "  mov $0x5555, %r14\n mov $0x6666, %rcx\n mov $0x7777, %rdx\n mov $0x8888, %rsi\n"
        "  mov $0x9999, %r8\n mov $0xaaaa, %r9\n mov $0xbbbb, %r10\n mov $0xcccc, %r11\n"
        "  mov $0xdddd, %rdi\n movq %rbx, %xmm0\n"
        "  mov %rsp, rsp_before(%rip)\n"
        "  mov $0, %eax\n"
        "  stc\n"
        "  xbegin 1f\n"
        "  mov $-1, %rbx\n mov $-1, %rbp\n mov $-1, %r12\n mov $-1, %r13\n mov $-1, %r14\n"
        "  mov $-1, %rcx\n mov $-1, %rdx\n mov $-1, %rsi\n mov $-1, %r8\n mov $-1, %r9\n"
        "  mov $-1, %r10\n mov $-1, %r11\n mov $-1, %r15\n mov $-1, %rdi\n"
        "  pcmpeqd %xmm0, %xmm0\n"
        "  mov $0x1000, %rsp\n clc\n"
        "  xabort $0x21\n"
        "1:\n"
        "  mov %rdi, 128(%r15)\n setc %dil\n movzbq %dil, %rdi\n mov %rdi, 120(%r15)\n"
        "  mov %rax, 0(%r15)\n mov %rbx, 8(%r15)\n mov %rbp, 16(%r15)\n mov %r12, 24(%r15)\n"
        "  mov %r13, 32(%r15)\n mov %r14, 40(%r15)\n mov %rcx, 48(%r15)\n mov %rdx, 56(%r15)\n"
        "  mov %rsi, 64(%r15)\n mov %r8, 72(%r15)\n mov %r9, 80(%r15)\n mov %r10, 88(%r15)\n"
        "  mov %r11, 96(%r15)\n movq %xmm0, 104(%r15)\n mov %rsp, 112(%r15)\n"
        "  pop %r15\n pop %r14\n pop %r13\n pop %r12\n pop %rbp\n pop %rbx\n"
        "  ret\n");

static void check_regs(void) {
    struct regs r;
    tm_regs_test(&r);
    expect("registers test abort", (unsigned)r.status, 0x21000001);
    const uint64_t want[] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666,
                             0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb, 0xcccc};
    const uint64_t *got = &r.rbx;
    for (int i = 0; i < 12; i++)
        if (got[i] != want[i])
            weft_assert_failf("tm_semantics: register %d after abort is %#lx, expected %#lx",
                              i, (unsigned long)got[i], (unsigned long)want[i]);
    if (r.xmm0 != 0x1111 || r.rsp != rsp_before || r.cf != 1 || r.rdi != 0xdddd)
        weft_assert_failf("tm_semantics: after abort xmm0=%#lx rsp=%#lx (expected %#lx) cf=%lu "
                          "rdi=%#lx", (unsigned long)r.xmm0, (unsigned long)r.rsp,
                          (unsigned long)rsp_before, (unsigned long)r.cf, (unsigned long)r.rdi);
    checks++;
}

/* One transaction running `body` (a statement); yields its status (STARTED if committed). */
#define TX(body)                                                                            \
    __extension__({                                                                         \
        unsigned s_ = weft_xbegin();                                                        \
        if (s_ == STARTED) {                                                                \
            body;                                                                           \
            weft_xend();                                                                    \
        }                                                                                   \
        s_;                                                                                 \
    })

void _start(unsigned long id, unsigned long n) {
    (void)id;
    if (n != 1)
        weft_assert_failf("tm_semantics: run with --vcpus 1");

    /* XTEST */
    int inside = -1;
    expect("xtest commit", TX(inside = weft_xtest()), STARTED);
    expect_val("xtest inside", (unsigned long)inside, 1);
    expect_val("xtest outside", (unsigned long)weft_xtest(), 0);

    /* XABORT outside: no-op, AL untouched */
    unsigned long al;
    __asm__ volatile("mov $0x77, %%eax\n xabort $0x99\n mov %%rax, %0" : "=r"(al) : : "rax");
    expect_val("xabort outside leaves eax", al, 0x77);

    /* commit, explicit abort with rollback */
    g = 1;
    expect("commit", TX(g = 2), STARTED);
    expect_val("committed write", g, 2);
    expect("xabort 0x5a", TX(g = 3; weft_xabort(0x5a)), 0x5a000001);
    expect_val("xabort rolled back", g, 2);

    /* nesting: commit only at the outermost XEND; NESTED only if aborted at depth > 1 */
    unsigned s = weft_xbegin();
    if (s == STARTED) {
        g = 10;
        if (weft_xbegin() == STARTED) {
            h = 10;
            weft_xend(); /* inner: nothing commits */
        }
        weft_xabort(0x11); /* at depth 1 again */
    }
    expect("abort after inner xend", s, 0x11000001);
    expect_val("inner writes rolled back", g + h, 2);
    s = weft_xbegin();
    if (s == STARTED) {
        g = 20;
        if (weft_xbegin() == STARTED)
            weft_xabort(0x11); /* at depth 2 */
    }
    expect("abort at depth 2", s, 0x11000021);
    s = weft_xbegin();
    if (s == STARTED) {
        for (int i = 0; i < 7; i++) { /* depths 2..8: the 8th XBEGIN aborts everything */
            g = 30 + i;
            weft_xbegin();
        }
        weft_xabort(0x7f); /* not reached */
    }
    expect("nesting overflow", s, WEFT_XABORT_NESTED);
    expect_val("overflow rolled back", g, 2);

    /* instructions that abort: status 0, no effect */
    expect("cpuid", TX(__asm__ volatile("cpuid" : : "a"(0) : "rbx", "rcx", "rdx", "memory")), 0);
    expect("pause", TX(weft_pause()), 0);
    expect("out", TX(__asm__ volatile("outb %%al, $0xe9" : : "a"('!') : "memory")), 0);
    expect("in", TX(__asm__ volatile("inb $0x80, %%al" : : : "rax", "memory")), 0);
    expect("vmcall", TX(weft_printf("never printed\n")), 0);
    expect("hlt", TX(__asm__ volatile("hlt" ::: "memory")), 0);
    s = weft_xbegin();
    if (s == STARTED) {
        weft_xbegin();
        __asm__ volatile("cpuid" : : "a"(0) : "rbx", "rcx", "rdx", "memory");
    }
    expect("cpuid at depth 2", s, WEFT_XABORT_NESTED);

    /* exceptions: suppressed, the transaction aborts with 0 */
    expect("ud2", TX(g = 40; __asm__ volatile("ud2" ::: "memory")), 0);
    volatile unsigned long zero = 0;
    volatile unsigned long q = 0;
    /* DIV in asm: a C division by zero would be undefined behaviour */
    expect("divide by zero", TX(g = 41; __asm__ volatile("xor %%edx, %%edx\n div %1"
                                                      : "+a"(q) : "r"(zero) : "rdx")), 0);
    expect("access outside RAM", TX(g = 42; q = *(volatile unsigned long *)0x7000000000UL), 0);
    expect_val("faulting transactions rolled back", g + q, 2);

    /* registers and the own stack after an abort */
    check_regs();
    volatile unsigned long local[16];
    for (int i = 0; i < 16; i++)
        local[i] = i;
    expect("stack writes", TX(for (int i = 0; i < 16; i++) local[i] = 100; weft_xabort(1)),
           0x01000001);
    for (int i = 0; i < 16; i++)
        if (local[i] != (unsigned long)i)
            weft_assert_failf("tm_semantics: stack word %d is %lu after abort", i, local[i]);

    /* capacity at the defaults: 512 lines written, 4096 read */
    expect("500 lines written", TX(for (int i = 0; i < 500; i++) big[i][0] = 1), STARTED);
    expect("520 lines written", TX(for (int i = 0; i < 520; i++) big[i][0] = 2),
           WEFT_XABORT_CAPACITY);
    if (big[519][0] != 0 || big[0][0] != 1)
        weft_assert_failf("tm_semantics: capacity abort kept writes");
    unsigned long sum = 0;
    expect("4000 lines read", TX(for (int i = 0; i < 4000; i++) sum += big[i][0]), STARTED);
    expect("4200 lines read", TX(for (int i = 0; i < 4200; i++) sum += big[i][0]),
           WEFT_XABORT_CAPACITY);

    weft_printf("tm_semantics ok: %d checks\n", checks);
}
