//! `weft explore`: search schedules until the guest fails, save the failure as a trace and
//! a minimized trace with the fewest preemptions found.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use weft::explore::{self, ExploreConfig};
use weft::session;
use weft_recorder::{Guided, StrategySpec, DEFAULT_PCT_STEPS};

use super::{
    check_output, verdict_details, verdict_line, GuestArgs, MachineArgs, EXIT_FAILURE, EXIT_PASS,
};

#[derive(Args, Debug)]
pub struct ExploreArgs {
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    machine: MachineArgs,
    /// Schedules to try (indices 0..N; schedule i uses seed --seed + i; for
    /// --strategy dfs:bound=C, at most N schedules of the bounded search)
    #[arg(long, default_value_t = 1000)]
    schedules: u64,
    /// Host threads, 1..=1024 (default: all cores). The result does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    jobs: Option<u64>,
    /// Run only part I of N of the search (1-based), e.g. from a Slurm array or a
    /// Kubernetes indexed Job; the N parts are disjoint and cover the whole search
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// Keep searching after the first failure and save every distinct one
    #[arg(long)]
    all_failures: bool,
    /// Stop after this many seconds: the whole search, the schedule running then, and
    /// minimization
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    time: Option<Duration>,
    /// Directory for the failure traces (default: the current directory)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Do not minimize the failing schedule
    #[arg(long)]
    no_minimize: bool,
    /// An exit status that is the program's normal end, not a failure (repeatable; for
    /// programs whose main returns non-zero when all is well)
    #[arg(long, value_name = "STATUS", value_parser = clap::value_parser!(u64).range(1..=255))]
    exit_ok: Vec<u64>,
    /// A JSON summary on stdout
    #[arg(long)]
    json: bool,
}

/// A time limit in seconds (a fraction is fine): positive, finite, at most a year.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a number of seconds between 0 and 31536000 (a year)");
    let v: f64 = s.trim().parse().map_err(|_| bad())?;
    if !(v > 0.0 && v <= 31_536_000.0) {
        return Err(bad());
    }
    Duration::try_from_secs_f64(v).map_err(|_| bad())
}

/// `I/N` with 1 <= I <= N.
fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("`{s}` is not a shard: use I/N with 1 <= I <= N, e.g. 2/8");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (u64, u64) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i - 1, n))
}

#[derive(Serialize)]
struct JsonFailure {
    index: u64,
    strategy: String,
    key: String,
    verdict: String,
    count: u64,
    /// A bug of the program (not a run that only failed on weft's limits).
    found: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_a_bug: Option<String>,
    /// The trace (absent until saved: the summary is written while searching).
    trace: Option<String>,
    minimized_trace: Option<String>,
    preemptions: Option<usize>,
    original_preemptions: Option<usize>,
}

impl JsonFailure {
    fn new(f: &explore::Failure) -> JsonFailure {
        JsonFailure {
            index: f.index,
            strategy: f.label(),
            key: f.key.clone(),
            verdict: f.verdict.to_string(),
            count: f.count,
            found: f.not_a_bug.is_none(),
            not_a_bug: f.not_a_bug.clone(),
            trace: None,
            minimized_trace: None,
            preemptions: None,
            original_preemptions: None,
        }
    }
}

#[derive(Serialize)]
struct JsonSummary {
    guest: String,
    strategy: String,
    schedules: u64,
    shard: Option<String>,
    tried: u64,
    /// Distinct schedules among those tried.
    distinct: u64,
    seconds: f64,
    schedules_per_second: f64,
    timed_out: bool,
    /// DFS only: whether every schedule within the bound was run.
    #[serde(skip_serializing_if = "Option::is_none")]
    complete: Option<bool>,
    /// The search is over (false in the summary file while it runs).
    finished: bool,
    /// DFS and race-directed: runs before the search started over with more pages shared.
    restarted: u64,
    /// Pages found shared, which later schedules start with shared.
    shared_pages: usize,
    failures: Vec<JsonFailure>,
}

/// Write `summary` to `path` as JSON, atomically (a reader never sees half a file).
fn write_summary(path: &Path, summary: &JsonSummary) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(summary)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn explore(a: ExploreArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let deadline = a.time.map(|t| started + t);
    let (name, elf, opts) = a.guest.load(&a.machine)?;
    let chosen = match a.machine.strategy() {
        // No --strategy (round-robin, one schedule): the portfolio (weft_recorder::portfolio).
        StrategySpec::RoundRobin { .. } => StrategySpec::Portfolio {
            steps: DEFAULT_PCT_STEPS,
            focus_steps: DEFAULT_PCT_STEPS,
        },
        s => s,
    };
    if a.out.exists() && !a.out.is_dir() {
        bail!("{}: not a directory (--out)", a.out.display());
    }
    if !a.out.exists() {
        std::fs::create_dir_all(&a.out)
            .with_context(|| format!("{}: cannot create the directory (--out)", a.out.display()))?;
    }
    // What the threads share, learned once: every schedule starts with it shared, and the
    // points counted below are those of runs that do.
    let learned = explore::discover(&name, &elf, &opts, deadline)?;
    let learned_opts = learned.apply(&opts);
    // PCT's change points and delay bounding's delays go among `steps` points with a
    // choice: left at the default, fit it to this guest (measured once, if needed).
    let focus = weft::debuginfo::program_code(&elf);
    let mut measured = None;
    let mut fitted = |steps: u64, own: bool| -> Result<u64> {
        if steps != DEFAULT_PCT_STEPS {
            return Ok(steps);
        }
        if measured.is_none() {
            measured = Some(explore::contended_points(
                &name,
                &elf,
                &learned_opts,
                focus.as_ref(),
                deadline,
            )?);
        }
        let (all, mine) = measured.expect("just measured");
        // Without debug information focused PCT counts every contended point.
        Ok(if own && focus.is_some() { mine } else { all })
    };
    let strategy = match chosen {
        StrategySpec::Pct {
            seed,
            depth,
            steps,
            focus,
        } => StrategySpec::Pct {
            seed,
            depth,
            steps: fitted(steps, focus)?,
            focus,
        },
        StrategySpec::Delay { index, steps } => StrategySpec::Delay {
            index,
            steps: fitted(steps, false)?,
        },
        StrategySpec::Portfolio { steps, focus_steps } => StrategySpec::Portfolio {
            steps: fitted(steps, false)?,
            focus_steps: fitted(focus_steps, true)?,
        },
        s => s,
    };
    let jobs = a.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |j| j as usize,
    );
    let cfg = ExploreConfig {
        strategy: strategy.clone(),
        schedules: a.schedules,
        seed_start: a.machine.seed.or(strategy.seed()).unwrap_or(0),
        jobs,
        shard: a.shard.unwrap_or((0, 1)),
        all_failures: a.all_failures,
        deadline,
        exit_ok: a.exit_ok.clone(),
        focus: focus.clone(),
        learned,
    };
    let stem = a
        .guest
        .guest
        .file_stem()
        .map_or("guest".into(), |s| s.to_string_lossy().into_owned());
    let shard_label = a.shard.map(|(i, n)| format!("{}/{n}", i + 1));
    let summary_path = a.out.join(format!(
        "{stem}{}-summary.json",
        shard_label
            .as_ref()
            .map(|s| format!("-shard{}", s.replace('/', "of")))
            .unwrap_or_default()
    ));
    check_output(&summary_path)?;
    let strategy_name = match &strategy {
        StrategySpec::Portfolio { steps, focus_steps } => {
            weft_recorder::portfolio::describe(*steps, *focus_steps)
        }
        s => s.to_string(),
    };
    let summary = |found: &explore::Explored, failures: Vec<JsonFailure>, finished, complete| {
        let secs = found.elapsed.as_secs_f64();
        JsonSummary {
            guest: name.clone(),
            strategy: strategy_name.clone(),
            schedules: a.schedules,
            shard: shard_label.clone(),
            tried: found.tried,
            distinct: found.distinct,
            seconds: secs,
            schedules_per_second: found.ran as f64 / secs.max(1e-9),
            timed_out: found.timed_out,
            complete,
            finished,
            restarted: found.restarted,
            shared_pages: found.shared_pages,
            failures,
        }
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let start = Instant::now();
    let mut last_write: Option<(Instant, usize)> = None;
    let mut progress = |found: &explore::Explored| {
        if tty {
            let secs = start.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[2K[weft explore] {} distinct schedules ({:.0}/s), {} failure(s), {secs:.1} s",
                found.distinct,
                found.distinct as f64 / secs.max(1e-9),
                found.failures.len()
            );
        }
        // The summary so far, on every new failure and at least every 5 s, so that a
        // search killed midway keeps what it found.
        let due = last_write.is_none_or(|(t, n)| {
            n != found.failures.len() || t.elapsed() >= Duration::from_secs(5)
        });
        if due {
            let failures = found.failures.iter().map(JsonFailure::new).collect();
            let _ = write_summary(&summary_path, &summary(found, failures, false, None));
            last_write = Some((Instant::now(), found.failures.len()));
        }
    };
    let mut dfs_complete = None;
    let found = match strategy {
        StrategySpec::Dfs { bound } => {
            if a.shard.is_some() {
                bail!("--shard is not supported with the dfs strategy (the search is sequential)");
            }
            let (found, complete) =
                explore::explore_dfs(&name, &elf, &opts, bound, &cfg, &mut progress)?;
            dfs_complete = Some(complete);
            found
        }
        StrategySpec::RaceDirected => {
            if a.shard.is_some() {
                bail!("--shard is not supported with race-directed search (it is sequential)");
            }
            let (found, exhausted) =
                explore::explore_race_directed(&name, &elf, &opts, &cfg, &mut progress)?;
            dfs_complete = Some(exhausted);
            found
        }
        _ => explore::explore(&name, &elf, &opts, &cfg, &mut progress)?,
    };
    if tty {
        eprint!("\r\x1b[2K");
    }
    let secs = found.elapsed.as_secs_f64();
    let rate = found.ran as f64 / secs.max(1e-9);
    let mut json = Vec::new();
    if !a.json {
        let how = match dfs_complete {
            Some(_) => format!("{strategy_name}, 1 job"),
            None => format!(
                "{strategy_name}, seeds from {}{}, {jobs} job(s)",
                cfg.seed_start,
                shard_label
                    .as_ref()
                    .map(|s| format!(", shard {s}"))
                    .unwrap_or_default()
            ),
        };
        eprintln!(
            "explored {} schedule(s), {} distinct, of {name} ({how}) in {secs:.1} s ({rate:.0}/s){}",
            found.tried,
            found.distinct,
            if found.timed_out {
                "; stopped by --time"
            } else {
                ""
            }
        );
        if found.restarted > 0 {
            eprintln!(
                "  {} run(s) found more shared pages ({} in all): the search started over with them",
                found.restarted, found.shared_pages
            );
        }
    }
    for (k, f) in found.failures.iter().enumerate() {
        let suffix = if found.failures.len() > 1 {
            format!("-{}", k + 1)
        } else {
            String::new()
        };
        let trace = a.out.join(format!("{stem}-fail{suffix}.weft"));
        let fopts = f.options(&opts);
        let recorded = save(&trace, || {
            let replay = f.replay(focus.clone());
            session::record_with(&name, &elf, &fopts, replay, &trace, Default::default())
        })?;
        // Each verdict is printed with its own details (call stacks, waits): the
        // minimized run's vCPUs may differ from the original's.
        let original = recorded.outcome;
        let details = |o: &weft::machine::RunOutcome| {
            o.verdict.as_ref().and_then(|v| {
                let linux = opts.linux.is_some();
                verdict_details(v, &o.backtraces, &o.clues, &elf, linux)
            })
        };
        let mut entry = JsonFailure::new(f);
        entry.trace = Some(trace.display().to_string());
        if !a.json {
            let what = if f.not_a_bug.is_some() {
                "failure, not counted as a bug"
            } else {
                "failure"
            };
            eprintln!(
                "{what}: schedule {} ({}) {}",
                f.index,
                f.label(),
                verdict_line(&f.verdict)
            );
            if let Some(why) = &f.not_a_bug {
                eprintln!("  not a bug of the program: {why}");
            }
            if f.count > 1 {
                eprintln!("  {} schedules failed this way", f.count);
            }
            eprintln!("  trace: {}", trace.display());
            if let Some(d) = details(&original) {
                eprintln!("{d}");
            }
        }
        let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
        if !a.no_minimize && f.not_a_bug.is_none() && !past_deadline {
            let m = explore::minimize(&name, &elf, &fopts, f, focus.clone(), deadline)?;
            let min = a.out.join(format!("{stem}-fail{suffix}-min.weft"));
            let label = format!("minimized from {}", f.label());
            let minimized = save(&min, || {
                session::record_with(
                    &name,
                    &elf,
                    &fopts,
                    Box::new(Guided::new(m.schedule.clone(), label.clone())),
                    &min,
                    Default::default(),
                )
            })?
            .outcome;
            if !a.json {
                eprintln!(
                    "  minimized: {} preemption(s) (from {}; {} candidate runs): {}",
                    m.preemptions,
                    m.original_preemptions,
                    m.attempts,
                    min.display()
                );
                let (v, d) = (&minimized.verdict, details(&minimized));
                if v.as_ref() == original.verdict.as_ref() && d == details(&original) {
                    eprintln!("  the minimized run ends the same way, with the same stacks");
                } else {
                    if let Some(v) = v {
                        eprintln!("  minimized run's {}", verdict_line(v));
                    }
                    if let Some(d) = d {
                        eprintln!("{d}");
                    }
                }
            }
            entry.minimized_trace = Some(min.display().to_string());
            entry.preemptions = Some(m.preemptions);
            entry.original_preemptions = Some(m.original_preemptions);
        }
        json.push(entry);
    }
    if !found.found() && !a.json {
        eprintln!("no failure found");
    }
    let stopped_by_failure = found.found() && !a.all_failures;
    if let (Some(complete), false, false) = (dfs_complete, a.json, stopped_by_failure) {
        let race = matches!(strategy, StrategySpec::RaceDirected);
        match (complete, race) {
            (true, false) => eprintln!(
                "dfs: the search is complete: these {} schedules are every schedule within the bound",
                found.tried
            ),
            (false, false) => eprintln!(
                "dfs: stopped before the end of the search (more schedules remain within the bound)"
            ),
            (true, true) => eprintln!(
                "race-directed: every conflicting pair found was reversed ({} schedules)",
                found.tried
            ),
            (false, true) => eprintln!(
                "race-directed: stopped with reversals left to try (raise --schedules)"
            ),
        }
    }
    let summary = summary(&found, json, true, dfs_complete);
    write_summary(&summary_path, &summary)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::from(if found.found() {
        EXIT_FAILURE
    } else if found.failures.is_empty() {
        EXIT_PASS
    } else {
        EXIT_INCONCLUSIVE
    }))
}

/// Exit code when the only failures found are not bugs of the program (unemulated
/// system calls, the step budget).
const EXIT_INCONCLUSIVE: u8 = 3;

/// Write a trace, replacing an older one of the same name from an earlier search.
fn save(
    path: &Path,
    rec: impl FnOnce() -> Result<session::Recorded, session::SessionError>,
) -> Result<session::Recorded> {
    check_output(path)?;
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    Ok(rec()?)
}
