//! `weft races --confirm`: each race re-run with its two accesses in the other order.
//!
//! For a race entry's first pair (vCPU X's access at step a, then vCPU Y's at step b), the
//! run follows the recorded schedule up to step a, lets Y run first until it has made its
//! access, and then goes on without preemption (the `Guided` strategy explore's
//! race-directed search uses). The new run is compared with the recording:
//!
//! - **harmful**: the verdict changed (a pass that now fails, or a failure that now passes,
//!   or fails another way);
//! - **changes state**: the same verdict, but the program's output differs;
//! - **benign in this run**: same verdict, same output;
//! - **not reversed**: the new run never made Y's access before X's (the program took
//!   another path before reaching it), so it says nothing about this race.
//!
//! Only the output is compared, not the final memory: a race that changes memory nobody
//! prints is "benign in this run". And it is one other order, not all: "benign" is a
//! finding about this run, never a proof.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use serde::Serialize;
use weft_recorder::Guided;
use weft_trace::{Event, EventSink, SinkError, VcpuId, Verdict};

use super::{for_each_event, Group, RaceReport};
use crate::machine::{Machine, RunConfig};

/// What reversing a race's first pair did.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    Harmful,
    ChangesState,
    Benign,
    NotReversed,
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Effect::Harmful => "harmful",
            Effect::ChangesState => "changes state",
            Effect::Benign => "benign in this run",
            Effect::NotReversed => "not reversed",
        })
    }
}

/// The outcome of one confirmation run.
#[derive(Clone, Debug, Serialize)]
pub struct Confirmation {
    pub effect: Effect,
    /// The verdict of the run in the other order.
    pub verdict: String,
}

/// The schedule, output and verdict of the recording.
#[derive(Default)]
struct Recorded {
    runs: Vec<(VcpuId, u64)>,
    console: Vec<u8>,
    verdict: Option<Verdict>,
}

/// Watches a confirmation run: its output, and whether Y's access came before X's.
struct Watch {
    console: Vec<u8>,
    from: u64,
    x: (u32, u64),
    y: (u32, u64),
    range: (u64, u64),
    /// Y made its access (on the range, from step `from` on) before X made its.
    y_first: Option<bool>,
}

impl EventSink for Watch {
    // Either access may be to a page its vCPU alone had touched (not recorded): watch those
    // too. A race's later access is never one of those (the page was shared by then).
    fn wants_private(&self) -> bool {
        true
    }
    fn private_access(&mut self, e: &Event) -> Result<(), SinkError> {
        self.event(e)
    }
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        match e {
            Event::Console { bytes, .. } => self.console.extend_from_slice(bytes),
            Event::Access {
                step,
                vcpu,
                rip,
                addr,
                size,
                ..
            } if self.y_first.is_none() && step.0 >= self.from => {
                let end = addr.0.saturating_add((*size).max(1) as u64);
                if addr.0 < self.range.1 && self.range.0 < end {
                    if (vcpu.0, *rip) == self.y {
                        self.y_first = Some(true);
                    } else if (vcpu.0, *rip) == self.x {
                        self.y_first = Some(false);
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The first `steps` points of `runs`, then `v` for its points in steps `[from, to]`.
fn reversal(runs: &[(VcpuId, u64)], v: VcpuId, from: u64, to: u64) -> Vec<(VcpuId, u64)> {
    let mut out = Vec::new();
    let (mut at, mut ys) = (0u64, 0u64);
    for &(w, len) in runs {
        let (lo, hi) = (at, at.saturating_add(len));
        if lo < from {
            out.push((w, len.min(from - lo)));
        }
        if w == v {
            ys += hi.min(to.saturating_add(1)).saturating_sub(lo.max(from));
        }
        at = hi;
    }
    out.push((v, ys.max(1)));
    out
}

/// Confirm the first `limit` races of `report` (a report of the trace at `path`) by
/// re-running each in the other order, and list the races harmful first (ids unchanged,
/// so `weft inspect --race N` still finds entry N).
pub fn confirm(path: &Path, report: &mut RaceReport, limit: usize) -> anyhow::Result<()> {
    let mut rec = Recorded::default();
    let header = for_each_event(path, |e| match e {
        Event::Run { vcpu, points } => rec.runs.push((vcpu, points)),
        Event::Console { bytes, .. } => rec.console.extend_from_slice(&bytes),
        Event::End { verdict, .. } => rec.verdict = Some(verdict),
        _ => {}
    })?;
    let mut machine = Machine::new_deriving(&header.guest.elf, &header.options)
        .map_err(|e| anyhow::anyhow!("{}: cannot re-run the guest: {e}", path.display()))?;
    if header.options.linux.is_some() {
        // The files the recording read, not the host's as they are now.
        machine.set_files(crate::session::recorded_files(path)?);
    }
    for g in report.races.iter_mut().take(limit) {
        g.confirmation = Some(confirm_one(&machine, &rec, g)?);
    }
    report
        .races
        .sort_by_key(|g| (g.confirmation.as_ref().map(|c| c.effect), g.id));
    Ok(())
}

fn confirm_one(machine: &Machine, rec: &Recorded, g: &Group) -> anyhow::Result<Confirmation> {
    let (a, b) = (&g.first, &g.second);
    let schedule = reversal(&rec.runs, VcpuId(b.vcpu), a.step, b.step);
    let watch = Rc::new(RefCell::new(Watch {
        console: Vec::new(),
        from: a.step,
        x: (a.vcpu, a.rip),
        y: (b.vcpu, b.rip),
        range: (g.addr_start, g.addr_end),
        y_first: None,
    }));
    let out = machine
        .run(
            Box::new(Guided::new(schedule, "race confirmation")),
            watch.clone(),
            RunConfig::default(),
        )
        .map_err(|e| anyhow::anyhow!("race #{}: the run in the other order failed: {e}", g.id))?;
    let w = watch.borrow();
    let verdict = out
        .verdict
        .as_ref()
        .map_or_else(|| "none".to_string(), |v| v.to_string());
    let old_class = rec.verdict.as_ref().map(|v| v.class());
    let new_class = out.verdict.as_ref().map(|v| v.class());
    let effect = if w.y_first != Some(true) {
        Effect::NotReversed
    } else if old_class != new_class {
        Effect::Harmful
    } else if w.console != rec.console {
        Effect::ChangesState
    } else {
        Effect::Benign
    };
    Ok(Confirmation { effect, verdict })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reversal_runs_the_later_vcpu_first_from_the_earlier_step() {
        let (a, b) = (VcpuId(0), VcpuId(1));
        // Steps 0..10 vCPU 0, 10..15 vCPU 1, 15..20 vCPU 0, 20..30 vCPU 1.
        let runs = [(a, 10), (b, 5), (a, 5), (b, 10)];
        // vCPU 0's access at step 16, vCPU 1's at step 22.
        let s = reversal(&runs, b, 16, 22);
        assert_eq!(s, vec![(a, 10), (b, 5), (a, 1), (b, 3)]);
        let s = reversal(&runs, b, 0, 12);
        assert_eq!(s, vec![(b, 3)]);
    }
}
