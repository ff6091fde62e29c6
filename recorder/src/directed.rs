//! Schedules as sets of deviations from a plain run, for minimization.
//!
//! The plain run is non-preemptive round-robin: the current vCPU goes on until it ends,
//! blocks or spins, then the next one by id after it. Any schedule is that plain run plus
//! *directives*: at this decision, pick that vCPU instead. A decision is named by who
//! was picked last and how many times it had been picked then ([`Key`]): a name that
//! survives other directives being dropped as long as that vCPU's own path does, which
//! is what lets minimization drop preemptions one set at a time (delta debugging) and
//! keep the rest meaningful. [`Observe`] wraps any strategy and writes down the
//! directives that reproduce its choices; [`Directed`] follows a set of them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::{Point, Strategy, VcpuId};

/// A decision: the vCPU picked last (`None` before the first pick) and how many times it
/// had been picked.
pub type Key = (Option<VcpuId>, u64);

/// Pick `to` at decision `key`. `preemptive`: it switches away from a vCPU that could
/// have gone on (what minimization removes; the others are free choices it keeps).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Directive {
    pub key: Key,
    pub to: VcpuId,
    pub preemptive: bool,
}

/// Who picked what, so far: the state every directed or observed run keeps.
#[derive(Clone, Debug, Default)]
struct Tally {
    counts: BTreeMap<VcpuId, u64>,
    last: Option<VcpuId>,
}

impl Tally {
    fn key(&self) -> Key {
        let n = self
            .last
            .map_or(0, |v| self.counts.get(&v).copied().unwrap_or(0));
        (self.last, n)
    }

    /// The plain run's choice at `p`.
    fn plain(&self, p: &Point) -> VcpuId {
        match (p.current, self.last) {
            (Some(c), _) if !p.spinning || p.runnable.len() == 1 => c,
            (Some(c), _) => p.runnable.next_after(c).unwrap_or(c),
            (None, Some(l)) => p.runnable.next_after(l).unwrap_or_default(),
            (None, None) => p.runnable.nth(0).unwrap_or_default(),
        }
    }

    fn picked(&mut self, v: VcpuId) {
        *self.counts.entry(v).or_default() += 1;
        self.last = Some(v);
    }
}

/// Follows directives; the plain run everywhere else (and where a directive's vCPU
/// cannot run).
#[derive(Clone, Debug)]
pub struct Directed {
    directives: BTreeMap<Key, VcpuId>,
    tally: Tally,
    label: String,
}

impl Directed {
    pub fn new(directives: &[Directive], label: impl Into<String>) -> Directed {
        Directed {
            directives: directives.iter().map(|d| (d.key, d.to)).collect(),
            tally: Tally::default(),
            label: label.into(),
        }
    }
}

impl Strategy for Directed {
    fn spec(&self) -> String {
        self.label.clone()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let v = match self.directives.get(&self.tally.key()) {
            Some(&to) if p.runnable.contains(to) => to,
            _ => self.tally.plain(p),
        };
        self.tally.picked(v);
        v
    }
}

/// Runs `inner` unchanged and notes the directives that reproduce its picks.
pub struct Observe {
    inner: Box<dyn Strategy>,
    tally: Tally,
    seen: Rc<RefCell<Vec<Directive>>>,
}

impl Observe {
    /// The strategy, and where its directives will be.
    pub fn new(inner: Box<dyn Strategy>) -> (Observe, Rc<RefCell<Vec<Directive>>>) {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let o = Observe {
            inner,
            tally: Tally::default(),
            seen: seen.clone(),
        };
        (o, seen)
    }
}

impl Strategy for Observe {
    fn spec(&self) -> String {
        self.inner.spec()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let v = self.inner.pick(p);
        if v != self.tally.plain(p) {
            self.seen.borrow_mut().push(Directive {
                key: self.tally.key(),
                to: v,
                preemptive: p.current.is_some_and(|c| c != v) && !p.spinning,
            });
        }
        self.tally.picked(v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Random, Step, VcpuSet};

    /// Two vCPUs with `n` points each, no spinning; returns the picks.
    fn run(s: &mut dyn Strategy, n: u32) -> Vec<u32> {
        let mut left = [n, n];
        let mut cur = None;
        let mut out = Vec::new();
        while left.iter().any(|&l| l > 0) {
            let mut runnable = VcpuSet::empty();
            for (v, &l) in left.iter().enumerate() {
                if l > 0 {
                    runnable.insert(VcpuId(v as u32));
                }
            }
            let v = s.pick(&Point {
                step: Step(out.len() as u64),
                current: cur,
                runnable,
                spinning: false,
                rip: 0,
            });
            out.push(v.0);
            left[v.0 as usize] -= 1;
            cur = (left[v.0 as usize] > 0).then_some(v);
        }
        out
    }

    #[test]
    fn observed_directives_reproduce_the_run_and_dropping_them_gives_the_plain_run() {
        for seed in 0..20 {
            let (mut obs, seen) = Observe::new(Box::new(Random::new(seed)));
            let original = run(&mut obs, 6);
            let all = seen.borrow().clone();
            assert_eq!(
                run(&mut Directed::new(&all, ""), 6),
                original,
                "seed {seed}"
            );
            let free: Vec<Directive> = all.iter().filter(|d| !d.preemptive).copied().collect();
            let plain = run(&mut Directed::new(&free, ""), 6);
            let switches = plain.windows(2).filter(|w| w[0] != w[1]).count();
            assert_eq!(switches, 1, "seed {seed}: {plain:?}");
        }
    }
}
