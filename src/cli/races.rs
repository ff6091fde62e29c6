//! `weft races`: data races first, then (with `--all`) the other conflicting pairs, each
//! with both accesses; `--json` for scripts, `--dot` for a Graphviz picture.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use weft::races::{self, Group, RaceReport, Side};
use weft_trace::{Event, TraceError, TraceHeader, TraceReader};

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
    /// Write the reported accesses as a graph (conflict and program-order edges) in
    /// Graphviz DOT to this file
    #[arg(long, value_name = "FILE")]
    dot: Option<PathBuf>,
}

/// Read every event of `path` in order, or fail naming the file.
pub fn for_each_event(path: &Path, mut f: impl FnMut(Event)) -> Result<TraceHeader> {
    let reader = TraceReader::open(path)?;
    let header = reader.header().clone();
    for e in reader.into_events() {
        let e: Result<Event, TraceError> = e;
        f(e?);
    }
    Ok(header)
}

/// Run both passes over the trace.
pub fn report(path: &Path) -> Result<RaceReport> {
    let reader = TraceReader::open(path)?;
    if let Some(w) = reader.warning() {
        eprintln!("weft: warning: {}: {w}", path.display());
    }
    let mut first = Vec::new();
    let header = for_each_event(path, |e| {
        if matches!(e, Event::Access { .. } | Event::Hypercall { .. }) {
            first.push(e)
        }
    })?;
    let sync = races::sync_cells(first);
    let mut err = None;
    let events = TraceReader::open(path)?
        .into_events()
        .map_while(|e| e.map_err(|x| err = Some(x)).ok());
    let r = races::analyze(&header, &sync, events);
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(r)
}

fn side_line(label: &str, s: &Side) -> String {
    let arrow = if s.kind.contains('W') { "<-" } else { "->" };
    let mut line = format!(
        "  {label:<6} step {:<8} vcpu{:<3} {:<2} [{:#x}]:{} {arrow} {:#x}   {:#x} `{}`",
        s.step, s.vcpu, s.kind, s.addr, s.size, s.value, s.rip, s.insn
    );
    if !s.source.is_empty() {
        line.push_str(&format!("  {}", s.source));
    }
    line
}

fn print_group(g: &Group) {
    let what = if g.race { "race" } else { "conflict" };
    let times = if g.count == 1 {
        format!("once, at step {}", g.first_step)
    } else {
        format!("x{} (steps {}..{})", g.count, g.first_step, g.last_step)
    };
    println!("{what} #{} {} {times}", g.id, g.class);
    println!("{}", side_line("first", &g.first));
    println!("{}", side_line("then", &g.second));
}

pub fn races(a: RacesArgs) -> Result<ExitCode> {
    let r = report(&a.trace)?;
    if let Some(path) = &a.dot {
        std::fs::write(path, weft::races::dot(&r, a.all))
            .with_context(|| format!("{}: cannot write the graph", path.display()))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!(
            "{}: {} data race(s), {} other conflict(s) between code locations ({} accesses, {} sync cells)",
            a.trace.display(),
            r.races.len(),
            r.conflicts.len(),
            r.accesses,
            r.sync_cells
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
