/*
 * nested_crash.c - a crash three calls deep, for call stacks on the board: _start calls
 * outer(), which calls middle(), which calls inner(), which executes UD2. None of them
 * may be inlined, so the stack is
 *     inner <- middle <- outer <- _start
 * read from the .debug_frame that -g emits (board guests have no .eh_frame).
 *
 * Expected, on vCPU 0 under every schedule: a crash verdict (#UD) whose call stack lists
 * inner, middle, outer and _start, each with its line in this file. Other vCPUs return.
 */
#include "weft.h"

__attribute__((noinline)) static void inner(void) {
    __asm__ volatile("ud2");
}

__attribute__((noinline)) static void middle(void) {
    inner();
    __asm__ volatile("" ::: "memory"); /* no tail call: middle stays on the stack */
}

__attribute__((noinline)) static void outer(void) {
    middle();
    __asm__ volatile("" ::: "memory");
}

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id == 0)
        outer();
    __asm__ volatile("" ::: "memory");
}
