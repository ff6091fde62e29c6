/*
 * self_modifying.c - a guest that rewrites its own code while it runs, on the vCPU that
 * runs it and on another one.
 *
 * patch_own and patch_other are each `mov eax, imm32; ret`; the guest rewrites the imm32
 * with plain byte stores (the board has no memory protection: code is RAM).
 * - vCPU 0 calls patch_own, rewrites it to return 2, 3, ..., 9 in turn, and checks after
 *   each rewrite that the next call returns the new value (self-modifying code).
 * - vCPU 1 calls patch_other (translating it), then calls it in a PAUSE loop until it
 *   returns 7; vCPU 0 rewrites it to return 7 once vCPU 1 has started (cross-modifying
 *   code: another vCPU's store must reach code this vCPU has already run).
 * Other vCPUs return at once.
 *
 * Expected with 2 or more vCPUs, under every schedule: console, exactly
 *     self_modifying: own code ok
 *     self_modifying: other vcpu's rewrite seen
 * (in either order), verdict pass. A vCPU that kept running its old translation would fail
 * an assertion (vCPU 0) or spin until the deadlock verdict (vCPU 1).
 */
#include "weft.h"

int patch_own(void);
int patch_other(void);
__asm__(".text\n"
        ".globl patch_own\n"
        "patch_own:\n"
        "    movl $1, %eax\n"
        "    ret\n"
        ".globl patch_other\n"
        "patch_other:\n"
        "    movl $1, %eax\n"
        "    ret\n");

static volatile unsigned long started;

/* Rewrite the imm32 of `mov eax, imm32` (B8 xx xx xx xx) at the start of f. */
static void set_result(int (*f)(void), unsigned char v) {
    volatile unsigned char *code = (volatile unsigned char *)(uintptr_t)f;
    code[1] = v;
}

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0) {
        if (patch_own() != 1)
            weft_assert_failf("self_modifying: patch_own returned %d before any rewrite",
                              patch_own());
        for (unsigned char v = 2; v <= 9; v++) {
            set_result(patch_own, v);
            int got = patch_own();
            if (got != v)
                weft_assert_failf("self_modifying: vcpu0 rewrote patch_own to return %d, "
                                  "it returned %d (stale translation)",
                                  v, got);
        }
        weft_printf("self_modifying: own code ok\n");
        while (!weft_load(&started))
            weft_pause();
        set_result(patch_other, 7);
    } else if (id == 1) {
        if (patch_other() != 1)
            weft_assert_failf("self_modifying: patch_other returned %d before any rewrite",
                              patch_other());
        weft_store(&started, 1);
        int got;
        while ((got = patch_other()) != 7) {
            if (got != 1)
                weft_assert_failf("self_modifying: patch_other returned %d", got);
            weft_pause();
        }
        weft_printf("self_modifying: other vcpu's rewrite seen\n");
    }
}
