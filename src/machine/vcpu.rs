//! One vCPU: a unicorn instance over the shared RAM, its hooks, and the coroutine it runs in.
//!
//! Each vCPU runs `emu_start` inside its own stackful coroutine. At a scheduling point a
//! hook asks the controller who goes next; to hand the token over it suspends the coroutine
//! right there, inside the hook, and the machine resumes the chosen vCPU's coroutine. This is
//! ~250x cheaper than OS threads passing a token (see docs/architecture.md), and since the
//! access completes only after the hook returns, no instruction is ever executed twice.

use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::rc::Rc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};
use unicorn_engine::hook::uc_engine;
use unicorn_engine::{Arch, Context, HookType, MemType, Mode, Prot, RegisterX86, Unicorn, X86Insn};
use weft_trace::{
    AbortCause, AccessKind, CrashInfo, Event, FenceKind, GuestAddr, VcpuEndReason, VcpuId, Verdict,
};

use super::controller::{Controller, Decision};
use super::hypercall;
use super::isa::{self, SiteKind};
use super::memory::{GuestMemory, PAGE};
use super::pages::Owner;
use super::tm::{self, Abort, Begin, End, Undo};
use super::{ffi, regs, Shared};

/// Where `_start` returns to: outside RAM, so reaching it ends the vCPU.
pub(crate) const RETURN_ADDR: u64 = 0x7fff_ffff_f000;

/// Host stack of each vCPU coroutine (unicorn's C frames run on it).
const COROUTINE_STACK: usize = 1 << 20;

/// TCG translation buffer per vCPU.
const TCG_BUFFER: u32 = 16 << 20;

/// What the machine says when it resumes a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resume {
    Go,
    /// The run is over: stop at once.
    Stop,
}

/// What a suspended vCPU asks of the machine.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Yield {
    SwitchTo(VcpuId),
    /// Paused at an instruction boundary for the debugger (debug machines only).
    Debug(super::debug::PauseReason),
}

/// A vCPU's raw unicorn handle, to read its registers while every vCPU is suspended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Handle(pub *mut uc_engine);

/// How a vCPU's emulation ended.
#[derive(Debug)]
pub(crate) enum VcpuExit {
    Ended(VcpuEndReason),
    Crashed(Box<CrashInfo>),
    /// Stopped because the run is over (verdict, budget, replay end).
    Stopped,
}

/// Why emulation stopped, noted by a hook before unicorn returns.
#[derive(Clone, Debug)]
enum StopCause {
    Returned,
    HaltCall,
    /// An emulated instruction is done: go on at this address. Hooks that emulate an
    /// instruction trapped as invalid (VMCALL, XEND, ...) must not write RIP themselves:
    /// unicorn 2.1.5 then stops syncing RIP for memory hooks until the next `emu_start`
    /// (`skip_sync_pc_on_exit` stays set), and every later access would be attributed to
    /// the start of its block. Restarting emulation at the next instruction resets that.
    Resume(u64),
    /// The vCPU's transaction aborted (`VcpuData::abort`): restore and go to its fallback.
    TmAbort,
    Stop,
    Fault(String),
    /// A Linux thread's `exit`, with its status.
    ThreadExit(u32),
}

/// State each vCPU's hooks reach through the unicorn instance.
pub(crate) struct VcpuData {
    pub id: VcpuId,
    pub shared: Rc<Shared>,
    /// The coroutine's yielder while emulation runs (null before).
    yielder: Cell<*const Yielder<Resume, Yield>>,
    /// This vCPU's own stack, `[lo, hi)`: private unless `trace_stack`.
    private: Cell<(u64, u64)>,
    cause: RefCell<Option<StopCause>>,
    /// RIP of an atomic instruction whose read half was seen: its write is not a new point.
    atomic_rip: Cell<u64>,
    /// Registers at the outermost XBEGIN of the current transaction (allocated once).
    tx_regs: RefCell<Option<Context>>,
    /// An abort to carry out once emulation has stopped.
    abort: RefCell<Option<Abort>>,
    aborting: Cell<bool>,
    /// Stores the aborting instruction still makes after the abort: undone when it stops.
    scrub: RefCell<Vec<Undo>>,
    /// Blocks executed since this vCPU's last scheduling point (see `on_block`).
    blocks: Cell<u32>,
    /// Ticks (`on_block`) in a row, with no other scheduling point between them.
    ticks_in_row: Cell<u32>,
    /// Set at a tick, until the next point: a value-changing write to a page of its own
    /// then counts as progress (so a long computation on private memory is not taken for
    /// a livelock), and the loop proof (`cycle`) sees every write it makes.
    watching: Cell<bool>,
    /// Proves a vCPU that only ticks loops forever (see `cycle`).
    loops: RefCell<super::cycle::LoopDetector>,
}

pub(crate) type VcpuCoroutine = Coroutine<Resume, Yield, (VcpuExit, Vcpu), DefaultStack>;

impl VcpuData {
    fn ctl(&self) -> std::cell::RefMut<'_, Controller> {
        self.shared.ctl.borrow_mut()
    }

    fn mem(&self) -> &GuestMemory {
        &self.shared.mem
    }

    /// A scheduling point of this vCPU. Returns `false` if the run is over and the vCPU
    /// must stop (emulation has been asked to stop).
    fn point(&self, uc: *mut uc_engine, rip: u64, spin_hint: bool) -> bool {
        self.blocks.set(0);
        self.ticks_in_row.set(0);
        self.watching.set(false);
        let decision = self.ctl().decide(Some(self.id), rip, spin_hint);
        match decision {
            Decision::Continue => true,
            Decision::Switch(next) => {
                let y = self.yielder.get();
                // SAFETY: hooks only run inside `emu_start`, which only runs inside this vCPU's
                // coroutine body, where the yielder lives; `yielder` was set before it started.
                let resume = unsafe { &*y }.suspend(Yield::SwitchTo(next));
                match resume {
                    Resume::Go => {
                        // Another vCPU's access may have aborted our transaction meanwhile.
                        let pending = self.shared.tm.borrow_mut().take_pending(self.id);
                        match pending {
                            Some(a) => self.begin_abort(uc, a),
                            None => true,
                        }
                    }
                    Resume::Stop => self.stop(uc, StopCause::Stop),
                }
            }
            Decision::Stop => self.stop(uc, StopCause::Stop),
        }
    }

    fn stop(&self, uc: *mut uc_engine, cause: StopCause) -> bool {
        if matches!(cause, StopCause::Stop) && self.shared.ctl.borrow().paused {
            self.snapshot(uc);
        }
        let mut c = self.cause.borrow_mut();
        if c.is_none() {
            *c = Some(cause);
        }
        ffi::emu_stop(uc);
        false
    }

    /// Note this vCPU's registers for a paused run's report.
    fn snapshot(&self, uc: *mut uc_engine) {
        let mut regs = [0u64; 17];
        for (r, reg) in regs.iter_mut().zip(CRASH_REGS) {
            *r = ffi::reg_read(uc, reg);
        }
        let rip = ffi::reg_read(uc, RegisterX86::RIP);
        self.shared.snapshots.borrow_mut()[self.id.0 as usize] =
            Some(super::VcpuSnapshot { rip, regs });
    }

    /// End the run with a guest crash at the current instruction.
    pub fn crash(&self, uc: *mut uc_engine, what: String) -> bool {
        self.stop(uc, StopCause::Fault(what))
    }

    fn is_private(&self, addr: u64) -> bool {
        let (lo, hi) = self.private.get();
        addr >= lo && addr < hi
    }

    fn on_access(&self, h: *mut uc_engine, ty: MemType, addr: u64, size: usize, value: i64) {
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
            self.shared.pages.classify(self.id, addr, size)
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
            Owner::Free => self.shared.pages.classify(self.id, addr, size),
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
        for (page, owner) in self
            .shared
            .pages
            .touch(self.id, addr, size)
            .into_iter()
            .flatten()
        {
            self.ctl().emit_at_step(|step| Event::Share {
                step,
                vcpu: self.id,
                page: GuestAddr(page * PAGE),
                owner,
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
        self.shared.pages.touch(self.id, addr, size);
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
    fn tm_access(&self, h: *mut uc_engine, rip: u64, addr: u64, size: usize, write: bool) -> bool {
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

    /// Put a TxAbort event in the trace (memory is already rolled back).
    fn report_abort(&self, vcpu: VcpuId, a: &Abort) {
        let mut c = self.ctl();
        c.spin_event(vcpu);
        c.emit_at_step(|step| Event::TxAbort {
            step,
            vcpu,
            rip: a.rip,
            begin_rip: a.begin_rip,
            status: a.status,
            cause: a.cause.clone(),
        });
    }

    /// Our transaction aborted: stop emulation; the vCPU's loop restores registers and
    /// resumes at the fallback address (`finish_abort`). Returns `false` (stop).
    fn begin_abort(&self, uc: *mut uc_engine, a: Abort) -> bool {
        *self.abort.borrow_mut() = Some(a);
        self.aborting.set(true);
        self.stop(uc, StopCause::TmAbort)
    }

    /// Abort our transaction, if any, because of `cause` at `rip` (status 0 plus the
    /// nested bit, or `base` bits). Returns whether there was one (emulation then stops).
    pub fn abort_own(&self, uc: *mut uc_engine, rip: u64, base: u32, cause: AbortCause) -> bool {
        let a = self
            .shared
            .tm
            .borrow_mut()
            .abort(self.id, rip, base, cause, self.mem());
        match a {
            Some(a) => {
                self.report_abort(self.id, &a);
                self.begin_abort(uc, a);
                true
            }
            None => false,
        }
    }

    /// Whether this vCPU is inside a transaction.
    pub fn in_tx(&self) -> bool {
        self.shared.tm.borrow().depth(self.id) > 0
    }
}

/// An access's kind and the value it reads (`old`) or writes (`value`).
fn access_kind(write: bool, atomic: bool, value: i64, old: u64, size: usize) -> (AccessKind, u64) {
    match (write, atomic) {
        (false, false) => (AccessKind::Read, old),
        (false, true) => (AccessKind::AtomicRead, old),
        (true, false) => (AccessKind::Write, mask(value as u64, size)),
        (true, true) => (AccessKind::AtomicWrite, mask(value as u64, size)),
    }
}

fn mask(v: u64, size: usize) -> u64 {
    if size >= 8 {
        v
    } else {
        v & ((1u64 << (size * 8)) - 1)
    }
}

/// General registers in `CrashInfo::regs` order.
const CRASH_REGS: [RegisterX86; 17] = regs::gprs_and([RegisterX86::RFLAGS]);

/// One vCPU's unicorn instance, kept from run to run: created once (instance, RAM mapping,
/// hooks, translation cache), then reset to its entry state before each run.
pub(crate) struct Vcpu {
    uc: Unicorn<'static, VcpuData>,
    /// Registers at entry, restored by `reset`.
    initial: Context,
    /// Where emulation starts (a Linux thread: after the clone that made it).
    entry: u64,
    /// Where the return address to the board lives (top of this vCPU's stack).
    ret_slot: Option<u64>,
}

/// A vCPU's state at entry and what it owns.
pub(crate) struct Start {
    pub entry: u64,
    pub rsp: u64,
    /// More registers to set (the board's RDI and RSI).
    pub regs: Vec<(RegisterX86, u64)>,
    /// Board: where `_start`'s return address goes (reset writes it there).
    pub ret_slot: Option<u64>,
    /// Its own stack, `[lo, hi)`.
    pub private: (u64, u64),
    /// RAM is mapped from here up (a Linux process leaves the first pages unmapped).
    pub map_from: u64,
}

/// Where vCPU `id` of the board starts: `_start(id, count)` on its own stack.
pub(crate) fn board_start(
    id: VcpuId,
    entry: u64,
    ram: u64,
    opts: &weft_trace::MachineOptions,
) -> Start {
    let stack_top = ram - id.0 as u64 * opts.stack_bytes;
    Start {
        entry,
        rsp: stack_top - 8,
        regs: vec![
            (RegisterX86::RDI, id.0 as u64),
            (RegisterX86::RSI, opts.vcpus as u64),
        ],
        ret_slot: Some(stack_top - 8),
        private: (stack_top - opts.stack_bytes, stack_top),
        map_from: 0,
    }
}

/// Create vCPU `id`'s unicorn instance over `shared.mem`, set its entry state and install
/// its hooks.
pub(crate) fn create(
    id: VcpuId,
    shared: &Rc<Shared>,
    start: &Start,
    sites: &[(u64, SiteKind)],
) -> Result<Vcpu, unicorn_engine::uc_error> {
    let opts = shared.ctl.borrow().options().clone();
    let ram = shared.mem.size();
    let private = if opts.trace_stack {
        (0, 0)
    } else {
        start.private
    };
    let data = VcpuData {
        id,
        shared: shared.clone(),
        yielder: Cell::new(std::ptr::null()),
        private: Cell::new(private),
        cause: RefCell::new(None),
        atomic_rip: Cell::new(0),
        tx_regs: RefCell::new(None),
        abort: RefCell::new(None),
        aborting: Cell::new(false),
        scrub: RefCell::new(Vec::new()),
        blocks: Cell::new(0),
        ticks_in_row: Cell::new(0),
        watching: Cell::new(false),
        loops: RefCell::new(Default::default()),
    };
    let mut uc = Unicorn::new_with_data(Arch::X86, Mode::MODE_64, data)?;
    ffi::set_tcg_buffer_size(&mut uc, TCG_BUFFER)?;
    let from = start.map_from;
    // SAFETY: the buffer is RAM-sized, page-aligned and outlives every instance: `Shared`
    // owns it and each instance holds an `Rc<Shared>` in its data, dropped with the instance.
    // `from` is a page multiple below the RAM size, so the mapped part lies inside it.
    unsafe {
        uc.mem_map_ptr(
            from,
            ram - from,
            Prot::ALL,
            shared.mem.host_ptr().add(from as usize).cast(),
        )?
    };

    uc.reg_write(RegisterX86::RIP, start.entry)?;
    uc.reg_write(RegisterX86::RSP, start.rsp)?;
    for &(reg, value) in &start.regs {
        uc.reg_write(reg, value)?;
    }
    uc.reg_write(RegisterX86::RFLAGS, 0x2)?;
    let cr0 = uc.reg_read(RegisterX86::CR0)?;
    uc.reg_write(RegisterX86::CR0, (cr0 | 0x2) & !0x4)?; // MP=1, EM=0
    let cr4 = uc.reg_read(RegisterX86::CR4)?;
    uc.reg_write(RegisterX86::CR4, cr4 | (1 << 9) | (1 << 10))?; // OSFXSR, OSXMMEXCPT
    let mut initial = uc.context_alloc()?;
    uc.context_save(&mut initial)?;

    install_hooks(&mut uc, ram, sites, opts.linux.is_some())?;
    let mut v = Vcpu {
        uc,
        initial,
        entry: start.entry,
        ret_slot: start.ret_slot,
    };
    v.reset()?;
    Ok(v)
}

impl Vcpu {
    /// Back to the entry state: registers, the return address on the stack, per-run state.
    pub fn reset(&mut self) -> Result<(), unicorn_engine::uc_error> {
        self.uc.context_restore(&self.initial)?;
        let d = self.uc.get_data();
        if let Some(slot) = self.ret_slot {
            d.shared.mem.write_u64(slot, RETURN_ADDR);
            d.shared.mark_dirty(slot, 8);
        }
        *d.cause.borrow_mut() = None;
        d.atomic_rip.set(0);
        *d.abort.borrow_mut() = None;
        d.aborting.set(false);
        d.scrub.borrow_mut().clear();
        d.blocks.set(0);
        d.ticks_in_row.set(0);
        d.watching.set(false);
        d.loops.borrow_mut().reset();
        Ok(())
    }

    pub fn handle(&self) -> Handle {
        Handle(self.uc.get_handle())
    }

    /// This vCPU's hook data.
    pub fn data(&self) -> &VcpuData {
        self.uc.get_data()
    }

    /// Start the next run at `entry` (a Linux thread: where its parent's clone returns).
    pub fn set_entry(&mut self, entry: u64) {
        self.entry = entry;
    }

    /// Drop every translated block (after weft rewrote code pages between runs).
    pub fn flush_code(&mut self) {
        let _ = self.uc.ctl_flush_tb();
    }

    /// Wrap the vCPU in a coroutine that runs it from its entry; the coroutine hands the
    /// vCPU back when it finishes, for the next run.
    pub fn into_coroutine(self, stack: DefaultStack) -> VcpuCoroutine {
        Coroutine::with_stack(
            stack,
            move |yielder: &Yielder<Resume, Yield>, first: Resume| {
                let mut v = self;
                if first == Resume::Stop {
                    return (VcpuExit::Stopped, v);
                }
                let uc = &mut v.uc;
                uc.get_data().yielder.set(yielder as *const _);
                let mut pc = v.entry;
                let exit = loop {
                    let result = uc.emu_start(pc, RETURN_ADDR, 0, 0);
                    match after_stop(uc, &result) {
                        Some(next) => pc = next,
                        None => break classify(uc, result),
                    }
                };
                uc.get_data().yielder.set(std::ptr::null());
                (exit, v)
            },
        )
    }
}

/// A fresh host stack for a vCPU coroutine.
pub(crate) fn new_stack() -> Result<DefaultStack, unicorn_engine::uc_error> {
    DefaultStack::new(COROUTINE_STACK).map_err(|_| unicorn_engine::uc_error::NOMEM)
}

fn install_hooks(
    uc: &mut Unicorn<'static, VcpuData>,
    ram: u64,
    sites: &[(u64, SiteKind)],
    linux: bool,
) -> Result<(), unicorn_engine::uc_error> {
    if linux {
        uc.add_insn_sys_hook(X86Insn::SYSCALL, 1, 0, |uc| {
            let h = uc.get_handle();
            let d: *const VcpuData = uc.get_data();
            // SAFETY: as in the memory hook.
            let d = unsafe { &*d };
            let rip = uc.pc_read().unwrap_or(0);
            super::linux::syscall::syscall(d, h, rip);
        })?;
    }
    // The hottest hook: registered raw, so each call skips the safe wrapper's bookkeeping.
    let user: *mut c_void = (uc.get_data() as *const VcpuData).cast_mut().cast();
    if uc.get_data().shared.debug.is_some() {
        // First, so that it sees every instruction before a site hook (XBEGIN) may stop.
        ffi::add_code_hook(uc, on_insn, user)?;
    }
    ffi::add_mem_hook(
        uc,
        HookType::MEM_READ | HookType::MEM_WRITE,
        0,
        ram - 1,
        on_mem,
        user,
    )?;
    uc.add_mem_hook(
        HookType::MEM_UNMAPPED | HookType::MEM_PROT,
        1,
        0,
        move |uc, ty, addr, size, _| {
            let d = uc.get_data();
            if ty == MemType::FETCH_UNMAPPED && addr == RETURN_ADDR {
                *d.cause.borrow_mut() = Some(StopCause::Returned);
                return false;
            }
            let what = match ty {
                MemType::READ_UNMAPPED => "read of",
                MemType::WRITE_UNMAPPED => "write to",
                MemType::FETCH_UNMAPPED => "instruction fetch from",
                _ => "forbidden access to",
            };
            let msg =
                format!("{what} unmapped address {addr:#x} ({size} bytes; RAM ends at {ram:#x})");
            d.cause.borrow_mut().get_or_insert(StopCause::Fault(msg));
            false
        },
    )?;
    uc.add_intr_hook(|uc, intno| {
        let what = match intno {
            0 => "#DE divide error".to_string(),
            1 => "#DB debug exception".to_string(),
            3 => "#BP breakpoint (int3)".to_string(),
            4 => "#OF overflow".to_string(),
            5 => "#BR bound range exceeded".to_string(),
            6 => "#UD invalid opcode".to_string(),
            7 => "#NM device not available".to_string(),
            8 => "#DF double fault".to_string(),
            10 => "#TS invalid TSS".to_string(),
            11 => "#NP segment not present".to_string(),
            12 => "#SS stack-segment fault".to_string(),
            13 => "#GP general protection fault".to_string(),
            14 => "#PF page fault".to_string(),
            16 => "#MF x87 floating-point error".to_string(),
            17 => "#AC alignment check".to_string(),
            19 => "#XM SIMD floating-point exception".to_string(),
            n => format!("interrupt or exception vector {n} (no handlers on the weft board)"),
        };
        let h = uc.get_handle();
        uc.get_data().crash(h, what);
    })?;
    uc.add_insn_invalid_hook(|uc| {
        let h = uc.get_handle();
        let rip = uc.pc_read().unwrap_or(0);
        let d: *const VcpuData = uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let mut bytes = [0u8; isa::MAX_INSN_LEN];
        let n = d.shared.mem.read_up_to(rip, bytes.len());
        bytes[..n.len()].copy_from_slice(&n);
        match isa::decode(&bytes[..n.len()], rip) {
            Some(i) if i.code() == iced_x86::Code::Vmcall => {
                if d.abort_own(
                    h,
                    rip,
                    0,
                    AbortCause::Instruction {
                        name: "vmcall".into(),
                    },
                ) {
                    return false;
                }
                hypercall::vmcall(d, uc, h, rip)
            }
            Some(i) if i.mnemonic() == iced_x86::Mnemonic::Xend => xend(d, uc, h, rip, &i),
            Some(i) if i.mnemonic() == iced_x86::Mnemonic::Xtest => {
                // ZF = not in a transaction; CF, OF, SF, PF, AF cleared.
                let flags = uc.reg_read(RegisterX86::RFLAGS).unwrap_or(2);
                let cleared = flags & !(1 | 1 << 2 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 11);
                let zf = if d.in_tx() { 0 } else { 1 << 6 };
                let _ = uc.reg_write(RegisterX86::RFLAGS, cleared | zf);
                d.resume_at(rip + i.len() as u64)
            }
            _ => d.crash(h, "#UD invalid opcode".to_string()),
        }
    })?;
    uc.add_insn_out_hook(|uc, port, size, value| {
        let h = uc.get_handle();
        let d: *const VcpuData = uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let rip = uc.pc_read().unwrap_or(0);
        if d.abort_own(h, rip, 0, AbortCause::Instruction { name: "out".into() })
            || d.shared.ctl.borrow().stopping
            || !d.point(h, rip, false)
        {
            return;
        }
        match port {
            0xE9 => d.ctl().console(d.id, 1, &[value as u8]),
            0xF4 => {
                let status = (value & 0xFF) as u64;
                let verdict = if status == 0 {
                    Verdict::Pass
                } else {
                    Verdict::ExitStatus { vcpu: d.id, status }
                };
                d.ctl().finish(verdict);
                d.stop(h, StopCause::Stop);
            }
            _ => {
                let msg = format!(
                    "OUT of {size} byte(s) {value:#x} to port {port:#x}: no device there; ignored"
                );
                d.ctl().warn(d.id, rip, msg);
            }
        }
    })?;
    uc.add_insn_in_hook(|uc, port, size| {
        let h = uc.get_handle();
        let d: *const VcpuData = uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let rip = uc.pc_read().unwrap_or(0);
        if d.abort_own(h, rip, 0, AbortCause::Instruction { name: "in".into() })
            || d.shared.ctl.borrow().stopping
            || !d.point(h, rip, false)
        {
            return 0;
        }
        let msg =
            format!("IN of {size} byte(s) from port {port:#x}: no device there; reads all ones");
        d.ctl().warn(d.id, rip, msg);
        u32::MAX
    })?;
    let user: *mut c_void = (uc.get_data() as *const VcpuData).cast_mut().cast();
    ffi::add_insn_hook(uc, X86Insn::CPUID, on_cpuid, user)?;
    ffi::add_block_hook(uc, on_block, user)?;
    ffi::add_insn_hook(uc, X86Insn::RDTSC, on_rdtsc, user)?;
    ffi::add_insn_hook(uc, X86Insn::RDTSCP, on_rdtsc, user)?;
    for &(addr, kind) in sites {
        uc.add_code_hook(addr, addr, move |uc, _addr, _size| {
            let h = uc.get_handle();
            let d: *const VcpuData = uc.get_data();
            // SAFETY: as in the memory hook.
            let d = unsafe { &*d };
            if d.shared.ctl.borrow().stopping {
                return;
            }
            let fence = match kind {
                SiteKind::Pause => {
                    let pause = AbortCause::Instruction {
                        name: "pause".into(),
                    };
                    if !d.abort_own(h, addr, 0, pause) {
                        d.point(h, addr, true);
                    }
                    return;
                }
                SiteKind::Xbegin => {
                    xbegin(d, uc, h, addr);
                    return;
                }
                SiteKind::Xabort => {
                    xabort(d, h, addr);
                    return;
                }
                SiteKind::Mfence => FenceKind::Mfence,
                SiteKind::Sfence => FenceKind::Sfence,
                SiteKind::Lfence => FenceKind::Lfence,
            };
            let mut c = d.ctl();
            if c.log_accesses {
                let step = c.step();
                c.emit(&Event::Fence {
                    step,
                    vcpu: d.id,
                    rip: addr,
                    kind: fence,
                });
            }
        })?;
    }
    Ok(())
}

/// XBEGIN at `rip` (a code hook exactly there: unicorn would run it as `mov eax, imm32`).
fn xbegin(d: &VcpuData, uc: &mut Unicorn<'_, VcpuData>, h: *mut uc_engine, rip: u64) {
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return;
    }
    let bytes = d.shared.mem.read_up_to(rip, isa::MAX_INSN_LEN);
    let Some(i) = isa::decode(&bytes, rip) else {
        d.crash(h, "#UD invalid opcode".into());
        return;
    };
    let next = rip + i.len() as u64;
    if !d.in_tx() {
        // The registers an abort restores: those before the outermost XBEGIN.
        let mut regs = d.tx_regs.borrow_mut();
        if regs.is_none() {
            *regs = uc.context_alloc().ok();
        }
        if let Some(ctx) = regs.as_mut() {
            let _ = uc.context_save(ctx);
        }
    }
    let begin = d
        .shared
        .tm
        .borrow_mut()
        .begin(d.id, rip, i.near_branch_target(), &d.shared.mem);
    match begin {
        Begin::Started { depth } => {
            d.ctl().emit_at_step(|step| Event::TxBegin {
                step,
                vcpu: d.id,
                rip,
                depth,
            });
            d.resume_at(next);
            d.stop_run_keep_cause(h);
        }
        Begin::Aborted(a) => {
            d.report_abort(d.id, &a);
            d.begin_abort(h, a);
        }
    }
}

/// XABORT at `rip` (a code hook, like XBEGIN): abort with the immediate in EAX[31:24];
/// outside a transaction it does nothing.
fn xabort(d: &VcpuData, h: *mut uc_engine, rip: u64) {
    let bytes = d.shared.mem.read_up_to(rip, isa::MAX_INSN_LEN);
    let Some(i) = isa::decode(&bytes, rip) else {
        return;
    };
    if !d.in_tx() {
        d.resume_at(rip + i.len() as u64);
        d.stop_run_keep_cause(h);
        return;
    }
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return;
    }
    let code = i.immediate8();
    let base = tm::status::EXPLICIT | (code as u32) << 24;
    d.abort_own(h, rip, base, AbortCause::Explicit { code });
}

/// XEND at `rip`: commit at the outermost level; outside a transaction, #GP.
fn xend(
    d: &VcpuData,
    _uc: &mut Unicorn<'_, VcpuData>,
    h: *mut uc_engine,
    rip: u64,
    i: &iced_x86::Instruction,
) -> bool {
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return false;
    }
    let end = d.shared.tm.borrow_mut().end(d.id);
    match end {
        End::NotInTransaction => d.crash(
            h,
            "#GP general protection fault: XEND outside a transaction".into(),
        ),
        End::Inner { .. } => d.resume_at(rip + i.len() as u64),
        End::Committed {
            begin_rip,
            read_lines,
            write_lines,
        } => {
            let mut c = d.ctl();
            c.emit_at_step(|step| Event::TxCommit {
                step,
                vcpu: d.id,
                rip,
                begin_rip,
                read_lines,
                write_lines,
            });
            c.progress(d.id);
            drop(c);
            d.resume_at(rip + i.len() as u64)
        }
    }
}

/// Every read and write of RAM (raw UC_HOOK_MEM_READ/WRITE callback).
extern "C" fn on_mem(
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
        d.shared
            .code
            .written(d.id.0 as usize, addr, size.max(1) as u64);
    }
}

/// Every instruction of a debug machine: count it and pause there if the debugger says so.
extern "C" fn on_insn(uc: *mut uc_engine, addr: u64, _size: u32, user: *mut c_void) {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    // Instructions after an abort or after the end of the run are not really executed.
    if d.aborting.get() || d.shared.ctl.borrow().stopping {
        return;
    }
    let Some(dbg) = &d.shared.debug else { return };
    let next_step = d.shared.ctl.borrow().next_step();
    let pause = dbg.borrow_mut().on_insn(d.id.0, addr, next_step);
    if let Some(reason) = pause {
        let y = d.yielder.get();
        // SAFETY: as in `VcpuData::point`: hooks run inside this vCPU's coroutine.
        if unsafe { &*y }.suspend(Yield::Debug(reason)) == Resume::Stop {
            d.stop(uc, StopCause::Stop);
        }
    }
}

/// Blocks a vCPU may run without a scheduling point before one is forced.
const TICK_BLOCKS: u32 = 1024;

/// Start of every translated block. A vCPU that runs `TICK_BLOCKS` blocks without a
/// scheduling point (a loop over its own stack and registers) gets one here, as a spin:
/// so the strategy can run others, `--max-steps` applies, and a vCPU that never touches
/// shared memory again ends in a livelock verdict instead of hanging weft. Deterministic:
/// the same code from the same state runs the same blocks.
extern "C" fn on_block(uc: *mut uc_engine, addr: u64, size: u32, user: *mut c_void) {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    d.shared.code.note_block(addr, size);
    let n = d.blocks.get() + 1;
    if n < TICK_BLOCKS {
        d.blocks.set(n);
        return;
    }
    if d.aborting.get() || d.shared.ctl.borrow().stopping {
        return;
    }
    let row = d.ticks_in_row.get().saturating_add(1);
    if d.loops_forever(uc, row) {
        d.ctl().stuck(d.id, addr);
    }
    d.point(uc, addr, true);
    d.ticks_in_row.set(row);
    d.watching.set(true);
}

impl VcpuData {
    /// At the `row`-th tick in a row: whether this vCPU provably loops forever (`cycle`).
    fn loops_forever(&self, uc: *mut uc_engine, row: u32) -> bool {
        let (stack_bytes, vcpus, progress) = {
            let c = self.shared.ctl.borrow();
            (
                c.options().stack_bytes,
                c.options().vcpus,
                c.progress_stamp(),
            )
        };
        let ram = self.shared.mem.size();
        let stacks = ram - stack_bytes * vcpus as u64;
        if row >= super::cycle::WARMUP && self.shared.code.any_in(stacks, ram) {
            return false; // code on a stack: a store to it would not count as progress
        }
        self.loops
            .borrow_mut()
            .tick(uc, row, &self.shared.mem, self.private.get(), progress)
    }
}

/// RDTSC / RDTSCP: deterministic virtual time; each read is a scheduling point.
extern "C" fn on_rdtsc(uc: *mut uc_engine, user: *mut c_void) -> c_int {
    // SAFETY: `user` is this instance's `VcpuData` (see `install_hooks`), alive while it runs.
    let d = unsafe { &*(user as *const VcpuData) };
    let rip = ffi::reg_read(uc, RegisterX86::RIP);
    if d.shared.ctl.borrow().stopping || !d.point(uc, rip, false) {
        return 1;
    }
    let tsc = d.shared.ctl.borrow().tsc();
    ffi::reg_write(uc, RegisterX86::RAX, tsc & 0xFFFF_FFFF);
    ffi::reg_write(uc, RegisterX86::RDX, tsc >> 32);
    // RDTSCP also loads IA32_TSC_AUX, which the board sets to the vCPU id. Both instructions
    // share this hook; RDTSCP is 0F 01 F9, RDTSC 0F 31.
    if d.shared.mem.read_uint(rip, 3) == Some(0xF9010F) {
        ffi::reg_write(uc, RegisterX86::RCX, d.id.0 as u64);
    }
    1
}

/// CPUID: the board's deterministic identity (GenuineIntel, RTM and HLE, vCPU topology).
extern "C" fn on_cpuid(uc: *mut uc_engine, user: *mut c_void) -> c_int {
    // SAFETY: as in `on_rdtsc`.
    let d = unsafe { &*(user as *const VcpuData) };
    let rip = ffi::reg_read(uc, RegisterX86::RIP);
    if d.abort_own(
        uc,
        rip,
        0,
        AbortCause::Instruction {
            name: "cpuid".into(),
        },
    ) {
        return 1;
    }
    let leaf = ffi::reg_read(uc, RegisterX86::RAX) as u32;
    let sub = ffi::reg_read(uc, RegisterX86::RCX) as u32;
    let n = d.shared.ctl.borrow().options().vcpus;
    let [a, b, c, dx] = super::cpuid::leaf(leaf, sub, d.id.0, n);
    ffi::reg_write(uc, RegisterX86::RAX, a as u64);
    ffi::reg_write(uc, RegisterX86::RBX, b as u64);
    ffi::reg_write(uc, RegisterX86::RCX, c as u64);
    ffi::reg_write(uc, RegisterX86::RDX, dx as u64);
    1
}

/// Emulation stopped: if the vCPU goes on (an emulated instruction finished, or its
/// transaction aborted), where. `None`: it ended; `classify` says how.
fn after_stop(
    uc: &mut Unicorn<'static, VcpuData>,
    result: &Result<(), unicorn_engine::uc_error>,
) -> Option<u64> {
    let d = uc.get_data();
    let cause = d.cause.borrow().clone();
    match cause {
        Some(StopCause::Resume(next)) => {
            d.cause.borrow_mut().take();
            Some(next)
        }
        Some(StopCause::TmAbort) => {
            d.cause.borrow_mut().take();
            Some(finish_abort(uc))
        }
        // In a transaction, an exception (or leaving through an unmapped address, or HLT)
        // aborts it instead of ending anything (SDM: the exception is suppressed).
        Some(StopCause::Fault(_)) | Some(StopCause::Returned) | None if d.in_tx() => {
            let what = match cause {
                Some(StopCause::Fault(what)) => what,
                Some(StopCause::Returned) => format!("instruction fetch from {RETURN_ADDR:#x}"),
                _ if result.is_ok() => {
                    let h = uc.get_handle();
                    let rip = uc.pc_read().unwrap_or(0);
                    let cause = AbortCause::Instruction { name: "hlt".into() };
                    d.cause.borrow_mut().take();
                    d.abort_own(h, rip, 0, cause);
                    d.cause.borrow_mut().take();
                    return Some(finish_abort(uc));
                }
                _ => format!("emulation error: {result:?}"),
            };
            let h = uc.get_handle();
            let rip = uc.pc_read().unwrap_or(0);
            d.cause.borrow_mut().take();
            d.abort_own(h, rip, 0, AbortCause::Exception { what });
            d.cause.borrow_mut().take();
            Some(finish_abort(uc))
        }
        _ => None,
    }
}

/// Carry out the abort noted in `VcpuData::abort`: undo the aborting instruction's late
/// stores, restore the registers of the outermost XBEGIN, put the status in EAX. Returns
/// the fallback address to resume at.
fn finish_abort(uc: &mut Unicorn<'static, VcpuData>) -> u64 {
    let d = uc.get_data();
    let a = d.abort.borrow_mut().take().expect("an abort to finish");
    d.aborting.set(false);
    d.atomic_rip.set(0);
    for u in d.scrub.borrow_mut().drain(..).rev() {
        u.restore(&d.shared.mem);
    }
    let regs = d.tx_regs.borrow_mut().take();
    if let Some(ctx) = &regs {
        let _ = uc.context_restore(ctx);
    }
    *uc.get_data().tx_regs.borrow_mut() = regs;
    // A 32-bit write: the upper half of RAX is cleared.
    let _ = uc.reg_write(RegisterX86::RAX, a.status as u64);
    a.fallback
}

/// Turn the end of `emu_start` into a vCPU exit.
fn classify(
    uc: &Unicorn<'static, VcpuData>,
    result: Result<(), unicorn_engine::uc_error>,
) -> VcpuExit {
    let d = uc.get_data();
    let rip = uc.pc_read().unwrap_or(0);
    let cause = d.cause.borrow_mut().take();
    match cause {
        Some(StopCause::Returned) => return VcpuExit::Ended(VcpuEndReason::Returned),
        Some(StopCause::HaltCall) => return VcpuExit::Ended(VcpuEndReason::HaltCall),
        Some(StopCause::ThreadExit(status)) => {
            return VcpuExit::Ended(VcpuEndReason::Exited { status })
        }
        Some(StopCause::Stop) => return VcpuExit::Stopped,
        Some(StopCause::Fault(what)) => return VcpuExit::Crashed(Box::new(crash_info(uc, what))),
        Some(StopCause::Resume(_)) | Some(StopCause::TmAbort) | None => {}
    }
    if rip == RETURN_ADDR {
        return VcpuExit::Ended(VcpuEndReason::Returned);
    }
    match result {
        Ok(()) => VcpuExit::Ended(VcpuEndReason::Hlt),
        Err(e) => VcpuExit::Crashed(Box::new(crash_info(uc, format!("emulation error: {e:?}")))),
    }
}

fn crash_info(uc: &Unicorn<'static, VcpuData>, what: String) -> CrashInfo {
    let d = uc.get_data();
    let rip = uc.pc_read().unwrap_or(0);
    let bytes = d.shared.mem.read_up_to(rip, isa::MAX_INSN_LEN);
    let mut regs = [0u64; 17];
    for (r, reg) in regs.iter_mut().zip(CRASH_REGS) {
        *r = uc.reg_read(reg).unwrap_or(0);
    }
    let instruction = if bytes.is_empty() {
        String::new()
    } else {
        isa::disassemble(&bytes, rip)
    };
    CrashInfo {
        vcpu: d.id,
        rip,
        what,
        instruction,
        regs,
    }
}

impl VcpuData {
    /// End this vCPU only (HALT hypercall).
    pub fn halt_call(&self, uc: *mut uc_engine) -> bool {
        self.stop(uc, StopCause::HaltCall)
    }

    /// End this thread only (a Linux thread's `exit`).
    pub fn thread_exit(&self, uc: *mut uc_engine, status: u32) -> bool {
        self.stop(uc, StopCause::ThreadExit(status))
    }

    /// Give up the token while blocked in a wait the controller has noted (a Linux futex
    /// wait or sleep), until a wake or timeout. `None`: the run ended meanwhile (emulation
    /// is asked to stop).
    pub fn block(&self, uc: *mut uc_engine, rip: u64) -> Option<super::controller::WakeReason> {
        self.blocks.set(0);
        self.watching.set(false);
        let decision = self.ctl().decide(None, rip, false);
        match decision {
            Decision::Switch(next) => {
                let y = self.yielder.get();
                // SAFETY: as in `point`: hooks run inside this vCPU's coroutine.
                match unsafe { &*y }.suspend(Yield::SwitchTo(next)) {
                    Resume::Go => Some(self.ctl().take_wake(self.id)),
                    Resume::Stop => {
                        self.stop(uc, StopCause::Stop);
                        None
                    }
                }
            }
            Decision::Continue => Some(self.ctl().take_wake(self.id)),
            Decision::Stop => {
                self.stop(uc, StopCause::Stop);
                None
            }
        }
    }

    /// Where this vCPU's own stack lies (a Linux thread's is known at clone).
    pub fn set_private(&self, range: (u64, u64)) {
        let traced = self.shared.ctl.borrow().options().trace_stack;
        self.private.set(if traced { (0, 0) } else { range });
    }

    /// Stop emulation because the run is over (a verdict was given).
    pub fn stop_run(&self, uc: *mut uc_engine) -> bool {
        self.stop(uc, StopCause::Stop)
    }

    /// The hypercall path's scheduling point.
    pub fn hypercall_point(&self, uc: *mut uc_engine, rip: u64, spin_hint: bool) -> bool {
        self.point(uc, rip, spin_hint)
    }

    /// Stop emulation without changing the noted cause (used after `resume_at` from a
    /// code hook, which unlike the invalid-instruction hook does not stop by itself).
    pub fn stop_run_keep_cause(&self, uc: *mut uc_engine) {
        ffi::emu_stop(uc);
    }

    /// Finish an instruction emulated in the invalid-instruction hook: emulation restarts
    /// at `next` (see `StopCause::Resume`). Returns what that hook must return.
    pub fn resume_at(&self, next: u64) -> bool {
        let mut c = self.cause.borrow_mut();
        if c.is_none() {
            *c = Some(StopCause::Resume(next));
        }
        false
    }
}
