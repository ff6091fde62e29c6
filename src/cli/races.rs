//! `weft races`: data races first, then (with `--all`) the other conflicting pairs, each
//! with both accesses; `--json` for scripts, `--dot` for a Graphviz picture.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use weft::races::{self, Group, RaceReport};
use weft_trace::TraceReader;

use super::{EXIT_FAILURE, EXIT_PASS};

#[derive(Args, Debug)]
pub struct RacesArgs {
    /// The trace to analyse
    trace: PathBuf,
    /// Also list conflicts that are not races (ordered by happens-before, or on sync variables)
    #[arg(long)]
    all: bool,
    /// Machine-readable output: one JSON object (schema in docs/analysis.md)
    #[arg(long)]
    json: bool,
    /// Re-run each race (the first 64) with its two accesses in the other order and say
    /// whether that is harmful (the verdict changes), changes state (the output differs)
    /// or is benign in this run; harmful races are listed first
    #[arg(long)]
    confirm: bool,
    /// Write the reported accesses as a graph (conflict and program-order edges) in
    /// Graphviz DOT to this file
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
}

/// Run both passes over the trace (a warning about a damaged trace goes to stderr).
pub fn report(path: &Path) -> Result<RaceReport> {
    let reader = TraceReader::open(path)?;
    if let Some(w) = reader.warning() {
        eprintln!("weft: warning: {}: {w}", path.display());
    }
    // The recording leaves out accesses to pages one vCPU alone had touched: a race may
    // involve them (the owner's writes before another vCPU came), so derive them.
    let log = super::full_log(path)?;
    races::report_file(log.path())
}

fn print_group(g: &Group) {
    println!("{}", g.describe());
}

/// Races confirmed by `--confirm`, at most (each costs a run of the guest).
const CONFIRM_LIMIT: usize = 64;

pub fn races(a: RacesArgs) -> Result<ExitCode> {
    let mut r = report(&a.trace)?;
    if a.confirm {
        races::confirm(&a.trace, &mut r, CONFIRM_LIMIT)?;
    }
    if let Some(path) = &a.dot {
        std::fs::write(path, weft::races::dot(&r, a.all))
            .with_context(|| format!("{}: cannot write the graph", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{}: {} data race(s), {} other conflict(s) between code locations ({} accesses, {} sync bytes, {} by runtime synchronisation code)",
            a.trace.display(),
            r.races.len(),
            r.conflicts.len(),
            r.accesses,
            r.sync_bytes,
            r.runtime_accesses
        );
        for g in &r.races {
            println!();
            print_group(g);
        }
        if a.all {
            for g in &r.conflicts {
                println!();
                print_group(g);
            }
        } else if !r.conflicts.is_empty() {
            println!(
                "\n(--all lists the {} ordered conflicts too)",
                r.conflicts.len()
            );
        }
    }
    // Like a test runner: finding a race is a failure worth an exit code.
    Ok(ExitCode::from(if r.races.is_empty() {
        EXIT_PASS
    } else {
        EXIT_FAILURE
    }))
}
