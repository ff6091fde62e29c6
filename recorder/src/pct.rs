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

use crate::{rng::Rng, Point, Strategy, StrategySpec, VcpuId, VcpuSet};

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
        }
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
        }
        .to_string()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        if p.runnable.len() > 1 {
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
