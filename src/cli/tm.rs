//! `weft tm`: per-XBEGIN-site report of a trace's transactions and why they aborted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use weft::tmreport;
use weft_trace::TraceReader;

use super::EXIT_PASS;

#[derive(Args, Debug)]
pub struct TmArgs {
    /// The trace to analyse
    trace: PathBuf,
    /// Machine-readable output: one JSON object
    #[arg(long)]
    json: bool,
}

pub fn tm(a: TmArgs) -> Result<ExitCode> {
    let reader = TraceReader::open(&a.trace)?;
    if let Some(w) = reader.warning() {
        eprintln!("weft: warning: {}: {w}", a.trace.display());
    }
    let header = reader.header().clone();
    let mut events = Vec::new();
    for e in reader.into_events() {
        events.push(e?);
    }
    let report = tmreport::analyze(&header, events);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", tmreport::render(&report));
    }
    Ok(ExitCode::from(EXIT_PASS))
}
