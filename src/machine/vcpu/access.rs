//! A vCPU's memory accesses, on both of its unicorn instances.
//!
//! The *fast* instance (`Sharing::Pages`) has no memory hook, so unicorn's translated code
//! reaches RAM through its own TLB at full speed. That TLB is weft's: in unicorn's
//! virtual-TLB mode every miss asks `on_tlb_fill`, which maps a page only when this vCPU may
//! touch it unseen (a page it owns, see `pages`) and refuses otherwise. A refused access
//! never happens: the instruction stops before it and the vCPU moves to its *hooked*
//! instance, where every access comes through `on_mem` and is a scheduling point when it
//! is not to a page of its own. Whenever a page stops being a vCPU's own, that vCPU's fast
//! TLB is flushed (`Shared::revoke`), so a grant never outlives ownership.

use std::ffi::{c_int, c_void};

use unicorn_engine::hook::uc_engine;
use unicorn_engine::{MemType, Prot, RegisterX86, TlbEntry};
use weft_trace::{AccessKind, Event, GuestAddr, VcpuId};

use super::super::memory::PAGE;
use super::super::pages::{Owner, ANYONE};
use super::super::tm::Undo;
use super::{ffi, Side, StopCause, VcpuData};

impl VcpuData {
    pub(super) fn on_access(
        &self,
        h: *mut uc_engine,
        ty: MemType,
        addr: u64,
        size: usize,
        value: i64,
    ) {
        let write = ty == MemType::WRITE;
        if self.aborting.get() {
            // The instruction that aborted still completes: undo its stores when it stops.
            if write {
                self.scrub
                    .borrow_mut()
                    .push(Undo::save(self.mem(), addr, size));
            }
            return;
        }
        if self.shared.ctl.borrow().stopping {
            return;
        }
        let stack = self.is_private(addr);
        let owner = if stack {
            Owner::Mine
        } else {
            let pages = &self.shared.pages;
            // The read half of an atomic instruction counts as its write: a read-shared
            // page must become shared before it, so that no point falls between the halves.
            let intent = write
                || (pages.is_read_shared(addr)
                    || pages.is_read_shared(addr + size.max(1) as u64 - 1))
                    && self.shared.insn_atomic(ffi::reg_read(h, RegisterX86::RIP));
            pages.classify(self.id, addr, size, intent)
        };
        let claimed = owner == Owner::Free;
        if claimed {
            // The first touch of a page: a point, where another vCPU may come first.
            let rip = ffi::reg_read(h, RegisterX86::RIP);
            if !self.point(h, rip, false) {
                return;
            }
        }
        let owner = match owner {
            Owner::Free => self.shared.pages.classify(self.id, addr, size, write),
            o => o,
        };
        if owner != Owner::Other {
            if !stack {
                self.private_access(h, addr, size, write, value);
            }
            if self.shared.tm.borrow().any_active() {
                let rip = ffi::reg_read(h, RegisterX86::RIP);
                self.tm_access(h, rip, addr, size, write);
            }
            return;
        }
        // Shared memory: the vCPU stays on its hooked instance while it keeps using some.
        self.since_shared.set(0);
        let rip = ffi::reg_read(h, RegisterX86::RIP);
        let atomic = if write {
            self.atomic_rip.replace(0) == rip && rip != 0
        } else {
            let a = self.shared.insn_atomic(rip);
            self.atomic_rip.set(if a { rip } else { 0 });
            a
        };
        // The write half of an atomic instruction is not a point: nothing may come between.
        // Nor is an access whose claim of a page was one (another vCPU took it meanwhile).
        let second_half = write && atomic;
        if !second_half && !claimed && !self.point(h, rip, false) {
            if write && self.aborting.get() {
                self.scrub
                    .borrow_mut()
                    .push(Undo::save(self.mem(), addr, size));
            }
            return;
        }
        let write_intent = write || atomic;
        for t in self
            .shared
            .pages
            .touch(self.id, addr, size, write_intent)
            .into_iter()
            .flatten()
        {
            if t.page_changed {
                // Whoever could reach the page unseen must not any more.
                self.shared.revoke(t.owner.unwrap_or(VcpuId(ANYONE)));
            }
            self.ctl().emit_at_step(|step| Event::Share {
                step,
                vcpu: self.id,
                addr: GuestAddr(t.addr),
                len: t.len as u32,
                owner: t.owner,
                read_only: t.read_only,
            });
        }
        if self.shared.tm.borrow().any_active() && self.tm_access(h, rip, addr, size, write) {
            return;
        }
        let size = size.min(8);
        let old = self.mem().read_uint(addr, size).unwrap_or(0);
        let (kind, val) = access_kind(write, atomic, value, old, size);
        let speculative = write && self.in_tx();
        self.ctl()
            .access(self.id, rip, addr, size as u8, kind, val, old, speculative);
    }

    /// An access to a page only this vCPU has touched: no point and not recorded. It may
    /// still be progress (a value-changing write while the vCPU is watched after a tick,
    /// see `watching`), and a run that derives the full access log hears of it.
    fn private_access(&self, h: *mut uc_engine, addr: u64, size: usize, write: bool, value: i64) {
        self.shared.pages.touch(self.id, addr, size, write);
        let derive = self.shared.ctl.borrow().log_private;
        let watched = write && self.watching.get();
        if !derive && !watched {
            return;
        }
        let size = size.min(8);
        let old = self.mem().read_uint(addr, size).unwrap_or(0);
        if watched && mask(value as u64, size) != old {
            // It changes memory: it is computing, not looping (no loop proof to make).
            self.watching.set(false);
            self.ticks_in_row.set(0);
            self.ctl().progress(self.id);
        }
        if derive {
            let rip = ffi::reg_read(h, RegisterX86::RIP);
            let atomic = self.shared.insn_atomic(rip);
            let (kind, val) = access_kind(write, atomic, value, old, size);
            self.ctl()
                .private_access(self.id, rip, addr, size as u8, kind, val);
        }
    }

    /// The TM side of an access while some transaction is active: conflicts abort other
    /// vCPUs' transactions (requester wins); our own may overflow. Returns `true` if our
    /// own transaction aborted (the access is then not logged: it is undone).
    pub(super) fn tm_access(
        &self,
        h: *mut uc_engine,
        rip: u64,
        addr: u64,
        size: usize,
        write: bool,
    ) -> bool {
        let out = self
            .shared
            .tm
            .borrow_mut()
            .access(self.id, rip, addr, size, write, self.mem());
        for (victim, a) in &out.victims {
            self.report_abort(*victim, a);
        }
        match out.own {
            Some(a) => {
                self.report_abort(self.id, &a);
                self.begin_abort(h, a);
                if write {
                    self.scrub
                        .borrow_mut()
                        .push(Undo::save(self.mem(), addr, size));
                }
                true
            }
            None => false,
        }
    }

    /// Whether this vCPU may access `page` from its fast instance, unseen: a page of its
    /// own, outside a transaction of its own (whose accesses the TM engine must see), and
    /// not written when it holds code (a store there must drop translations).
    fn fast_page(&self, page: u64, write: bool) -> bool {
        self.shared.pages.is_own(self.id, page, write)
            && !(write && self.shared.code.is_code(page, PAGE))
            && !self.in_tx()
    }
}

/// An access's kind and the value it reads (`old`) or writes (`value`).
pub(super) fn access_kind(
    write: bool,
    atomic: bool,
    value: i64,
    old: u64,
    size: usize,
) -> (AccessKind, u64) {
    match (write, atomic) {
        (false, false) => (AccessKind::Read, old),
        (false, true) => (AccessKind::AtomicRead, old),
        (true, false) => (AccessKind::Write, mask(value as u64, size)),
        (true, true) => (AccessKind::AtomicWrite, mask(value as u64, size)),
    }
}

pub(super) fn mask(v: u64, size: usize) -> u64 {
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    }
}

/// Every read and write of RAM on a hooked instance (raw UC_HOOK_MEM_READ/WRITE callback).
pub(super) extern "C" fn on_mem(
    uc: *mut uc_engine,
    ty: MemType,
    addr: u64,
    size: c_int,
    value: i64,
    user: *mut c_void,
) {
    // SAFETY: `user` is this instance's `VcpuData` (see `install_hooks`), alive while it runs;
    // it is only touched through `Cell`s and `RefCell`s.
    let d = unsafe { &*(user as *const VcpuData) };
    if ty == MemType::WRITE {
        d.shared.mark_dirty(addr, size.max(1) as u64);
    }
    d.on_access(uc, ty, addr, size.max(0) as usize, value);
    // After the scheduling point: the access happens now, when this vCPU runs again, and
    // the watchpoints are the ones set while it waited (a debugger may have added some).
    if d.shared.watching.get() && !d.aborting.get() {
        if let Some(dbg) = &d.shared.debug {
            let write = ty == MemType::WRITE;
            dbg.borrow_mut()
                .on_access(d.id.0, addr, size.max(1) as u64, write);
        }
    }
    if ty == MemType::WRITE {
        // The store happens when this hook returns: no other vCPU runs in between.
        d.shared.code.written(uc, addr, size.max(1) as u64);
    }
}

/// Every access a fast instance's TLB let through (its vCPU's own pages), on machines that
/// derive the full access log or debug: logged and watched, never a scheduling point.
pub(super) extern "C" fn on_mem_fast(
    uc: *mut uc_engine,
    ty: MemType,
    addr: u64,
    size: c_int,
    value: i64,
    user: *mut c_void,
) {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    if d.shared.ctl.borrow().stopping {
        return;
    }
    let write = ty == MemType::WRITE;
    let size = size.max(1) as usize;
    if !d.is_private(addr) {
        d.private_access(uc, addr, size, write, value);
    }
    if d.shared.watching.get() {
        if let Some(dbg) = &d.shared.debug {
            dbg.borrow_mut().on_access(d.id.0, addr, size as u64, write);
        }
    }
}

/// A fast instance's TLB miss (raw UC_HOOK_TLB_FILL callback, unicorn's virtual-TLB mode):
/// map the page, identity, if this vCPU may touch it unseen; otherwise refuse, so that the
/// instruction stops before its access and the vCPU goes on in its hooked instance.
/// Instruction fetches are always mapped (an unmapped address then faults as before).
pub(super) extern "C" fn on_tlb_fill(
    _uc: *mut uc_engine,
    vaddr: u64,
    ty: MemType,
    result: *mut TlbEntry,
    user: *mut c_void,
) -> bool {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    let page = vaddr & !(PAGE - 1);
    let write = ty == MemType::WRITE;
    let perms = if ty == MemType::FETCH {
        if d.fast_page(page, false) {
            Prot::READ | Prot::EXEC
        } else {
            Prot::EXEC
        }
    } else if d.fast_page(page, write) {
        // Data entries are not executable: unicorn lets stores through an entry that is
        // also a code entry only by its slow path, every time (its code-page tracking).
        if write {
            // Stores through this entry are unseen: the page is written from now on.
            d.shared.mark_dirty_range(page, PAGE);
            Prot::READ | Prot::WRITE
        } else {
            Prot::READ
        }
    } else {
        d.cause.borrow_mut().get_or_insert(StopCause::Move {
            to: Side::Hooked,
            at: None,
        });
        if let Some(dbg) = &d.shared.debug {
            // The instruction never ran here: it begins again on the hooked instance.
            dbg.borrow_mut().retract(d.id.0);
        }
        return false;
    };
    // SAFETY: unicorn passes a valid entry to fill for the duration of the call.
    unsafe {
        *result = TlbEntry { paddr: page, perms };
    }
    true
}
