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

use serde::Serialize;
use weft_trace::{AccessKind, ConflictClass, Event, TraceHeader};

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
    vcpu: u32,
    /// The vCPU's own clock component at the access.
    clock: u32,
    kind: AccessKind,
    size: u8,
}

/// Shadow state of one 8-byte cell.
#[derive(Default)]
struct Cell {
    write: Option<Acc>,
    /// Last read of each vCPU since the last write.
    reads: Vec<Acc>,
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
    let mut shadow: CellMap<Cell> = CellMap::default();
    let mut groups: BTreeMap<(bool, ConflictClass, u64, u64), GroupAcc> = BTreeMap::new();
    // Accesses of a vCPU inside its current transaction, held until it commits or aborts.
    let mut in_tx: Vec<Option<Vec<Acc>>> = vec![None; n];
    let (mut accesses, mut aborted_accesses) = (0u64, 0u64);

    let mut access = |hb: &mut Hb, a: Acc, groups: &mut BTreeMap<_, GroupAcc>| {
        let v = a.vcpu as usize;
        let write = a.kind.is_write();
        let mut on_sync = false;
        for c in cells(a.addr, a.size) {
            on_sync |= sync.contains(&c);
            let cell = shadow.entry(c).or_default();
            let mut pair = |earlier: &Acc, class: ConflictClass| {
                let ordered = earlier.clock <= hb.vc[v][earlier.vcpu as usize];
                let is_sync = sync.contains(&c);
                let race = !ordered && !is_sync;
                let g = groups.entry((race, class, earlier.rip, a.rip)).or_default();
                if g.count == 0 {
                    g.first = Some((*earlier, a));
                    g.first_step = a.step;
                }
                g.count += 1;
                g.last_step = a.step;
            };
            if let Some(w) = &cell.write {
                if w.vcpu != a.vcpu {
                    pair(
                        w,
                        if write {
                            ConflictClass::WaW
                        } else {
                            ConflictClass::RaW
                        },
                    );
                }
            }
            if write {
                for r in cell.reads.iter().filter(|r| r.vcpu != a.vcpu) {
                    pair(r, ConflictClass::WaR);
                }
                cell.write = Some(a);
                cell.reads.clear();
            } else {
                match cell.reads.iter_mut().find(|r| r.vcpu == a.vcpu) {
                    Some(r) => *r = a,
                    None => cell.reads.push(a),
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
