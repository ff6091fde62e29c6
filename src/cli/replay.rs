//! `weft replay`: re-execute a trace and check it event by event.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use weft::codemap::CodeMap;
use weft::debuginfo::SourceMap;
use weft::machine::Paused;
use weft::session;
use weft_trace::{Event, TraceHeader, TraceReader};

use super::record::{end_progress, progress_config};
use super::{verdict_details, verdict_line, EXIT_DIVERGED, EXIT_INPUT};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace to replay
    trace: PathBuf,
    /// Do not echo the guest's console output
    #[arg(short, long)]
    quiet: bool,
    /// Replay up to this step and stop there: show where every vCPU is (source line,
    /// instruction) and what the recording does next
    #[arg(long, value_name = "STEP")]
    goto: Option<u64>,
    /// With --goto: also print every vCPU's registers
    #[arg(long, requires = "goto")]
    regs: bool,
    /// Linux programs: write the files the program created or changed to DIR, each at its
    /// path below DIR
    #[arg(long, value_name = "DIR", conflicts_with_all = ["goto", "gdb"])]
    keep_files: Option<PathBuf>,
    /// Debug the replay in gdb (forwards and backwards; every vCPU is a thread): starts a
    /// gdb stub on a free loopback port and gdb on the guest connected to it
    #[arg(long, conflicts_with_all = ["goto", "regs"])]
    gdb: bool,
    #[command(flatten)]
    session: super::gdb::SessionArgs,
    /// With --gdb: more arguments for gdb (after `--`)
    #[arg(last = true, value_name = "GDB_ARGS", requires = "gdb")]
    gdb_args: Vec<String>,
}

pub fn replay(a: ReplayArgs) -> Result<ExitCode> {
    if a.gdb {
        return super::gdb::replay_in_gdb(&a.trace, &a.session, &a.gdb_args);
    }
    if a.keep_files.is_some() {
        let linux = TraceReader::open(&a.trace)?
            .header()
            .options
            .linux
            .is_some();
        super::record::check_keep_files(a.keep_files.as_deref(), linux)?;
    }
    let mut config = progress_config(!a.quiet);
    config.pause_at = a.goto;
    config.keep_files = a.keep_files.is_some();
    let r = session::replay(&a.trace, config)?;
    end_progress();
    if let Some(w) = &r.warning {
        eprintln!("weft: warning: {}: {w}", a.trace.display());
    }
    if let (Some(p), None) = (&r.paused, &r.divergence) {
        print_paused(&a, &r.header, p, r.matched)?;
        return Ok(ExitCode::from(super::EXIT_PASS));
    }
    if let (Some(step), None) = (a.goto, &r.divergence) {
        eprintln!(
            "replay: the run ended at step {}, before step {step}",
            r.steps
        );
    }
    if let Some(d) = &r.divergence {
        eprintln!("{d}");
        eprintln!("replay: DIVERGED after {} matching events", r.matched);
        return Ok(ExitCode::from(EXIT_DIVERGED));
    }
    match (&r.verdict, &r.recorded_verdict) {
        (Some(v), Some(recorded)) if v != recorded => {
            // The checker compares the End events, so this is not expected; say it anyway.
            eprintln!("{}", verdict_line(v));
            eprintln!("replay: DIVERGED: the recording ends with {recorded}");
            Ok(ExitCode::from(EXIT_DIVERGED))
        }
        (Some(v), Some(_)) => {
            eprintln!("{}", verdict_line(v));
            if let Some(d) = verdict_details(
                v,
                &r.backtraces,
                &r.clues,
                &r.header.guest.elf,
                r.header.options.linux.is_some(),
            ) {
                eprintln!("{d}");
            }
            eprintln!(
                "replay: reproduced {} steps, {} events match the recording",
                r.steps, r.matched
            );
            super::record::save_files(a.keep_files.as_deref(), &r.files)?;
            Ok(super::verdict_code(Some(v)))
        }
        _ => {
            eprintln!(
                "replay: the recording is incomplete; its {} steps ({} events) replayed exactly, \
                 then the trace ends",
                r.steps, r.matched
            );
            Ok(ExitCode::from(EXIT_INPUT))
        }
    }
}

/// Where a `--goto` replay stopped: every vCPU's position, then the recorded events of
/// that step.
fn print_paused(a: &ReplayArgs, h: &TraceHeader, p: &Paused, matched: u64) -> Result<()> {
    let mut code = CodeMap::new(&h.guest.elf);
    let src = SourceMap::new(&h.guest.elf);
    println!(
        "paused before step {} ({} steps and {matched} events replayed exactly)",
        p.step, p.step
    );
    let next: Vec<Event> = TraceReader::open(&a.trace)?
        .events_from(p.step)
        .map_while(Result::ok)
        .skip_while(|e| e.step().is_none_or(|s| s.0 < p.step))
        .take_while(|e| e.step().is_none_or(|s| s.0 == p.step))
        .filter(|e| e.step().is_some())
        .collect();
    for (i, snap) in p.vcpus.iter().enumerate() {
        let Some(s) = snap else {
            println!("  vcpu{i:<3} not running (not started yet, or ended)");
            continue;
        };
        let here = src.describe(s.rip);
        let acts = next
            .iter()
            .any(|e| e.vcpu().is_some_and(|v| v.0 as usize == i));
        println!(
            "  vcpu{i:<3} {:#x} `{}`{}{}",
            s.rip,
            code.disasm(s.rip),
            if here.is_empty() {
                String::new()
            } else {
                format!("  {here}")
            },
            if acts { "   <- next" } else { "" }
        );
        if a.regs {
            for line in super::registers(&s.regs).lines().skip(1) {
                println!("    {line}");
            }
        }
    }
    if !next.is_empty() {
        println!("the recording at step {}:", p.step);
        for e in &next {
            println!("{}", super::inspect::event_line(e, p.step, &mut code));
        }
    }
    Ok(())
}
