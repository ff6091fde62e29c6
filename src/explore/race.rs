//! Race-directed search: reverse the order of the conflicting accesses each run shows.

use std::time::Instant;

use weft_recorder::{Guided, StrategySpec};
use weft_trace::{Event, EventSink, MachineOptions, SinkError, VcpuId};

use super::{not_a_bug, note_failure, run_kept_with, watchdog, ExploreConfig, Explored, Schedule};
use crate::session::SessionError;

/// A run's schedule and shared accesses, compact: what race-directed search needs.
#[derive(Default)]
struct AccessSink {
    runs: Schedule,
    /// (step, vCPU, RIP, address, size, is a write)
    accesses: Vec<(u64, VcpuId, u64, u64, u8, bool)>,
}

impl EventSink for AccessSink {
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        match e {
            Event::Run { vcpu, points } => self.runs.push((*vcpu, *points)),
            Event::Access {
                step,
                vcpu,
                rip,
                addr,
                size,
                kind,
                ..
            } => self
                .accesses
                .push((step.0, *vcpu, *rip, addr.0, *size, kind.is_write())),
            _ => {}
        }
        Ok(())
    }
}

/// The first `steps` scheduling points of `runs`.
fn prefix(runs: &Schedule, steps: u64) -> Schedule {
    let mut out = Vec::new();
    let mut left = steps;
    for &(v, n) in runs {
        if left == 0 {
            break;
        }
        out.push((v, n.min(left)));
        left -= n.min(left);
    }
    out
}

/// Points `v` runs in steps `[from, to]` of `runs`.
fn points_of(runs: &Schedule, v: VcpuId, from: u64, to: u64) -> u64 {
    let mut at = 0;
    let mut n = 0;
    for &(w, len) in runs {
        let (lo, hi) = (at, at + len);
        if w == v {
            n += hi.min(to + 1).saturating_sub(lo.max(from));
        }
        at = hi;
    }
    n
}

/// Schedules that reverse the adjacent conflicting pairs of a run (one per pair of code
/// locations): run as before up to the earlier access, then let the later access's vCPU
/// go first up to that access, then go on without preemption.
fn reversals(sink: &AccessSink) -> Vec<Schedule> {
    // Per 8-byte cell: the last write and the reads since it.
    type Acc = (u64, VcpuId, u64);
    let mut cells: std::collections::HashMap<u64, (Option<Acc>, Vec<Acc>)> = Default::default();
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut reverse = |a: &Acc, b: &Acc, out: &mut Vec<Schedule>| {
        if a.1 == b.1 || !seen.insert((a.2, b.2)) {
            return;
        }
        let mut s = prefix(&sink.runs, a.0);
        s.push((b.1, points_of(&sink.runs, b.1, a.0, b.0)));
        out.push(s);
    };
    for &(step, v, rip, addr, size, write) in &sink.accesses {
        let me = (step, v, rip);
        for c in addr / 8..=(addr + size.max(1) as u64 - 1) / 8 {
            let (w, reads) = cells.entry(c).or_default();
            if let Some(last) = w {
                reverse(last, &me, &mut out);
            }
            if write {
                for r in reads.iter() {
                    reverse(r, &me, &mut out);
                }
                *w = Some(me);
                reads.clear();
            } else {
                match reads.iter_mut().find(|r| r.1 == v) {
                    Some(r) => *r = me,
                    None => reads.push(me),
                }
            }
        }
    }
    out
}

/// Race-directed search: start from a run without preemption; for every run, reverse each
/// of its conflicting pairs (per pair of code locations) in a new schedule; breadth first,
/// each distinct schedule once, until a failure (all with `all_failures`), no schedule is
/// left, or `cfg.schedules` have run. Sequential. Also returns whether no schedule was left.
pub fn explore_race_directed(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    cfg: &ExploreConfig,
    mut progress: impl FnMut(&Explored),
) -> Result<(Explored, bool), SessionError> {
    let start = Instant::now();
    let stop = watchdog(cfg.deadline);
    let mut queue: std::collections::VecDeque<Schedule> = [Vec::new()].into();
    let mut visited: std::collections::HashSet<Schedule> = [Vec::new()].into();
    let mut found = Explored::new();
    let mut learned = cfg.learned.clone();
    while let Some(s) = queue.pop_front() {
        if found.tried >= cfg.schedules {
            break;
        }
        let label = "race-directed";
        let (out, sink) = run_kept_with::<AccessSink>(
            name,
            elf,
            &learned.apply(opts),
            Box::new(Guided::new(s, label)),
            stop.as_ref(),
        )?;
        if out.interrupted {
            found.timed_out = true;
            break;
        }
        found.tried += 1;
        if let Some(v) = out.verdict.clone().filter(|v| cfg.fails(v)) {
            let schedule = Some(sink.runs.clone());
            let why = not_a_bug(&out);
            let bug = why.is_none();
            let (i, spec) = (found.tried - 1, StrategySpec::RaceDirected);
            note_failure(&mut found.failures, i, spec, schedule, v, why, &learned);
            if bug && !cfg.all_failures {
                break;
            }
        }
        if learned.add(&out.shared_pages) {
            // More pages are points now: the queued schedules counted the old points.
            // Start over from the schedule without preemption (finitely often: the set
            // only grows).
            queue = [Vec::new()].into();
            visited = [Vec::new()].into();
            found.restarted = found.tried;
            continue;
        }
        for cand in reversals(&sink) {
            if visited.insert(cand.clone()) {
                queue.push_back(cand);
            }
        }
        if found.tried % 64 == 0 {
            (found.ran, found.distinct) = (found.tried, found.tried - found.restarted);
            found.elapsed = start.elapsed();
            progress(&found);
        }
    }
    (found.ran, found.distinct) = (found.tried, found.tried - found.restarted);
    found.shared_pages = learned.len();
    found.elapsed = start.elapsed();
    progress(&found);
    let exhausted = queue.is_empty() && !found.timed_out;
    Ok((found, exhausted))
}
