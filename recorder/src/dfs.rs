//! Preemption-bounded depth-first search (CHESS-style stateless model checking): every
//! schedule with at most `bound` preemptions, each exactly once, by re-execution.
//!
//! A preemption is choosing another vCPU while the current one could go on (it is not
//! spinning). Choices where nobody holds the token (start, after a vCPU ended) are free;
//! a spinning vCPU always yields to the next one (no branching there, so spin loops keep
//! the tree finite). [`DfsTree`] holds the search stack between runs; each run follows its
//! choices and extends it with the default choice (go on without preemption) and the
//! alternatives still within the bound; [`DfsTree::advance`] then backtracks to the deepest
//! untried alternative.

use std::cell::RefCell;
use std::rc::Rc;

use crate::{Point, Strategy, VcpuId, VcpuSet};

#[derive(Clone, Debug)]
struct Frame {
    choice: VcpuId,
    /// Alternatives at this point not explored yet (within the bound).
    untried: VcpuSet,
}

/// The search stack, shared between the explorer and the run's strategy.
#[derive(Debug)]
pub struct DfsTree {
    bound: u32,
    frames: Vec<Frame>,
    runs: u64,
}

impl DfsTree {
    pub fn new(bound: u32) -> Rc<RefCell<DfsTree>> {
        Rc::new(RefCell::new(DfsTree {
            bound,
            frames: Vec::new(),
            runs: 0,
        }))
    }

    /// The strategy for the next run.
    pub fn next_run(tree: &Rc<RefCell<DfsTree>>) -> DfsRun {
        tree.borrow_mut().runs += 1;
        DfsRun {
            tree: tree.clone(),
            pos: 0,
            used: 0,
        }
    }

    /// After a run: move to the next schedule. Returns `false` when every schedule within
    /// the bound has been run.
    pub fn advance(&mut self) -> bool {
        while let Some(f) = self.frames.last_mut() {
            if let Some(x) = f.untried.nth(0) {
                f.untried.remove(x);
                f.choice = x;
                return true;
            }
            self.frames.pop();
        }
        false
    }

    /// Schedules run so far.
    pub fn runs(&self) -> u64 {
        self.runs
    }
}

/// One run of the search.
pub struct DfsRun {
    tree: Rc<RefCell<DfsTree>>,
    /// Index of the next point.
    pos: usize,
    /// Preemptions so far in this run.
    used: u32,
}

impl Strategy for DfsRun {
    fn spec(&self) -> String {
        format!("dfs:bound={}", self.tree.borrow().bound)
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let mut t = self.tree.borrow_mut();
        let free = match p.current {
            None => true,
            Some(_) => p.spinning,
        };
        let default = match p.current {
            Some(c) if !p.spinning || p.runnable.len() == 1 => c,
            Some(c) => p.runnable.next_after(c).unwrap_or(c),
            None => p.runnable.nth(0).unwrap_or_default(),
        };
        let i = self.pos;
        self.pos += 1;
        let choice = if i < t.frames.len() && p.runnable.contains(t.frames[i].choice) {
            t.frames[i].choice
        } else {
            // New ground: go on by default; remember the alternatives the bound allows.
            t.frames.truncate(i);
            let mut untried = VcpuSet::empty();
            let spinning_current = p.current.is_some() && p.spinning;
            if !spinning_current && (free || self.used < t.bound) {
                untried = p.runnable;
                untried.remove(default);
            }
            t.frames.push(Frame {
                choice: default,
                untried,
            });
            default
        };
        if !free && Some(choice) != p.current {
            self.used += 1;
        }
        choice
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Step;

    /// A model of two vCPUs with `n` points each (no spinning): the machine asks with
    /// `current: None` at the start and when a vCPU ends.
    fn model(run: &mut DfsRun, n: u32) -> Vec<VcpuId> {
        let mut left = [n, n];
        let mut cur: Option<VcpuId> = None;
        let mut trace = Vec::new();
        loop {
            let mut runnable = VcpuSet::empty();
            for (v, l) in left.iter().enumerate() {
                if *l > 0 {
                    runnable.insert(VcpuId(v as u32));
                }
            }
            if runnable.is_empty() {
                return trace;
            }
            let c = run.pick(&Point {
                step: Step(trace.len() as u64),
                current: cur,
                runnable,
                spinning: false,
                rip: 0,
            });
            trace.push(c);
            left[c.0 as usize] -= 1;
            cur = (left[c.0 as usize] > 0).then_some(c);
        }
    }

    fn count(bound: u32, n: u32) -> (u64, usize) {
        let tree = DfsTree::new(bound);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            let mut run = DfsTree::next_run(&tree);
            seen.insert(model(&mut run, n));
            if !tree.borrow_mut().advance() {
                break;
            }
        }
        let runs = tree.borrow().runs();
        (runs, seen.len())
    }

    #[test]
    fn bounded_dfs_enumerates_each_schedule_once() {
        // In the model the first pick of a vCPU performs its first operation, so each vCPU
        // has p = n - 1 points where it can be preempted. Starting with either vCPU (x2):
        // no preemption (1), one (p places), two (p places, then p places in the other).
        let n = 3;
        let p = n as u64 - 1;
        assert_eq!(count(0, n), (2, 2));
        assert_eq!(count(1, n), (2 * (1 + p), 2 * (1 + p) as usize));
        assert_eq!(
            count(2, n),
            (2 * (1 + p + p * p), 2 * (1 + p + p * p) as usize)
        );
        // Unbounded enough: every interleaving of two sequences of 3, C(6,3) = 20.
        assert_eq!(count(10, n), (20, 20));
    }
}
