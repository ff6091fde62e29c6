/*
 * dfs_small.c - a guest whose schedules are easy to count: each vCPU makes exactly three
 * stores to its own shared global (three scheduling points, no spinning, no hypercall)
 * and returns. With two vCPUs, preemption-bounded DFS must run exactly 2 schedules with
 * bound 0 (which vCPU goes first), 2 * (1 + 3) = 8 with bound 1 (one preemption before any
 * of the first vCPU's three stores), and 2 * (1 + 3 + 3 * 3) = 26 with bound 2.
 *
 * Expected (--vcpus 2, any strategy): no console output; verdict pass.
 */
static volatile unsigned long mine[2]; /* mine[id]: written by vCPU id only */

void _start(unsigned long id, unsigned long n) {
    (void)n;
    if (id > 1)
        return;
    mine[id] = 1;
    mine[id] = 2;
    mine[id] = 3;
}
