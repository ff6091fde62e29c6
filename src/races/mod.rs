//! `weft races`: the conflicting accesses of a recorded run, and which of them are data
//! races (not ordered by happens-before), grouped by code-location pair and address range.
//!
//! Two passes over the trace. The first ([`sync`]) finds what synchronises: the *sync
//! bytes* (touched by a locked instruction, annotated atomic, of an atomic type by DWARF,
//! or accessed by an atomic type's code) and the instructions that belong to the
//! runtime's synchronisation code. The second runs vector clocks over the events (rules in
//! docs/analysis.md) with a byte-precise shadow memory ([`shadow`]): the last write of each
//! byte and, per vCPU, the last read since it. Each access pairs with the shadow entries
//! that conflict with it (another vCPU, overlapping bytes, at least one write): the
//! *adjacent* conflicting pairs, which is what a user needs and stays linear in the trace.
//! A pair is a race when the earlier access does not happen before the later one, some
//! byte they share is not a sync byte, and they are not both synchronisation accesses.
//! Accesses inside transactions that aborted never happened and are dropped; committed
//! transactions are ordered with each other (they are atomic). Pairs are grouped into
//! report entries by [`group`].
//!
//! Events come from one place, [`for_each_event`]: the passes never open a trace
//! themselves.

mod atomics;
mod confirm;
mod dot;
mod group;
mod shadow;
mod sync;

use std::path::Path;

use serde::Serialize;
use weft_trace::{Event, TraceError, TraceHeader, TraceReader};

pub use atomics::{atomic_globals, is_atomic_type_name};
pub use confirm::{confirm, Confirmation, Effect};
pub use dot::dot;
use group::{Groups, Pair};
use shadow::{cell_masks, Acc, CellMap, Hit, Shadow};
pub use sync::{classify, sync_cells, CodeKind, SyncBuilder, SyncCells};

use crate::machine::hypercall as hc;

/// One side of a pair, as reported.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Side {
    pub step: u64,
    pub vcpu: u32,
    pub rip: u64,
    /// R, W, aR, aW.
    pub kind: &'static str,
    pub addr: u64,
    pub size: u8,
    /// The value read or written.
    pub value: u64,
    pub insn: String,
    /// `function+offset (file:line)` when the guest has symbols and DWARF.
    pub source: String,
}

/// A group of conflicting pairs: the same two code locations (source lines, or
/// instructions without DWARF), on one address range.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// 1-based, in report order: `weft inspect --race N` finds it again.
    pub id: usize,
    pub race: bool,
    /// RaW, WaR or WaW: the class of the first pair (earlier access, then later).
    pub class: String,
    /// Every class among the group's pairs, in the order RaW, WaR, WaW.
    pub classes: Vec<String>,
    pub count: u64,
    pub first_step: u64,
    pub last_step: u64,
    /// The bytes the pairs conflicted on: `[addr_start, addr_end)`.
    pub addr_start: u64,
    pub addr_end: u64,
    /// The global variable at `addr_start` (`counter`, `phase+0x4`), "" if none.
    pub object: String,
    /// The first pair of the group: earlier access, later access.
    pub first: Side,
    pub second: Side,
    /// With `weft races --confirm`: what running the first pair in the other order did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct RaceReport {
    pub accesses: u64,
    /// Accesses dropped because their transaction aborted.
    pub aborted_accesses: u64,
    /// Bytes treated as sync variables (locked, annotated, atomic by type or by code).
    pub sync_bytes: u64,
    /// Accesses made by the runtime's synchronisation code.
    pub runtime_accesses: u64,
    pub races: Vec<Group>,
    /// Conflicts ordered by happens-before, on sync bytes, or between two
    /// synchronisation accesses.
    pub conflicts: Vec<Group>,
}

type Vc = Vec<u32>;

fn join(into: &mut Vc, from: &Vc) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = (*a).max(*b);
    }
}

/// Vector-clock state of the second pass.
struct Hb {
    n: usize,
    vc: Vec<Vc>,
    /// Clocks released into sync objects, by byte address: sync bytes, annotated
    /// addresses, the bytes runtime code touched.
    objs: CellMap<Vc>,
    fence: Vc,
    tm: Vc,
}

impl Hb {
    fn acquire(&mut self, v: usize, key: u64) {
        if let Some(o) = self.objs.get(&key) {
            join(&mut self.vc[v], o);
        }
    }
    /// Release `v`'s clock into object `key` (the caller ticks afterwards: later accesses
    /// are not covered by the release).
    fn release(&mut self, v: usize, key: u64) {
        let n = self.n;
        let obj = self.objs.entry(key).or_insert_with(|| vec![0; n]);
        join(obj, &self.vc[v]);
    }
    fn tick(&mut self, v: usize) {
        self.vc[v][v] += 1;
    }
}

/// The second pass, one event at a time.
pub struct Analyzer {
    header: TraceHeader,
    sync: SyncCells,
    hb: Hb,
    shadow: Shadow,
    groups: Groups,
    /// Accesses of a vCPU inside its current transaction, held until it commits or aborts.
    in_tx: Vec<Option<Vec<Acc>>>,
    hits: Vec<Hit>,
    pairs: Vec<Pair>,
    seq: u64,
    accesses: u64,
    aborted: u64,
    runtime: u64,
    /// The last RIP looked up and its kind of code (loops repeat instructions).
    last_code: Option<(u64, CodeKind)>,
}

impl Analyzer {
    pub fn new(header: &TraceHeader, sync: SyncCells) -> Analyzer {
        let n = header.options.vcpus as usize;
        Analyzer {
            header: header.clone(),
            sync,
            hb: Hb {
                n,
                vc: (0..n)
                    .map(|i| {
                        let mut v = vec![0; n];
                        v[i] = 1;
                        v
                    })
                    .collect(),
                objs: CellMap::default(),
                fence: vec![0; n],
                tm: vec![0; n],
            },
            shadow: Shadow::default(),
            groups: Groups::default(),
            in_tx: vec![None; n],
            hits: Vec::new(),
            pairs: Vec::new(),
            seq: 0,
            accesses: 0,
            aborted: 0,
            runtime: 0,
            last_code: None,
        }
    }

    /// Whether `a` synchronises: a locked access, atomic or runtime code (`code`), or
    /// sync bytes.
    fn is_sync(&self, a: &Acc, code: CodeKind) -> bool {
        a.kind.is_atomic()
            || code != CodeKind::Plain
            || (self.sync.has_bytes()
                && cell_masks(a.addr, a.size).any(|(c, m)| self.sync.mask(c) & m != 0))
    }

    /// One access (outside a transaction, or a committed transaction's at its commit).
    fn access(&mut self, a: Acc) {
        let v = a.vcpu as usize;
        self.hits.clear();
        for (c, m) in cell_masks(a.addr, a.size) {
            self.shadow.access(c, m, &a, &mut self.hits);
        }
        // One pair per earlier access, over every cell they share.
        self.pairs.clear();
        for h in &self.hits {
            let lo = h.cell * 8 + h.mask.trailing_zeros() as u64;
            let hi = (h.cell * 8).saturating_add(8 - h.mask.leading_zeros() as u64);
            let plain_bytes = h.mask & !self.sync.mask(h.cell) != 0;
            match self
                .pairs
                .iter_mut()
                .find(|p| p.earlier.seq == h.earlier.seq)
            {
                Some(p) => {
                    p.lo = p.lo.min(lo);
                    p.hi = p.hi.max(hi);
                    p.race |= plain_bytes;
                }
                None => self.pairs.push(Pair {
                    earlier: h.earlier,
                    later: a,
                    lo,
                    hi,
                    race: plain_bytes,
                }),
            }
        }
        for p in &mut self.pairs {
            let e = &p.earlier;
            let ordered = e.clock <= self.hb.vc[v][e.vcpu as usize];
            // Two synchronisation accesses never race (both atomic, in C11 terms).
            let both_sync = e.sync && a.sync;
            p.race &= !(ordered || both_sync);
            self.groups.add(p);
        }
        if a.sync {
            // A synchronisation access acquires every byte it touches; a write also
            // releases into them.
            let end = a.addr.saturating_add(a.size.max(1) as u64);
            for b in a.addr..end {
                self.hb.acquire(v, b);
            }
            if a.kind.is_write() {
                for b in a.addr..end {
                    self.hb.release(v, b);
                }
                self.hb.tick(v);
            }
        }
    }

    pub fn observe(&mut self, e: &Event) {
        let n = self.hb.n;
        match e {
            Event::Access {
                step,
                vcpu,
                rip,
                addr,
                size,
                kind,
                value,
            } => {
                let v = vcpu.0 as usize;
                if v >= n {
                    return;
                }
                self.accesses += 1;
                self.seq += 1;
                let mut a = Acc {
                    seq: self.seq,
                    step: step.0,
                    rip: *rip,
                    addr: addr.0,
                    value: *value,
                    vcpu: vcpu.0,
                    clock: self.hb.vc[v][v],
                    kind: *kind,
                    size: *size,
                    sync: false,
                };
                let code = match self.last_code {
                    Some((rip, k)) if rip == a.rip => k,
                    _ => {
                        let k = self.sync.code(a.rip);
                        self.last_code = Some((a.rip, k));
                        k
                    }
                };
                a.sync = self.is_sync(&a, code);
                if code == CodeKind::Runtime {
                    self.runtime += 1;
                }
                match &mut self.in_tx[v] {
                    Some(buf) => buf.push(a),
                    None => self.access(a),
                }
            }
            Event::Fence { vcpu, .. } => {
                let v = vcpu.0 as usize;
                if v < n {
                    let hb = &mut self.hb;
                    join(&mut hb.vc[v], &hb.fence);
                    join(&mut hb.fence, &hb.vc[v]);
                    hb.tick(v);
                }
            }
            Event::Hypercall { vcpu, nr, args, .. } => {
                let v = vcpu.0 as usize;
                if v >= n {
                    return;
                }
                if *nr == hc::ANNOTATE_ACQUIRE {
                    self.hb.acquire(v, args[0]);
                } else if *nr == hc::ANNOTATE_RELEASE {
                    self.hb.release(v, args[0]);
                    self.hb.tick(v);
                }
            }
            Event::Spawn { vcpu, child, .. } => {
                // A thread starts after everything its creator did before creating it.
                let (p, c) = (vcpu.0 as usize, child.0 as usize);
                if p < n && c < n {
                    let parent = self.hb.vc[p].clone();
                    join(&mut self.hb.vc[c], &parent);
                    self.hb.tick(p);
                }
            }
            Event::TxBegin { vcpu, depth: 1, .. } => {
                if let Some(t) = self.in_tx.get_mut(vcpu.0 as usize) {
                    *t = Some(Vec::new());
                }
            }
            Event::TxCommit { vcpu, .. } => self.commit(vcpu.0 as usize),
            Event::TxAbort { vcpu, .. } => {
                if let Some(buf) = self.in_tx.get_mut(vcpu.0 as usize).and_then(Option::take) {
                    self.aborted += buf.len() as u64;
                }
            }
            _ => {}
        }
    }

    fn commit(&mut self, v: usize) {
        let Some(buf) = self.in_tx.get_mut(v).and_then(Option::take) else {
            return;
        };
        // Committed transactions are serialised: acquire all before, release after.
        let tm = self.hb.tm.clone();
        join(&mut self.hb.vc[v], &tm);
        let mut touched: Vec<u64> = Vec::new();
        for mut a in buf {
            a.clock = self.hb.vc[v][v];
            if a.sync {
                touched.extend(a.addr..a.addr.saturating_add(a.size.max(1) as u64));
            }
            self.access(a);
        }
        // A committed transaction precedes any later write to what it read (that write
        // would have aborted it otherwise): it releases every sync byte it touched, reads
        // included (an elided lock's lock word).
        touched.sort_unstable();
        touched.dedup();
        for b in touched {
            self.hb.release(v, b);
        }
        let hb = &mut self.hb;
        join(&mut hb.tm, &hb.vc[v]);
        hb.tick(v);
    }

    pub fn finish(self) -> RaceReport {
        let (races, conflicts) = self.groups.finish(&self.header.guest.elf);
        RaceReport {
            accesses: self.accesses,
            aborted_accesses: self.aborted,
            sync_bytes: self.sync.byte_count(),
            runtime_accesses: self.runtime,
            races,
            conflicts,
        }
    }
}

/// Pass two over the same events, in order, with the sync bytes from pass one.
pub fn analyze(
    header: &TraceHeader,
    sync: SyncCells,
    events: impl IntoIterator<Item = Event>,
) -> RaceReport {
    let mut a = Analyzer::new(header, sync);
    for e in events {
        a.observe(&e);
    }
    a.finish()
}

/// Read every event of `path` in order, or fail naming the file. The one place the
/// analysis gets its events from.
pub fn for_each_event(path: &Path, mut f: impl FnMut(Event)) -> anyhow::Result<TraceHeader> {
    let reader = TraceReader::open(path)?;
    let header = reader.header().clone();
    for e in reader.into_events() {
        let e: Result<Event, TraceError> = e;
        f(e?);
    }
    Ok(header)
}

/// Both passes over the trace at `path`.
pub fn report_file(path: &Path) -> anyhow::Result<RaceReport> {
    report_file_with(path, |_| {})
}

/// Both passes over the trace at `path`, showing `observe` every event of the second
/// (the HTML report builds its timeline from them).
pub fn report_file_with(
    path: &Path,
    mut observe: impl FnMut(&Event),
) -> anyhow::Result<RaceReport> {
    let header = TraceReader::open(path)?.header().clone();
    let mut first = SyncBuilder::new(&header);
    for_each_event(path, |e| first.observe(&e))?;
    let mut second = Analyzer::new(&header, first.finish());
    for_each_event(path, |e| {
        observe(&e);
        second.observe(&e);
    })?;
    Ok(second.finish())
}

impl Side {
    /// One line: step, vCPU, access, instruction and source.
    pub fn line(&self, label: &str) -> String {
        let arrow = if self.kind.contains('W') { "<-" } else { "->" };
        let mut line = format!(
            "  {label:<6} step {:<8} vcpu{:<3} {:<2} [{:#x}]:{} {arrow} {:#x}   {:#x} `{}`",
            self.step, self.vcpu, self.kind, self.addr, self.size, self.value, self.rip, self.insn
        );
        if !self.source.is_empty() {
            line.push_str(&format!("  {}", self.source));
        }
        line
    }
}

impl Group {
    /// Three lines: what, where, how often, and both accesses of the first pair.
    pub fn describe(&self) -> String {
        let what = if self.race { "race" } else { "conflict" };
        let times = if self.count == 1 {
            format!("once, at step {}", self.first_step)
        } else {
            format!(
                "x{} (steps {}..{})",
                self.count, self.first_step, self.last_step
            )
        };
        let len = self.addr_end.saturating_sub(self.addr_start);
        let on = if self.object.is_empty() {
            format!("[{:#x}]:{len}", self.addr_start)
        } else {
            format!("{} [{:#x}]:{len}", self.object, self.addr_start)
        };
        let effect = match &self.confirmation {
            Some(c) => format!(
                "\n  {}: in the other order the run ends with {}",
                c.effect, c.verdict
            ),
            None => String::new(),
        };
        format!(
            "{what} #{} {} on {on} {times}\n{}\n{}{effect}",
            self.id,
            self.classes.join("+"),
            self.first.line("first"),
            self.second.line("then")
        )
    }
}

#[cfg(test)]
mod tests;
