//! Who has touched each guest page: what makes weft pay only for memory threads share.
//!
//! A page (4 KiB) is *free* until a vCPU touches it, then *owned* by that vCPU until
//! another one touches it, then *shared* for the rest of the run (as SMP-ReVirt's CREW
//! protocol, without the read-shared state). Accesses to a page its owner alone has
//! touched cannot conflict with anything yet: they are neither scheduling points nor
//! recorded. The first access by another vCPU is a scheduling point, the page becomes
//! shared (a `Share` event), and every later access to it is a point and recorded.
//!
//! Why this keeps exploration complete in the limit: an access to an owned page commutes
//! with everything other vCPUs do until one of them touches the page, and that touch is
//! itself a point where the strategy decides. What a single run cannot reorder is the
//! owner's accesses *before* the page became shared against the first foreign one; `weft
//! explore` therefore starts later schedules with the pages earlier ones found shared
//! (`Sharing::Pages::shared`), so they are points from the first access on.
//!
//! The states are per run and a function of the run's execution order only: a replay
//! makes the same transitions at the same steps.

use std::cell::Cell;

use weft_trace::{Sharing, VcpuId};

use super::memory::PAGE;

/// No vCPU has touched the page.
const FREE: u8 = 0xFF;
/// More than one vCPU has touched it (or the run shares everything).
const SHARED: u8 = 0xFE;

/// What an access to a page means for the vCPU making it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The vCPU's own: no point, not recorded.
    Mine,
    /// Nobody's yet (on one of its pages, the others being its own): the vCPU claims it
    /// at a scheduling point, so that another vCPU may come first and the page be shared
    /// from the start; not recorded.
    Free,
    /// Shared, or owned by another vCPU: a scheduling point, recorded.
    Other,
}

/// Page states of one machine (one cell per RAM page).
pub(crate) struct PageOwners {
    state: Box<[Cell<u8>]>,
}

impl PageOwners {
    pub fn new(ram: u64) -> PageOwners {
        PageOwners {
            state: (0..ram.div_ceil(PAGE)).map(|_| Cell::new(FREE)).collect(),
        }
    }

    /// Start a run: every page free (`Sharing::Pages`, except the pages it lists, which
    /// start shared) or every page shared (`Sharing::All`).
    pub fn reset(&self, sharing: &Sharing) {
        match sharing {
            Sharing::All => self.state.iter().for_each(|c| c.set(SHARED)),
            Sharing::Pages { shared } => {
                self.state.iter().for_each(|c| c.set(FREE));
                for &p in shared {
                    if let Some(c) = self.state.get(p as usize) {
                        c.set(SHARED);
                    }
                }
            }
        }
    }

    /// The pages `[addr, addr + size)` lies on (one, or two when it crosses a boundary).
    fn span(addr: u64, size: usize) -> (u64, u64) {
        let first = addr / PAGE;
        let last = addr.saturating_add(size.max(1) as u64 - 1) / PAGE;
        (first, last)
    }

    fn state(&self, page: u64) -> u8 {
        // Outside RAM: an unmapped access, which faults before it matters.
        self.state.get(page as usize).map_or(SHARED, Cell::get)
    }

    /// What an access of `vcpu` to `[addr, addr + size)` is: to its own pages only, to a
    /// free page (and otherwise its own), or to some other's or shared page.
    #[inline]
    pub fn classify(&self, vcpu: VcpuId, addr: u64, size: usize) -> Owner {
        let (first, last) = Self::span(addr, size);
        let of = |p| match self.state(p) {
            FREE => Owner::Free,
            s if s == vcpu.0 as u8 => Owner::Mine,
            _ => Owner::Other,
        };
        match (
            of(first),
            if first == last { Owner::Mine } else { of(last) },
        ) {
            (Owner::Other, _) | (_, Owner::Other) => Owner::Other,
            (Owner::Free, _) | (_, Owner::Free) => Owner::Free,
            _ => Owner::Mine,
        }
    }

    /// Whether `vcpu` owns the page at `page` (an address in it).
    #[inline]
    pub fn is_own(&self, vcpu: VcpuId, page: u64) -> bool {
        self.state((page / PAGE) as usize as u64) == vcpu.0 as u8
    }

    /// The vCPU that owns the page at `page` (an address in it), if one does.
    pub fn owner(&self, page: u64) -> Option<VcpuId> {
        match self.state(page / PAGE) {
            FREE | SHARED => None,
            o => Some(VcpuId(o as u32)),
        }
    }

    /// `vcpu` accesses `[addr, addr + size)`: free pages become its own, pages another
    /// vCPU owns become shared. Returns the pages that became shared, with their owner.
    #[inline]
    pub fn touch(&self, vcpu: VcpuId, addr: u64, size: usize) -> [Option<(u64, VcpuId)>; 2] {
        let (first, last) = Self::span(addr, size);
        let mut out = [None, None];
        for (i, page) in [first, last].into_iter().enumerate() {
            if i == 1 && page == first {
                break;
            }
            let Some(c) = self.state.get(page as usize) else {
                continue;
            };
            match c.get() {
                FREE => c.set(vcpu.0 as u8),
                SHARED => {}
                o if o == vcpu.0 as u8 => {}
                o => {
                    c.set(SHARED);
                    out[i] = Some((page, VcpuId(o as u32)));
                }
            }
        }
        out
    }

    /// Give `[lo, hi)` to `vcpu` (its stack, its thread's TLS): free pages and pages
    /// another vCPU owns become its own; shared pages stay shared. Returns the vCPUs that
    /// lost a page.
    pub fn give(&self, vcpu: VcpuId, lo: u64, hi: u64) -> Vec<VcpuId> {
        let mut lost = Vec::new();
        for page in lo / PAGE..hi.div_ceil(PAGE) {
            let Some(c) = self.state.get(page as usize) else {
                break;
            };
            match c.get() {
                SHARED => {}
                FREE => c.set(vcpu.0 as u8),
                o => {
                    if o != vcpu.0 as u8 && !lost.contains(&VcpuId(o as u32)) {
                        lost.push(VcpuId(o as u32));
                    }
                    c.set(vcpu.0 as u8);
                }
            }
        }
        lost
    }

    /// Make `[lo, hi)` shared (a traced stack). Returns the vCPUs that lost a page.
    pub fn share(&self, lo: u64, hi: u64) -> Vec<VcpuId> {
        let mut lost = Vec::new();
        for page in lo / PAGE..hi.div_ceil(PAGE) {
            let Some(c) = self.state.get(page as usize) else {
                break;
            };
            let o = c.replace(SHARED);
            if o != FREE && o != SHARED && !lost.contains(&VcpuId(o as u32)) {
                lost.push(VcpuId(o as u32));
            }
        }
        lost
    }

    /// The pages shared now, ascending (what a search carries into later schedules).
    pub fn shared_pages(&self) -> Vec<u64> {
        self.state
            .iter()
            .enumerate()
            .filter(|(_, c)| c.get() == SHARED)
            .map(|(i, _)| i as u64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: VcpuId = VcpuId(0);
    const V1: VcpuId = VcpuId(1);

    #[test]
    fn a_page_is_its_first_toucher_s_until_another_touches_it() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::default());
        assert_eq!(p.classify(V0, 0x1008, 8), Owner::Free);
        assert_eq!(p.touch(V0, 0x1008, 8), [None, None]);
        assert_eq!(p.classify(V0, 0x1ff0, 8), Owner::Mine);
        assert_eq!(p.classify(V1, 0x1000, 1), Owner::Other);
        assert_eq!(p.touch(V1, 0x1000, 1), [Some((1, V0)), None]);
        // Shared for both from now on, and for the rest of the run.
        assert_eq!(p.classify(V0, 0x1008, 8), Owner::Other);
        assert_eq!(p.classify(V1, 0x1008, 8), Owner::Other);
        assert_eq!(p.touch(V0, 0x1008, 8), [None, None]);
        assert_eq!(p.shared_pages(), vec![1]);
        // Another page is unaffected.
        assert_eq!(p.classify(V1, 0x2000, 8), Owner::Free);
    }

    #[test]
    fn an_access_across_a_page_boundary_counts_both_pages() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::default());
        p.touch(V0, 0x2000, 8);
        assert_eq!(p.classify(V1, 0x1ffc, 8), Owner::Other);
        assert_eq!(p.classify(V1, 0x0ffc, 8), Owner::Free);
        assert_eq!(p.touch(V1, 0x1ffc, 8), [None, Some((2, V0))]);
        assert_eq!(p.classify(V1, 0x1000, 8), Owner::Mine, "page 1 became v1's");
    }

    #[test]
    fn sharing_all_and_learned_pages_start_shared() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::All);
        assert_eq!(p.classify(V0, 0x5000, 8), Owner::Other);
        p.reset(&Sharing::Pages {
            shared: vec![5, 99],
        });
        assert_eq!(p.classify(V0, 0x5000, 8), Owner::Other);
        assert_eq!(p.classify(V0, 0x6000, 8), Owner::Free);
        assert_eq!(p.shared_pages(), vec![5]);
    }

    #[test]
    fn a_stack_given_to_a_thread_is_its_own_and_shared_pages_stay_shared() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::default());
        p.touch(V0, 0x3000, 8); // the parent wrote the new thread's descriptor
        p.touch(V0, 0x4000, 8);
        p.touch(V1, 0x4000, 8); // shared already
        assert_eq!(p.give(V1, 0x3000, 0x6000), vec![V0]);
        assert_eq!(p.classify(V1, 0x3000, 8), Owner::Mine);
        assert_eq!(p.classify(V1, 0x5000, 8), Owner::Mine);
        assert_eq!(p.classify(V1, 0x4000, 8), Owner::Other);
        assert_eq!(p.classify(V0, 0x3000, 8), Owner::Other);
        assert_eq!(p.share(0x5000, 0x6000), vec![V1]);
        assert_eq!(p.classify(V1, 0x5000, 8), Owner::Other);
    }
}
