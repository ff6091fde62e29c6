//! `weft report`: write a trace's self-contained HTML timeline (docs/report.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;
use weft::report::{self, ReportOptions, DEFAULT_DETAIL_BUDGET};
use weft_trace::TraceReader;

use super::{human_bytes, EXIT_PASS};

/// What the page shows and how it summarises long traces: docs/report.md.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The trace to show
    trace: PathBuf,
    /// Where to write the page [default: the trace's name with .html]
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Most runs, accesses and transactions shown one by one; beyond it the report is
    /// summarised
    #[arg(long, value_name = "N", default_value_t = DEFAULT_DETAIL_BUDGET as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    detail_events: u64,
}

/// TRACE with .html, never the trace itself.
fn default_output(trace: &Path) -> PathBuf {
    let out = trace.with_extension("html");
    if out == trace {
        let mut s = trace.as_os_str().to_owned();
        s.push(".html");
        return PathBuf::from(s);
    }
    out
}

/// Write the report of `trace` to `out`: (bytes, the report). Shared with `weft demo`.
pub fn write_report(
    trace: &Path,
    out: &Path,
    opts: &ReportOptions,
) -> Result<(u64, report::Report)> {
    if out.is_dir() {
        bail!(
            "{}: is a directory; give the report a file name with -o",
            out.display()
        );
    }
    // The accesses the recording left out (pages one vCPU alone had touched) belong in
    // the picture and its races: derive them by replaying.
    let log = super::full_log(trace)?;
    let r = report::build(log.path(), &trace.display().to_string(), opts)?;
    let bytes = report::write(&r, out)?;
    Ok((bytes, r))
}

pub fn report(a: ReportArgs) -> Result<ExitCode> {
    let reader = TraceReader::open(&a.trace)?;
    if let Some(w) = reader.warning() {
        eprintln!("weft: warning: {}: {w}", a.trace.display());
    }
    drop(reader);
    let out = a.output.clone().unwrap_or_else(|| default_output(&a.trace));
    let opts = ReportOptions {
        detail_budget: a.detail_events.min(usize::MAX as u64) as usize,
    };
    let (bytes, r) = write_report(&a.trace, &out, &opts)?;
    let failure = match &r.failure {
        Some(f) => format!(", {} at step {}", f.class, f.step),
        None => String::new(),
    };
    println!(
        "report: {} ({}): {} vCPUs, {} steps, {} data race(s), {} transaction(s){failure}{}",
        out.display(),
        human_bytes(bytes),
        r.meta.vcpus,
        r.meta.steps,
        r.meta.races,
        r.meta.transactions,
        if r.lod.full { "" } else { "; summarised" }
    );
    println!(
        "open it in a browser, e.g. file://{}",
        absolute(&out).display()
    );
    Ok(ExitCode::from(EXIT_PASS))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_output_never_is_the_trace() {
        assert_eq!(
            default_output(Path::new("a/racy.weft")),
            Path::new("a/racy.html")
        );
        assert_eq!(default_output(Path::new("racy")), Path::new("racy.html"));
        assert_eq!(
            default_output(Path::new("x.html")),
            Path::new("x.html.html")
        );
    }
}
