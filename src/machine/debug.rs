//! Instruction-level control of a run for the debugger: positions, breakpoints,
//! watchpoints, single steps and checkpoint requests.
//!
//! A debug machine has one more hook, on every instruction of every vCPU, that counts
//! instructions and asks [`DebugCtl::on_insn`] whether to pause there. A pause is always at
//! an instruction boundary (before the instruction runs, where unicorn has synced RIP and
//! EFLAGS), so registers read there are exact. The position of a pause is the number of
//! instructions begun so far over all vCPUs (`g`, 1-based: the paused instruction
//! included); the recorded schedule makes it a total order that every replay reproduces.
//! This module is plain state, tested without unicorn.

use std::collections::HashSet;

pub use weft_gdb::{Watch, WatchKind};

/// Where the current resume ends if nothing else stops it first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Goal {
    /// Run on (to the next breakpoint or watchpoint hit, or the end).
    Continue,
    /// Stop at this position; ignore breakpoints and watchpoints on the way.
    Position(u64),
    /// Stop when this vCPU begins its `icount`-th instruction (a single step).
    Vcpu { vcpu: u32, icount: u64 },
    /// Stop at the first instruction boundary where this step is the next to be decided
    /// (or a later one); ignore breakpoints and watchpoints on the way.
    Step(u64),
}

/// Why a run paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PauseReason {
    /// The goal of the resume was reached.
    Goal,
    Breakpoint,
    /// A watched range was accessed by the instruction before this one (of this vCPU).
    Watch {
        addr: u64,
        kind: WatchKind,
    },
    /// Time for a checkpoint (the resume goes on after it).
    Checkpoint,
    /// The end of history the debugger set (`DebugCtl::limit`).
    Limit,
}

/// A hit noticed while scanning a stretch of history (`DebugCtl::scan`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// Where a forward run reports it: the boundary after the access (of a watch hit) or
    /// before the instruction (of a breakpoint).
    pub g: u64,
    /// Where going backwards stops for it. A write watchpoint's (gdb's `watch`): the last
    /// position before the write happened, with the old value in memory, as rr and gdb's
    /// own reverse execution stop; gdb reports a `watch` stop only when the value differs
    /// from the one it saw last, so a stop after the write, where the value is what it is
    /// now, would be passed over. Others: `g`.
    pub at: u64,
    pub vcpu: u32,
    pub reason: PauseReason,
}

/// A search for the last hit in a stretch of history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub below: u64,
    pub last: Option<Hit>,
}

/// The debugger's side of a run.
#[derive(Debug)]
pub struct DebugCtl {
    /// Instructions begun so far, over all vCPUs: the position.
    pub g: u64,
    /// Instructions begun so far per vCPU.
    pub icount: Vec<u64>,
    /// Per vCPU: the position at which it began its latest instruction (0: none yet).
    pub began: Vec<u64>,
    /// The vCPU of the latest instruction begun.
    pub last_vcpu: u32,
    pub goal: Goal,
    pub breakpoints: HashSet<u64>,
    pub watches: Vec<Watch>,
    /// Per vCPU: a watch hit by its latest instruction (watched address, kind, and the
    /// position when the access happened), reported at its next boundary.
    pending: Vec<Option<(u64, WatchKind, u64)>>,
    /// When set, breakpoint and watchpoint hits before `below` are noted in `last` instead
    /// of stopping the run (a reverse-continue's search): the one a reverse motion meets
    /// first, that is with the latest [`Hit::at`]. A hit is before `below` when it is
    /// reported there or earlier for a write watchpoint (the write is then done: from
    /// right after a write, going back undoes it), strictly earlier for the others.
    pub scan: Option<Scan>,
    /// Pause (`Limit`) here whatever the goal: the last position of the recorded history.
    pub limit: Option<u64>,
    /// Pause for a checkpoint at the first boundary where the next step is at least this.
    pub checkpoint_at_step: Option<u64>,
    /// Per vCPU: its latest instruction was retracted; when it begins again, that is the
    /// same instruction at the same position, whose hits were already reported.
    again: Vec<bool>,
}

impl DebugCtl {
    pub fn new(vcpus: u32) -> DebugCtl {
        DebugCtl {
            g: 0,
            icount: vec![0; vcpus as usize],
            began: vec![0; vcpus as usize],
            last_vcpu: 0,
            goal: Goal::Continue,
            breakpoints: HashSet::new(),
            watches: Vec::new(),
            pending: vec![None; vcpus as usize],
            scan: None,
            limit: None,
            checkpoint_at_step: None,
            again: vec![false; vcpus as usize],
        }
    }

    /// The instruction `vcpu` just began did not run after all: it stopped before its
    /// first access and begins again on the vCPU's other instance (`vcpu::access`).
    /// Nothing ran in between, so it is the latest instruction begun.
    pub fn retract(&mut self, vcpu: u32) {
        let v = vcpu as usize;
        self.g -= 1;
        self.icount[v] -= 1;
        self.again[v] = true;
    }

    /// Whether any watchpoint is set (the memory hook checks only then).
    pub fn watching(&self) -> bool {
        !self.watches.is_empty()
    }

    /// `vcpu` accesses `[addr, addr+size)`: note a watch hit for its next boundary.
    pub fn on_access(&mut self, vcpu: u32, addr: u64, size: u64, write: bool) {
        let end = addr.saturating_add(size.max(1));
        for w in &self.watches {
            if addr < w.addr.saturating_add(w.len) && w.addr < end && w.kind.matches(write) {
                let slot = &mut self.pending[vcpu as usize];
                // A write wins over a read of the same instruction.
                if slot.is_none() || write {
                    *slot = Some((w.addr, w.kind, self.g));
                }
            }
        }
    }

    /// `vcpu` begins the instruction at `addr`, with `next_step` the next step to be
    /// decided. Returns why to pause before it runs, if so.
    pub fn on_insn(&mut self, vcpu: u32, addr: u64, next_step: u64) -> Option<PauseReason> {
        self.g += 1;
        let v = vcpu as usize;
        self.icount[v] += 1;
        self.began[v] = self.g;
        self.last_vcpu = vcpu;
        let watch = self.pending[v].take();
        if std::mem::take(&mut self.again[v]) {
            // Begun again after a retraction: its goal, breakpoint and watch hits were
            // looked at already (the debugger may have paused at its first beginning).
            return None;
        }
        let goal = match self.goal {
            Goal::Continue => false,
            Goal::Position(g) => self.g >= g,
            Goal::Vcpu { vcpu: t, icount } => t == vcpu && self.icount[v] >= icount,
            Goal::Step(s) => next_step >= s,
        };
        let (hit, at) = if let Some((addr, kind, at)) = watch {
            (Some(PauseReason::Watch { addr, kind }), at)
        } else if self.breakpoints.contains(&addr) {
            (Some(PauseReason::Breakpoint), self.g)
        } else {
            (None, self.g)
        };
        if let Some(scan) = &mut self.scan {
            if let Some(reason) = hit {
                let before = match reason {
                    PauseReason::Watch {
                        kind: WatchKind::Write,
                        ..
                    } => self.g <= scan.below,
                    _ => self.g < scan.below,
                };
                let at = if matches!(
                    reason,
                    PauseReason::Watch {
                        kind: WatchKind::Write,
                        ..
                    }
                ) {
                    at
                } else {
                    self.g
                };
                if before && scan.last.is_none_or(|l| at >= l.at) {
                    scan.last = Some(Hit {
                        g: self.g,
                        at,
                        vcpu,
                        reason,
                    });
                }
            }
            return goal.then_some(PauseReason::Goal);
        }
        if goal {
            return Some(PauseReason::Goal);
        }
        if self.limit.is_some_and(|l| self.g >= l) {
            return Some(PauseReason::Limit);
        }
        let stops_on_hits = matches!(self.goal, Goal::Continue | Goal::Vcpu { .. });
        if let (Some(reason), true) = (hit, stops_on_hits) {
            return Some(reason);
        }
        if self.checkpoint_at_step.is_some_and(|s| next_step >= s) {
            self.checkpoint_at_step = None;
            return Some(PauseReason::Checkpoint);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_every_instruction_and_goals_stop_exactly() {
        let mut d = DebugCtl::new(2);
        d.goal = Goal::Position(3);
        assert_eq!(d.on_insn(0, 0x10, 0), None);
        assert_eq!(d.on_insn(1, 0x20, 0), None);
        assert_eq!(d.on_insn(0, 0x11, 1), Some(PauseReason::Goal));
        assert_eq!((d.g, d.icount.clone()), (3, vec![2, 1]));
        assert_eq!(d.began, vec![3, 2]);
        d.goal = Goal::Vcpu { vcpu: 1, icount: 2 };
        assert_eq!(d.on_insn(0, 0x12, 1), None);
        assert_eq!(d.on_insn(1, 0x21, 1), Some(PauseReason::Goal));
    }

    #[test]
    fn breakpoints_stop_a_continue_but_not_a_goto() {
        let mut d = DebugCtl::new(1);
        d.breakpoints.insert(0x40);
        d.goal = Goal::Position(10);
        assert_eq!(d.on_insn(0, 0x40, 0), None);
        d.goal = Goal::Continue;
        assert_eq!(d.on_insn(0, 0x40, 0), Some(PauseReason::Breakpoint));
    }

    #[test]
    fn a_watch_hit_is_reported_at_the_writers_next_instruction() {
        let mut d = DebugCtl::new(2);
        d.watches.push(Watch {
            addr: 0x1000,
            len: 8,
            kind: WatchKind::Write,
        });
        assert_eq!(d.on_insn(0, 0x10, 0), None);
        d.on_access(0, 0x1004, 4, false); // a read: not watched
        d.on_access(0, 0x1004, 4, true);
        // Another vCPU's boundary does not report vCPU 0's write.
        assert_eq!(d.on_insn(1, 0x20, 0), None);
        let w = PauseReason::Watch {
            addr: 0x1000,
            kind: WatchKind::Write,
        };
        assert_eq!(d.on_insn(0, 0x11, 0), Some(w));
        assert_eq!(d.on_insn(0, 0x12, 0), None);
    }

    #[test]
    fn a_scan_notes_the_last_hit_before_its_goal() {
        let mut d = DebugCtl::new(2);
        d.breakpoints.insert(0x40);
        d.goal = Goal::Position(5);
        d.scan = Some(Scan {
            below: 5,
            last: None,
        });
        for (v, a) in [(0, 0x40), (1, 0x40), (0, 0x41), (1, 0x42)] {
            assert_eq!(d.on_insn(v, a, 0), None);
        }
        // The goal itself is the position searched from: not a hit.
        assert_eq!(d.on_insn(0, 0x40, 0), Some(PauseReason::Goal));
        let last = d.scan.unwrap().last.unwrap();
        assert_eq!((last.g, last.vcpu), (2, 1));

        // Searching an earlier stretch up to a checkpoint position includes that position.
        let mut d = DebugCtl::new(1);
        d.breakpoints.insert(0x40);
        d.goal = Goal::Position(2);
        d.scan = Some(Scan {
            below: 3,
            last: None,
        });
        assert_eq!(d.on_insn(0, 0x41, 0), None);
        assert_eq!(d.on_insn(0, 0x40, 0), Some(PauseReason::Goal));
        assert_eq!(d.scan.unwrap().last.unwrap().g, 2);
    }

    #[test]
    fn going_back_a_write_watch_hit_stops_before_the_write_and_counts_from_after_it() {
        let mut d = DebugCtl::new(2);
        d.watches.push(Watch {
            addr: 0x1000,
            len: 8,
            kind: WatchKind::Write,
        });
        d.goal = Goal::Position(5);
        d.scan = Some(Scan {
            below: 5,
            last: None,
        });
        assert_eq!(d.on_insn(0, 0x10, 0), None); // 1: vcpu0 begins its store
        assert_eq!(d.on_insn(1, 0x20, 0), None); // 2: vcpu1 runs while vcpu0 waits
        d.on_access(0, 0x1000, 8, true); // vcpu0 stores, after position 2
        assert_eq!(d.on_insn(1, 0x21, 0), None); // 3
        assert_eq!(d.on_insn(1, 0x22, 0), None); // 4
                                                 // 5: vcpu0's next instruction reports the store, at the position searched from:
                                                 // going back from right after a write undoes it.
        assert_eq!(d.on_insn(0, 0x11, 0), Some(PauseReason::Goal));
        let last = d.scan.unwrap().last.unwrap();
        assert_eq!((last.g, last.at, last.vcpu), (5, 2, 0));

        // A read watchpoint's hit at the position searched from is where the search
        // starts, not a hit.
        let mut d = DebugCtl::new(1);
        d.watches.push(Watch {
            addr: 0x1000,
            len: 8,
            kind: WatchKind::Read,
        });
        d.goal = Goal::Position(2);
        d.scan = Some(Scan {
            below: 2,
            last: None,
        });
        assert_eq!(d.on_insn(0, 0x10, 0), None);
        d.on_access(0, 0x1000, 8, false);
        assert_eq!(d.on_insn(0, 0x11, 0), Some(PauseReason::Goal));
        assert_eq!(d.scan.unwrap().last, None);
    }

    #[test]
    fn the_limit_ends_a_continue() {
        let mut d = DebugCtl::new(1);
        d.limit = Some(2);
        assert_eq!(d.on_insn(0, 0, 0), None);
        assert_eq!(d.on_insn(0, 0, 0), Some(PauseReason::Limit));
    }

    #[test]
    fn checkpoints_are_requested_once_per_threshold() {
        let mut d = DebugCtl::new(1);
        d.checkpoint_at_step = Some(5);
        assert_eq!(d.on_insn(0, 0, 4), None);
        assert_eq!(d.on_insn(0, 0, 5), Some(PauseReason::Checkpoint));
        assert_eq!(d.on_insn(0, 0, 6), None);
    }
}
