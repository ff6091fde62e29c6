//! Level of detail for traces too long to show event by event.
//!
//! A report embeds every event individually while runs, accesses and transactions together
//! stay within the detail budget. Beyond it, the page draws per-bucket counts everywhere
//! and individual events only in *detail windows*: stretches of steps around the failure,
//! each race, the first aborts and marks, and the start of the run. Windows are sized from
//! the trace's density (events per step) so that together they hold about the budget;
//! when they still hold more, the least important ones (start, marks, aborts, then races,
//! never the failure, or the end of a trace without one) are dropped. The page says what was summarised.

use std::path::Path;

use weft_trace::{Event, TraceError, TraceReader};

use super::detail::{Detail, Filter, Locs, Wins};
use super::model::{Counts, Window};
use super::scan::{Scan, ABORT_POINTS};
use crate::races::RaceReport;

/// Marks given a detail window, at most.
const MARK_POINTS: usize = 256;
/// Race groups given detail windows, at most.
const RACE_POINTS: usize = 512;

/// A moment worth showing in full.
struct Point {
    step: u64,
    /// 0 the failure (or the end), 1 a race, 2 an abort, 3 a mark, 4 the start.
    prio: u8,
    why: String,
}

struct Merged {
    from: u64,
    to: u64,
    prio: u8,
    why: Vec<String>,
}

fn points(scan: &Scan, races: &RaceReport, failure: Option<u64>) -> Vec<Point> {
    let mut p = Vec::new();
    // The failure, or else where the trace ends (a pass, or a recording cut short): how
    // the story ends either way.
    let (step, why) = match failure {
        Some(step) => (step, "failure"),
        None => (scan.steps.saturating_sub(1), "end"),
    };
    p.push(Point {
        step,
        prio: 0,
        why: why.into(),
    });
    for g in races.races.iter().take(RACE_POINTS) {
        for step in [g.first.step, g.second.step] {
            p.push(Point {
                step,
                prio: 1,
                why: format!("race #{}", g.id),
            });
        }
    }
    for &step in scan.abort_steps.iter().take(ABORT_POINTS) {
        p.push(Point {
            step,
            prio: 2,
            why: "abort".into(),
        });
    }
    for m in scan.marks.iter().take(MARK_POINTS) {
        p.push(Point {
            step: m.step,
            prio: 3,
            why: "mark".into(),
        });
    }
    p.push(Point {
        step: 0,
        prio: 4,
        why: "start".into(),
    });
    p
}

/// Steps either side of a point: the budget spread over the points at the trace's density.
fn half_width(scan: &Scan, points: usize, budget: usize) -> u64 {
    let items = (scan.total.accesses + scan.total.runs + scan.total.txs).max(1);
    let per_step = items as f64 / scan.steps.max(1) as f64;
    let steps_affordable = budget as f64 * 0.8 / per_step.max(1e-9);
    ((steps_affordable / (2.0 * points.max(1) as f64)) as u64).clamp(16, 4096)
}

fn merge(points: Vec<Point>, half: u64) -> Vec<Merged> {
    let mut spans: Vec<Merged> = points
        .into_iter()
        .map(|p| {
            // The failure is the end of the story: show what led to it.
            let (from, to) = if p.prio == 0 {
                (p.step.saturating_sub(2 * half), p.step.saturating_add(2))
            } else {
                (p.step.saturating_sub(half), p.step.saturating_add(half))
            };
            Merged {
                from,
                to,
                prio: p.prio,
                why: vec![p.why],
            }
        })
        .collect();
    spans.sort_by_key(|m| m.from);
    let mut out: Vec<Merged> = Vec::new();
    for m in spans {
        match out.last_mut() {
            Some(last) if m.from <= last.to.saturating_add(1) => {
                last.to = last.to.max(m.to);
                last.prio = last.prio.min(m.prio);
                for w in m.why {
                    if !last.why.contains(&w) {
                        last.why.push(w);
                    }
                }
            }
            _ => out.push(m),
        }
    }
    out
}

/// What the windows pass leaves: individual events and the windows they belong to.
pub(super) struct Windowed {
    pub detail: Detail,
    pub windows: Vec<Window>,
    /// Windows planned but dropped for the budget.
    pub dropped: usize,
}

/// Choose the windows, read the trace once more keeping what falls in them, and keep the
/// most important windows that fit the budget.
pub(super) fn windows_pass(
    path: &Path,
    scan: &Scan,
    races: &RaceReport,
    failure: Option<u64>,
    budget: usize,
    locs: &mut Locs,
) -> Result<Windowed, TraceError> {
    let pts = points(scan, races, failure);
    let half = half_width(scan, pts.len(), budget);
    let merged = merge(pts, half);
    let ranges: Vec<(u64, u64)> = merged.iter().map(|m| (m.from, m.to)).collect();
    let mut detail = Detail::new(Filter::Windows(ranges), scan.vcpus);
    for e in TraceReader::open(path)?.into_events() {
        let e: Event = e?;
        detail.observe(&e, locs);
    }
    detail.finish(scan.steps, &scan.last_run_starts());

    // Items per window (an item spanning windows counts in its first).
    let mut load = vec![0usize; merged.len()];
    let first = |w: &Wins| w.map(|(lo, _)| lo as usize);
    for w in detail
        .runs
        .iter()
        .map(|x| &x.1)
        .chain(detail.accesses.iter().map(|x| &x.1))
        .chain(detail.txs.iter().map(|x| &x.1))
    {
        if let Some(i) = first(w) {
            load[i] += 1;
        }
    }
    let mut order: Vec<usize> = (0..merged.len()).collect();
    order.sort_by_key(|&i| (merged[i].prio, merged[i].from));
    let mut keep = vec![false; merged.len()];
    let mut used = 0usize;
    for (n, &i) in order.iter().enumerate() {
        if n == 0 || used + load[i] <= budget {
            keep[i] = true;
            used += load[i];
        }
    }
    let kept = |w: &Wins| match w {
        None => true,
        Some((lo, hi)) => (*lo..=*hi).any(|i| keep[i as usize]),
    };
    detail.runs.retain(|x| kept(&x.1));
    detail.accesses.retain(|x| kept(&x.1));
    detail.txs.retain(|x| kept(&x.1));
    let dropped = keep.iter().filter(|k| !**k).count();
    let windows = merged
        .into_iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(m, _)| Window {
            from: m.from,
            to: m.to.min(scan.steps),
            why: m.why,
        })
        .collect();
    Ok(Windowed {
        detail,
        windows,
        dropped,
    })
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", group(n), if n == 1 { one } else { many })
}

/// 1234567 -> "1,234,567".
pub(super) fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The sentence the page shows about what it summarised.
pub(super) fn note(
    full: bool,
    shown: &Counts,
    total: &Counts,
    steps: u64,
    bucket_steps: u64,
    windows: &[Window],
    dropped: usize,
) -> String {
    let totals = format!(
        "{}, {} and {} over {}",
        plural(total.accesses, "shared access", "shared accesses"),
        plural(total.runs, "run", "runs"),
        plural(total.txs, "transaction", "transactions"),
        plural(steps, "step", "steps"),
    );
    if full {
        return format!("Everything is shown individually: {totals}.");
    }
    let mut why: Vec<&str> = Vec::new();
    for w in windows {
        for r in &w.why {
            let k = if r.starts_with("race") { "races" } else { r };
            if !why.contains(&k) {
                why.push(k);
            }
        }
    }
    let mut s = format!(
        "Summarised: the trace has {totals}. Shown individually: {} of the accesses, {} of \
         the runs and {} of the transactions, in {} (shaded on the step axis) around: {}",
        group(shown.accesses),
        group(shown.runs),
        group(shown.txs),
        plural(windows.len() as u64, "detail window", "detail windows"),
        why.join(", "),
    );
    if total.aborts as usize > ABORT_POINTS {
        s.push_str(&format!(
            " (windows around the first {ABORT_POINTS} of {} aborts; the first {} aborted \
             transactions are drawn wherever they are)",
            group(total.aborts),
            group(shown.txs.min(total.aborts))
        ));
    }
    if dropped > 0 {
        s.push_str(&format!(
            "; {} more were planned but did not fit the detail budget",
            plural(dropped as u64, "window", "windows")
        ));
    }
    s.push_str(&format!(
        ". Everywhere else each lane shows per-bucket counts (1 bucket = {}): how much of \
         the bucket the vCPU ran, and how many reads, writes and RMWs it made. Zoom into a \
         shaded window to see single events.",
        plural(bucket_steps, "step", "steps")
    ));
    if total.console > shown.console || total.marks > shown.marks {
        s.push_str(&format!(
            " Console: {} of {} bytes kept; marks: {} of {}.",
            group(shown.console),
            group(total.console),
            group(shown.marks),
            group(total.marks)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_points_merge_and_keep_every_reason() {
        let p = |step, prio, why: &str| Point {
            step,
            prio,
            why: why.into(),
        };
        let m = merge(
            vec![p(100, 2, "abort"), p(110, 1, "race #1"), p(1000, 3, "mark")],
            16,
        );
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].from, m[0].to, m[0].prio), (84, 126, 1));
        assert_eq!(m[0].why, vec!["abort", "race #1"]);
        assert_eq!((m[1].from, m[1].to), (984, 1016));
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(10_000_000), "10,000,000");
    }
}
