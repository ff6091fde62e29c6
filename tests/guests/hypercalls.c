/*
 * hypercalls.c - every hypercall of ABI v1 that returns, with its result and the registers
 * around it checked.
 *
 * On every vCPU, each of these runs through VMCALL with known values in every register:
 *   WRITE(ptr, 0) -> 0             (vCPU 0 also WRITEs one non-empty line -> its length)
 *   YIELD -> 0
 *   VCPU_ID -> _start's vcpu_id,   VCPU_COUNT -> _start's vcpu_count
 *   ANNOTATE_ACQUIRE(&word) -> 0,  ANNOTATE_RELEASE(&word) -> 0,
 *   ANNOTATE_ATOMIC(&word, 8) -> 0
 *   MARK("phase", 5) -> 0
 *   unknown numbers 11, 99 and 0x100000004 -> 0xffffffffffffffff (-1)
 * and after each VMCALL RBX, RCX, RDX, RSI, RDI, RBP, RSP and R8-R15 must hold exactly
 * what they held before (the arguments in RDI/RSI/RDX included); only RAX may change.
 * Arguments a hypercall does not use hold arbitrary non-zero patterns. The same calls then
 * run once more through weft.h's wrappers. The last vCPU to finish (an atomic counter)
 * prints the last line and calls EXIT(0).
 *
 * Expected, with any number of vCPUs (1..64) and under every schedule:
 *   console (stdout), exactly:
 *       hypercalls: vcpu0 WRITE line
 *       hypercalls ok
 *   verdict: pass (EXIT with status 0); `weft` exit code 0.
 *   trace: one MARK event labelled "phase" per vCPU, and one warning per vCPU for each of
 *   the unknown hypercalls 11, 99 and 4294967300 (= 0x100000004).
 * On a mismatch: verdict assertion with a message such as
 *       hypercalls: vcpu1: YIELD changed rbx from 0x1111111111111111 to 0x0
 *       hypercalls: vcpu0: unknown hypercall 99 returned 0x0, expected 0xffffffffffffffff
 */
#include "weft.h"

/* Order of the registers in the probe's output. */
enum { RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8, R9, R10, R11, R12, R13, R14, R15, RSP, NREGS };
static const char *const reg_name[NREGS] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi",
                                            "rbp", "r8",  "r9",  "r10", "r11", "r12",
                                            "r13", "r14", "r15", "rsp"};
/* What the probe loads into the registers that carry no argument. */
#define PAT_RBX 0x1111111111111111UL
#define PAT_RCX 0x2222222222222222UL
#define PAT_RBP 0x6666666666666666UL
#define PAT_R8 0x8888888888888888UL
#define PAT_R9 0x9999999999999999UL
#define PAT_R10 0xaaaaaaaaaaaaaaaaUL
#define PAT_R11 0xbbbbbbbbbbbbbbbbUL
#define PAT_R12 0xccccccccccccccccUL
#define PAT_R13 0xddddddddddddddddUL
#define PAT_R14 0xeeeeeeeeeeeeeeeeUL
#define PAT_R15 0xf0f0f0f0f0f0f0f0UL
#define STR2(x) #x
#define STR(x) STR2(x)

/* The probe's block, on the caller's (private) stack. */
struct probe_io {
    uint64_t in[4];        /* RAX (number), RDI, RSI, RDX for the VMCALL */
    uint64_t out[NREGS];   /* every register right after the VMCALL */
    uint64_t rsp_before;   /* RSP right before the VMCALL */
};

/* hc_probe_(io): load io->in and the patterns, VMCALL, store every register to io->out. */
void hc_probe_(struct probe_io *io);
__asm__(".text\n"
        ".globl hc_probe_\n"
        "hc_probe_:\n"
        "  push %rbx\n"
        "  push %rbp\n"
        "  push %r12\n"
        "  push %r13\n"
        "  push %r14\n"
        "  push %r15\n"
        "  push %rdi\n"
        "  mov %rsp, 160(%rdi)\n"
        "  mov 0(%rdi), %rax\n"
        "  mov 16(%rdi), %rsi\n"
        "  mov 24(%rdi), %rdx\n"
        "  mov 8(%rdi), %rdi\n"
        "  movabs $" STR(PAT_RBX) ", %rbx\n"
        "  movabs $" STR(PAT_RCX) ", %rcx\n"
        "  movabs $" STR(PAT_RBP) ", %rbp\n"
        "  movabs $" STR(PAT_R8) ", %r8\n"
        "  movabs $" STR(PAT_R9) ", %r9\n"
        "  movabs $" STR(PAT_R10) ", %r10\n"
        "  movabs $" STR(PAT_R11) ", %r11\n"
        "  movabs $" STR(PAT_R12) ", %r12\n"
        "  movabs $" STR(PAT_R13) ", %r13\n"
        "  movabs $" STR(PAT_R14) ", %r14\n"
        "  movabs $" STR(PAT_R15) ", %r15\n"
        "  vmcall\n"
        "  push %rax\n"
        "  mov 8(%rsp), %rax\n" /* io */
        "  mov %rbx, 40(%rax)\n"
        "  mov %rcx, 48(%rax)\n"
        "  mov %rdx, 56(%rax)\n"
        "  mov %rsi, 64(%rax)\n"
        "  mov %rdi, 72(%rax)\n"
        "  mov %rbp, 80(%rax)\n"
        "  mov %r8, 88(%rax)\n"
        "  mov %r9, 96(%rax)\n"
        "  mov %r10, 104(%rax)\n"
        "  mov %r11, 112(%rax)\n"
        "  mov %r12, 120(%rax)\n"
        "  mov %r13, 128(%rax)\n"
        "  mov %r14, 136(%rax)\n"
        "  mov %r15, 144(%rax)\n"
        "  lea 8(%rsp), %rbx\n"
        "  mov %rbx, 152(%rax)\n" /* RSP after the VMCALL */
        "  pop %rbx\n"
        "  mov %rbx, 32(%rax)\n" /* RAX after the VMCALL */
        "  pop %rdi\n"
        "  pop %r15\n"
        "  pop %r14\n"
        "  pop %r13\n"
        "  pop %r12\n"
        "  pop %rbp\n"
        "  pop %rbx\n"
        "  ret\n");

_Static_assert(__builtin_offsetof(struct probe_io, out) == 32, "probe layout");
_Static_assert(__builtin_offsetof(struct probe_io, rsp_before) == 160, "probe layout");

static volatile uint64_t word;
static unsigned long finished;
static const char line[] = "hypercalls: vcpu0 WRITE line\n";

/* Hypercall `nr` (named `what`) with arguments a0..a2 through the probe on vCPU `id`;
 * fails unless every register but RAX is unchanged; returns RAX. */
static uint64_t probe(unsigned long id, const char *what, uint64_t nr, uint64_t a0, uint64_t a1,
                      uint64_t a2) {
    struct probe_io io = {.in = {nr, a0, a1, a2}};
    hc_probe_(&io);
    const uint64_t expected[NREGS] = {
        [RBX] = PAT_RBX, [RCX] = PAT_RCX, [RDX] = a2,      [RSI] = a1,      [RDI] = a0,
        [RBP] = PAT_RBP, [R8] = PAT_R8,   [R9] = PAT_R9,   [R10] = PAT_R10, [R11] = PAT_R11,
        [R12] = PAT_R12, [R13] = PAT_R13, [R14] = PAT_R14, [R15] = PAT_R15,
        [RSP] = io.rsp_before,
    };
    for (int r = RBX; r < NREGS; r++)
        if (io.out[r] != expected[r])
            weft_assert_failf("hypercalls: vcpu%lu: %s changed %s from 0x%lx to 0x%lx", id, what,
                              reg_name[r], expected[r], io.out[r]);
    return io.out[RAX];
}

/* Fail unless hypercall `what` returned `want`. */
static void expect(unsigned long id, const char *what, uint64_t got, uint64_t want) {
    if (got != want)
        weft_assert_failf("hypercalls: vcpu%lu: %s returned 0x%lx, expected 0x%lx", id, what, got,
                          want);
}

/* Hypercall `nr` through the probe; fail unless it returns `want` and keeps the registers. */
#define CHECK(what, nr, a0, a1, a2, want) expect(id, what, probe(id, what, nr, a0, a1, a2), want)

void _start(unsigned long id, unsigned long n) {
    const uint64_t j0 = 0x4444444444444444UL, j1 = 0x5555555555555555UL,
                   j2 = 0x3333333333333333UL; /* junk in unused argument registers */
    const uint64_t w = (uint64_t)(uintptr_t)&word, l = (uint64_t)(uintptr_t)line;

    CHECK("WRITE of 0 bytes", WEFT_HC_WRITE, l, 0, j2, 0);
    if (id == 0)
        CHECK("WRITE", WEFT_HC_WRITE, l, sizeof line - 1, j2, sizeof line - 1);
    CHECK("YIELD", WEFT_HC_YIELD, j0, j1, j2, 0);
    CHECK("VCPU_ID", WEFT_HC_VCPU_ID, j0, j1, j2, id);
    CHECK("VCPU_COUNT", WEFT_HC_VCPU_COUNT, j0, j1, j2, n);
    CHECK("ANNOTATE_ACQUIRE", WEFT_HC_ANNOTATE_ACQUIRE, w, j1, j2, 0);
    CHECK("ANNOTATE_RELEASE", WEFT_HC_ANNOTATE_RELEASE, w, j1, j2, 0);
    CHECK("ANNOTATE_ATOMIC", WEFT_HC_ANNOTATE_ATOMIC, w, sizeof word, j2, 0);
    CHECK("MARK", WEFT_HC_MARK, (uint64_t)(uintptr_t) "phase", 5, j2, 0);
    CHECK("unknown hypercall 11", 11, 1, 2, 3, WEFT_HC_ERROR);
    CHECK("unknown hypercall 99", 99, 1, 2, 3, WEFT_HC_ERROR);
    CHECK("unknown hypercall 0x100000004", 0x100000004UL, 1, 2, 3, WEFT_HC_ERROR);

    /* The same through the header's wrappers, as guests use them. */
    expect(id, "weft_vcpu_id()", weft_vcpu_id(), id);
    expect(id, "weft_vcpu_count()", weft_vcpu_count(), n);
    expect(id, "weft_write(p, 0)", weft_write(line, 0), 0);
    weft_yield();
    weft_annotate_acquire(&word);
    weft_annotate_release(&word);
    weft_annotate_atomic(&word, sizeof word);
    if (id >= n)
        weft_assert_failf("hypercalls: vcpu id %lu is not below the vCPU count %lu", id, n);

    if (weft_fetch_add(&finished, 1) + 1 == n) {
        weft_puts("hypercalls ok\n");
        weft_exit(0);
    }
}
