//! `weft tm`: what the transactions of a recorded run did, per XBEGIN site: how many
//! started, committed and aborted and why, which accesses (at which sites, in or out of a
//! transaction) aborted them, and whether each abort was followed by a retry or by the
//! fallback path.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_trace::{AbortCause, Event, TraceHeader};

use crate::codemap::CodeMap;
use crate::debuginfo::SourceMap;

/// The report for one trace.
#[derive(Debug, Serialize)]
pub struct TmReport {
    /// Outermost transactions begun, committed and aborted.
    pub transactions: u64,
    pub committed: u64,
    pub aborted: u64,
    /// One entry per XBEGIN site of an outermost transaction, by address.
    pub sites: Vec<Site>,
}

/// An instruction: address, disassembly, and `function+offset (file:line)` when known.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub rip: u64,
    pub insn: String,
    pub source: String,
}

/// One XBEGIN site.
#[derive(Debug, Serialize)]
pub struct Site {
    pub xbegin: Place,
    pub started: u64,
    pub committed: u64,
    pub aborted: u64,
    /// Aborts by cause, e.g. "conflict", "explicit 0xff", "capacity (write set)".
    pub causes: BTreeMap<String, u64>,
    /// Aborts after which the vCPU's next transactional step was XBEGIN at this site again.
    pub retried: u64,
    /// Aborts after which the vCPU executed a locked instruction (took a lock: the fallback
    /// path) before its next XBEGIN.
    pub fallback: u64,
    /// Conflicts that aborted this site's transactions, most frequent first.
    pub conflicts: Vec<Conflict>,
}

/// A kind of conflict: the victim's access (inside this site's transaction) and the access
/// of another vCPU that aborted it.
#[derive(Debug, Serialize)]
pub struct Conflict {
    pub count: u64,
    /// RaW, WaR or WaW: the victim's access, then the other's.
    pub class: String,
    /// The 64-byte line of the first such conflict.
    pub line: u64,
    pub victim: Place,
    pub by: Place,
    /// The XBEGIN of the transaction the other access was in, or `None` if it was not in one.
    pub by_site: Option<u64>,
    /// The vCPUs that made the other access.
    pub by_vcpus: Vec<u32>,
}

fn cause_key(c: &AbortCause) -> String {
    match c {
        AbortCause::Explicit { code } => format!("explicit {code:#x}"),
        AbortCause::Capacity { write, .. } => {
            format!("capacity ({} set)", if *write { "write" } else { "read" })
        }
        AbortCause::Instruction { name } => format!("instruction {name}"),
        AbortCause::Exception { what } => format!("exception {what}"),
        other => other.class().to_string(),
    }
}

/// A kind of conflict while counting: (class, victim rip, other rip, other's site).
type ConflictKey = (String, u64, u64, Option<u64>);

#[derive(Default)]
struct SiteAcc {
    started: u64,
    committed: u64,
    aborted: u64,
    causes: BTreeMap<String, u64>,
    retried: u64,
    fallback: u64,
    /// -> (count, first line, the other vCPUs)
    conflicts: BTreeMap<ConflictKey, (u64, u64, Vec<u32>)>,
}

/// Analyse the events of a trace.
pub fn analyze(header: &TraceHeader, events: impl IntoIterator<Item = Event>) -> TmReport {
    let n = header.options.vcpus as usize;
    let mut sites: BTreeMap<u64, SiteAcc> = BTreeMap::new();
    // The outermost XBEGIN each vCPU is inside, and the site of its latest abort not yet
    // followed by a retry or a fallback.
    let mut inside: Vec<Option<u64>> = vec![None; n];
    let mut after_abort: Vec<Option<u64>> = vec![None; n];
    let (mut total, mut committed, mut aborted) = (0, 0, 0);
    for e in events {
        match e {
            Event::TxBegin {
                vcpu,
                rip,
                depth: 1,
                ..
            } => {
                let v = vcpu.0 as usize;
                total += 1;
                sites.entry(rip).or_default().started += 1;
                if let Some(site) = after_abort.get_mut(v).and_then(Option::take) {
                    let s = sites.entry(site).or_default();
                    if site == rip {
                        s.retried += 1;
                    } else {
                        s.fallback += 1;
                    }
                }
                if let Some(i) = inside.get_mut(v) {
                    *i = Some(rip);
                }
            }
            Event::TxCommit {
                vcpu, begin_rip, ..
            } => {
                committed += 1;
                sites.entry(begin_rip).or_default().committed += 1;
                if let Some(i) = inside.get_mut(vcpu.0 as usize) {
                    *i = None;
                }
            }
            Event::TxAbort {
                vcpu,
                rip,
                begin_rip,
                cause,
                ..
            } => {
                aborted += 1;
                let v = vcpu.0 as usize;
                if let AbortCause::Conflict {
                    by,
                    by_rip,
                    line,
                    class,
                } = &cause
                {
                    let by_site = inside.get(by.0 as usize).copied().flatten();
                    let key = (class.to_string(), rip, *by_rip, by_site);
                    let s = sites.entry(begin_rip).or_default();
                    let c = s.conflicts.entry(key).or_insert((0, *line, Vec::new()));
                    c.0 += 1;
                    if !c.2.contains(&by.0) {
                        c.2.push(by.0);
                        c.2.sort_unstable();
                    }
                }
                let s = sites.entry(begin_rip).or_default();
                s.aborted += 1;
                *s.causes.entry(cause_key(&cause)).or_default() += 1;
                if let Some(i) = inside.get_mut(v) {
                    *i = None;
                }
                if let Some(a) = after_abort.get_mut(v) {
                    *a = Some(begin_rip);
                }
            }
            Event::Access { vcpu, kind, .. } if kind.is_atomic() => {
                if let Some(site) = after_abort.get_mut(vcpu.0 as usize).and_then(Option::take) {
                    sites.entry(site).or_default().fallback += 1;
                }
            }
            _ => {}
        }
    }
    let mut code = CodeMap::new(&header.guest.elf);
    let src = SourceMap::new(&header.guest.elf);
    let mut place = |rip: u64| Place {
        rip,
        insn: code.disasm(rip).to_string(),
        source: src.describe(rip),
    };
    let sites = sites
        .into_iter()
        .map(|(rip, a)| {
            let mut conflicts: Vec<Conflict> = a
                .conflicts
                .into_iter()
                .map(
                    |((class, victim, by, by_site), (count, line, by_vcpus))| Conflict {
                        count,
                        class,
                        line,
                        victim: place(victim),
                        by: place(by),
                        by_site,
                        by_vcpus,
                    },
                )
                .collect();
            conflicts.sort_by_key(|c| std::cmp::Reverse(c.count));
            Site {
                xbegin: place(rip),
                started: a.started,
                committed: a.committed,
                aborted: a.aborted,
                causes: a.causes,
                retried: a.retried,
                fallback: a.fallback,
                conflicts,
            }
        })
        .collect();
    TmReport {
        transactions: total,
        committed,
        aborted,
        sites,
    }
}

fn show(p: &Place) -> String {
    let mut s = format!("{:#x}", p.rip);
    if !p.insn.is_empty() {
        s.push_str(&format!(" `{}`", p.insn));
    }
    if !p.source.is_empty() {
        s.push_str(&format!(" in {}", p.source));
    }
    s
}

/// The report as text for people.
pub fn render(r: &TmReport) -> String {
    let mut out = String::new();
    let line = |out: &mut String, s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    if r.transactions == 0 {
        line(&mut out, "no transactions in this trace".into());
        return out;
    }
    line(
        &mut out,
        format!(
            "{} transactions: {} committed, {} aborted, at {} XBEGIN site(s)",
            r.transactions,
            r.committed,
            r.aborted,
            r.sites.len()
        ),
    );
    for s in &r.sites {
        out.push('\n');
        line(&mut out, format!("XBEGIN {}", show(&s.xbegin)));
        let causes: Vec<String> = s.causes.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        line(
            &mut out,
            format!(
                "  started {}, committed {}, aborted {}{}",
                s.started,
                s.committed,
                s.aborted,
                if causes.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", causes.join(", "))
                }
            ),
        );
        if s.aborted > 0 {
            line(
                &mut out,
                format!(
                    "  after an abort: retried {}, fallback path {} (locked instruction before the next XBEGIN)",
                    s.retried, s.fallback
                ),
            );
        }
        for c in &s.conflicts {
            let vcpus: Vec<String> = c.by_vcpus.iter().map(|v| format!("vcpu{v}")).collect();
            let by_site = match c.by_site {
                Some(b) => format!("inside the transaction of XBEGIN {b:#x}"),
                None => "outside any transaction".to_string(),
            };
            line(
                &mut out,
                format!(
                    "  conflict {} x{} on line {:#x}: aborted by {} at {}, {}",
                    c.class,
                    c.count,
                    c.line,
                    vcpus.join(","),
                    show(&c.by),
                    by_site
                ),
            );
            line(
                &mut out,
                format!("    the transaction's access: {}", show(&c.victim)),
            );
        }
    }
    out
}
