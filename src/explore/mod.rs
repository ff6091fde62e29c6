//! `weft explore`: run many schedules of a guest until one fails, then hand back a minimal
//! failing schedule.
//!
//! Schedule `i` of a search is the base strategy with seed `seed_start + i` (wrapping), so a search is a
//! range of indices. Indices are examined in batches, in parallel (rayon), and a batch's
//! results are read in index order: the first failure is the lowest failing index whatever
//! the number of jobs. `--shard I/N` keeps the indices `i` with `i % N == I - 1`, so shards
//! are disjoint and together cover the unsharded search.
//!
//! Minimization looks for a schedule with fewer preemptions (switches away from a vCPU that
//! could have gone on: the controller counts them) that fails the same way (same verdict class at the same place): first
//! the shortest prefix of the failing schedule that, run on without preemption, still
//! fails; then single runs dropped one at a time.

use std::time::{Duration, Instant};

use rayon::prelude::*;
use weft_recorder::{DfsTree, Guided, Strategy, StrategySpec};
use weft_trace::{MachineOptions, VcpuId, Verdict};

use std::cell::RefCell;
use std::rc::Rc;

use crate::machine::{Machine, RunConfig, RunOutcome};
use crate::session::{ScheduleSink, SessionError};
use weft_trace::{Event, EventSink, SinkError};

/// A run-length schedule: (vCPU, points).
pub type Schedule = Vec<(VcpuId, u64)>;

/// What to search.
#[derive(Clone, Debug)]
pub struct ExploreConfig {
    /// The base strategy: random or PCT; each schedule gets its own seed.
    pub strategy: StrategySpec,
    /// Schedule indices 0..schedules (before sharding).
    pub schedules: u64,
    pub seed_start: u64,
    /// Host threads.
    pub jobs: usize,
    /// (I, N): only indices with i % N == I (0-based here).
    pub shard: (u64, u64),
    /// Keep going after the first failure, collecting every distinct one.
    pub all_failures: bool,
    /// Stop after this long (checked between batches).
    pub time_limit: Option<Duration>,
}

/// One distinct failure.
#[derive(Clone, Debug)]
pub struct Failure {
    pub index: u64,
    /// The seeded strategy that failed (random, PCT), or for DFS the schedule itself.
    pub strategy: StrategySpec,
    pub schedule: Option<Schedule>,
    pub verdict: Verdict,
    /// What makes two failures the same: verdict class and location.
    pub key: String,
    /// How many schedules failed this way.
    pub count: u64,
}

/// What a search found.
#[derive(Debug)]
pub struct Explored {
    /// Schedules examined, in index order, up to the answer.
    pub tried: u64,
    /// Schedules actually run (a batch runs whole, so a few past the first failure).
    pub ran: u64,
    /// Distinct failures, by lowest index.
    pub failures: Vec<Failure>,
    pub elapsed: Duration,
    /// The search stopped because of `time_limit`.
    pub timed_out: bool,
    /// Distinct schedules among those examined (coverage; random searches repeat some).
    pub distinct: u64,
}

/// "Fails the same way": verdict class and where.
pub fn failure_key(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::ExitStatus { status, .. } => format!("exit status {status}"),
        Verdict::Assertion { rip, .. } => format!("assertion at {rip:#x}"),
        Verdict::Crash(c) => format!("crash at {:#x}: {}", c.rip, c.what),
        Verdict::Deadlock { .. } => "deadlock".into(),
        Verdict::Budget { .. } => "budget".into(),
        Verdict::Signal { signal, .. } => format!("signal {signal}"),
    }
}

/// The machine options of one schedule: TM fault injection drawn from its seed, so that
/// injected aborts differ between schedules and each failure replays exactly.
pub fn options_for(opts: &MachineOptions, strategy: &StrategySpec) -> MachineOptions {
    let mut o = opts.clone();
    if let Some(seed) = strategy.seed() {
        o.tm.abort_seed = seed;
    }
    o
}

thread_local! {
    /// This thread's machine for the guest being searched: built once, reset per schedule.
    static MACHINE: std::cell::RefCell<Option<(usize, MachineOptions, Machine)>> =
        const { std::cell::RefCell::new(None) };
}

/// Run one schedule on this thread's kept machine (built on first use, or when the guest or
/// the options other than TM change), keeping its schedule.
pub fn run_kept(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    strategy: Box<dyn Strategy>,
) -> Result<(RunOutcome, Schedule), SessionError> {
    let (out, sink) = run_kept_with::<ScheduleSink>(name, elf, opts, strategy)?;
    Ok((out, sink.runs))
}

/// [`run_kept`] with any sink type.
fn run_kept_with<S: EventSink + Default + 'static>(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    strategy: Box<dyn Strategy>,
) -> Result<(RunOutcome, S), SessionError> {
    MACHINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let key = elf.as_ptr() as usize ^ elf.len();
        let mut base = opts.clone();
        base.tm = Default::default();
        let fits = matches!(&*slot, Some((k, o, _)) if *k == key && *o == base);
        if !fits {
            let m = Machine::new(elf, opts).map_err(|error| SessionError::Guest {
                path: name.to_string(),
                error,
            })?;
            *slot = Some((key, base, m));
        }
        let (_, _, m) = slot.as_mut().expect("just set");
        m.set_tm_options(opts.tm.clone());
        let sink = Rc::new(RefCell::new(S::default()));
        let out = m
            .run(strategy, sink.clone(), RunConfig::default())
            .map_err(|error| SessionError::Guest {
                path: name.to_string(),
                error,
            })?;
        let sink = std::mem::take(&mut *sink.borrow_mut());
        Ok((out, sink))
    })
}

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
    mut progress: impl FnMut(u64, usize),
) -> Result<(Explored, bool), SessionError> {
    let start = Instant::now();
    let mut queue: std::collections::VecDeque<Schedule> = [Vec::new()].into();
    let mut visited: std::collections::HashSet<Schedule> = [Vec::new()].into();
    let mut failures: Vec<Failure> = Vec::new();
    let (mut tried, mut timed_out) = (0, false);
    while let Some(s) = queue.pop_front() {
        if tried >= cfg.schedules {
            break;
        }
        let label = "race-directed";
        let (out, sink) =
            run_kept_with::<AccessSink>(name, elf, opts, Box::new(Guided::new(s, label)))?;
        tried += 1;
        if let Some(v) = out.verdict.filter(|v| !v.is_pass()) {
            let schedule = Some(sink.runs.clone());
            note_failure(
                &mut failures,
                tried - 1,
                StrategySpec::RaceDirected,
                schedule,
                v,
            );
            if !cfg.all_failures {
                break;
            }
        }
        for cand in reversals(&sink) {
            if visited.insert(cand.clone()) {
                queue.push_back(cand);
            }
        }
        if tried % 64 == 0 {
            progress(tried, failures.len());
        }
        if cfg.time_limit.is_some_and(|t| start.elapsed() >= t) {
            timed_out = true;
            break;
        }
    }
    progress(tried, failures.len());
    let exhausted = queue.is_empty() && !timed_out;
    Ok((
        Explored {
            tried,
            ran: tried,
            failures,
            elapsed: start.elapsed(),
            timed_out,
            distinct: tried,
        },
        exhausted,
    ))
}

/// A schedule's fingerprint, for counting distinct schedules.
fn schedule_hash(s: &Schedule) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// The indices of `cfg`'s shard, in order.
pub fn shard_indices(cfg: &ExploreConfig) -> impl Iterator<Item = u64> + '_ {
    let (i, n) = cfg.shard;
    (i..cfg.schedules).step_by(n.max(1) as usize)
}

/// Run the search. `progress(tried, failures)` is called after every batch.
pub fn explore(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    cfg: &ExploreConfig,
    mut progress: impl FnMut(u64, usize),
) -> Result<Explored, SessionError> {
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.jobs.max(1))
        .build()
        .map_err(|e| SessionError::Other(format!("cannot start {} threads: {e}", cfg.jobs)))?;
    let batch = cfg.jobs.max(1) * 8;
    let mut indices = shard_indices(cfg).peekable();
    let mut failures: Vec<Failure> = Vec::new();
    let mut tried = 0;
    let mut ran = 0;
    let mut seen = std::collections::HashSet::new();
    let mut timed_out = false;
    while indices.peek().is_some() {
        let chunk: Vec<u64> = indices.by_ref().take(batch).collect();
        type Ran = Result<(u64, StrategySpec, Option<Verdict>, u64), SessionError>;
        let results: Vec<Ran> = pool.install(|| {
            chunk
                .par_iter()
                .map(|&i| {
                    let spec = cfg
                        .strategy
                        .clone()
                        .with_seed(cfg.seed_start.wrapping_add(i));
                    let o = options_for(opts, &spec);
                    let (out, schedule) = run_kept(name, elf, &o, spec.build())?;
                    Ok((i, spec, out.verdict, schedule_hash(&schedule)))
                })
                .collect()
        });
        ran += results.len() as u64;
        for r in results {
            let (i, spec, verdict, hash) = r?;
            tried += 1;
            seen.insert(hash);
            let Some(v) = verdict.filter(|v| !v.is_pass()) else {
                continue;
            };
            note_failure(&mut failures, i, spec, None, v);
            if !cfg.all_failures {
                break;
            }
        }
        progress(seen.len() as u64, failures.len());
        if !failures.is_empty() && !cfg.all_failures {
            break;
        }
        if cfg.time_limit.is_some_and(|t| start.elapsed() >= t) {
            timed_out = indices.peek().is_some();
            break;
        }
    }
    Ok(Explored {
        tried,
        ran,
        failures,
        elapsed: start.elapsed(),
        timed_out,
        distinct: seen.len() as u64,
    })
}

/// Count a failing schedule: a new kind of failure is kept (the first schedule of each
/// kind, by examination order), a known one only counted.
fn note_failure(
    failures: &mut Vec<Failure>,
    index: u64,
    strategy: StrategySpec,
    schedule: Option<Schedule>,
    verdict: Verdict,
) {
    let key = failure_key(&verdict);
    match failures.iter_mut().find(|f| f.key == key) {
        Some(f) => f.count += 1,
        None => failures.push(Failure {
            index,
            strategy,
            schedule,
            verdict,
            key,
            count: 1,
        }),
    }
}

impl Failure {
    /// A strategy that reproduces the failing run.
    pub fn replay(&self) -> Box<dyn Strategy> {
        match &self.schedule {
            Some(s) => Box::new(Guided::new(s.clone(), self.label())),
            None => self.strategy.build(),
        }
    }

    /// How to name the failing schedule: its strategy, or `dfs:bound=C #i`.
    pub fn label(&self) -> String {
        match &self.schedule {
            Some(_) => format!("{} schedule #{}", self.strategy, self.index),
            None => self.strategy.to_string(),
        }
    }
}

/// Preemption-bounded DFS: every schedule with at most `bound` preemptions, in DFS order,
/// until the first failure (or all of them with `all_failures`), at most `cfg.schedules`
/// schedules (`cfg`'s strategy, seeds, jobs and shard do not apply: the search is
/// sequential). Also returns whether the search covered every schedule within the bound.
pub fn explore_dfs(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    bound: u32,
    cfg: &ExploreConfig,
    mut progress: impl FnMut(u64, usize),
) -> Result<(Explored, bool), SessionError> {
    let (max, all_failures, time_limit) = (cfg.schedules, cfg.all_failures, cfg.time_limit);
    let start = Instant::now();
    let tree = DfsTree::new(bound);
    let mut failures: Vec<Failure> = Vec::new();
    let mut tried = 0;
    let mut complete = false;
    let mut timed_out = false;
    while tried < max {
        let run = DfsTree::next_run(&tree);
        let (out, schedule) = run_kept(name, elf, opts, Box::new(run))?;
        tried += 1;
        if let Some(v) = out.verdict.filter(|v| !v.is_pass()) {
            let spec = StrategySpec::Dfs { bound };
            note_failure(&mut failures, tried - 1, spec, Some(schedule), v);
        }
        if tried % 64 == 0 {
            progress(tried, failures.len());
        }
        if !tree.borrow_mut().advance() {
            complete = true;
            break;
        }
        if !failures.is_empty() && !all_failures {
            break;
        }
        if time_limit.is_some_and(|t| start.elapsed() >= t) {
            timed_out = true;
            break;
        }
    }
    progress(tried, failures.len());
    let explored = Explored {
        tried,
        ran: tried,
        failures,
        elapsed: start.elapsed(),
        timed_out,
        distinct: tried,
    };
    Ok((explored, complete))
}

/// A minimized failing schedule.
#[derive(Debug)]
pub struct Minimized {
    pub schedule: Schedule,
    pub preemptions: usize,
    pub original_preemptions: usize,
    /// Candidate schedules run.
    pub attempts: usize,
}

/// Most candidate runs minimization tries, and how long it may take.
const MAX_ATTEMPTS: usize = 500;
const MAX_TIME: Duration = Duration::from_secs(20);

/// Find a schedule with as few preemptions as possible (switches away from a vCPU that
/// could have gone on: not at its end, not spinning) that fails like `failing` (the
/// strategy of a failure found by [`explore`]).
pub fn minimize(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    failing: &Failure,
) -> Result<Minimized, SessionError> {
    let start = Instant::now();
    let key = failing.key.as_str();
    let (out, mut best) = run_kept(name, elf, opts, failing.replay())?;
    if out.verdict.as_ref().map(failure_key).as_deref() != Some(key) {
        return Err(SessionError::Other(format!(
            "schedule {} no longer fails with {key}",
            failing.label()
        )));
    }
    let original = out.stats.preemptions as usize;
    let mut best_p = original;
    let mut cuts = out.stats.preempted_runs.clone();
    let attempts = std::cell::Cell::new(0usize);
    let spent = || attempts.get() >= MAX_ATTEMPTS || start.elapsed() >= MAX_TIME;
    // A candidate that fails the same way: its actual schedule, preemptions, and the runs
    // that ended in one.
    type Found = (Schedule, usize, Vec<u64>);
    let try_it = |cand: Schedule| -> Result<Option<Found>, SessionError> {
        attempts.set(attempts.get() + 1);
        let (o, s) = run_kept(name, elf, opts, Box::new(Guided::new(cand, "")))?;
        let same = o.verdict.as_ref().map(failure_key).as_deref() == Some(key);
        Ok(same.then_some((s, o.stats.preemptions as usize, o.stats.preempted_runs)))
    };
    // Phase 1: the shortest prefix that still fails when the rest runs without preemption.
    for k in 0..best.len() {
        if spent() || best_p == 0 {
            break;
        }
        if let Some((s, p, c)) = try_it(best[..k].to_vec())? {
            if p < best_p {
                (best, best_p, cuts) = (s, p, c);
                break;
            }
        }
    }
    // Phase 2: undo single preemptions (drop the run that followed one) while that still
    // fails; restart after each success.
    'outer: loop {
        for &j in &cuts {
            if spent() || best_p == 0 {
                break 'outer;
            }
            let mut cand = best.clone();
            if (j as usize + 1) < cand.len() {
                cand.remove(j as usize + 1);
            }
            if let Some((s, p, c)) = try_it(cand)? {
                if p < best_p {
                    (best, best_p, cuts) = (s, p, c);
                    continue 'outer;
                }
            }
        }
        break;
    }
    Ok(Minimized {
        preemptions: best_p,
        schedule: best,
        original_preemptions: original,
        attempts: attempts.get(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_and_cover_the_search() {
        let cfg = |shard| ExploreConfig {
            strategy: StrategySpec::Random { seed: 0 },
            schedules: 10,
            seed_start: 0,
            jobs: 1,
            shard,
            all_failures: false,
            time_limit: None,
        };
        let a: Vec<u64> = shard_indices(&cfg((0, 2))).collect();
        let b: Vec<u64> = shard_indices(&cfg((1, 2))).collect();
        assert_eq!(a, vec![0, 2, 4, 6, 8]);
        assert_eq!(b, vec![1, 3, 5, 7, 9]);
        let all: Vec<u64> = shard_indices(&cfg((0, 1))).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
