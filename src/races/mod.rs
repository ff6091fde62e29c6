//! `weft races`: the conflicting accesses of a recorded run, and which of them are data
//! races (not ordered by happens-before), grouped by code-location pair.
//!
//! Two passes over the trace. The first finds the *sync variables*: every 8-byte cell ever
//! touched by a locked instruction (or named by ANNOTATE_ATOMIC). The second runs vector
//! clocks over the events (rules in docs/analysis.md) with shadow state per accessed cell:
//! the last write and, per vCPU, the last read since it. Each access pairs with those
//! shadow entries that conflict with it (another vCPU, at least one write): the *adjacent*
//! conflicting pairs, which is what a user needs and stays linear in the trace. A pair is a
//! race when the earlier access does not happen before the later one and neither cell is a
//! sync variable. Accesses inside transactions that aborted never happened and are
//! dropped; committed transactions are ordered with each other (they are atomic).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use std::path::Path;

use serde::Serialize;
use weft_trace::{AccessKind, ConflictClass, Event, TraceError, TraceHeader, TraceReader};

use crate::codemap::CodeMap;
use crate::debuginfo::SourceMap;
use crate::machine::hypercall as hc;

/// A fast hasher for cell numbers (multiplicative; the keys are addresses / 8).
#[derive(Default)]
pub struct CellHasher(u64);

impl Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (v ^ (v >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type CellMap<V> = HashMap<u64, V, BuildHasherDefault<CellHasher>>;
type CellSet = HashSet<u64, BuildHasherDefault<CellHasher>>;

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

/// A group of conflicting pairs with the same class and code locations.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// 1-based, in report order: `weft inspect --race N` finds it again.
    pub id: usize,
    pub race: bool,
    /// RaW, WaR or WaW: the earlier access, then the later.
    pub class: String,
    pub count: u64,
    pub first_step: u64,
    pub last_step: u64,
    /// The first pair of the group: earlier access, later access.
    pub first: Side,
    pub second: Side,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct RaceReport {
    pub accesses: u64,
    /// Accesses dropped because their transaction aborted.
    pub aborted_accesses: u64,
    /// Distinct 8-byte cells treated as sync variables.
    pub sync_cells: u64,
    pub races: Vec<Group>,
    /// Conflicts ordered by happens-before or on sync variables.
    pub conflicts: Vec<Group>,
}

/// A recorded access, compact.
#[derive(Clone, Copy, Debug)]
struct Acc {
    step: u64,
    rip: u64,
    addr: u64,
    value: u64,
    /// `NONE` marks an empty shadow slot.
    vcpu: u32,
    /// The vCPU's own clock component at the access.
    clock: u32,
    kind: AccessKind,
    size: u8,
}

const NONE: u32 = u32::MAX;

impl Default for Acc {
    fn default() -> Acc {
        Acc {
            step: 0,
            rip: 0,
            addr: 0,
            value: 0,
            vcpu: NONE,
            clock: 0,
            kind: AccessKind::Read,
            size: 0,
        }
    }
}

/// Readers kept inline per cell; more (rare: three vCPUs reading one word between two
/// writes) go to an overflow map.
const INLINE_READS: usize = 2;

/// Shadow state of one 8-byte cell: the last write and, per vCPU, the last read since.
#[derive(Clone, Copy, Default)]
struct Cell {
    write: Acc,
    reads: [Acc; INLINE_READS],
}

/// Cells per shadow page: 512 cells shadow 4 KiB of guest memory. Pages keep neighbouring
/// cells together (a loop over an array stays in one page), and a one-page cache skips
/// the map for runs of accesses to the same page.
const PAGE_CELLS: u64 = 512;

#[derive(Default)]
struct Shadow {
    index: CellMap<u32>,
    pages: Vec<Box<[Cell]>>,
    last: Option<(u64, usize)>,
    overflow: CellMap<Vec<Acc>>,
}

impl Shadow {
    fn cell(&mut self, c: u64) -> &mut Cell {
        let page = c / PAGE_CELLS;
        let i = match self.last {
            Some((p, i)) if p == page => i,
            _ => {
                let next = self.pages.len() as u32;
                let i = *self.index.entry(page).or_insert(next) as usize;
                if i == self.pages.len() {
                    self.pages
                        .push(vec![Cell::default(); PAGE_CELLS as usize].into_boxed_slice());
                }
                self.last = Some((page, i));
                i
            }
        };
        &mut self.pages[i][(c % PAGE_CELLS) as usize]
    }
}

type Vc = Vec<u32>;

fn join(into: &mut Vc, from: &Vc) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = (*a).max(*b);
    }
}

#[derive(Default)]
struct GroupAcc {
    count: u64,
    first_step: u64,
    last_step: u64,
    first: Option<(Acc, Acc)>,
}

/// Vector-clock state of the second pass.
struct Hb {
    vc: Vec<Vc>,
    /// Clocks released into sync objects: cells, annotated addresses, fences, TM.
    sync: CellMap<Vc>,
    fence: Vc,
    tm: Vc,
}

impl Hb {
    fn acquire(&mut self, v: usize, obj: Option<&Vc>) {
        if let Some(o) = obj {
            let mut mine = std::mem::take(&mut self.vc[v]);
            join(&mut mine, o);
            self.vc[v] = mine;
        }
    }
    fn release_into(vc: &mut Vc, obj: &mut Vc) {
        join(obj, vc);
        // The release is an event of its own: later accesses are not covered by it.
    }
    fn tick(&mut self, v: usize) {
        self.vc[v][v] += 1;
    }
}

/// The cells `[addr, addr+size)` covers.
fn cells(addr: u64, size: u8) -> std::ops::RangeInclusive<u64> {
    addr / 8..=(addr + size.max(1) as u64 - 1) / 8
}

/// Pass one: the sync cells.
pub fn sync_cells(events: impl IntoIterator<Item = Event>) -> SyncCells {
    let mut set = CellSet::default();
    for e in events {
        match e {
            Event::Access {
                addr, size, kind, ..
            } if kind.is_atomic() => set.extend(cells(addr.0, size)),
            Event::Hypercall { nr, args, .. } if nr == hc::ANNOTATE_ATOMIC => {
                let len = args[1].min(1 << 20);
                if len > 0 {
                    set.extend(args[0] / 8..=(args[0] + len - 1) / 8);
                }
            }
            _ => {}
        }
    }
    SyncCells(set)
}

/// The sync variables of a trace (pass one's result).
pub struct SyncCells(CellSet);

/// Pass two over the same events, in order, with the sync cells from pass one.
pub fn analyze(
    header: &TraceHeader,
    sync: &SyncCells,
    events: impl IntoIterator<Item = Event>,
) -> RaceReport {
    let n = header.options.vcpus as usize;
    let sync = &sync.0;
    let mut hb = Hb {
        vc: (0..n)
            .map(|i| {
                let mut v = vec![0; n];
                v[i] = 1;
                v
            })
            .collect(),
        sync: CellMap::default(),
        fence: vec![0; n],
        tm: vec![0; n],
    };
    let mut shadow = Shadow::default();
    let mut groups: BTreeMap<(bool, ConflictClass, u64, u64), GroupAcc> = BTreeMap::new();
    // Accesses of a vCPU inside its current transaction, held until it commits or aborts.
    let mut in_tx: Vec<Option<Vec<Acc>>> = vec![None; n];
    let (mut accesses, mut aborted_accesses) = (0u64, 0u64);

    let mut access = |hb: &mut Hb, a: Acc, groups: &mut BTreeMap<_, GroupAcc>| {
        let v = a.vcpu as usize;
        let write = a.kind.is_write();
        let mut on_sync = false;
        for c in cells(a.addr, a.size) {
            let is_sync = sync.contains(&c);
            on_sync |= is_sync;
            let mut pair = |earlier: &Acc, class: ConflictClass| {
                let ordered = earlier.clock <= hb.vc[v][earlier.vcpu as usize];
                let race = !ordered && !is_sync;
                let g = groups.entry((race, class, earlier.rip, a.rip)).or_default();
                if g.count == 0 {
                    g.first = Some((*earlier, a));
                    g.first_step = a.step;
                }
                g.count += 1;
                g.last_step = a.step;
            };
            let cell = shadow.cell(c);
            let w = cell.write;
            if w.vcpu != NONE && w.vcpu != a.vcpu {
                pair(
                    &w,
                    if write {
                        ConflictClass::WaW
                    } else {
                        ConflictClass::RaW
                    },
                );
            }
            if write {
                let reads = cell.reads;
                cell.write = a;
                cell.reads = [Acc::default(); INLINE_READS];
                for r in reads.iter().filter(|r| r.vcpu != NONE && r.vcpu != a.vcpu) {
                    pair(r, ConflictClass::WaR);
                }
                if reads[INLINE_READS - 1].vcpu != NONE {
                    if let Some(more) = shadow.overflow.remove(&c) {
                        for r in more.iter().filter(|r| r.vcpu != a.vcpu) {
                            pair(r, ConflictClass::WaR);
                        }
                    }
                }
            } else {
                let slot = cell
                    .reads
                    .iter_mut()
                    .find(|r| r.vcpu == a.vcpu || r.vcpu == NONE);
                match slot {
                    Some(r) => *r = a,
                    None => {
                        let more = shadow.overflow.entry(c).or_default();
                        match more.iter_mut().find(|r| r.vcpu == a.vcpu) {
                            Some(r) => *r = a,
                            None => more.push(a),
                        }
                    }
                }
            }
        }
        if on_sync {
            // Every access to a sync variable acquires it, and a write also releases it.
            let key = a.addr / 8;
            hb.acquire(v, hb.sync.get(&key).cloned().as_ref());
            if write {
                let mut obj = hb.sync.remove(&key).unwrap_or_else(|| vec![0; n]);
                Hb::release_into(&mut hb.vc[v], &mut obj);
                hb.sync.insert(key, obj);
                hb.tick(v);
            }
        }
    };

    for e in events {
        match &e {
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
                    continue;
                }
                accesses += 1;
                let a = Acc {
                    step: step.0,
                    rip: *rip,
                    addr: addr.0,
                    value: *value,
                    vcpu: vcpu.0,
                    clock: hb.vc[v][v],
                    kind: *kind,
                    size: *size,
                };
                match &mut in_tx[v] {
                    Some(buf) => buf.push(a),
                    None => access(&mut hb, a, &mut groups),
                }
            }
            Event::Fence { vcpu, .. } => {
                let v = vcpu.0 as usize;
                if v < n {
                    let f = hb.fence.clone();
                    hb.acquire(v, Some(&f));
                    Hb::release_into(&mut hb.vc[v], &mut hb.fence);
                    hb.tick(v);
                }
            }
            Event::Hypercall { vcpu, nr, args, .. } => {
                let v = vcpu.0 as usize;
                if v >= n {
                    continue;
                }
                let key = args[0] / 8;
                if *nr == hc::ANNOTATE_ACQUIRE {
                    hb.acquire(v, hb.sync.get(&key).cloned().as_ref());
                } else if *nr == hc::ANNOTATE_RELEASE {
                    let mut obj = hb.sync.remove(&key).unwrap_or_else(|| vec![0; n]);
                    Hb::release_into(&mut hb.vc[v], &mut obj);
                    hb.sync.insert(key, obj);
                    hb.tick(v);
                }
            }
            Event::Spawn { vcpu, child, .. } => {
                // A thread starts after everything its creator did before creating it.
                let (p, c) = (vcpu.0 as usize, child.0 as usize);
                if p < n && c < n {
                    let parent = hb.vc[p].clone();
                    hb.acquire(c, Some(&parent));
                    hb.tick(p);
                }
            }
            Event::TxBegin { vcpu, depth: 1, .. } => {
                if let Some(t) = in_tx.get_mut(vcpu.0 as usize) {
                    *t = Some(Vec::new());
                }
            }
            Event::TxCommit { vcpu, .. } => {
                let v = vcpu.0 as usize;
                if let Some(buf) = in_tx.get_mut(v).and_then(Option::take) {
                    // Committed transactions are serialised: acquire all before, release after.
                    let t = hb.tm.clone();
                    hb.acquire(v, Some(&t));
                    let mut touched: Vec<u64> = Vec::new();
                    for mut a in buf {
                        a.clock = hb.vc[v][v];
                        if sync.contains(&(a.addr / 8)) && !touched.contains(&(a.addr / 8)) {
                            touched.push(a.addr / 8);
                        }
                        access(&mut hb, a, &mut groups);
                    }
                    // A committed transaction precedes any later write to what it read (that
                    // write would have aborted it otherwise): it releases every sync
                    // variable it touched, reads included (an elided lock's lock word).
                    for key in touched {
                        let mut obj = hb.sync.remove(&key).unwrap_or_else(|| vec![0; n]);
                        Hb::release_into(&mut hb.vc[v], &mut obj);
                        hb.sync.insert(key, obj);
                    }
                    Hb::release_into(&mut hb.vc[v], &mut hb.tm);
                    hb.tick(v);
                }
            }
            Event::TxAbort { vcpu, .. } => {
                if let Some(buf) = in_tx.get_mut(vcpu.0 as usize).and_then(Option::take) {
                    aborted_accesses += buf.len() as u64;
                }
            }
            _ => {}
        }
    }

    let mut code = CodeMap::new(&header.guest.elf);
    let src = SourceMap::new(&header.guest.elf);
    let mut sources: BTreeMap<u64, String> = BTreeMap::new();
    let mut side = |a: &Acc| {
        let source = sources
            .entry(a.rip)
            .or_insert_with(|| src.describe(a.rip))
            .clone();
        Side {
            step: a.step,
            vcpu: a.vcpu,
            rip: a.rip,
            kind: a.kind.short(),
            addr: a.addr,
            size: a.size,
            value: a.value,
            insn: code.disasm(a.rip).to_string(),
            source,
        }
    };
    let mut races = Vec::new();
    let mut conflicts = Vec::new();
    for ((race, class, _, _), g) in groups {
        let Some((x, y)) = g.first else { continue };
        let group = Group {
            id: 0,
            race,
            class: class.to_string(),
            count: g.count,
            first_step: g.first_step,
            last_step: g.last_step,
            first: side(&x),
            second: side(&y),
        };
        if race {
            races.push(group);
        } else {
            conflicts.push(group);
        }
    }
    // Earliest first: the first race in a run is usually the one to look at.
    races.sort_by_key(|g| (g.first_step, g.first.rip, g.second.rip));
    conflicts.sort_by_key(|g| (g.first_step, g.first.rip, g.second.rip));
    for (i, g) in races.iter_mut().chain(conflicts.iter_mut()).enumerate() {
        g.id = i + 1;
    }
    RaceReport {
        accesses,
        aborted_accesses,
        sync_cells: sync.len() as u64,
        races,
        conflicts,
    }
}

/// The reported accesses as a Graphviz graph: one node per access (first pair of each
/// group), a solid edge per conflicting pair (red for races), dashed program-order edges
/// between a vCPU's accesses.
pub fn dot(r: &RaceReport, all: bool) -> String {
    use petgraph::dot::{Config, Dot};
    use petgraph::graph::{DiGraph, NodeIndex};

    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut g: DiGraph<String, (String, &'static str)> = DiGraph::new();
    let mut nodes: BTreeMap<(u32, u64, u64), NodeIndex> = BTreeMap::new();
    let mut node = |g: &mut DiGraph<String, (String, &'static str)>, s: &Side| {
        *nodes.entry((s.vcpu, s.step, s.rip)).or_insert_with(|| {
            g.add_node(format!(
                "step {} vcpu{} {} [{:#x}]\\n{}\\n{}",
                s.step,
                s.vcpu,
                s.kind,
                s.addr,
                esc(&s.insn),
                esc(&s.source)
            ))
        })
    };
    let extra: &[Group] = if all { &r.conflicts } else { &[] };
    for grp in r.races.iter().chain(extra) {
        let a = node(&mut g, &grp.first);
        let b = node(&mut g, &grp.second);
        let color = if grp.race { "red" } else { "black" };
        let label = format!(
            "#{} {}{} x{}",
            grp.id,
            grp.class,
            if grp.race { " race" } else { "" },
            grp.count
        );
        g.add_edge(a, b, (label, color));
    }
    let mut last: BTreeMap<u32, NodeIndex> = BTreeMap::new();
    for (&(vcpu, _, _), &n) in &nodes {
        if let Some(prev) = last.insert(vcpu, n) {
            g.add_edge(prev, n, (String::new(), "gray"));
        }
    }
    let edge = |_, e: petgraph::graph::EdgeReference<'_, (String, &'static str)>| {
        let (label, color) = e.weight();
        if label.is_empty() {
            format!("style=dashed color={color}")
        } else {
            format!("label=\"{label}\" color={color} fontcolor={color}")
        }
    };
    let nodef = |_, (_, label): (NodeIndex, &String)| format!("shape=box label=\"{label}\"");
    let d = Dot::with_attr_getters(
        &g,
        &[Config::EdgeNoLabel, Config::NodeNoLabel],
        &edge,
        &nodef,
    );
    format!("{d:?}")
}

/// Read every event of `path` in order, or fail naming the file.
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
    let mut first = Vec::new();
    let header = for_each_event(path, |e| {
        if matches!(e, Event::Access { .. } | Event::Hypercall { .. }) {
            first.push(e)
        }
    })?;
    let sync = sync_cells(first);
    let mut err = None;
    let events = TraceReader::open(path)?
        .into_events()
        .map_while(|e| e.map_err(|x| err = Some(x)).ok());
    let r = analyze(&header, &sync, events);
    if let Some(e) = err {
        return Err(e.into());
    }
    Ok(r)
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
    /// Three lines: what, how often, and both accesses.
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
        format!(
            "{what} #{} {} {times}\n{}\n{}",
            self.id,
            self.class,
            self.first.line("first"),
            self.second.line("then")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_trace::{GuestAddr, GuestImage, MachineOptions, Step, VcpuId};

    fn header(vcpus: u32) -> TraceHeader {
        TraceHeader {
            weft_version: String::new(),
            guest: GuestImage::new("t", Vec::new()),
            options: MachineOptions {
                vcpus,
                ..MachineOptions::default()
            },
            strategy: String::new(),
        }
    }

    fn acc(step: u64, v: u32, kind: AccessKind, addr: u64) -> Event {
        Event::Access {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x1000 + step,
            addr: GuestAddr(addr),
            size: 8,
            kind,
            value: step,
        }
    }

    fn run(vcpus: u32, events: Vec<Event>) -> RaceReport {
        let sync = sync_cells(events.clone());
        analyze(&header(vcpus), &sync, events)
    }

    use AccessKind::{AtomicRead as AR, AtomicWrite as AW, Read as R, Write as W};

    #[test]
    fn unordered_writes_race_and_a_lock_orders_them() {
        let r = run(2, vec![acc(0, 0, W, 0x100), acc(1, 1, W, 0x100)]);
        assert_eq!(r.races.len(), 1);
        assert_eq!(r.races[0].class, "WaW");
        // vCPU 0 writes, releases a lock (plain store to a word an XCHG touches), vCPU 1
        // takes it (XCHG) and writes: ordered, a conflict but no race.
        let r = run(
            2,
            vec![
                acc(0, 0, AR, 0x200),
                acc(0, 0, AW, 0x200),
                acc(1, 0, W, 0x100),
                acc(2, 0, W, 0x200),
                acc(3, 1, AR, 0x200),
                acc(3, 1, AW, 0x200),
                acc(4, 1, W, 0x100),
            ],
        );
        assert!(r.races.is_empty(), "{:?}", r.races);
        assert!(r
            .conflicts
            .iter()
            .any(|g| g.class == "WaW" && g.first.addr == 0x100));
    }

    #[test]
    fn every_reader_since_the_last_write_pairs_with_the_next_write() {
        let r = run(
            4,
            vec![
                acc(0, 0, R, 0x100),
                acc(1, 1, R, 0x100),
                acc(2, 2, R, 0x100),
                acc(3, 3, W, 0x100),
            ],
        );
        let mut readers: Vec<u32> = r.races.iter().map(|g| g.first.vcpu).collect();
        readers.sort();
        assert_eq!(readers, vec![0, 1, 2]);
        assert!(r
            .races
            .iter()
            .all(|g| g.class == "WaR" && g.second.vcpu == 3));
    }

    #[test]
    fn one_vcpu_never_pairs_with_itself() {
        let r = run(
            2,
            vec![
                acc(0, 0, W, 0x100),
                acc(1, 0, R, 0x100),
                acc(2, 0, W, 0x100),
            ],
        );
        assert!(r.races.is_empty() && r.conflicts.is_empty());
    }

    #[test]
    fn aborted_transactions_leave_no_accesses() {
        let begin = |step, v| Event::TxBegin {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x500,
            depth: 1,
        };
        let r = run(
            2,
            vec![
                begin(0, 0),
                acc(1, 0, W, 0x100),
                Event::TxAbort {
                    step: Step(2),
                    vcpu: VcpuId(0),
                    rip: 0x501,
                    begin_rip: 0x500,
                    status: 6,
                    cause: weft_trace::AbortCause::Injected,
                },
                acc(3, 1, W, 0x100),
            ],
        );
        assert_eq!(r.aborted_accesses, 1);
        assert!(r.races.is_empty() && r.conflicts.is_empty());
    }
}
