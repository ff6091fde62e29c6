//! Grouping conflicting pairs into report entries: one entry per (code location pair,
//! address range), so that one racy `counter++` is one race, whatever its read and write
//! instructions and however often the loop ran.
//!
//! While the trace streams by, pairs are grouped by (race or not, the two RIPs as an
//! unordered pair) and, within that, by address range: a pair joins a range it overlaps or
//! touches (an array walked element by element stays one range). At the end, groups whose
//! instructions are the same *source* locations (the DWARF line, with the inline chain)
//! are merged the same way: `mov eax,[counter]` and `mov [counter],eax` of one line are
//! one location. The first pair of a group (earliest later access) is the one shown.

use std::collections::BTreeMap;

use weft_trace::{AccessKind, ConflictClass};

use super::shadow::Acc;
use super::{Group, Side};
use crate::codemap::CodeMap;
use crate::debuginfo::SourceMap;

/// Ranges kept apart per location pair, at most; past it a pair joins the nearest.
const MAX_RANGES: usize = 64;

/// One conflicting pair as the analysis found it.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub earlier: Acc,
    pub later: Acc,
    /// The conflicting bytes, `[lo, hi)`.
    pub lo: u64,
    pub hi: u64,
    pub race: bool,
}

/// The conflict class of a pair: which of the two writes.
pub fn class_of(earlier: AccessKind, later: AccessKind) -> ConflictClass {
    match (earlier.is_write(), later.is_write()) {
        (true, false) => ConflictClass::RaW,
        (false, _) => ConflictClass::WaR,
        (true, true) => ConflictClass::WaW,
    }
}

fn class_bit(c: ConflictClass) -> u8 {
    match c {
        ConflictClass::RaW => 1,
        ConflictClass::WaR => 2,
        ConflictClass::WaW => 4,
    }
}

/// Pairs of one location pair on one address range.
#[derive(Clone, Debug)]
struct Ranged {
    lo: u64,
    hi: u64,
    count: u64,
    first_step: u64,
    last_step: u64,
    classes: u8,
    first: (Acc, Acc),
}

impl Ranged {
    fn new(p: &Pair) -> Ranged {
        Ranged {
            lo: p.lo,
            hi: p.hi,
            count: 1,
            first_step: p.later.step,
            last_step: p.later.step,
            classes: class_bit(class_of(p.earlier.kind, p.later.kind)),
            first: (p.earlier, p.later),
        }
    }

    fn touches(&self, lo: u64, hi: u64) -> bool {
        self.lo <= hi && lo <= self.hi
    }

    fn distance(&self, lo: u64, hi: u64) -> u64 {
        if self.touches(lo, hi) {
            0
        } else {
            lo.saturating_sub(self.hi).max(self.lo.saturating_sub(hi))
        }
    }

    fn absorb(&mut self, o: Ranged) {
        if (o.first_step, o.first.1.seq) < (self.first_step, self.first.1.seq) {
            self.first = o.first;
            self.first_step = o.first_step;
        }
        self.lo = self.lo.min(o.lo);
        self.hi = self.hi.max(o.hi);
        self.count += o.count;
        self.last_step = self.last_step.max(o.last_step);
        self.classes |= o.classes;
    }
}

/// Add `r` to `list`: merged with every range it touches (and so with the ranges it
/// bridges), else as a range of its own, else (too many) into the nearest.
fn insert(list: &mut Vec<Ranged>, mut r: Ranged) {
    while let Some(i) = list.iter().position(|x| x.touches(r.lo, r.hi)) {
        r.absorb(list.swap_remove(i));
    }
    if list.len() < MAX_RANGES {
        list.push(r);
    } else if let Some(n) = (0..list.len()).min_by_key(|&j| list[j].distance(r.lo, r.hi)) {
        list[n].absorb(r);
    }
}

/// Pairs grouped while the trace streams by.
#[derive(Default)]
pub struct Groups {
    by_rip: BTreeMap<(bool, u64, u64), Vec<Ranged>>,
}

impl Groups {
    pub fn add(&mut self, p: &Pair) {
        let (a, b) = (p.earlier.rip, p.later.rip);
        let list = self.by_rip.entry((p.race, a.min(b), a.max(b))).or_default();
        // The common case: the pair falls in a range this location pair already has.
        if let Some(r) = list.iter_mut().find(|r| r.lo <= p.lo && p.hi <= r.hi) {
            r.count += 1;
            r.last_step = r.last_step.max(p.later.step);
            r.classes |= class_bit(class_of(p.earlier.kind, p.later.kind));
            return;
        }
        insert(list, Ranged::new(p));
    }

    /// The report entries: races and other conflicts, each earliest first, numbered in
    /// that order (races first).
    pub fn finish(self, elf: &[u8]) -> (Vec<Group>, Vec<Group>) {
        let src = SourceMap::new(elf);
        let mut code = CodeMap::new(elf);
        let mut locs: BTreeMap<u64, String> = BTreeMap::new();
        let mut loc = |rip: u64| -> String {
            locs.entry(rip)
                .or_insert_with(|| {
                    let frames = src.frames(rip);
                    if !frames.is_empty() {
                        let f: Vec<String> = frames.iter().map(|l| l.to_string()).collect();
                        f.join(" < ")
                    } else {
                        src.symbol_text(rip).unwrap_or_else(|| format!("{rip:#x}"))
                    }
                })
                .clone()
        };
        let mut by_loc: BTreeMap<(bool, String, String), Vec<Ranged>> = BTreeMap::new();
        for ((race, a, b), list) in self.by_rip {
            let (la, lb) = (loc(a), loc(b));
            let key = if la <= lb {
                (race, la, lb)
            } else {
                (race, lb, la)
            };
            let dest = by_loc.entry(key).or_default();
            for r in list {
                insert(dest, r);
            }
        }
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
        let (mut races, mut conflicts) = (Vec::new(), Vec::new());
        for ((race, _, _), list) in by_loc {
            for r in list {
                let (x, y) = r.first;
                let classes: Vec<String> =
                    [ConflictClass::RaW, ConflictClass::WaR, ConflictClass::WaW]
                        .into_iter()
                        .filter(|c| r.classes & class_bit(*c) != 0)
                        .map(|c| c.to_string())
                        .collect();
                let object = src
                    .symbol(r.lo)
                    .map(|(n, off)| {
                        if off == 0 {
                            n.to_string()
                        } else {
                            format!("{n}+{off:#x}")
                        }
                    })
                    .unwrap_or_default();
                let g = Group {
                    id: 0,
                    race,
                    class: class_of(x.kind, y.kind).to_string(),
                    classes,
                    count: r.count,
                    first_step: r.first_step,
                    last_step: r.last_step,
                    addr_start: r.lo,
                    addr_end: r.hi,
                    object,
                    first: side(&x),
                    second: side(&y),
                    confirmation: None,
                };
                if race {
                    races.push(g);
                } else {
                    conflicts.push(g);
                }
            }
        }
        // Earliest first: the first race in a run is usually the one to look at.
        let order = |g: &Group| {
            (
                g.first_step,
                g.second.step,
                g.first.rip,
                g.second.rip,
                g.addr_start,
            )
        };
        races.sort_by_key(order);
        conflicts.sort_by_key(order);
        for (i, g) in races.iter_mut().chain(conflicts.iter_mut()).enumerate() {
            g.id = i + 1;
        }
        (races, conflicts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(seq: u64, rips: (u64, u64), kinds: (AccessKind, AccessKind), lo: u64) -> Pair {
        let acc = |s: u64, rip: u64, kind| Acc {
            seq: s,
            step: s,
            rip,
            addr: lo,
            kind,
            size: 4,
            ..Acc::default()
        };
        Pair {
            earlier: acc(seq, rips.0, kinds.0),
            later: acc(seq + 1, rips.1, kinds.1),
            lo,
            hi: lo + 4,
            race: true,
        }
    }

    use AccessKind::{Read as R, Write as W};

    #[test]
    fn one_location_pair_on_one_variable_is_one_group_with_every_class() {
        let mut g = Groups::default();
        // counter++ as load (0x10) and store (0x20): RaW, WaR, WaW, many times.
        for i in 0..10 {
            g.add(&pair(i * 10, (0x20, 0x10), (W, R), 0x1000));
            g.add(&pair(i * 10 + 2, (0x10, 0x20), (R, W), 0x1000));
            g.add(&pair(i * 10 + 4, (0x20, 0x20), (W, W), 0x1000));
        }
        let (races, _) = g.finish(&[]);
        // Without DWARF the locations are RIPs: {0x10,0x20} and {0x20,0x20}.
        assert_eq!(races.len(), 2, "{races:?}");
        let both = races.iter().find(|r| r.first.rip != r.second.rip).unwrap();
        assert_eq!(both.count, 20);
        assert_eq!(both.classes, vec!["RaW", "WaR"]);
        assert_eq!((both.addr_start, both.addr_end), (0x1000, 0x1004));
        assert_eq!(both.first_step, 1);
    }

    #[test]
    fn an_array_walk_is_one_range_and_distant_variables_are_two() {
        let mut g = Groups::default();
        for i in 0..16 {
            g.add(&pair(i * 2, (0x10, 0x20), (W, W), 0x2000 + 4 * i));
        }
        g.add(&pair(100, (0x10, 0x20), (W, W), 0x9000));
        let (races, _) = g.finish(&[]);
        let ranges: Vec<(u64, u64, u64)> = races
            .iter()
            .map(|r| (r.addr_start, r.addr_end, r.count))
            .collect();
        assert_eq!(ranges, vec![(0x2000, 0x2040, 16), (0x9000, 0x9004, 1)]);
        assert_eq!(races[0].id, 1);
        assert_eq!(races[1].id, 2);
    }

    #[test]
    fn a_pair_bridging_two_ranges_merges_them() {
        let mut list = Vec::new();
        let r = |lo: u64, hi: u64, step: u64| {
            let mut p = pair(step, (1, 2), (W, W), lo);
            p.hi = hi;
            Ranged::new(&p)
        };
        insert(&mut list, r(0, 4, 5));
        insert(&mut list, r(8, 12, 1));
        insert(&mut list, r(20, 24, 9));
        insert(&mut list, r(4, 8, 7));
        assert_eq!(list.len(), 2);
        let merged = list.iter().find(|x| x.lo == 0).unwrap();
        assert_eq!((merged.hi, merged.count, merged.first_step), (12, 3, 2));
    }
}
