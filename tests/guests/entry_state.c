/*
 * entry_state.c - the CPU state, stacks and loaded image every vCPU starts with.
 *
 * Run with the default --ram (64 MiB) and --stack (64 KiB): the stack checks below use
 * those sizes. A small assembly _start records the registers at entry before any C code
 * runs, then jumps (not calls) to the C part, which therefore returns to the board's
 * return address. Each vCPU checks:
 *   RDI = its vCPU id (= VCPU_ID) and RSI = the vCPU count (= VCPU_COUNT);
 *   RSP at entry = 0x4000000 - id * 0x10000 - 8 (its stack ends at RAM_top - id *
 *     stack_size, and RSP points at a return address), so (RSP + 8) % 16 == 0;
 *   RFLAGS.IF (bit 9) clear; CPL 0 (CS & 3 == 0);
 *   CR0.MP (bit 1) set, CR0.EM (bit 2) clear, CR4.OSFXSR (bit 9) and CR4.OSXMMEXCPT
 *     (bit 10) set, and SSE code runs (a double computed with SSE2 instructions);
 *   the image is loaded: an initialised global (.data) holds its value and a 4 KiB
 *     uninitialised global (.bss, memsz beyond filesz) is all zero (vCPU 0 checks these
 *     before anyone writes to memory);
 *   its whole 64 KiB stack is its own: it fills the lower 32 KiB of it with its id, waits
 *     until every vCPU has done the same (a LOCK XADD barrier, spinning with PAUSE), and
 *     finds its bytes unchanged.
 * The last vCPU through the final barrier prints the final line.
 *
 * Expected, with N vCPUs (1..64), default --ram and --stack, under every schedule:
 *   console (stdout), exactly:
 *       entry_state ok: N vCPUs
 *   verdict: pass; `weft` exit code 0.
 * On a mismatch: verdict assertion naming the check, e.g.
 *       entry_state: vcpu1: RSP at entry is 0x3feffe0, expected 0x3fefff8
 */
#include "weft.h"

#define RAM_TOP 0x4000000UL /* default --ram: 64 MiB */
#define STACK 0x10000UL     /* default --stack: 64 KiB */

/* What the assembly entry saw. */
struct entry_regs {
    uint64_t rdi, rsi, rsp, rflags, cr0, cr4, cs;
};

void entry_main(unsigned long id, unsigned long n, uint64_t rsp, uint64_t rflags, uint64_t cr0,
                uint64_t cr4);

/* _start: capture RSP, RFLAGS, CR0, CR4 into the 3rd..6th arguments of entry_main and jump
 * there; RSP is left as it came, so entry_main's `ret` ends the vCPU. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  mov %rsp, %rdx\n"
        "  pushfq\n"
        "  pop %rcx\n"
        "  mov %cr0, %r8\n"
        "  mov %cr4, %r9\n"
        "  jmp entry_main\n");

static volatile uint64_t initialised = 0x0123456789abcdefUL; /* in .data */
static volatile unsigned char zeroed[4096];                  /* in .bss */
static unsigned long filled, done;                            /* LOCK XADD only */
static volatile double sse_in = 1.25;

#define FAIL(...) weft_assert_failf(__VA_ARGS__)

void entry_main(unsigned long id, unsigned long n, uint64_t rsp, uint64_t rflags, uint64_t cr0,
                uint64_t cr4) {
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));

    if (id == 0) {
        if (initialised != 0x0123456789abcdefUL)
            FAIL("entry_state: .data word is 0x%lx, expected 0x123456789abcdef", initialised);
        for (unsigned i = 0; i < sizeof zeroed; i++)
            if (zeroed[i] != 0)
                FAIL("entry_state: .bss byte %u is 0x%x, expected 0", i, zeroed[i]);
    }
    if (id != weft_vcpu_id() || n != weft_vcpu_count())
        FAIL("entry_state: vcpu%lu: RDI/RSI at entry are %lu/%lu, VCPU_ID/VCPU_COUNT say "
             "%lu/%lu", id, id, n, weft_vcpu_id(), weft_vcpu_count());
    uint64_t want_rsp = RAM_TOP - id * STACK - 8;
    if (rsp != want_rsp)
        FAIL("entry_state: vcpu%lu: RSP at entry is 0x%lx, expected 0x%lx", id, rsp, want_rsp);
    if ((rsp + 8) % 16 != 0)
        FAIL("entry_state: vcpu%lu: (RSP + 8) %% 16 is %lu, expected 0", id, (rsp + 8) % 16);
    if (rflags & (1u << 9))
        FAIL("entry_state: vcpu%lu: RFLAGS.IF is set (RFLAGS 0x%lx)", id, rflags);
    if (cs & 3)
        FAIL("entry_state: vcpu%lu: CPL is %u, expected 0", id, cs & 3);
    if (!(cr0 & (1u << 1)) || (cr0 & (1u << 2)))
        FAIL("entry_state: vcpu%lu: CR0 is 0x%lx, expected MP (bit 1) set, EM (bit 2) clear",
             id, cr0);
    if ((cr4 & (3u << 9)) != (3u << 9))
        FAIL("entry_state: vcpu%lu: CR4 is 0x%lx, expected OSFXSR (bit 9) and OSXMMEXCPT "
             "(bit 10) set", id, cr4);
    double d = sse_in * 3.0 + 0.25; /* mulsd, addsd */
    if (d != 4.0)
        FAIL("entry_state: vcpu%lu: SSE computed 1.25 * 3 + 0.25 wrongly", id);

    /* Fill the lower half of this vCPU's stack, well below anything C code here uses. */
    volatile unsigned char *bottom = (volatile unsigned char *)(RAM_TOP - (id + 1) * STACK);
    for (unsigned long i = 0; i < STACK / 2; i++)
        bottom[i] = (unsigned char)id;
    weft_fetch_add(&filled, 1);
    while (weft_load(&filled) != n)
        weft_pause();
    for (unsigned long i = 0; i < STACK / 2; i++)
        if (bottom[i] != (unsigned char)id)
            FAIL("entry_state: vcpu%lu: stack byte at 0x%lx became %u (another vCPU's stack?)",
                 id, (uint64_t)(uintptr_t)&bottom[i], bottom[i]);

    if (weft_fetch_add(&done, 1) + 1 == n)
        weft_printf("entry_state ok: %lu vCPUs\n", n);
}
