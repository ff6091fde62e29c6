//! Minimization: from a failing schedule, one that fails the same way (same verdict class
//! at the same place) with as few preemptions as weft can find.
//!
//! The failing run is re-run under [`Observe`], which writes it down as the plain
//! non-preemptive run plus directives (see `weft_recorder::directed`); the preemptive
//! directives are then reduced by delta debugging (Zeller and Hildebrandt's ddmin): try
//! none at all, then halves, quarters, ... of them, keeping any subset (or complement)
//! that still fails the same way. A random schedule with thousands of preemptions of
//! which two matter comes down in a few dozen runs, where undoing one preemption at a
//! time would need thousands. The result is the run's actual schedule, so it replays
//! exactly, and its preemptions are the controller's count of that run.

use std::time::{Duration, Instant};

use weft_recorder::{Directed, Directive, Observe};
use weft_trace::MachineOptions;

use super::{failure_key, run_kept, watchdog, Failure, Schedule};
use crate::session::SessionError;

/// A minimized failing schedule.
#[derive(Debug)]
pub struct Minimized {
    pub schedule: Schedule,
    pub preemptions: usize,
    pub original_preemptions: usize,
    /// Candidate schedules run.
    pub attempts: usize,
}

/// Most candidate runs minimization tries, and how long it may take (less if the
/// search's deadline comes first).
const MAX_ATTEMPTS: usize = 2000;
const MAX_TIME: Duration = Duration::from_secs(60);

/// Find a schedule with as few preemptions as possible (switches away from a vCPU that
/// could have gone on: not at its end, not spinning) that fails like `failing` (a
/// failure found by [`super::explore`]), by `deadline` at the latest.
pub fn minimize(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    failing: &Failure,
    focus: Option<weft_recorder::Focus>,
    deadline: Option<Instant>,
) -> Result<Minimized, SessionError> {
    let start = Instant::now();
    let until = deadline.map_or(start + MAX_TIME, |d| d.min(start + MAX_TIME));
    let stop = watchdog(Some(until));
    let key = failing.key.as_str();
    let (observer, seen) = Observe::new(failing.replay(focus));
    let (out, schedule) = run_kept(name, elf, opts, Box::new(observer), None)?;
    if out.verdict.as_ref().map(failure_key).as_deref() != Some(key) {
        return Err(SessionError::Other(format!(
            "schedule {} no longer fails with {key}",
            failing.label()
        )));
    }
    let original = out.stats.preemptions as usize;
    let directives = seen.borrow().clone();
    let free: Vec<Directive> = directives
        .iter()
        .filter(|d| !d.preemptive)
        .copied()
        .collect();
    let mut kept: Vec<Directive> = directives.into_iter().filter(|d| d.preemptive).collect();
    let mut best = (schedule, original);
    let mut attempts = 0usize;
    // Whether the free choices plus `subset` still fail the same way; a success with
    // fewer preemptions than the best so far becomes the best.
    let mut fails = |subset: &[Directive], best: &mut (Schedule, usize)| {
        if attempts >= MAX_ATTEMPTS || Instant::now() >= until || best.1 == 0 {
            return Ok::<Option<bool>, SessionError>(None);
        }
        attempts += 1;
        let mut all = free.clone();
        all.extend_from_slice(subset);
        let strategy = Box::new(Directed::new(&all, ""));
        let (o, s) = run_kept(name, elf, opts, strategy, stop.as_ref())?;
        if o.interrupted {
            return Ok(None);
        }
        let same = o.verdict.as_ref().map(failure_key).as_deref() == Some(key);
        let p = o.stats.preemptions as usize;
        if same && p < best.1 {
            *best = (s, p);
        }
        Ok(Some(same))
    };
    // ddmin over the preemptive directives.
    if fails(&[], &mut best)? == Some(true) {
        kept.clear();
    }
    let mut n = 2usize;
    'search: while kept.len() >= 2 {
        let chunk = kept.len().div_ceil(n);
        let parts: Vec<Vec<Directive>> = kept.chunks(chunk).map(<[_]>::to_vec).collect();
        for part in &parts {
            match fails(part, &mut best)? {
                None => break 'search,
                Some(true) => {
                    kept = part.clone();
                    n = 2;
                    continue 'search;
                }
                Some(false) => {}
            }
        }
        if parts.len() > 2 {
            for i in 0..parts.len() {
                let rest: Vec<Directive> = parts
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                match fails(&rest, &mut best)? {
                    None => break 'search,
                    Some(true) => {
                        kept = rest;
                        n = (n - 1).max(2);
                        continue 'search;
                    }
                    Some(false) => {}
                }
            }
        }
        if n >= kept.len() {
            break;
        }
        n = (2 * n).min(kept.len());
    }
    Ok(Minimized {
        preemptions: best.1,
        schedule: best.0,
        original_preemptions: original,
        attempts,
    })
}
