//! PCT, probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
//! ASPLOS 2010).
//!
//! Every vCPU gets a distinct random priority; the highest-priority runnable vCPU always
//! runs. At `depth - 1` change points, chosen uniformly among the first `steps` steps, the
//! running vCPU's priority drops below every initial one. For a program with `n` threads,
//! `k` steps and a bug of depth `d` (the number of ordering constraints that must hold for
//! it to show), one run finds it with probability at least `1 / (n * k^(d-1))`.
//!
//! Fairness (not part of PCT): a spinning vCPU is demoted below everyone, so spin-waits
//! end; this keeps the guarantee for bugs that need no spin-wait to be starved.
//!
//! *Focused* PCT counts only points in the program's own code ([`Focus`]: what has
//! source lines, not the C library) when it places its change points. A Linux program
//! spends most points inside glibc (a thread's creation alone is hundreds), and the bug
//! usually needs a change point between two accesses of the program's own: with `k`
//! counting only those, `1/k` is the program's own number of steps, as in the study that
//! scheduled at the program's visible operations only.

use std::sync::Arc;

use crate::{rng::Rng, Point, Strategy, StrategySpec, VcpuId, VcpuSet};

/// Code address ranges `[start, end)`, sorted and disjoint: the program's own code.
pub type Focus = Arc<[(u64, u64)]>;

/// Whether `rip` lies in one of `focus`'s ranges.
pub fn in_focus(focus: &[(u64, u64)], rip: u64) -> bool {
    let i = focus.partition_point(|r| r.1 <= rip);
    focus.get(i).is_some_and(|r| r.0 <= rip)
}

const N: usize = 64;

#[derive(Clone, Debug)]
pub struct Pct {
    seed: u64,
    depth: u32,
    steps: u64,
    /// Priority per vCPU: higher runs first. Initial ones are >= depth; change points
    /// assign 1..depth-1; spinning demotes below zero (i64).
    prio: [i64; N],
    /// Change points, sorted, with the priority each one assigns.
    changes: Vec<(u64, i64)>,
    next_change: usize,
    /// Next (ever lower) priority for a spinning vCPU.
    spin_floor: i64,
    /// Points so far where more than one vCPU could run: change points are placed among
    /// these, since a point with one choice cannot change anything (a Linux program's
    /// single-threaded start, a lone vCPU's tail).
    contended: u64,
    /// Focused PCT: only points in these ranges count (see the module doc); `None` with
    /// `focused` set: no ranges were given, every contended point counts.
    focused: bool,
    focus: Option<Focus>,
}

impl Pct {
    pub fn new(seed: u64, depth: u32, steps: u64) -> Pct {
        let mut rng = Rng::new(seed);
        let depth = depth.max(1);
        let steps = steps.max(1);
        // Distinct initial priorities depth..depth+N in a random order (Fisher-Yates).
        let mut prio = [0i64; N];
        for (i, p) in prio.iter_mut().enumerate() {
            *p = depth as i64 + i as i64;
        }
        for i in (1..N).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            prio.swap(i, j);
        }
        let mut changes: Vec<(u64, i64)> = (1..depth)
            .map(|i| (1 + rng.below(steps), (depth - i) as i64))
            .collect();
        changes.sort_unstable();
        Pct {
            seed,
            depth,
            steps,
            prio,
            changes,
            next_change: 0,
            spin_floor: 0,
            contended: 0,
            focused: false,
            focus: None,
        }
    }

    /// The focused variant: change points among contended points in `focus` only.
    pub fn focused(mut self, focus: Option<Focus>) -> Pct {
        self.focused = true;
        self.focus = focus;
        self
    }

    fn highest(&self, set: VcpuSet) -> Option<VcpuId> {
        set.iter().max_by_key(|v| self.prio[v.0 as usize])
    }
}

impl Strategy for Pct {
    fn spec(&self) -> String {
        StrategySpec::Pct {
            seed: self.seed,
            depth: self.depth,
            steps: self.steps,
            focus: self.focused,
        }
        .to_string()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let counts = match &self.focus {
            Some(f) => in_focus(f, p.rip),
            None => true,
        };
        if p.runnable.len() > 1 && counts {
            self.contended += 1;
        }
        if let Some(c) = p.current {
            while self.next_change < self.changes.len()
                && self.changes[self.next_change].0 <= self.contended
            {
                self.prio[c.0 as usize] = self.changes[self.next_change].1;
                self.next_change += 1;
            }
            if p.spinning && p.runnable.len() > 1 {
                self.spin_floor -= 1;
                self.prio[c.0 as usize] = self.spin_floor;
            }
        }
        self.highest(p.runnable).unwrap_or_default()
    }
}
