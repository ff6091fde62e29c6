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
//! A shared page keeps the same states per 64-byte line: when it becomes shared its lines
//! start as the page was (its owner's, or read-shared), and only the line written becomes
//! shared; the others change as they are touched. So a page where one thread keeps its
//! counters beside constants everyone reads (static glibc's IFUNC table beside malloc's
//! statistics) costs points only for the lines really shared. Its vCPUs still see it
//! through their hooked instances (a TLB maps pages, not lines).
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

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

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

/// The unit of a shared page's states.
pub(crate) const LINE: u64 = 64;
const LINES: usize = (PAGE / LINE) as usize;

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

/// A page or line whose state an access changed (a `Share` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Its address.
    pub addr: u64,
    /// `PAGE` (a page became read-shared) or `LINE` (a line became read-shared or shared;
    /// if its page was not shared yet, the page is now and its other lines keep the state
    /// the page had).
    pub len: u64,
    /// The vCPU that owned it; `None`: it was read-shared.
    pub owner: Option<VcpuId>,
    /// Whether it is read-shared now (else shared).
    pub read_only: bool,
    /// Whether the page's state changed (not just a line of a shared page): whoever could
    /// reach the page unseen no longer may.
    pub page_changed: bool,
}

/// Page states of one machine (one cell per RAM page).
pub(crate) struct PageOwners {
    state: Box<[Cell<u8>]>,
    /// The line states of the pages that became shared during the run, by page number
    /// (a shared page without an entry: every line shared).
    lines: RefCell<BTreeMap<u64, [u8; LINES]>>,
}

impl PageOwners {
    pub fn new(ram: u64) -> PageOwners {
        PageOwners {
            state: (0..ram.div_ceil(PAGE)).map(|_| Cell::new(FREE)).collect(),
            lines: RefCell::new(BTreeMap::new()),
        }
    }

    /// Start a run: every page free (`Sharing::Pages`, except the pages it lists, which
    /// start shared) or every page shared (`Sharing::All`).
    pub fn reset(&self, sharing: &Sharing) {
        self.lines.borrow_mut().clear();
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

    fn state(&self, page: u64) -> u8 {
        // Outside RAM: an unmapped access, which faults before it matters.
        self.state.get(page as usize).map_or(SHARED, Cell::get)
    }

    /// The state that rules the byte at `addr`: its page's, or for a page that became
    /// shared, its line's.
    fn unit_state(&self, addr: u64) -> u8 {
        let page = addr / PAGE;
        match self.state(page) {
            SHARED => self
                .lines
                .borrow()
                .get(&page)
                .map_or(SHARED, |l| l[((addr % PAGE) / LINE) as usize]),
            s => s,
        }
    }

    /// What an access of `vcpu` to `[addr, addr + size)` is: to its own pages only (or a
    /// read of read-shared ones), to a free page (and otherwise its own), or to some
    /// other's or shared page, or a write to a read-shared one.
    #[inline]
    pub fn classify(&self, vcpu: VcpuId, addr: u64, size: usize, write: bool) -> Owner {
        let end = addr.saturating_add(size.max(1) as u64 - 1);
        let of = |a| match self.unit_state(a) {
            FREE => Owner::Free,
            READ if !write => Owner::Mine,
            s if s == vcpu.0 as u8 => Owner::Mine,
            _ => Owner::Other,
        };
        let same = addr / LINE == end / LINE;
        match (of(addr), if same { Owner::Mine } else { of(end) }) {
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

    /// Whether the byte at `addr` is read-shared (its page, or its line of a shared page).
    pub fn is_read_shared(&self, addr: u64) -> bool {
        self.unit_state(addr) == READ
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
    /// pages become shared when written; within shared pages, lines change the same way.
    /// Returns the pages and lines whose state changed so.
    #[inline]
    pub fn touch(
        &self,
        vcpu: VcpuId,
        addr: u64,
        size: usize,
        write: bool,
    ) -> [Option<Transition>; 2] {
        let end = addr.saturating_add(size.max(1) as u64 - 1);
        let mut out = [None, None];
        for (i, a) in [addr, end].into_iter().enumerate() {
            if i == 1 && a / LINE == addr / LINE {
                break;
            }
            out[i] = self.touch_at(vcpu, a, write);
        }
        out
    }

    /// `touch` for the page and line of the byte at `addr`.
    fn touch_at(&self, vcpu: VcpuId, addr: u64, write: bool) -> Option<Transition> {
        let page = addr / PAGE;
        let c = self.state.get(page as usize)?;
        let me = vcpu.0 as u8;
        let line = ((addr % PAGE) / LINE) as usize;
        let at = |len: u64| addr / len * len;
        match c.get() {
            FREE => {
                c.set(me);
                None
            }
            o if o == me => None,
            READ if !write => None,
            SHARED => {
                let mut lines = self.lines.borrow_mut();
                let l = lines.get_mut(&page)?;
                let (owner, read_only) = match l[line] {
                    SHARED => return None,
                    o if o == me => return None,
                    READ if !write => return None,
                    READ => (None, false),
                    o => (Some(VcpuId(o as u32)), !write),
                };
                l[line] = if read_only { READ } else { SHARED };
                Some(Transition {
                    addr: at(LINE),
                    len: LINE,
                    owner,
                    read_only,
                    page_changed: false,
                })
            }
            o if !write => {
                // Another vCPU's read of an owned page: the whole page is read-shared.
                c.set(READ);
                Some(Transition {
                    addr: at(PAGE),
                    len: PAGE,
                    owner: Some(VcpuId(o as u32)),
                    read_only: true,
                    page_changed: true,
                })
            }
            was => {
                // A write to a page someone else owns, or to a read-shared one: the page
                // is shared, its lines as it was but this one, written.
                c.set(SHARED);
                let mut l = [was; LINES];
                l[line] = SHARED;
                self.lines.borrow_mut().insert(page, l);
                Some(Transition {
                    addr: at(LINE),
                    len: LINE,
                    owner: (was != READ).then_some(VcpuId(was as u32)),
                    read_only: false,
                    page_changed: true,
                })
            }
        }
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
            self.lines.borrow_mut().remove(&page);
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

    fn page(addr: u64, owner: Option<VcpuId>) -> Option<Transition> {
        Some(Transition {
            addr,
            len: PAGE,
            owner,
            read_only: true,
            page_changed: true,
        })
    }

    fn line(
        addr: u64,
        owner: Option<VcpuId>,
        read_only: bool,
        page_changed: bool,
    ) -> Option<Transition> {
        Some(Transition {
            addr,
            len: LINE,
            owner,
            read_only,
            page_changed,
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
        // The page is shared now; the line written is, the others stay v0's.
        assert_eq!(
            p.touch(V1, 0x1000, 1, true),
            [line(0x1000, Some(V0), false, true), None]
        );
        assert!(
            !p.is_own(V0, 0x1000, false),
            "no unseen access to a shared page"
        );
        assert_eq!(p.classify(V0, 0x1008, 8, false), Owner::Other);
        assert_eq!(p.classify(V1, 0x1008, 8, false), Owner::Other);
        assert_eq!(p.classify(V0, 0x1ff0, 8, true), Owner::Mine, "v0's line");
        assert_eq!(p.classify(V1, 0x1ff0, 8, false), Owner::Other);
        assert_eq!(p.touch(V0, 0x1008, 8, true), [None, None]);
        assert_eq!(p.shared_pages(|_| false), vec![1]);
        // Another page is unaffected.
        assert_eq!(p.classify(V1, 0x2000, 8, false), Owner::Free);
    }

    #[test]
    fn readers_share_a_page_until_one_writes_and_then_its_other_lines_stay_read_shared() {
        let p = fresh();
        p.touch(V0, 0x3000, 8, true);
        // Another vCPU's read: read-shared, which the owner may no longer write unseen.
        assert_eq!(p.classify(V1, 0x3000, 8, false), Owner::Other);
        assert_eq!(
            p.touch(V1, 0x3000, 8, false),
            [page(0x3000, Some(V0)), None]
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
        // A write: that line is shared for good, the page too; its other lines stay
        // read-shared.
        assert_eq!(
            p.touch(V2, 0x3010, 8, true),
            [line(0x3000, None, false, true), None]
        );
        assert_eq!(p.classify(V1, 0x3010, 8, false), Owner::Other);
        assert_eq!(p.classify(V1, 0x3040, 8, false), Owner::Mine);
        assert_eq!(p.classify(V1, 0x3040, 8, true), Owner::Other);
        assert_eq!(
            p.touch(V1, 0x3040, 8, true),
            [line(0x3040, None, false, false), None]
        );
        assert_eq!(p.shared_pages(|_| false), vec![3]);
    }

    #[test]
    fn a_line_of_a_shared_page_its_owner_kept_becomes_read_shared_then_shared() {
        let p = fresh();
        p.touch(V0, 0x5000, 8, true);
        p.touch(V1, 0x5000, 8, true); // shared; line 0x5040 still v0's
        assert_eq!(p.classify(V0, 0x5040, 8, true), Owner::Mine);
        assert_eq!(
            p.touch(V1, 0x5044, 4, false),
            [line(0x5040, Some(V0), true, false), None]
        );
        assert_eq!(p.classify(V2, 0x5048, 8, false), Owner::Mine);
        assert_eq!(p.classify(V0, 0x5048, 8, true), Owner::Other);
        assert_eq!(
            p.touch(V0, 0x5048, 8, true),
            [line(0x5040, None, false, false), None]
        );
    }

    #[test]
    fn an_access_across_a_boundary_counts_both_pages_or_lines() {
        let p = fresh();
        p.touch(V0, 0x2000, 8, true);
        assert_eq!(p.classify(V1, 0x1ffc, 8, true), Owner::Other);
        assert_eq!(p.classify(V1, 0x0ffc, 8, true), Owner::Free);
        assert_eq!(
            p.touch(V1, 0x1ffc, 8, true),
            [None, line(0x2000, Some(V0), false, true)]
        );
        assert_eq!(
            p.classify(V1, 0x1000, 8, true),
            Owner::Mine,
            "page 1 became v1's"
        );
        // Across two lines of a shared page: both.
        assert_eq!(p.classify(V0, 0x207c, 8, true), Owner::Mine, "v0's lines");
        assert_eq!(p.classify(V1, 0x207c, 8, false), Owner::Other);
        assert_eq!(
            p.touch(V1, 0x207c, 8, false),
            [
                line(0x2040, Some(V0), true, false),
                line(0x2080, Some(V0), true, false)
            ]
        );
    }

    #[test]
    fn sharing_all_and_learned_pages_start_shared_every_line() {
        let p = PageOwners::new(16 * PAGE);
        p.reset(&Sharing::All);
        assert_eq!(p.classify(V0, 0x5000, 8, false), Owner::Other);
        p.reset(&Sharing::Pages {
            shared: vec![5, 99],
        });
        assert_eq!(p.classify(V0, 0x5000, 8, false), Owner::Other);
        assert_eq!(p.touch(V0, 0x5000, 8, true), [None, None]);
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
        // Shared whole: no line is anybody's any more.
        assert_eq!(p.share(0x4000, 0x5000), Vec::<VcpuId>::new());
        assert_eq!(p.classify(V0, 0x4040, 8, true), Owner::Other);
        // A read-shared page shared again: every vCPU loses it.
        p.touch(V0, 0x7000, 8, true);
        p.touch(V1, 0x7000, 8, false);
        assert_eq!(p.share(0x7000, 0x8000), vec![VcpuId(ANYONE)]);
    }
}
