//! Who has touched each guest page: what makes weft pay only for memory threads share.
//!
//! A page (4 KiB) is *free* until a vCPU touches it, then *owned* by that vCPU until
//! another one touches it. If that one reads, the page becomes *read-shared*: every vCPU
//! may read it, until one writes; then, or at once if the other vCPU wrote, it is *shared*
//! for the rest of the run (SMP-ReVirt's CREW protocol: concurrent reads, exclusive
//! writes). Accesses that cannot conflict with anything yet (to a page the vCPU owns,
//! reads of a read-shared page) are neither scheduling points nor recorded. The access
//! that changes a page's state is a scheduling point and recorded (a `Share` event says
//! what changed), and so is every later access to a shared page.
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
/// More than one vCPU has touched it and one has written since (or the run shares
/// everything).
const SHARED: u8 = 0xFE;
/// More than one vCPU has read it, nobody has written since.
const READ: u8 = 0xFD;

/// In a list of vCPUs that lost a page: all of them (it was read-shared).
pub(crate) const ANYONE: u32 = u32::MAX;

/// What an access to a page means for the vCPU making it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The vCPU's own (or a read of a read-shared page): no point, not recorded.
    Mine,
    /// Nobody's yet (on one of its pages, the others being its own): the vCPU claims it
    /// at a scheduling point, so that another vCPU may come first and the page be shared
    /// from the start; not recorded.
    Free,
    /// Shared, owned by another vCPU, or a write to a read-shared page: a scheduling
    /// point, recorded.
    Other,
}

/// A page whose state an access changed (a `Share` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Its address.
    pub page: u64,
    /// The vCPU that owned it; `None`: it was read-shared.
    pub owner: Option<VcpuId>,
    /// Whether it is read-shared now (else shared).
    pub read_only: bool,
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

    /// What an access of `vcpu` to `[addr, addr + size)` is: to its own pages only (or a
    /// read of read-shared ones), to a free page (and otherwise its own), or to some
    /// other's or shared page, or a write to a read-shared one.
    #[inline]
    pub fn classify(&self, vcpu: VcpuId, addr: u64, size: usize, write: bool) -> Owner {
        let (first, last) = Self::span(addr, size);
        let of = |p| match self.state(p) {
            FREE => Owner::Free,
            READ if !write => Owner::Mine,
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

    /// Whether `vcpu` may access the page at `page` (an address in it) unseen: it owns it,
    /// or it is read-shared and this is a read.
    #[inline]
    pub fn is_own(&self, vcpu: VcpuId, page: u64, write: bool) -> bool {
        match self.state(page / PAGE) {
            READ => !write,
            s => s == vcpu.0 as u8,
        }
    }

    /// Whether the page at `page` (an address in it) is read-shared.
    pub fn is_read_shared(&self, page: u64) -> bool {
        self.state(page / PAGE) == READ
    }

    /// The vCPU that owns the page at `page` (an address in it), if one does.
    pub fn owner(&self, page: u64) -> Option<VcpuId> {
        match self.state(page / PAGE) {
            FREE | SHARED | READ => None,
            o => Some(VcpuId(o as u32)),
        }
    }

    /// `vcpu` reads or writes `[addr, addr + size)`: free pages become its own; pages
    /// another vCPU owns become read-shared (a read) or shared (a write); read-shared
    /// pages become shared when written. Returns the pages whose state changed so.
    #[inline]
    pub fn touch(
        &self,
        vcpu: VcpuId,
        addr: u64,
        size: usize,
        write: bool,
    ) -> [Option<Transition>; 2] {
        let (first, last) = Self::span(addr, size);
        let mut out = [None, None];
        for (i, page) in [first, last].into_iter().enumerate() {
            if i == 1 && page == first {
                break;
            }
            let Some(c) = self.state.get(page as usize) else {
                continue;
            };
            let (owner, read_only) = match c.get() {
                FREE => {
                    c.set(vcpu.0 as u8);
                    continue;
                }
                SHARED => continue,
                READ if !write => continue,
                READ => (None, false),
                o if o == vcpu.0 as u8 => continue,
                o => (Some(VcpuId(o as u32)), !write),
            };
            c.set(if read_only { READ } else { SHARED });
            out[i] = Some(Transition {
                page: page * PAGE,
                owner,
                read_only,
            });
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
                SHARED | READ => {}
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
            if o == READ {
                // Anyone may read it unseen: every vCPU loses it.
                lost.push(VcpuId(ANYONE));
            } else if o != FREE && o != SHARED && !lost.contains(&VcpuId(o as u32)) {
                lost.push(VcpuId(o as u32));
            }
        }
        lost
    }

    /// The pages shared now, and the read-shared ones that were `written` in the run
    /// (their owner wrote before others read: a conflict), ascending: what a search
    /// carries into later schedules. Read-shared pages nobody wrote (constants) are not.
    pub fn shared_pages(&self, written: impl Fn(u64) -> bool) -> Vec<u64> {
        self.state
            .iter()
            .enumerate()
            .filter(|(i, c)| c.get() == SHARED || c.get() == READ && written(*i as u64))
            .map(|(i, _)| i as u64)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: VcpuId = VcpuId(0);
    const V1: VcpuId = VcpuId(1);
    const V2: VcpuId = VcpuId(2);

    fn fresh() -> PageOwners {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::default());
        p
    }

    fn became(page: u64, owner: Option<VcpuId>, read_only: bool) -> Option<Transition> {
        Some(Transition {
            page: page * PAGE,
            owner,
            read_only,
        })
    }

    #[test]
    fn a_page_is_its_first_toucher_s_until_another_writes_it() {
        let p = fresh();
        assert_eq!(p.classify(V0, 0x1008, 8, true), Owner::Free);
        assert_eq!(p.touch(V0, 0x1008, 8, true), [None, None]);
        assert_eq!(p.classify(V0, 0x1ff0, 8, true), Owner::Mine);
        assert!(p.is_own(V0, 0x1000, true));
        assert_eq!(p.classify(V1, 0x1000, 1, true), Owner::Other);
        assert_eq!(
            p.touch(V1, 0x1000, 1, true),
            [became(1, Some(V0), false), None]
        );
        // Shared for both from now on, and for the rest of the run.
        assert_eq!(p.classify(V0, 0x1008, 8, false), Owner::Other);
        assert_eq!(p.classify(V1, 0x1008, 8, false), Owner::Other);
        assert_eq!(p.touch(V0, 0x1008, 8, true), [None, None]);
        assert_eq!(p.shared_pages(|_| false), vec![1]);
        // Another page is unaffected.
        assert_eq!(p.classify(V1, 0x2000, 8, false), Owner::Free);
    }

    #[test]
    fn readers_share_a_page_until_one_writes() {
        let p = fresh();
        p.touch(V0, 0x3000, 8, true);
        // Another vCPU's read: read-shared, which the owner may no longer write unseen.
        assert_eq!(p.classify(V1, 0x3000, 8, false), Owner::Other);
        assert_eq!(
            p.touch(V1, 0x3000, 8, false),
            [became(3, Some(V0), true), None]
        );
        for v in [V0, V1, V2] {
            assert_eq!(p.classify(v, 0x3010, 8, false), Owner::Mine);
            assert_eq!(p.classify(v, 0x3010, 8, true), Owner::Other);
            assert!(p.is_own(v, 0x3000, false) && !p.is_own(v, 0x3000, true));
        }
        assert_eq!(p.touch(V2, 0x3010, 8, false), [None, None]);
        assert_eq!(p.shared_pages(|_| false), Vec::<u64>::new());
        // Written before it was read-shared: a conflict a search should interleave.
        assert_eq!(p.shared_pages(|p| p == 3), vec![3]);
        // A write: shared for good.
        assert_eq!(p.touch(V2, 0x3010, 8, true), [became(3, None, false), None]);
        assert_eq!(p.classify(V1, 0x3010, 8, false), Owner::Other);
        assert_eq!(p.shared_pages(|_| false), vec![3]);
    }

    #[test]
    fn an_access_across_a_page_boundary_counts_both_pages() {
        let p = fresh();
        p.touch(V0, 0x2000, 8, true);
        assert_eq!(p.classify(V1, 0x1ffc, 8, true), Owner::Other);
        assert_eq!(p.classify(V1, 0x0ffc, 8, true), Owner::Free);
        assert_eq!(
            p.touch(V1, 0x1ffc, 8, true),
            [None, became(2, Some(V0), false)]
        );
        assert_eq!(
            p.classify(V1, 0x1000, 8, true),
            Owner::Mine,
            "page 1 became v1's"
        );
    }

    #[test]
    fn sharing_all_and_learned_pages_start_shared() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::All);
        assert_eq!(p.classify(V0, 0x5000, 8, false), Owner::Other);
        p.reset(&Sharing::Pages {
            shared: vec![5, 99],
        });
        assert_eq!(p.classify(V0, 0x5000, 8, false), Owner::Other);
        assert_eq!(p.classify(V0, 0x6000, 8, false), Owner::Free);
        assert_eq!(p.shared_pages(|_| false), vec![5]);
    }

    #[test]
    fn a_stack_given_to_a_thread_is_its_own_and_shared_pages_stay_shared() {
        let p = fresh();
        p.touch(V0, 0x3000, 8, true); // the parent wrote the new thread's descriptor
        p.touch(V0, 0x4000, 8, true);
        p.touch(V1, 0x4000, 8, true); // shared already
        assert_eq!(p.give(V1, 0x3000, 0x6000), vec![V0]);
        assert_eq!(p.classify(V1, 0x3000, 8, true), Owner::Mine);
        assert_eq!(p.classify(V1, 0x5000, 8, true), Owner::Mine);
        assert_eq!(p.classify(V1, 0x4000, 8, true), Owner::Other);
        assert_eq!(p.classify(V0, 0x3000, 8, false), Owner::Other);
        assert_eq!(p.share(0x5000, 0x6000), vec![V1]);
        assert_eq!(p.classify(V1, 0x5000, 8, false), Owner::Other);
        // A read-shared page shared again: every vCPU loses it.
        p.touch(V0, 0x7000, 8, true);
        p.touch(V1, 0x7000, 8, false);
        assert_eq!(p.share(0x7000, 0x8000), vec![VcpuId(ANYONE)]);
    }
}
