//! Individual events for the report: [`Detail`] keeps runs, accesses (a locked
//! instruction's two halves as one RMW) and transactions (paired begin and end), either
//! all of them while they fit the detail budget, or only those inside the detail windows
//! of a summarised report; [`Locs`] numbers the code locations they refer to.

use std::collections::BTreeMap;

use weft_trace::{AbortCause, AccessKind, Event};

use super::model::{AccessItem, Loc, RunItem, TxItem, KIND_R, KIND_RMW, KIND_W};
use super::scan::ABORT_POINTS;
use crate::codemap::CodeMap;
use crate::debuginfo::SourceMap;

/// Code locations by RIP, numbered in order of first use; text filled in at the end.
#[derive(Default)]
pub(super) struct Locs {
    index: BTreeMap<u64, usize>,
    rips: Vec<u64>,
}

impl Locs {
    pub fn id(&mut self, rip: u64) -> usize {
        let next = self.rips.len();
        *self.index.entry(rip).or_insert_with(|| {
            self.rips.push(rip);
            next
        })
    }

    /// Disassembly and source line of each location, from the guest image.
    pub fn resolve(&self, elf: &[u8]) -> Vec<Loc> {
        let mut code = CodeMap::new(elf);
        let src = SourceMap::new(elf);
        self.rips
            .iter()
            .map(|&rip| Loc {
                rip,
                insn: code.disasm(rip).to_string(),
                source: src.describe(rip),
            })
            .collect()
    }
}

/// Which events a [`Detail`] keeps.
pub(super) enum Filter {
    /// All of them, until there are more than this many (then none: summarise).
    All { budget: usize },
    /// Those in these sorted, disjoint, inclusive step ranges.
    Windows(Vec<(u64, u64)>),
}

/// The windows an item touches: `None` = keep it whatever windows are selected.
pub(super) type Wins = Option<(u32, u32)>;

struct OpenTx {
    begin: u64,
    site: usize,
}

/// Individual runs, accesses and transactions.
pub(super) struct Detail {
    filter: Filter,
    /// With `Filter::All`: the budget was exceeded and everything was dropped.
    pub overflowed: bool,
    pub runs: Vec<(RunItem, Wins)>,
    pub accesses: Vec<(AccessItem, Wins)>,
    pub txs: Vec<(TxItem, Wins)>,
    run_start: u64,
    open: Vec<Option<OpenTx>>,
    /// Index of an RMW whose write half has not been seen yet.
    rmw_open: Option<usize>,
    /// Aborts kept because they are aborts (windows mode), at most [`ABORT_POINTS`] x 8.
    aborts_kept: usize,
}

impl Detail {
    pub fn new(filter: Filter, vcpus: usize) -> Detail {
        Detail {
            filter,
            overflowed: false,
            runs: Vec::new(),
            accesses: Vec::new(),
            txs: Vec::new(),
            run_start: 0,
            open: (0..vcpus).map(|_| None).collect(),
            rmw_open: None,
            aborts_kept: 0,
        }
    }

    /// The windows touching steps `[from, to]`, or `Err` when none does.
    fn wins(&self, from: u64, to: u64) -> Result<Wins, ()> {
        match &self.filter {
            Filter::All { .. } => Ok(Some((0, 0))),
            Filter::Windows(w) => {
                let lo = w.partition_point(|&(_, end)| end < from);
                let hi = w.partition_point(|&(start, _)| start <= to);
                if lo < hi {
                    Ok(Some((lo as u32, hi as u32 - 1)))
                } else {
                    Err(())
                }
            }
        }
    }

    fn check_budget(&mut self) {
        if let Filter::All { budget } = self.filter {
            if self.runs.len() + self.accesses.len() + self.txs.len() > budget {
                self.overflowed = true;
                self.runs = Vec::new();
                self.accesses = Vec::new();
                self.txs = Vec::new();
            }
        }
    }

    pub fn observe(&mut self, e: &Event, locs: &mut Locs) {
        if self.overflowed {
            return;
        }
        match e {
            Event::Run { vcpu, points } => {
                let start = self.run_start;
                self.run_start = start.saturating_add(*points);
                let end = self.run_start.saturating_sub(1).max(start);
                if let Ok(w) = self.wins(start, end) {
                    let item = RunItem {
                        vcpu: vcpu.0,
                        start,
                        len: *points,
                        switched: false,
                    };
                    self.runs.push((item, w));
                }
            }
            Event::Access {
                step,
                vcpu,
                rip,
                addr,
                size,
                kind,
                value,
            } => {
                let Ok(w) = self.wins(step.0, step.0) else {
                    return;
                };
                // The write half of a locked instruction completes the RMW its read began.
                if *kind == AccessKind::AtomicWrite {
                    if let Some(i) = self.rmw_open.take() {
                        let a = &mut self.accesses[i].0;
                        if a.step == step.0 && a.vcpu == vcpu.0 && a.addr == addr.0 {
                            a.value = *value;
                            return;
                        }
                    }
                }
                let (k, old) = match kind {
                    AccessKind::Read => (KIND_R, None),
                    AccessKind::Write => (KIND_W, None),
                    AccessKind::AtomicRead => (KIND_RMW, Some(*value)),
                    AccessKind::AtomicWrite => (KIND_RMW, None),
                };
                let item = AccessItem {
                    step: step.0,
                    vcpu: vcpu.0,
                    kind: k,
                    addr: addr.0,
                    size: *size,
                    value: *value,
                    loc: locs.id(*rip),
                    old,
                };
                self.rmw_open = (*kind == AccessKind::AtomicRead).then_some(self.accesses.len());
                self.accesses.push((item, w));
            }
            Event::TxBegin {
                step,
                vcpu,
                rip,
                depth: 1,
            } => {
                if let Some(o) = self.open.get_mut(vcpu.0 as usize) {
                    *o = Some(OpenTx {
                        begin: step.0,
                        site: locs.id(*rip),
                    });
                }
            }
            Event::TxCommit {
                step,
                vcpu,
                rip,
                read_lines,
                write_lines,
                ..
            } => {
                let Some(open) = self.open.get_mut(vcpu.0 as usize).and_then(Option::take) else {
                    return;
                };
                let mut t = tx(vcpu.0, &open, step.0, "commit");
                t.at = Some(locs.id(*rip));
                t.read_lines = Some(*read_lines);
                t.write_lines = Some(*write_lines);
                self.push_tx(t);
            }
            Event::TxAbort {
                step,
                vcpu,
                rip,
                status,
                cause,
                ..
            } => {
                let Some(open) = self.open.get_mut(vcpu.0 as usize).and_then(Option::take) else {
                    return;
                };
                let mut t = tx(vcpu.0, &open, step.0, "abort");
                t.at = Some(locs.id(*rip));
                t.cause = cause.to_string();
                t.cause_class = cause.class().to_string();
                t.status = Some(*status);
                if let AbortCause::Conflict { by, by_rip, .. } = cause {
                    t.by = Some(by.0);
                    t.by_loc = Some(locs.id(*by_rip));
                }
                self.push_tx(t);
            }
            _ => return,
        }
        self.check_budget();
    }

    fn push_tx(&mut self, t: TxItem) {
        // In a summarised report the first aborts are kept wherever they are, whichever
        // windows survive the budget: the abort list is what people jump from.
        let windowed = matches!(self.filter, Filter::Windows(_));
        if windowed && t.outcome == "abort" && self.aborts_kept < ABORT_POINTS * 8 {
            self.aborts_kept += 1;
            self.txs.push((t, None));
            return;
        }
        if let Ok(w) = self.wins(t.begin, t.end) {
            self.txs.push((t, w));
        }
    }

    /// Close what is still open at the end of the trace, mark which runs were switched
    /// away from (not the vCPU's last run), and sort transactions by begin step.
    pub fn finish(&mut self, steps: u64, last_run_start: &[Option<u64>]) {
        if self.overflowed {
            return;
        }
        for v in 0..self.open.len() {
            if let Some(open) = self.open[v].take() {
                let t = tx(v as u32, &open, steps.max(open.begin), "open");
                self.push_tx(t);
            }
        }
        for (r, _) in &mut self.runs {
            let last = last_run_start.get(r.vcpu as usize).copied().flatten();
            r.switched = last.is_some_and(|l| r.start < l);
        }
        self.txs.sort_by_key(|(t, _)| (t.begin, t.vcpu));
    }
}

fn tx(vcpu: u32, open: &OpenTx, end: u64, outcome: &'static str) -> TxItem {
    TxItem {
        vcpu,
        begin: open.begin,
        end,
        outcome,
        site: open.site,
        at: None,
        cause: String::new(),
        cause_class: String::new(),
        status: None,
        by: None,
        by_loc: None,
        read_lines: None,
        write_lines: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_trace::{GuestAddr, Step, VcpuId};

    fn acc(step: u64, v: u32, kind: AccessKind, value: u64) -> Event {
        Event::Access {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x1000,
            addr: GuestAddr(0x100),
            size: 8,
            kind,
            value,
        }
    }

    #[test]
    fn windows_keep_only_what_they_touch() {
        let mut locs = Locs::default();
        let mut d = Detail::new(Filter::Windows(vec![(5, 9), (20, 20)]), 1);
        for i in 0..30 {
            d.observe(&acc(i, 0, AccessKind::Read, i), &mut locs);
        }
        let steps: Vec<u64> = d.accesses.iter().map(|(a, _)| a.step).collect();
        assert_eq!(steps, vec![5, 6, 7, 8, 9, 20]);
        assert_eq!(d.accesses[5].1, Some((1, 1)));
    }
}
