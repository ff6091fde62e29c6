/*
 * annotated_lock.c - a lock weft cannot infer, made visible with annotations: two vCPUs
 * take turns through a plain `turn` variable (strict alternation: wait until turn == me,
 * work, turn = other; plain loads and stores, correct on x86), incrementing a shared
 * counter in their turns. The lock word is named a sync variable with ANNOTATE_ATOMIC, and
 * the hand-over with ANNOTATE_ACQUIRE after waiting and ANNOTATE_RELEASE before passing
 * the turn. `weft races` must then report no data race. unannotated_lock.c is the same
 * code without the annotations: there the counter and `turn` accesses are races.
 *
 * Expected (--vcpus 2, any strategy): console, exactly
 *     annotated_lock ok: counter 40
 * verdict pass. Other vCPUs return at once.
 */
#include "weft.h"

#define ROUNDS 20

static volatile unsigned long turn;    /* whose turn it is: 0 or 1 */
static volatile unsigned long counter; /* incremented in turns */

#ifdef NO_ANNOTATIONS
#define ANNOTATE(x)
#else
#define ANNOTATE(x) x
#endif

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id > 1)
        return;
    ANNOTATE(weft_annotate_atomic(&turn, sizeof turn));
    for (int r = 0; r < ROUNDS; r++) {
        while (turn != id)
            weft_pause();
        ANNOTATE(weft_annotate_acquire(&turn));
        counter = counter + 1;
        ANNOTATE(weft_annotate_release(&turn));
        turn = 1 - id;
    }
    if (id == 1) {
        while (turn != 0)
            weft_pause();
        ANNOTATE(weft_annotate_acquire(&turn));
        if (counter != 2 * ROUNDS)
            weft_assert_failf("annotated_lock: counter %lu, expected %d", counter, 2 * ROUNDS);
        weft_printf("annotated_lock ok: counter %lu\n", counter);
    }
}
