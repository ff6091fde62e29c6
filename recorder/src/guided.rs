//! Guided: follow a given schedule as far as it applies, then run without preemption.
//!
//! Minimization uses it to try variants of a failing schedule: drop a run (a preemption),
//! or cut the schedule short, and let the rest run non-preemptively. The variant's
//! execution may differ from the original after the change, so the schedule is guidance:
//! a run whose vCPU cannot run now is skipped.

use crate::{Point, Strategy, VcpuId};

/// Follows `runs` ((vCPU, points) in order); afterwards keeps the current vCPU until it
/// ends or spins, then takes the next runnable one in id order.
#[derive(Clone, Debug)]
pub struct Guided {
    runs: Vec<(VcpuId, u64)>,
    /// Index of the run being followed and points left in it.
    at: usize,
    left: u64,
    label: String,
}

impl Guided {
    /// `label` is what `spec()` reports (e.g. where the schedule came from).
    pub fn new(runs: Vec<(VcpuId, u64)>, label: impl Into<String>) -> Guided {
        let left = runs.first().map_or(0, |r| r.1);
        Guided {
            runs,
            at: 0,
            left,
            label: label.into(),
        }
    }
}

impl Strategy for Guided {
    fn spec(&self) -> String {
        self.label.clone()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        while self.at < self.runs.len() {
            let (v, _) = self.runs[self.at];
            if self.left > 0 && p.runnable.contains(v) {
                self.left -= 1;
                return v;
            }
            self.at += 1;
            self.left = self.runs.get(self.at).map_or(0, |r| r.1);
        }
        match p.current {
            Some(c) if !p.spinning || p.runnable.len() == 1 => c,
            Some(c) => p.runnable.next_after(c).unwrap_or(c),
            None => p.runnable.nth(0).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Step, VcpuSet};

    fn point(current: Option<u32>, runnable: u64, spinning: bool) -> Point {
        Point {
            step: Step(0),
            current: current.map(VcpuId),
            runnable: VcpuSet(runnable),
            spinning,
            rip: 0,
        }
    }

    #[test]
    fn follows_the_runs_then_runs_without_preemption() {
        let mut g = Guided::new(vec![(VcpuId(1), 2), (VcpuId(0), 1)], "t");
        assert_eq!(g.pick(&point(None, 0b11, false)), VcpuId(1));
        assert_eq!(g.pick(&point(Some(1), 0b11, false)), VcpuId(1));
        assert_eq!(g.pick(&point(Some(1), 0b11, false)), VcpuId(0));
        // Schedule done: stay on the current vCPU ...
        assert_eq!(g.pick(&point(Some(0), 0b11, false)), VcpuId(0));
        // ... until it spins, then the next one.
        assert_eq!(g.pick(&point(Some(0), 0b11, true)), VcpuId(1));
    }

    #[test]
    fn a_run_whose_vcpu_cannot_run_is_skipped() {
        let mut g = Guided::new(vec![(VcpuId(2), 5), (VcpuId(0), 1)], "t");
        assert_eq!(g.pick(&point(None, 0b011, false)), VcpuId(0));
    }
}
