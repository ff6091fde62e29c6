//! `weft record` and `weft run`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use weft::machine::{RunConfig, RunOutcome};
use weft::session;

use super::{
    check_output, human_bytes, verdict_code, verdict_details, verdict_line, GuestArgs, MachineArgs,
};

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Trace file to write (default: GUEST-NAME.weft, never overwriting an existing file)
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    machine: MachineArgs,
    /// Do not echo the guest's console output
    #[arg(short, long)]
    quiet: bool,
    /// Stop recording (exit code 2) before the trace grows past this size (e.g. 500M);
    /// what was written stays a readable trace
    #[arg(long, value_name = "SIZE", value_parser = super::parse_size)]
    max_trace_bytes: Option<u64>,
    /// Linux programs: write the files the program created or changed to DIR, each at its
    /// path below DIR (weft never changes the host's files)
    #[arg(long, value_name = "DIR")]
    keep_files: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    machine: MachineArgs,
    /// Do not echo the guest's console output
    #[arg(short, long)]
    quiet: bool,
    /// Linux programs: write the files the program created or changed to DIR, each at its
    /// path below DIR (weft never changes the host's files)
    #[arg(long, value_name = "DIR")]
    keep_files: Option<PathBuf>,
}

/// Check `--keep-files` before the run: Linux programs only, and DIR must be usable.
pub(super) fn check_keep_files(dir: Option<&Path>, linux: bool) -> Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    if !linux {
        bail!("--keep-files is for Linux programs (a board guest writes no files)");
    }
    if dir.exists() && !dir.is_dir() {
        bail!("{}: not a directory (--keep-files)", dir.display());
    }
    Ok(())
}

/// Write the files a run left (`RunOutcome::files`) below `dir`, at their paths (`..`
/// and `.` dropped, so nothing lands outside `dir`).
pub(super) fn save_files(dir: Option<&Path>, files: &[(String, Vec<u8>)]) -> Result<()> {
    let Some(dir) = dir else {
        return Ok(());
    };
    for (path, bytes) in files {
        let rel: PathBuf = Path::new(path)
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(n) => Some(n),
                _ => None,
            })
            .collect();
        let to = dir.join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("{}: cannot create (--keep-files)", parent.display()))?;
        }
        std::fs::write(&to, bytes)
            .with_context(|| format!("{}: cannot write (--keep-files)", to.display()))?;
    }
    eprintln!(
        "files: {} the program wrote, in {}",
        files.len(),
        dir.display()
    );
    Ok(())
}

/// Progress on stderr every 2^20 steps, only when stderr is a terminal.
pub fn progress_config(echo_console: bool) -> RunConfig {
    let progress: Option<weft::machine::ProgressFn> = if std::io::stderr().is_terminal() {
        let start = Instant::now();
        Some(Box::new(move |steps| {
            eprint!(
                "\r\x1b[2K[weft] {:>12} steps, {:.1}s",
                steps,
                start.elapsed().as_secs_f64()
            );
        }))
    } else {
        None
    };
    RunConfig {
        echo_console,
        progress,
        ..RunConfig::default()
    }
}

/// Exit code after Ctrl-C (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// A flag that the first Ctrl-C sets (the recording then stops at its next scheduling
/// point and finishes the trace); a second Ctrl-C ends weft at once.
fn ctrl_c() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::SIGINT;
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register_conditional_shutdown(
        SIGINT,
        EXIT_INTERRUPTED as i32,
        flag.clone(),
    )?;
    signal_hook::flag::register(SIGINT, flag.clone())?;
    Ok(flag)
}

/// Clear a progress line if one was drawn.
pub fn end_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[2K");
    }
}

fn report(outcome: &RunOutcome, elf: &[u8], linux: bool) {
    if let Some(v) = &outcome.verdict {
        eprintln!("{}", verdict_line(v));
        if let Some(d) = verdict_details(v, &outcome.backtraces, &outcome.clues, elf, linux) {
            eprintln!("{d}");
        }
    }
    let s = &outcome.stats;
    // A Linux guest's vCPUs are the threads it made; a board guest's are all there.
    let (n, what) = if linux {
        (s.points.iter().filter(|&&p| p > 0).count(), "threads")
    } else {
        (s.points.len(), "vCPUs")
    };
    eprintln!(
        "steps: {} on {n} {what}, {} context switches",
        s.steps, s.switches
    );
}

pub fn record(a: RecordArgs) -> Result<ExitCode> {
    let (name, elf, opts) = a.guest.load(&a.machine)?;
    let out = a.output.clone().unwrap_or_else(|| a.guest.default_trace());
    check_output(&out)?;
    let strategy = a.machine.strategy();
    check_keep_files(a.keep_files.as_deref(), opts.linux.is_some())?;
    let mut config = progress_config(!a.quiet);
    config.trace_limit = a.max_trace_bytes;
    config.interrupt = Some(ctrl_c()?);
    config.keep_files = a.keep_files.is_some();
    let rec = session::record(&name, &elf, &opts, &strategy, &out, config);
    end_progress();
    let rec = rec?;
    if rec.outcome.interrupted {
        eprintln!(
            "interrupted (Ctrl-C) at step {}: the trace is complete up to there",
            rec.outcome.stats.steps
        );
        eprintln!(
            "trace: {} ({} events, {}; strategy {strategy})",
            out.display(),
            rec.events,
            human_bytes(rec.bytes)
        );
        return Ok(ExitCode::from(EXIT_INTERRUPTED));
    }
    report(&rec.outcome, &elf, opts.linux.is_some());
    eprintln!(
        "trace: {} ({} events, {}; strategy {strategy})",
        out.display(),
        rec.events,
        human_bytes(rec.bytes)
    );
    save_files(a.keep_files.as_deref(), &rec.outcome.files)?;
    Ok(verdict_code(rec.outcome.verdict.as_ref()))
}

pub fn run(a: RunArgs) -> Result<ExitCode> {
    let (name, elf, opts) = a.guest.load(&a.machine)?;
    check_keep_files(a.keep_files.as_deref(), opts.linux.is_some())?;
    let mut config = progress_config(!a.quiet);
    config.keep_files = a.keep_files.is_some();
    let outcome = session::run(&name, &elf, &opts, &a.machine.strategy(), config)?;
    end_progress();
    report(&outcome, &elf, opts.linux.is_some());
    save_files(a.keep_files.as_deref(), &outcome.files)?;
    Ok(verdict_code(outcome.verdict.as_ref()))
}
