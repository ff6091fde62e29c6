//! The pass that sees every event of the trace once ([`Scan`]): what stays small whatever
//! the trace's length (per-bucket counts, marks, console, the verdict, where each vCPU last
//! ran), while its [`Detail`] keeps every event individually as long as they fit the
//! budget.

use weft_trace::{AccessKind, Event, VcpuEndReason, Verdict};

use super::detail::{Detail, Filter, Locs};
use super::model::{Buckets, Counts, Note, VcpuEndItem};

/// Most console bytes a report embeds; the rest is counted.
const CONSOLE_BYTES: usize = 1 << 20;
/// Longest single console note (a line, or what one vCPU wrote in one go).
const NOTE_BYTES: usize = 4096;
/// Most marks and warnings a report embeds.
const MARKS: usize = 20_000;
const WARNINGS: usize = 1000;
/// Abort steps remembered for detail windows.
pub(super) const ABORT_POINTS: usize = 256;

/// The number of buckets for a trace of `steps` steps on `vcpus` vCPUs, and their size:
/// at most 16384 buckets, fewer with many vCPUs (about 128 K counts per kind in all).
pub(super) fn bucket_shape(steps: u64, vcpus: usize) -> (usize, u64) {
    let most = (131_072 / vcpus.max(1)).clamp(1024, 16_384) as u64;
    let steps = steps.max(1);
    let size = steps.div_ceil(most);
    (steps.div_ceil(size) as usize, size)
}

impl Buckets {
    pub fn new(n: usize, vcpus: usize) -> Buckets {
        let grid = || vec![vec![0u32; n]; vcpus];
        Buckets {
            n,
            run: grid(),
            r: grid(),
            w: grid(),
            rmw: grid(),
            tx: grid(),
            ab: grid(),
        }
    }
}

fn bump(grid: &mut [Vec<u32>], v: usize, i: usize, by: u32) {
    if let Some(c) = grid.get_mut(v).and_then(|row| row.get_mut(i)) {
        *c = c.saturating_add(by);
    }
}

/// Everything one pass over the whole trace learns.
pub(super) struct Scan {
    pub vcpus: usize,
    pub bucket_steps: u64,
    pub buckets: Buckets,
    pub total: Counts,
    pub events: u64,
    pub steps: u64,
    pub switches: u64,
    pub console_bytes: u64,
    pub marks: Vec<Note>,
    pub console: Vec<Note>,
    pub warnings: Vec<Note>,
    pub ends: Vec<VcpuEndItem>,
    pub verdict: Option<(u64, Verdict)>,
    /// Call stacks of the failure (`Backtrace` events).
    pub stacks: Vec<weft_trace::Backtrace>,
    pub last_run: Vec<Option<(u64, u64)>>,
    /// Steps of the first aborts, for detail windows.
    pub abort_steps: Vec<u64>,
    pub detail: Detail,
    last_atomic_read: Vec<(u64, u64)>,
    console_kept: usize,
}

impl Scan {
    pub fn new(vcpus: usize, steps_estimate: u64, budget: usize) -> Scan {
        let (n, size) = bucket_shape(steps_estimate, vcpus);
        Scan {
            vcpus,
            bucket_steps: size,
            buckets: Buckets::new(n, vcpus),
            total: Counts::default(),
            events: 0,
            steps: 0,
            switches: 0,
            console_bytes: 0,
            marks: Vec::new(),
            console: Vec::new(),
            warnings: Vec::new(),
            ends: Vec::new(),
            verdict: None,
            stacks: Vec::new(),
            last_run: vec![None; vcpus],
            abort_steps: Vec::new(),
            detail: Detail::new(Filter::All { budget }, vcpus),
            last_atomic_read: vec![(u64::MAX, 0); vcpus],
            console_kept: 0,
        }
    }

    fn bucket(&self, step: u64) -> usize {
        ((step / self.bucket_steps) as usize).min(self.buckets.n.saturating_sub(1))
    }

    pub fn observe(&mut self, e: &Event, locs: &mut Locs) {
        self.events += 1;
        self.detail.observe(e, locs);
        match e {
            Event::Run { vcpu, points } => {
                let v = vcpu.0 as usize;
                let start = self.steps;
                self.steps = start.saturating_add(*points);
                self.total.runs += 1;
                if let Some(l) = self.last_run.get_mut(v) {
                    *l = Some((start, *points));
                }
                // Spread the run's steps over the buckets it covers.
                let mut s = start;
                while s < self.steps {
                    let i = self.bucket(s);
                    let bucket_end = if i + 1 == self.buckets.n {
                        self.steps
                    } else {
                        ((i as u64 + 1) * self.bucket_steps).min(self.steps)
                    };
                    let n = bucket_end.saturating_sub(s).max(1);
                    bump(&mut self.buckets.run, v, i, n.min(u32::MAX as u64) as u32);
                    s = s.saturating_add(n);
                }
            }
            Event::Access {
                step,
                vcpu,
                rip,
                kind,
                ..
            } => {
                let (v, i) = (vcpu.0 as usize, self.bucket(step.0));
                self.total.accesses += 1;
                match kind {
                    AccessKind::Read => bump(&mut self.buckets.r, v, i, 1),
                    AccessKind::Write => bump(&mut self.buckets.w, v, i, 1),
                    AccessKind::AtomicRead => {
                        bump(&mut self.buckets.rmw, v, i, 1);
                        if let Some(l) = self.last_atomic_read.get_mut(v) {
                            *l = (step.0, *rip);
                        }
                    }
                    AccessKind::AtomicWrite => {
                        // Counted with its read half, unless it has none.
                        if self.last_atomic_read.get(v) != Some(&(step.0, *rip)) {
                            bump(&mut self.buckets.rmw, v, i, 1);
                        }
                    }
                }
            }
            Event::TxBegin {
                step,
                vcpu,
                depth: 1,
                ..
            } => {
                self.total.txs += 1;
                let i = self.bucket(step.0);
                bump(&mut self.buckets.tx, vcpu.0 as usize, i, 1);
            }
            Event::TxAbort { step, vcpu, .. } => {
                self.total.aborts += 1;
                let i = self.bucket(step.0);
                bump(&mut self.buckets.ab, vcpu.0 as usize, i, 1);
                if self.abort_steps.len() < ABORT_POINTS {
                    self.abort_steps.push(step.0);
                }
            }
            Event::Mark { step, vcpu, label } => {
                self.total.marks += 1;
                if self.marks.len() < MARKS {
                    self.marks.push(note(step.0, vcpu.0, label.clone()));
                }
            }
            Event::Warning {
                step,
                vcpu,
                message,
                ..
            } if self.warnings.len() < WARNINGS => {
                self.warnings.push(note(step.0, vcpu.0, message.clone()));
            }
            Event::Console {
                step, vcpu, bytes, ..
            } => self.console(step.0, vcpu.0, bytes),
            Event::VcpuEnd { step, vcpu, reason } => self.ends.push(VcpuEndItem {
                vcpu: vcpu.0,
                step: step.0,
                reason: match reason {
                    VcpuEndReason::Returned => "returned from _start",
                    VcpuEndReason::Hlt => "HLT",
                    VcpuEndReason::HaltCall => "HALT hypercall",
                    VcpuEndReason::Exited { .. } => "thread exit",
                },
            }),
            Event::End { step, verdict } => {
                self.steps = self.steps.max(step.0);
                self.verdict = Some((step.0, verdict.clone()));
            }
            Event::Backtrace { stack, .. } => self.stacks.push(stack.clone()),
            _ => {}
        }
    }

    /// Console bytes join the previous note of the same vCPU until a newline, so output
    /// written a byte at a time (port 0xE9) reads as lines.
    fn console(&mut self, step: u64, vcpu: u32, bytes: &[u8]) {
        self.console_bytes += bytes.len() as u64;
        let room = CONSOLE_BYTES.saturating_sub(self.console_kept);
        if room == 0 || bytes.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(room)]).into_owned();
        self.console_kept += text.len();
        if let Some(last) = self.console.last_mut() {
            if last.vcpu == vcpu && !last.text.ends_with('\n') && last.text.len() < NOTE_BYTES {
                last.text.push_str(&text);
                return;
            }
        }
        self.console.push(note(step, vcpu, text));
    }

    /// The start step of each vCPU's last run.
    pub fn last_run_starts(&self) -> Vec<Option<u64>> {
        self.last_run.iter().map(|r| r.map(|(s, _)| s)).collect()
    }

    pub fn finish(&mut self) {
        self.switches = self.total.runs.saturating_sub(1);
        let starts = self.last_run_starts();
        let steps = self.steps;
        self.detail.finish(steps, &starts);
    }
}

fn note(step: u64, vcpu: u32, text: String) -> Note {
    Note { step, vcpu, text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::KIND_RMW;
    use weft_trace::{GuestAddr, Step, VcpuId};

    fn acc(step: u64, v: u32, kind: AccessKind, value: u64) -> Event {
        Event::Access {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x1000,
            addr: GuestAddr(0x100),
            size: 8,
            kind,
            value,
        }
    }

    #[test]
    fn a_locked_instruction_is_one_rmw_and_runs_know_if_they_were_switched_away() {
        let mut locs = Locs::default();
        let mut s = Scan::new(2, 4, 100);
        for e in [
            acc(0, 0, AccessKind::AtomicRead, 1),
            acc(0, 0, AccessKind::AtomicWrite, 2),
            Event::Run {
                vcpu: VcpuId(0),
                points: 1,
            },
            acc(1, 1, AccessKind::Read, 2),
            Event::Run {
                vcpu: VcpuId(1),
                points: 1,
            },
            Event::Run {
                vcpu: VcpuId(0),
                points: 2,
            },
        ] {
            s.observe(&e, &mut locs);
        }
        s.finish();
        let a: Vec<_> = s.detail.accesses.iter().map(|(a, _)| *a).collect();
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].kind, a[0].old, a[0].value), (KIND_RMW, Some(1), 2));
        assert_eq!(s.buckets.rmw[0].iter().sum::<u32>(), 1);
        let switched: Vec<bool> = s.detail.runs.iter().map(|(r, _)| r.switched).collect();
        assert_eq!(switched, vec![true, false, false]);
        assert_eq!(s.steps, 4);
        assert_eq!(s.buckets.run[0].iter().sum::<u32>(), 3);
    }

    #[test]
    fn over_budget_everything_individual_is_dropped_but_counted() {
        let mut locs = Locs::default();
        let mut s = Scan::new(1, 100, 10);
        for i in 0..50 {
            s.observe(&acc(i, 0, AccessKind::Write, i), &mut locs);
        }
        s.finish();
        assert!(s.detail.overflowed);
        assert!(s.detail.accesses.is_empty());
        assert_eq!(s.total.accesses, 50);
        assert_eq!(s.buckets.w[0].iter().sum::<u32>(), 50);
    }
}
