//! One vCPU: its unicorn instances over the shared RAM, their hooks, and the coroutine it
//! runs in.
//!
//! Each vCPU runs `emu_start` inside its own stackful coroutine. At a scheduling point a
//! hook asks the controller who goes next; to hand the token over it suspends the coroutine
//! right there, inside the hook, and the machine resumes the chosen vCPU's coroutine. This is
//! ~250x cheaper than OS threads passing a token (see docs/architecture.md), and since the
//! access completes only after the hook returns, no instruction is ever executed twice.
//!
//! A vCPU has two instances (with `Sharing::Pages`): a *fast* one without memory hooks,
//! whose TLB lets through only the pages the vCPU owns (`access`), and a *hooked* one that
//! sees every access, created the first time it is needed. The vCPU runs on the fast one
//! while it touches only its own memory and moves to the hooked one (its registers go
//! along, `uc_context_save`/`restore`) when it touches anything else, is watched after a
//! tick, or is in a transaction; it moves back after a few blocks with nothing else.
//! With `Sharing::All` every access is shared and there is only the hooked instance.

mod access;
mod hooks;
mod rtm;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use corosensei::stack::DefaultStack;
use corosensei::{Coroutine, Yielder};
use unicorn_engine::hook::uc_engine;
use unicorn_engine::{Arch, Context, Prot, RegisterX86, Unicorn};
use weft_trace::{AbortCause, CrashInfo, Event, VcpuEndReason, VcpuId};

use super::controller::{Controller, Decision};
use super::isa;
use super::memory::GuestMemory;
use super::tm::{Abort, Undo};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Handle(pub *mut uc_engine);

/// A unicorn instance of a vCPU; its data is the vCPU's, shared by both instances.
pub(crate) type Instance = Unicorn<'static, Rc<VcpuData>>;

/// Which of a vCPU's instances runs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    /// No memory hook: only the vCPU's own pages, at full speed.
    Fast,
    /// Every access seen.
    Hooked,
}

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
    /// Go on on the `to` instance, at `at` (`None`: where emulation stopped, before an
    /// access the fast instance's TLB refused).
    Move {
        to: Side,
        at: Option<u64>,
    },
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
    /// Set at a tick, until the next point or the first value-changing write to a page of
    /// its own, which then counts as progress (so that a long computation on private memory
    /// is not taken for a livelock); after one of its first `cycle::WARMUP` ticks in a row,
    /// for `WATCH_BLOCKS` blocks at most. A watched vCPU runs on its hooked instance, so
    /// from `WARMUP` ticks on the loop proof (`cycle`) sees every store it makes.
    watching: Cell<bool>,
    /// Proves a vCPU that only ticks loops forever (see `cycle`).
    loops: RefCell<super::cycle::LoopDetector>,
    /// The instance running the vCPU.
    side: Cell<Side>,
    /// Blocks run on the hooked instance since the vCPU last touched shared memory there.
    since_shared: Cell<u32>,
    /// The page of the vCPU's latest block, known to be noted as code (`on_block`).
    code_page: Cell<u64>,
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

/// General registers in `CrashInfo::regs` order.
const CRASH_REGS: [RegisterX86; 17] = regs::gprs_and([RegisterX86::RFLAGS]);

/// One vCPU's unicorn instances, kept from run to run: created once (instance, RAM
/// mapping, hooks, translation cache), then reset to the vCPU's entry state before each run.
pub(crate) struct Vcpu {
    data: Rc<VcpuData>,
    /// No memory hook (`Sharing::Pages` only).
    fast: Option<Instance>,
    /// Every access seen; made the first time the vCPU needs it.
    hooked: Option<Instance>,
    /// Where a run starts: fast when there is a fast instance.
    first: Side,
    /// Registers at entry, restored by `reset`.
    initial: Context,
    /// Registers in transit between the two instances.
    moving: Context,
    /// Where emulation starts (a Linux thread: after the clone that made it).
    entry: u64,
    /// Where the return address to the board lives (top of this vCPU's stack).
    ret_slot: Option<u64>,
    /// RAM is mapped from here up.
    map_from: u64,
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

/// Create vCPU `id`'s instance over `shared.mem` (the fast one with `Sharing::Pages`, else
/// the hooked one), set its entry state and install its hooks.
pub(crate) fn create(
    id: VcpuId,
    shared: &Rc<Shared>,
    start: &Start,
) -> Result<Vcpu, unicorn_engine::uc_error> {
    let private = if shared.ctl.borrow().options().trace_stack {
        (0, 0)
    } else {
        start.private
    };
    let data = Rc::new(VcpuData {
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
        side: Cell::new(Side::Hooked),
        since_shared: Cell::new(0),
        code_page: Cell::new(u64::MAX),
    });
    let first = if shared.fast {
        Side::Fast
    } else {
        Side::Hooked
    };
    let mut uc = new_instance(&data, first, start.map_from)?;
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
    let moving = uc.context_alloc()?;
    let (fast, hooked) = match first {
        Side::Fast => (Some(uc), None),
        Side::Hooked => (None, Some(uc)),
    };
    let mut v = Vcpu {
        data,
        fast,
        hooked,
        first,
        initial,
        moving,
        entry: start.entry,
        ret_slot: start.ret_slot,
        map_from: start.map_from,
    };
    v.reset()?;
    Ok(v)
}

/// A new `side` instance of the vCPU of `data`, RAM mapped from `from` up, hooks installed.
fn new_instance(
    data: &Rc<VcpuData>,
    side: Side,
    from: u64,
) -> Result<Instance, unicorn_engine::uc_error> {
    let shared = &data.shared;
    let ram = shared.mem.size();
    let linux = shared.linux.is_some();
    let mut uc = Unicorn::new_with_data(Arch::X86, unicorn_engine::Mode::MODE_64, data.clone())?;
    ffi::set_tcg_buffer_size(&mut uc, TCG_BUFFER)?;
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
    hooks::install_hooks(&mut uc, side, from, ram, &shared.sites, linux)?;
    let h = Handle(uc.get_handle());
    shared.code.add_instance(h);
    if side == Side::Fast {
        shared.set_fast(data.id, h);
    }
    Ok(uc)
}

impl Vcpu {
    /// Back to the entry state: registers, the return address on the stack, per-run state.
    pub fn reset(&mut self) -> Result<(), unicorn_engine::uc_error> {
        let first = self.first;
        let Vcpu {
            fast,
            hooked,
            initial,
            ..
        } = self;
        let uc = match first {
            Side::Fast => fast.as_mut(),
            Side::Hooked => hooked.as_mut(),
        };
        uc.ok_or(unicorn_engine::uc_error::HANDLE)?
            .context_restore(initial)?;
        if let Some(f) = &self.fast {
            // Pages it owned last run are anybody's now.
            ffi::flush_tlb(f.get_handle());
        }
        let d = &self.data;
        d.side.set(first);
        d.since_shared.set(0);
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

    /// The `side` instance (which must exist).
    fn instance(&mut self, side: Side) -> &mut Instance {
        match side {
            Side::Fast => self.fast.as_mut(),
            Side::Hooked => self.hooked.as_mut(),
        }
        .expect("the instance exists")
    }

    /// The handle of the instance running the vCPU.
    pub fn handle(&self) -> Handle {
        let uc = match self.data.side.get() {
            Side::Fast => self.fast.as_ref(),
            Side::Hooked => self.hooked.as_ref(),
        };
        Handle(uc.expect("the running instance exists").get_handle())
    }

    /// This vCPU's hook data.
    pub fn data(&self) -> &VcpuData {
        &self.data
    }

    /// Start the next run at `entry` (a Linux thread: where its parent's clone returns).
    pub fn set_entry(&mut self, entry: u64) {
        self.entry = entry;
    }

    /// Drop every translated block (after weft rewrote code pages between runs).
    pub fn flush_code(&mut self) {
        for uc in self.fast.iter_mut().chain(self.hooked.iter_mut()) {
            let _ = uc.ctl_flush_tb();
        }
    }

    /// Go on running on the `to` instance (made now if it is the hooked one's first time),
    /// with the registers the other one has now.
    fn switch(&mut self, to: Side) -> Result<(), unicorn_engine::uc_error> {
        if self.data.side.get() == to {
            return Ok(());
        }
        if self.hooked.is_none() {
            self.hooked = Some(new_instance(&self.data, Side::Hooked, self.map_from)?);
        }
        let Vcpu {
            fast,
            hooked,
            moving,
            ..
        } = self;
        let (from, into) = match to {
            Side::Hooked => (fast, hooked),
            Side::Fast => (hooked, fast),
        };
        let (Some(from), Some(into)) = (from.as_mut(), into.as_mut()) else {
            return Err(unicorn_engine::uc_error::HANDLE);
        };
        from.context_save(moving)?;
        into.context_restore(moving)?;
        let d = &self.data;
        d.side.set(to);
        d.since_shared.set(0);
        let h = self.handle();
        if let Some(slot) = d.shared.handles.borrow_mut().get_mut(d.id.0 as usize) {
            *slot = h;
        }
        Ok(())
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
                v.data.yielder.set(yielder as *const _);
                let mut pc = v.entry;
                let exit = loop {
                    let side = v.data.side.get();
                    let uc = v.instance(side);
                    let result = uc.emu_start(pc, RETURN_ADDR, 0, 0);
                    let (next, to) = match after_stop(uc, &result) {
                        Next::Go(next) => (next, side),
                        Next::Move(at, to) => {
                            (at.unwrap_or_else(|| uc.pc_read().unwrap_or(pc)), to)
                        }
                        Next::End => break classify(uc, result),
                    };
                    pc = next;
                    // A transaction is watched whole, on the hooked instance.
                    let to = if v.data.in_tx() { Side::Hooked } else { to };
                    if let Err(e) = v.switch(to) {
                        let what =
                            format!("weft could not make this vCPU's hooked instance: {e:?}");
                        break VcpuExit::Crashed(Box::new(crash_info(v.instance(side), what)));
                    }
                };
                v.data.yielder.set(std::ptr::null());
                (exit, v)
            },
        )
    }
}

/// A fresh host stack for a vCPU coroutine.
pub(crate) fn new_stack() -> Result<DefaultStack, unicorn_engine::uc_error> {
    DefaultStack::new(COROUTINE_STACK).map_err(|_| unicorn_engine::uc_error::NOMEM)
}

/// Emulation stopped: whether and where the vCPU goes on.
fn after_stop(uc: &mut Instance, result: &Result<(), unicorn_engine::uc_error>) -> Next {
    let d = uc.get_data().clone();
    let cause = d.cause.borrow().clone();
    match cause {
        Some(StopCause::Resume(next)) => {
            d.cause.borrow_mut().take();
            Next::Go(next)
        }
        Some(StopCause::Move { to, at }) => {
            d.cause.borrow_mut().take();
            Next::Move(at, to)
        }
        Some(StopCause::TmAbort) => {
            d.cause.borrow_mut().take();
            Next::Go(rtm::finish_abort(uc))
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
                    return Next::Go(rtm::finish_abort(uc));
                }
                _ => format!("emulation error: {result:?}"),
            };
            let h = uc.get_handle();
            let rip = uc.pc_read().unwrap_or(0);
            d.cause.borrow_mut().take();
            d.abort_own(h, rip, 0, AbortCause::Exception { what });
            d.cause.borrow_mut().take();
            Next::Go(rtm::finish_abort(uc))
        }
        _ => Next::End,
    }
}

/// What the vCPU does after emulation stopped.
enum Next {
    /// Go on at this address (an emulated instruction is done, or a transaction aborted).
    Go(u64),
    /// Go on on the other instance (at the address, or where it stopped).
    Move(Option<u64>, Side),
    /// It ended (`classify` says how).
    End,
}

/// Turn the end of `emu_start` into a vCPU exit.
fn classify(uc: &Instance, result: Result<(), unicorn_engine::uc_error>) -> VcpuExit {
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
        Some(StopCause::Resume(_) | StopCause::TmAbort | StopCause::Move { .. }) | None => {}
    }
    if rip == RETURN_ADDR {
        return VcpuExit::Ended(VcpuEndReason::Returned);
    }
    match result {
        Ok(()) => VcpuExit::Ended(VcpuEndReason::Hlt),
        Err(e) => VcpuExit::Crashed(Box::new(crash_info(uc, format!("emulation error: {e:?}")))),
    }
}

fn crash_info(uc: &Instance, what: String) -> CrashInfo {
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
