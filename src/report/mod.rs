//! `weft report`: one self-contained HTML file that shows a trace as a picture: a lane per
//! vCPU along the step axis (when each ran, where it was switched away), shared accesses
//! coloured by kind, conflicting pairs as arcs (data races emphasised), transactions as
//! spans ending in commit or abort, marks, console output at its step, and the failure
//! pinned where it happened; with zoom, filters, lists that jump to races and aborts, and
//! the command that replays to any step.
//!
//! The analyses are the existing ones: [`crate::races`] for the pairs, [`crate::tmreport`]
//! for the per-site TM report, [`crate::debuginfo`] and [`crate::codemap`] for source
//! lines and disassembly. This module only reads the trace into a [`model::Report`]
//! (streaming, a few passes, memory bounded by the detail budget rather than the trace)
//! and embeds it as JSON in a hand-written page (page.html, page.css, data.js, view.js,
//! page.js, all compiled in). Long traces are summarised per bucket of steps, with full
//! detail kept around the moments that matter: see [`lod`].

mod detail;
mod lod;
pub mod model;
mod scan;

use std::io::Write;
use std::path::Path;

use weft_trace::{Event, TraceError, TraceReader, Verdict, CRASH_REG_NAMES};

use crate::races::{self, Group};
use crate::tmreport;
use detail::{Detail, Filter, Locs};
pub use model::Report;
use model::{Counts, Failure, Lod, Meta, RaceArc, Side, VerdictInfo, MODEL_VERSION};
use scan::Scan;

/// How much a report shows individually.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Runs, accesses and transactions shown one by one, at most; beyond it the report is
    /// summarised (see [`lod`]). The default keeps a 10 M-event trace's page under 20 MB.
    pub detail_budget: usize,
}

impl Default for ReportOptions {
    fn default() -> ReportOptions {
        ReportOptions {
            detail_budget: DEFAULT_DETAIL_BUDGET,
        }
    }
}

/// The default detail budget: about 35 bytes of page per access, so at most ~7 MB.
pub const DEFAULT_DETAIL_BUDGET: usize = 200_000;

/// Ordered conflicts embedded at most (races are always all there).
const CONFLICTS: usize = 2000;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{path}: cannot write the report: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("{0:#}")]
    Analysis(anyhow::Error),
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Stream every event of `path` into `f`; a read error ends the stream and is returned.
fn with_events<T>(
    path: &Path,
    f: impl FnOnce(&mut dyn Iterator<Item = Event>) -> T,
) -> Result<T, TraceError> {
    let mut err = None;
    let out = {
        let mut it = TraceReader::open(path)?
            .into_events()
            .map_while(|e| e.map_err(|x| err = Some(x)).ok());
        f(&mut it)
    };
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Build the report of the trace at `path`; `shown_as` is how the page names the trace in
/// the commands it suggests (the path as the user typed it).
pub fn build(path: &Path, shown_as: &str, opts: &ReportOptions) -> Result<Report, ReportError> {
    let reader = TraceReader::open(path)?;
    let header = reader.header().clone();
    let reader_warning = reader.warning().map(str::to_string);
    let complete = reader.is_complete();
    let estimate = reader
        .index()
        .iter()
        .map(|c| c.last_step)
        .max()
        .unwrap_or(0)
        + 1;
    drop(reader);
    let vcpus = crate::session::vcpus_in(path, &header)? as usize;
    let budget = opts.detail_budget;

    // Passes 1 and 2: the race analysis, with the scan watching the second pass's events
    // go by; pass 3: the TM report (only when there are transactions).
    let mut locs = Locs::default();
    let mut scan = Scan::new(vcpus, estimate, budget);
    let race_report = races::report_file_with(path, |e| scan.observe(e, &mut locs))
        .map_err(ReportError::Analysis)?;
    scan.finish();
    let tm = if scan.total.txs > 0 {
        with_events(path, |it| tmreport::analyze(&header, it))?
    } else {
        tmreport::analyze(&header, std::iter::empty())
    };

    let failure = failure(&scan, &mut locs, &header.guest.elf);
    let failure_step = failure.as_ref().map(|f| f.step);
    let full = !scan.detail.overflowed;
    let (detail, windows, dropped) = if full {
        let d = std::mem::replace(&mut scan.detail, Detail::new(Filter::All { budget: 0 }, 0));
        (d, Vec::new(), 0)
    } else {
        // Pass 4: individual events inside the detail windows.
        let w = lod::windows_pass(path, &scan, &race_report, failure_step, budget, &mut locs)?;
        (w.detail, w.windows, w.dropped)
    };

    let races: Vec<RaceArc> = race_report
        .races
        .iter()
        .chain(race_report.conflicts.iter().take(CONFLICTS))
        .map(|g| arc(g, &mut locs))
        .collect();
    let accesses: Vec<_> = detail.accesses.into_iter().map(|(a, _)| a).collect();
    let runs: Vec<_> = detail.runs.into_iter().map(|(r, _)| r).collect();
    let txs: Vec<_> = detail.txs.into_iter().map(|(t, _)| t).collect();
    let mut total = scan.total;
    total.console = scan.console_bytes;
    let shown = Counts {
        accesses: accesses.len() as u64,
        runs: runs.len() as u64,
        txs: txs.len() as u64,
        aborts: txs.iter().filter(|t| t.outcome == "abort").count() as u64,
        marks: scan.marks.len() as u64,
        console: scan.console.iter().map(|n| n.text.len() as u64).sum(),
    };
    let note = lod::note(
        full,
        &shown,
        &total,
        scan.steps,
        scan.bucket_steps,
        &windows,
        dropped,
    );
    let verdict = scan.verdict.as_ref().map(|(_, v)| VerdictInfo {
        pass: v.is_pass(),
        class: v.class().to_string(),
        text: v.to_string(),
    });
    let mut buckets = std::mem::take(&mut scan.buckets);
    // The last bucket may be shorter; nothing beyond the trace's steps.
    buckets.n = buckets
        .n
        .min(scan.steps.div_ceil(scan.bucket_steps).max(1) as usize);
    for grid in [
        &mut buckets.run,
        &mut buckets.r,
        &mut buckets.w,
        &mut buckets.rmw,
        &mut buckets.tx,
        &mut buckets.ab,
    ] {
        for row in grid.iter_mut() {
            row.truncate(buckets.n);
        }
    }
    Ok(Report {
        version: MODEL_VERSION,
        meta: Meta {
            trace: shown_as.to_string(),
            guest: header.guest.name.clone(),
            vcpus: vcpus as u32,
            steps: scan.steps,
            strategy: header.strategy.clone(),
            weft_version: header.weft_version.clone(),
            report_by: env!("CARGO_PKG_VERSION").to_string(),
            events: scan.events,
            accesses: total.accesses,
            switches: scan.switches,
            transactions: total.txs,
            races: race_report.races.len() as u64,
            conflicts: race_report.conflicts.len() as u64,
            complete,
            reader_warning,
        },
        verdict,
        failure,
        lod: Lod {
            full,
            bucket_steps: scan.bucket_steps,
            windows,
            shown,
            total,
            note,
        },
        locs: locs.resolve(&header.guest.elf),
        runs,
        ends: std::mem::take(&mut scan.ends),
        accesses,
        txs,
        races,
        marks: std::mem::take(&mut scan.marks),
        console: std::mem::take(&mut scan.console),
        warnings: std::mem::take(&mut scan.warnings),
        tm,
        buckets,
    })
}

fn side(s: &races::Side, locs: &mut Locs) -> Side {
    Side {
        step: s.step,
        vcpu: s.vcpu,
        kind: s.kind,
        addr: model::Num(s.addr),
        size: s.size,
        value: model::Num(s.value),
        loc: locs.id(s.rip),
    }
}

fn arc(g: &Group, locs: &mut Locs) -> RaceArc {
    RaceArc {
        id: g.id,
        race: g.race,
        class: g.class.clone(),
        classes: g.classes.clone(),
        addr_start: model::Num(g.addr_start),
        addr_end: model::Num(g.addr_end),
        object: g.object.clone(),
        count: g.count,
        first_step: g.first_step,
        last_step: g.last_step,
        a: side(&g.first, locs),
        b: side(&g.second, locs),
    }
}

/// Where the run failed: the failing vCPU's last step (assertion, crash, exit status), or
/// the end of the run (deadlock, budget).
fn failure(scan: &Scan, locs: &mut Locs, elf: &[u8]) -> Option<Failure> {
    let (end, v) = scan.verdict.as_ref()?;
    let last_step_of = |vcpu: u32| {
        scan.last_run
            .get(vcpu as usize)
            .copied()
            .flatten()
            .map(|(start, len)| start + len.saturating_sub(1))
            .unwrap_or(end.saturating_sub(1))
    };
    let mut f = Failure {
        step: *end,
        vcpu: None,
        class: v.class().to_string(),
        text: v.to_string(),
        loc: None,
        spinning: Vec::new(),
        regs: Vec::new(),
        // The registers are a row of their own.
        details: crate::failure::stacks(v, &scan.stacks, &crate::debuginfo::SourceMap::new(elf))
            .unwrap_or_default(),
    };
    match v {
        Verdict::Pass => return None,
        Verdict::ExitStatus { vcpu, .. } => {
            f.vcpu = Some(vcpu.0);
            f.step = last_step_of(vcpu.0);
        }
        Verdict::Assertion { vcpu, rip, .. } => {
            f.vcpu = Some(vcpu.0);
            f.step = last_step_of(vcpu.0);
            f.loc = Some(locs.id(*rip));
        }
        Verdict::Crash(c) => {
            f.vcpu = Some(c.vcpu.0);
            f.step = last_step_of(c.vcpu.0);
            f.loc = Some(locs.id(c.rip));
            f.regs = CRASH_REG_NAMES
                .iter()
                .zip(c.regs.iter())
                .map(|(n, r)| format!("{n}={r:#x}"))
                .collect();
        }
        Verdict::Deadlock { vcpus } => {
            f.spinning = vcpus.iter().map(|(v, rip)| (v.0, locs.id(*rip))).collect();
        }
        Verdict::Budget { .. } => {}
        Verdict::Signal { vcpu, .. } => {
            f.vcpu = Some(vcpu.0);
            f.step = last_step_of(vcpu.0);
        }
    }
    Some(f)
}

const PAGE: &str = include_str!("page.html");
const STYLE: &str = include_str!("page.css");
const DATA_JS: &str = include_str!("data.js");
const VIEW_JS: &str = include_str!("view.js");
const PAGE_JS: &str = include_str!("page.js");

/// Text for an HTML element or attribute.
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON that can sit inside a `<script>` element: no `<` at all (so neither `</script>`
/// nor `<!--` can end or change it); `\u003c` means the same to JSON.parse.
pub fn script_safe_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

/// Replace each `{{NAME}}` of `template` once, without looking inside the values.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|v| v.1.len()).sum::<usize>());
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}").and_then(|j| {
            let name = &after[..j];
            values.iter().find(|v| v.0 == name).map(|v| (j, v.1))
        }) {
            Some((j, value)) => {
                out.push_str(value);
                rest = &after[j + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The report as one HTML page.
pub fn render(report: &Report) -> Result<String, ReportError> {
    let json = script_safe_json(&serde_json::to_string(report)?);
    let verdict = report
        .verdict
        .as_ref()
        .map(|v| v.class.clone())
        .unwrap_or_else(|| "incomplete".into());
    let title = escape_html(&format!("weft report: {} ({verdict})", report.meta.guest));
    Ok(fill(
        PAGE,
        &[
            ("TITLE", &title),
            ("STYLE", STYLE),
            ("DATA", &json),
            ("DATA_JS", DATA_JS),
            ("VIEW_JS", VIEW_JS),
            ("PAGE_JS", PAGE_JS),
        ],
    ))
}

/// Render `report` into the file `out`; returns the bytes written.
pub fn write(report: &Report, out: &Path) -> Result<u64, ReportError> {
    let html = render(report)?;
    let err = |error| ReportError::Write {
        path: out.display().to_string(),
        error,
    };
    let mut f = std::fs::File::create(out).map_err(err)?;
    f.write_all(html.as_bytes()).map_err(err)?;
    f.flush().map_err(err)?;
    Ok(html.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let s = script_safe_json(&serde_json::to_string("</script><!--x").unwrap());
        assert!(!s.contains('<'), "{s}");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "</script><!--x");
    }

    #[test]
    fn placeholders_are_filled_once_and_values_are_not_rescanned() {
        let out = fill(
            "a {{X}} b {{Y}} {{unknown}} c",
            &[("X", "{{Y}}"), ("Y", "y")],
        );
        assert_eq!(out, "a {{Y}} b y {{unknown}} c");
    }

    #[test]
    fn the_template_has_every_placeholder() {
        for name in ["TITLE", "STYLE", "DATA", "DATA_JS", "VIEW_JS", "PAGE_JS"] {
            assert!(PAGE.contains(&format!("{{{{{name}}}}}")), "{name}");
        }
    }
}
