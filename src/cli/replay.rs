//! `weft replay`: re-execute a trace and check it event by event.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use weft::session;

use super::record::{end_progress, progress_config};
use super::{crash_details, verdict_line, EXIT_FAILURE, EXIT_INPUT};

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The trace to replay
    trace: PathBuf,
    /// Do not echo the guest's console output
    #[arg(short, long)]
    quiet: bool,
}

pub fn replay(a: ReplayArgs) -> Result<ExitCode> {
    let r = session::replay(&a.trace, progress_config(!a.quiet))?;
    end_progress();
    if let Some(w) = &r.warning {
        eprintln!("weft: warning: {}: {w}", a.trace.display());
    }
    if let Some(d) = &r.divergence {
        eprintln!("{d}");
        eprintln!("replay: DIVERGED after {} matching events", r.matched);
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    match (&r.verdict, &r.recorded_verdict) {
        (Some(v), Some(_)) => {
            eprintln!("{}", verdict_line(v));
            if let Some(d) = crash_details(v) {
                eprintln!("{d}");
            }
            eprintln!(
                "replay: reproduced {} steps, {} events match the recording",
                r.steps, r.matched
            );
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
