//! `weft explore`: search schedules until the guest fails, save the failure as a trace and
//! a minimized trace with the fewest preemptions found.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
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
    /// Stop after this many seconds
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    time: Option<Duration>,
    /// Directory for the failure traces (default: the current directory)
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    /// Do not minimize the failing schedule
    #[arg(long)]
    no_minimize: bool,
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
    trace: String,
    minimized_trace: Option<String>,
    preemptions: Option<usize>,
    original_preemptions: Option<usize>,
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
    /// DFS and race-directed: runs before the search started over with more pages shared.
    restarted: u64,
    /// Pages found shared, which later schedules start with shared.
    shared_pages: usize,
    failures: Vec<JsonFailure>,
}

pub fn explore(a: ExploreArgs) -> Result<ExitCode> {
    let (name, elf, opts) = a.guest.load(&a.machine)?;
    let chosen = match a.machine.strategy() {
        // A Linux program spends most of its steps starting threads; under random switches
        // the first thread usually finishes before the next exists. PCT's priorities keep
        // a thread waiting long enough for the others to catch up (docs/linux.md).
        StrategySpec::RoundRobin { .. } if opts.linux.is_some() => StrategySpec::Pct {
            seed: 0,
            depth: weft_recorder::DEFAULT_DEPTH,
            steps: DEFAULT_PCT_STEPS,
        },
        StrategySpec::RoundRobin { .. } => StrategySpec::Random { seed: 0 },
        s => s,
    };
    let strategy = match chosen {
        // PCT spreads its d-1 priority change points over `steps` points with a choice:
        // left at the default, fit it to this guest, measured once (round-robin).
        StrategySpec::Pct { seed, depth, steps } if steps == DEFAULT_PCT_STEPS => {
            let rr = StrategySpec::RoundRobin { quantum: 1 };
            let out = session::run(&name, &elf, &opts, &rr, Default::default())?;
            StrategySpec::Pct {
                seed,
                depth,
                steps: out.stats.contended.max(1),
            }
        }
        s => s,
    };
    if !a.out.is_dir() {
        bail!("{}: not a directory (--out)", a.out.display());
    }
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
        time_limit: a.time,
    };
    let tty = std::io::stderr().is_terminal() && !a.json;
    let start = Instant::now();
    let progress = |distinct: u64, failures: usize| {
        if tty {
            let secs = start.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[2K[weft explore] {distinct} distinct schedules ({:.0}/s), {failures} failure(s), {secs:.1} s",
                distinct as f64 / secs.max(1e-9)
            );
        }
    };
    let mut dfs_complete = None;
    let found = match strategy {
        StrategySpec::Dfs { bound } => {
            if a.shard.is_some() {
                bail!("--shard is not supported with the dfs strategy (the search is sequential)");
            }
            let (found, complete) =
                explore::explore_dfs(&name, &elf, &opts, bound, &cfg, progress)?;
            dfs_complete = Some(complete);
            found
        }
        StrategySpec::RaceDirected => {
            if a.shard.is_some() {
                bail!("--shard is not supported with race-directed search (it is sequential)");
            }
            let (found, exhausted) =
                explore::explore_race_directed(&name, &elf, &opts, &cfg, progress)?;
            dfs_complete = Some(exhausted);
            found
        }
        _ => explore::explore(&name, &elf, &opts, &cfg, progress)?,
    };
    if tty {
        eprint!("\r\x1b[2K");
    }
    let secs = found.elapsed.as_secs_f64();
    let rate = found.ran as f64 / secs.max(1e-9);
    let stem = a
        .guest
        .guest
        .file_stem()
        .map_or("guest".into(), |s| s.to_string_lossy().into_owned());
    let shard_label = a.shard.map(|(i, n)| format!("{}/{n}", i + 1));
    let mut json = Vec::new();
    if !a.json {
        let how = match dfs_complete {
            Some(_) => format!("{strategy}, 1 job"),
            None => format!(
                "{strategy}, seeds from {}{}, {jobs} job(s)",
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
            session::record_with(&name, &elf, &fopts, f.replay(), &trace, Default::default())
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
        let mut entry = JsonFailure {
            index: f.index,
            strategy: f.label(),
            key: f.key.clone(),
            verdict: f.verdict.to_string(),
            count: f.count,
            trace: trace.display().to_string(),
            minimized_trace: None,
            preemptions: None,
            original_preemptions: None,
        };
        if !a.json {
            eprintln!(
                "failure: schedule {} ({}) {}",
                f.index,
                f.label(),
                verdict_line(&f.verdict)
            );
            if f.count > 1 {
                eprintln!("  {} schedules failed this way", f.count);
            }
            eprintln!("  trace: {}", trace.display());
            if let Some(d) = details(&original) {
                eprintln!("{d}");
            }
        }
        if !a.no_minimize {
            let m = explore::minimize(&name, &elf, &fopts, f)?;
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
    if found.failures.is_empty() && !a.json {
        eprintln!("no failure found");
    }
    let stopped_by_failure = !found.failures.is_empty() && !a.all_failures;
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
    if a.json {
        let summary = JsonSummary {
            guest: name,
            strategy: strategy.to_string(),
            schedules: a.schedules,
            shard: shard_label,
            tried: found.tried,
            distinct: found.distinct,
            seconds: secs,
            schedules_per_second: rate,
            timed_out: found.timed_out,
            complete: dfs_complete,
            restarted: found.restarted,
            shared_pages: found.shared_pages,
            failures: json,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(ExitCode::from(if found.failures.is_empty() {
        EXIT_PASS
    } else {
        EXIT_FAILURE
    }))
}

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
