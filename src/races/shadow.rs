//! Byte-precise shadow memory: for every guest byte the run touched, the last write and,
//! per vCPU, the last read since it.
//!
//! Storage is per 8-byte *cell*, but every entry carries a byte mask, so two 4-byte
//! elements that share a cell (`int phase[2]`, one per thread) are two locations and never
//! conflict. An entry is an access together with the bytes of the cell for which it is
//! still the last write (or that vCPU's last read): a later write takes those bytes away
//! from every earlier entry, a later read from the same vCPU's earlier read. So the write
//! entries of a cell have disjoint masks, and so do each vCPU's read entries. Most cells
//! hold one or two entries; they live inline, and a cell that needs more spills into a
//! side map.
//!
//! [`Shadow::access`] returns the *adjacent* conflicting pairs of an access: each earlier
//! entry of another vCPU whose bytes overlap it where at least one of the two writes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use weft_trace::AccessKind;

/// A fast hasher for cell and page numbers (multiplicative; the keys are addresses / 8).
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

/// A hash map keyed by cell, page or byte address.
pub type CellMap<V> = HashMap<u64, V, BuildHasherDefault<CellHasher>>;

/// A recorded access, compact.
#[derive(Clone, Copy, Debug)]
pub struct Acc {
    /// Index of the access in the trace: tells two accesses apart.
    pub seq: u64,
    pub step: u64,
    pub rip: u64,
    pub addr: u64,
    pub value: u64,
    pub vcpu: u32,
    /// The vCPU's own clock component at the access.
    pub clock: u32,
    pub kind: AccessKind,
    pub size: u8,
    /// A synchronisation access (locked, atomic code, or on sync bytes): two of them never
    /// race with each other.
    pub sync: bool,
}

impl Default for Acc {
    fn default() -> Acc {
        Acc {
            seq: 0,
            step: 0,
            rip: 0,
            addr: 0,
            value: 0,
            vcpu: 0,
            clock: 0,
            kind: AccessKind::Read,
            size: 0,
            sync: false,
        }
    }
}

/// One access as the last write (or a vCPU's last read) of the bytes in `mask`.
#[derive(Clone, Copy, Default)]
struct Entry {
    acc: Acc,
    mask: u8,
    write: bool,
}

/// Entries kept inline per cell; a cell with more spills into [`Shadow::spill`].
const INLINE: usize = 2;

#[derive(Clone, Copy, Default)]
struct Cell {
    len: u8,
    spilled: bool,
    e: [Entry; INLINE],
}

/// Cells per shadow page: 512 cells shadow 4 KiB of guest memory. Pages keep neighbouring
/// cells together (a loop over an array stays in one page), and a one-page cache skips
/// the map for runs of accesses to the same page.
const PAGE_CELLS: u64 = 512;

/// An earlier access that conflicts with the current one, and on which bytes of a cell.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub earlier: Acc,
    /// The cell (address / 8) and the conflicting bytes of it.
    pub cell: u64,
    pub mask: u8,
}

/// The shadow memory of one analysis.
#[derive(Default)]
pub struct Shadow {
    index: CellMap<u32>,
    pages: Vec<Box<[Cell]>>,
    last: Option<(u64, usize)>,
    spill: CellMap<Vec<Entry>>,
    scratch: Vec<Entry>,
}

/// The cells `[addr, addr+size)` covers, each with the mask of its bytes in the range.
pub fn cell_masks(addr: u64, size: u8) -> impl Iterator<Item = (u64, u8)> {
    let end = addr.saturating_add(size.max(1) as u64);
    (addr / 8..=(end - 1) / 8).map(move |c| {
        let base = c * 8;
        let lo = addr.max(base) - base;
        let hi = end.min(base.saturating_add(8)) - base;
        let mask = (((1u16 << hi) - 1) & !((1u16 << lo) - 1)) as u8;
        (c, mask)
    })
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

    /// Record access `a` on the bytes `mask` of cell `c`, pushing onto `hits` every
    /// earlier entry of another vCPU it conflicts with.
    pub fn access(&mut self, c: u64, mask: u8, a: &Acc, hits: &mut Vec<Hit>) {
        let write = a.kind.is_write();
        let new = Entry {
            acc: *a,
            mask,
            write,
        };
        let cell = self.cell(c);
        if !cell.spilled {
            // The common case, in place: compact the inline entries that keep bytes.
            let mut kept = 0;
            for i in 0..cell.len as usize {
                let mut e = cell.e[i];
                if update(&mut e, c, mask, a, write, hits) {
                    cell.e[kept] = e;
                    kept += 1;
                }
            }
            if kept < INLINE {
                cell.e[kept] = new;
                cell.len = kept as u8 + 1;
                return;
            }
            // Full: move everything to the spill map.
            cell.spilled = true;
            let kept_entries = cell.e;
            let mut list = std::mem::take(&mut self.scratch);
            list.clear();
            list.extend_from_slice(&kept_entries[..kept]);
            list.push(new);
            self.spill.insert(c, list);
            return;
        }
        let mut list = self.spill.remove(&c).unwrap_or_default();
        list.retain_mut(|e| update(e, c, mask, a, write, hits));
        list.push(new);
        if list.len() <= INLINE {
            let cell = self.cell(c);
            cell.spilled = false;
            cell.len = list.len() as u8;
            cell.e[..list.len()].copy_from_slice(&list);
            self.scratch = list;
        } else {
            self.spill.insert(c, list);
        }
    }
}

/// Pair entry `e` with access `a` (bytes `mask` of cell `c`) if they conflict, and take
/// from `e` the bytes `a` supersedes: a write everything, a read its vCPU's last read.
/// Whether `e` keeps any byte.
fn update(e: &mut Entry, c: u64, mask: u8, a: &Acc, write: bool, hits: &mut Vec<Hit>) -> bool {
    let overlap = e.mask & mask;
    if overlap == 0 {
        return true;
    }
    if e.acc.vcpu != a.vcpu && (e.write || write) {
        hits.push(Hit {
            earlier: e.acc,
            cell: c,
            mask: overlap,
        });
    }
    if write || (!e.write && e.acc.vcpu == a.vcpu) {
        e.mask &= !mask;
    }
    e.mask != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(seq: u64, vcpu: u32, kind: AccessKind, addr: u64, size: u8) -> Acc {
        Acc {
            seq,
            step: seq,
            rip: 0x1000 + seq,
            addr,
            vcpu,
            kind,
            size,
            ..Acc::default()
        }
    }

    fn run(s: &mut Shadow, a: Acc) -> Vec<(u64, u64, u8)> {
        let mut hits = Vec::new();
        for (c, m) in cell_masks(a.addr, a.size) {
            s.access(c, m, &a, &mut hits);
        }
        hits.iter()
            .map(|h| (h.earlier.seq, h.cell, h.mask))
            .collect()
    }

    #[test]
    fn masks_cover_exactly_the_bytes_of_an_access() {
        let m: Vec<_> = cell_masks(0x104, 4).collect();
        assert_eq!(m, vec![(0x20, 0xF0)]);
        let m: Vec<_> = cell_masks(0x106, 4).collect();
        assert_eq!(m, vec![(0x20, 0xC0), (0x21, 0x03)]);
        let m: Vec<_> = cell_masks(0x100, 8).collect();
        assert_eq!(m, vec![(0x20, 0xFF)]);
        let m: Vec<_> = cell_masks(0x100, 16).collect();
        assert_eq!(m, vec![(0x20, 0xFF), (0x21, 0xFF)]);
        let m: Vec<_> = cell_masks(0x107, 1).collect();
        assert_eq!(m, vec![(0x20, 0x80)]);
        // The top of the address space: no overflow.
        let m: Vec<_> = cell_masks(u64::MAX - 3, 8).collect();
        assert_eq!(m, vec![(u64::MAX / 8, 0x70)]);
    }

    #[test]
    fn adjacent_ints_of_one_cell_do_not_conflict_but_overlapping_bytes_do() {
        use AccessKind::{Read as R, Write as W};
        let mut s = Shadow::default();
        assert!(run(&mut s, acc(0, 0, W, 0x100, 4)).is_empty());
        assert!(run(&mut s, acc(1, 1, W, 0x104, 4)).is_empty());
        assert!(run(&mut s, acc(2, 0, R, 0x100, 4)).is_empty());
        // An 8-byte read by vCPU 2 overlaps both writes.
        assert_eq!(
            run(&mut s, acc(3, 2, R, 0x100, 8)),
            vec![(0, 0x20, 0x0F), (1, 0x20, 0xF0)]
        );
        // A 2-byte write by vCPU 0 at 0x104: WaW with vCPU 1's write, WaR with vCPU 2's read.
        assert_eq!(
            run(&mut s, acc(4, 0, W, 0x104, 2)),
            vec![(1, 0x20, 0x30), (3, 0x20, 0x30)]
        );
        // vCPU 1 reads byte 0x105: the last write of it is vCPU 0's (seq 4), not its own.
        assert_eq!(run(&mut s, acc(5, 1, R, 0x105, 1)), vec![(4, 0x20, 0x20)]);
        // Byte 0x106 still has vCPU 1's write (seq 1) and vCPU 2's read (seq 3).
        assert_eq!(
            run(&mut s, acc(6, 0, W, 0x106, 1)),
            vec![(1, 0x20, 0x40), (3, 0x20, 0x40)]
        );
    }

    #[test]
    fn many_readers_spill_and_all_pair_with_the_next_write() {
        use AccessKind::{Read as R, Write as W};
        let mut s = Shadow::default();
        for v in 0..5 {
            assert!(run(&mut s, acc(v as u64, v, R, 0x200, 8)).is_empty());
        }
        let hits = run(&mut s, acc(9, 5, W, 0x200, 8));
        let seqs: Vec<u64> = hits.iter().map(|h| h.0).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        // The write took every byte: only it is left, and the cell is inline again.
        assert_eq!(run(&mut s, acc(10, 0, R, 0x200, 8)), vec![(9, 0x40, 0xFF)]);
        assert!(s.spill.is_empty());
    }
}
