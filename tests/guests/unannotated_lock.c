/*
 * unannotated_lock.c - annotated_lock.c without its annotations: the same strict
 * alternation through a plain `turn` variable, which weft cannot recognise as a lock, so
 * `weft races` reports the counter and `turn` accesses as data races.
 *
 * Expected (--vcpus 2, any strategy): console, exactly
 *     annotated_lock ok: counter 40
 * verdict pass (the program is correct; only the analysis differs).
 */
#define NO_ANNOTATIONS
#include "annotated_lock.c"
