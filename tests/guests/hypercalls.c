/* hypercalls.c - every hypercall of ABI v1 with its result checked; prints "hypercalls ok"
 * from each vCPU that finishes and passes. Also checks that VMCALL changes no register
 * but RAX. Any mismatch is an assertion naming the check. */
#include "weft.h"

static volatile unsigned long word;

/* YIELD with known values in every other register; returns how many changed (in asm,
 * so the compiler cannot keep anything in the registers it checks). */
int weft_check_regs(void);
__asm__(
    "    .text\n"
    "    .globl weft_check_regs\n"
    "weft_check_regs:\n"
    "    push %rbx\n"
    "    push %rbp\n"
    "    push %r12\n"
    "    push %r13\n"
    "    push %r14\n"
    "    push %r15\n"
    "    mov $0x1111, %rbx\n"
    "    mov $0x2222, %rcx\n"
    "    mov $0x3333, %rdx\n"
    "    mov $0x4444, %rdi\n"
    "    mov $0x5555, %rsi\n"
    "    mov $0x6666, %rbp\n"
    "    mov $0x8888, %r8\n"
    "    mov $0x9999, %r9\n"
    "    mov $0xaaaa, %r10\n"
    "    mov $0xbbbb, %r11\n"
    "    mov $0xcccc, %r12\n"
    "    mov $0xdddd, %r13\n"
    "    mov $0xeeee, %r14\n"
    "    mov $0xffff, %r15\n"
    "    mov $3, %eax\n"
    "    vmcall\n"
    "    xor %eax, %eax\n"
    "    cmp $0x1111, %rbx\n"
    "    je 100f\n"
    "    inc %eax\n"
    "100:\n"
    "    cmp $0x2222, %rcx\n"
    "    je 101f\n"
    "    inc %eax\n"
    "101:\n"
    "    cmp $0x3333, %rdx\n"
    "    je 102f\n"
    "    inc %eax\n"
    "102:\n"
    "    cmp $0x4444, %rdi\n"
    "    je 103f\n"
    "    inc %eax\n"
    "103:\n"
    "    cmp $0x5555, %rsi\n"
    "    je 104f\n"
    "    inc %eax\n"
    "104:\n"
    "    cmp $0x6666, %rbp\n"
    "    je 105f\n"
    "    inc %eax\n"
    "105:\n"
    "    cmp $0x8888, %r8\n"
    "    je 106f\n"
    "    inc %eax\n"
    "106:\n"
    "    cmp $0x9999, %r9\n"
    "    je 107f\n"
    "    inc %eax\n"
    "107:\n"
    "    cmp $0xaaaa, %r10\n"
    "    je 108f\n"
    "    inc %eax\n"
    "108:\n"
    "    cmp $0xbbbb, %r11\n"
    "    je 109f\n"
    "    inc %eax\n"
    "109:\n"
    "    cmp $0xcccc, %r12\n"
    "    je 110f\n"
    "    inc %eax\n"
    "110:\n"
    "    cmp $0xdddd, %r13\n"
    "    je 111f\n"
    "    inc %eax\n"
    "111:\n"
    "    cmp $0xeeee, %r14\n"
    "    je 112f\n"
    "    inc %eax\n"
    "112:\n"
    "    cmp $0xffff, %r15\n"
    "    je 113f\n"
    "    inc %eax\n"
    "113:\n"
    "    pop %r15\n"
    "    pop %r14\n"
    "    pop %r13\n"
    "    pop %r12\n"
    "    pop %rbp\n"
    "    pop %rbx\n"
    "    ret\n");

void _start(unsigned long id, unsigned long n) {
    WEFT_ASSERT(weft_vcpu_id() == id);
    WEFT_ASSERT(weft_vcpu_count() == n);
    WEFT_ASSERT(weft_write("", 0) == 0);
    WEFT_ASSERT(weft_write("w", 1) == 1);
    weft_yield();
    weft_annotate_acquire(&word);
    weft_annotate_release(&word);
    weft_annotate_atomic(&word, sizeof word);
    weft_mark("phase", 5);
    WEFT_ASSERT(weft_hypercall3(99, 1, 2, 3) == ~(uint64_t)0);
    WEFT_ASSERT(weft_hypercall3(WEFT_HC_YIELD, 0, 0, 0) == 0);
    WEFT_ASSERT(weft_hypercall3(WEFT_HC_ANNOTATE_ACQUIRE, 0, 0, 0) == 0);
    WEFT_ASSERT(weft_check_regs() == 0);
    weft_printf("\nvcpu%lu: hypercalls ok\n", id);
}
