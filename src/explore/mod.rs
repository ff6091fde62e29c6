//! `weft explore`: run many schedules of a guest until one fails, then hand back a minimal
//! failing schedule.
//!
//! Schedule `i` of a search is a function of `i` alone: the base strategy with seed
//! `seed_start + i` (wrapping), or for the portfolio (the default) member `i % N` with seed
//! `seed_start + i / N`; so a search is a range of indices. Indices are examined in
//! batches, in parallel (rayon), and a batch's results are read in index order: the first
//! failure is the lowest failing index whatever the number of jobs. `--shard I/N` keeps
//! the indices `i` with `i % N == I - 1`, so shards are disjoint and together cover the
//! unsharded search.
//!
//! Not every failing run is a bug of the program: one that hit a system call weft does
//! not emulate (ENOSYS) or the step budget is kept and reported, but it does not end the
//! search and is not counted as found ([`Failure::not_a_bug`]).
//!
//! A time limit (`deadline`) bounds the whole search: a watchdog interrupts the schedule
//! running when it passes (its run counts for nothing), and minimization stops there too.
//!
//! A search learns which pages the guest's threads share and starts later schedules with
//! them shared (`learn`); batches have fixed sizes for that, whatever the number of jobs.

mod learn;
mod measure;
mod minimize;
mod race;

pub use learn::{discover, Learned};
pub use measure::contended_points;
pub use minimize::{minimize, Minimized};
pub use race::explore_race_directed;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use weft_recorder::{portfolio, DfsTree, Guided, Strategy, StrategySpec};
use weft_trace::{MachineOptions, VcpuId, Verdict};

use std::cell::RefCell;
use std::rc::Rc;

use crate::machine::{Machine, RunConfig, RunOutcome};
use crate::session::{ScheduleSink, SessionError};
use weft_trace::EventSink;

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
    /// Stop when this moment passes, even inside a schedule (that schedule is dropped).
    pub deadline: Option<Instant>,
    /// Exit statuses that are the program's normal end, not failures (`--exit-ok`).
    pub exit_ok: Vec<u64>,
    /// The program's own code, for focused PCT ([`crate::debuginfo::program_code`]).
    pub focus: Option<weft_recorder::Focus>,
    /// Pages known to be shared before the search (`discover`): every schedule starts with
    /// them shared.
    pub learned: Learned,
}

impl ExploreConfig {
    /// Whether a run that ended with `v` failed.
    pub fn fails(&self, v: &Verdict) -> bool {
        match v {
            Verdict::ExitStatus { status, .. } => !self.exit_ok.contains(status),
            v => !v.is_pass(),
        }
    }

    /// The strategy of schedule `i`.
    pub fn spec_for(&self, i: u64) -> StrategySpec {
        match self.strategy {
            StrategySpec::Portfolio { steps, focus_steps } => {
                portfolio::member(i, self.seed_start, steps, focus_steps)
            }
            ref s => s.clone().with_seed(self.seed_start.wrapping_add(i)),
        }
    }
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
    /// Why this failure is not counted as a bug of the program, if it is not: the run
    /// used system calls weft does not emulate, or it ran out of `--max-steps`.
    pub not_a_bug: Option<String>,
    /// The pages the failing schedule started with shared.
    pub learned: Learned,
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
    /// The search stopped because of the deadline.
    pub timed_out: bool,
    /// Distinct schedules among those examined (coverage; random searches repeat some).
    pub distinct: u64,
    /// Runs of a systematic search (DFS, race-directed) that was started over because a
    /// run found pages shared that earlier runs had not: more points then.
    pub restarted: u64,
    /// Pages found shared over the search, carried into later schedules.
    pub shared_pages: usize,
}

impl Explored {
    fn new() -> Explored {
        Explored {
            tried: 0,
            ran: 0,
            failures: Vec::new(),
            elapsed: Duration::ZERO,
            timed_out: false,
            distinct: 0,
            restarted: 0,
            shared_pages: 0,
        }
    }
}

impl Explored {
    /// Whether a failure that is a bug of the program was found.
    pub fn found(&self) -> bool {
        self.failures.iter().any(|f| f.not_a_bug.is_none())
    }
}

/// Why a failing run is not a bug of the program (see [`Failure::not_a_bug`]).
pub fn not_a_bug(out: &RunOutcome) -> Option<String> {
    match &out.verdict {
        Some(Verdict::Budget { max_steps }) => Some(format!(
            "the run reached --max-steps ({max_steps}): a long or endless run, not a failure"
        )),
        Some(v) if !v.is_pass() && !out.unsupported.is_empty() => Some(format!(
            "the run used system calls weft does not emulate ({}), which failed with ENOSYS",
            out.unsupported.join(", ")
        )),
        _ => None,
    }
}

/// Sets a flag when `deadline` passes (a detached watchdog thread): runs given the flag
/// stop at their next scheduling point, with no verdict.
pub fn watchdog(deadline: Option<Instant>) -> Option<Arc<AtomicBool>> {
    let deadline = deadline?;
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left);
        f.store(true, Ordering::Relaxed);
    });
    Some(flag)
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
    stop: Option<&Arc<AtomicBool>>,
) -> Result<(RunOutcome, Schedule), SessionError> {
    let (out, sink) = run_kept_with::<ScheduleSink>(name, elf, opts, strategy, stop)?;
    Ok((out, sink.runs))
}

/// [`run_kept`] with any sink type.
fn run_kept_with<S: EventSink + Default + 'static>(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    strategy: Box<dyn Strategy>,
    stop: Option<&Arc<AtomicBool>>,
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
        let config = RunConfig {
            interrupt: stop.cloned(),
            ..RunConfig::default()
        };
        let out = m
            .run(strategy, sink.clone(), config)
            .map_err(|error| SessionError::Guest {
                path: name.to_string(),
                error,
            })?;
        let sink = std::mem::take(&mut *sink.borrow_mut());
        Ok((out, sink))
    })
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

/// Run the search. `progress` sees the search so far after every batch.
pub fn explore(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    cfg: &ExploreConfig,
    mut progress: impl FnMut(&Explored),
) -> Result<Explored, SessionError> {
    let start = Instant::now();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.jobs.max(1))
        .build()
        .map_err(|e| SessionError::Other(format!("cannot start {} threads: {e}", cfg.jobs)))?;
    let stop = watchdog(cfg.deadline);
    let mut indices = shard_indices(cfg).peekable();
    let mut found = Explored::new();
    let mut seen = std::collections::HashSet::new();
    let interrupted = || stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed));
    let mut learned = cfg.learned.clone();
    let mut batches = 0;
    while indices.peek().is_some() {
        let chunk: Vec<u64> = indices.by_ref().take(learn::batch_size(batches)).collect();
        batches += 1;
        let base = learned.apply(opts);
        type Ran = Result<(u64, StrategySpec, RunOutcome, u64), SessionError>;
        let results: Vec<Ran> = pool.install(|| {
            chunk
                .par_iter()
                .map(|&i| {
                    let spec = cfg.spec_for(i);
                    let o = options_for(&base, &spec);
                    let strategy = spec.build_focused(cfg.focus.clone());
                    let (out, schedule) = run_kept(name, elf, &o, strategy, stop.as_ref())?;
                    Ok((i, spec, out, schedule_hash(&schedule)))
                })
                .collect()
        });
        found.ran += results.len() as u64;
        let mut done = false;
        let before = learned.clone();
        for r in results {
            let (i, spec, out, hash) = r?;
            if out.interrupted {
                // Cut short by the deadline: it ran no schedule to its end.
                found.timed_out = true;
                done = true;
                break;
            }
            found.tried += 1;
            seen.insert(hash);
            learned.add(&out.shared_pages);
            let Some(v) = out.verdict.clone().filter(|v| cfg.fails(v)) else {
                continue;
            };
            let why = not_a_bug(&out);
            let bug = why.is_none();
            note_failure(&mut found.failures, i, spec, None, v, why, &before);
            if bug && !cfg.all_failures {
                done = true;
                break;
            }
        }
        found.distinct = seen.len() as u64;
        found.shared_pages = learned.len();
        found.elapsed = start.elapsed();
        progress(&found);
        if done {
            break;
        }
        if interrupted() {
            found.timed_out = indices.peek().is_some();
            break;
        }
    }
    found.elapsed = start.elapsed();
    Ok(found)
}

/// Count a failing schedule: a new kind of failure is kept (the first schedule of each
/// kind, by examination order), a known one only counted.
fn note_failure(
    failures: &mut Vec<Failure>,
    index: u64,
    strategy: StrategySpec,
    schedule: Option<Schedule>,
    verdict: Verdict,
    not_a_bug: Option<String>,
    learned: &Learned,
) {
    let mut key = failure_key(&verdict);
    if not_a_bug.is_some() && !matches!(verdict, Verdict::Budget { .. }) {
        key.push_str(" (after unemulated system calls)");
    }
    match failures.iter_mut().find(|f| f.key == key) {
        Some(f) => f.count += 1,
        None => failures.push(Failure {
            index,
            strategy,
            schedule,
            verdict,
            key,
            count: 1,
            not_a_bug,
            learned: learned.clone(),
        }),
    }
}

impl Failure {
    /// The machine options of the failing run: its TM seed and the pages it started with
    /// shared.
    pub fn options(&self, opts: &MachineOptions) -> MachineOptions {
        options_for(&self.learned.apply(opts), &self.strategy)
    }

    /// A strategy that reproduces the failing run (`focus`: the search's).
    pub fn replay(&self, focus: Option<weft_recorder::Focus>) -> Box<dyn Strategy> {
        match &self.schedule {
            Some(s) => Box::new(Guided::new(s.clone(), self.label())),
            None => self.strategy.build_focused(focus),
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
    mut progress: impl FnMut(&Explored),
) -> Result<(Explored, bool), SessionError> {
    let (max, all_failures) = (cfg.schedules, cfg.all_failures);
    let start = Instant::now();
    let stop = watchdog(cfg.deadline);
    let mut tree = DfsTree::new(bound);
    let mut found = Explored::new();
    let mut complete = false;
    let mut learned = cfg.learned.clone();
    while found.tried < max {
        let run = DfsTree::next_run(&tree);
        let o = learned.apply(opts);
        let (out, schedule) = run_kept(name, elf, &o, Box::new(run), stop.as_ref())?;
        if out.interrupted {
            found.timed_out = true;
            break;
        }
        found.tried += 1;
        if let Some(v) = out.verdict.clone().filter(|v| cfg.fails(v)) {
            let spec = StrategySpec::Dfs { bound };
            let why = not_a_bug(&out);
            let i = found.tried - 1;
            note_failure(
                &mut found.failures,
                i,
                spec,
                Some(schedule),
                v,
                why,
                &learned,
            );
        }
        if learned.add(&out.shared_pages) && (!found.found() || all_failures) {
            // More pages are points now: the tree's choices counted the old points. Search
            // again from the start (finitely often: the set only grows).
            tree = DfsTree::new(bound);
            found.restarted = found.tried;
            continue;
        }
        if found.tried % 64 == 0 {
            found.ran = found.tried;
            found.distinct = found.tried - found.restarted;
            found.elapsed = start.elapsed();
            progress(&found);
        }
        if !tree.borrow_mut().advance() {
            complete = true;
            break;
        }
        if found.found() && !all_failures {
            break;
        }
    }
    found.ran = found.tried;
    found.distinct = found.tried - found.restarted;
    found.shared_pages = learned.len();
    found.elapsed = start.elapsed();
    progress(&found);
    Ok((found, complete))
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
            deadline: None,
            exit_ok: Vec::new(),
            focus: None,
            learned: Learned::default(),
        };
        let a: Vec<u64> = shard_indices(&cfg((0, 2))).collect();
        let b: Vec<u64> = shard_indices(&cfg((1, 2))).collect();
        assert_eq!(a, vec![0, 2, 4, 6, 8]);
        assert_eq!(b, vec![1, 3, 5, 7, 9]);
        let all: Vec<u64> = shard_indices(&cfg((0, 1))).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
