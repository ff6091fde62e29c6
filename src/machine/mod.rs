//! The weft machine: guest RAM shared by one unicorn instance per vCPU, run under the
//! schedule controller, one vCPU at a time, each in its own coroutine on one host thread.

mod controller;
mod cpuid;
mod cycle;
pub mod debug;
mod debug_run;
mod elf;
mod ffi;
pub mod hypercall;
pub mod isa;
mod memory;
mod smc;
mod tm;
mod vcpu;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use corosensei::CoroutineResult;
use weft_recorder::Strategy;
use weft_trace::{MachineOptions, VcpuId, Verdict, MAX_VCPUS};

pub use controller::{ProgressFn, RunStats, SharedSink};
pub use debug_run::{DebugEvent, DebugRegs, DebugRun};
pub use elf::{ElfError, ElfImage, Segment};
pub use memory::{GuestMemory, PAGE};

use controller::{Controller, Decision};
use vcpu::{Resume, VcpuCoroutine, VcpuExit, Yield};

/// Why a machine cannot be built from an image and options.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("invalid options: {0}")]
    Options(String),
    #[error("unicorn could not create vCPU {vcpu}: {err:?}")]
    Unicorn {
        vcpu: u32,
        err: unicorn_engine::uc_error,
    },
}

/// State every vCPU's hooks share.
pub(crate) struct Shared {
    pub ctl: RefCell<Controller>,
    pub mem: GuestMemory,
    /// Transactional memory: every vCPU's transaction.
    pub tm: RefCell<tm::TmEngine>,
    /// Registers of each vCPU when a run pauses.
    pub snapshots: RefCell<Vec<Option<VcpuSnapshot>>>,
    /// Direct-mapped cache: RIP -> whether the instruction there is atomic (LOCK/XCHG).
    atomic_cache: Box<[Cell<(u64, bool)>]>,
    /// One bit per RAM page written since the last reset (by the guest or by weft).
    dirty: Box<[Cell<u64>]>,
    /// The debugger's control of a debug machine (`Machine::new_debug`).
    pub debug: Option<RefCell<debug::DebugCtl>>,
    /// Whether any watchpoint is set: the memory hook asks the debugger only then.
    pub watching: Cell<bool>,
    /// Pages holding code that ran, for cross-modifying code (see `smc`).
    pub code: smc::CodePages,
}

const ATOMIC_CACHE: usize = 4096;

impl Shared {
    /// Note that `[addr, addr + len)` was written (so the next run restores it).
    #[inline]
    pub fn mark_dirty(&self, addr: u64, len: u64) {
        for page in [addr / PAGE, (addr + len.max(1) - 1) / PAGE] {
            if let Some(w) = self.dirty.get((page / 64) as usize) {
                w.set(w.get() | 1 << (page % 64));
            }
        }
    }

    /// The written pages, clearing the record.
    fn take_dirty(&self) -> Vec<u64> {
        let mut pages = Vec::new();
        for (i, w) in self.dirty.iter().enumerate() {
            let mut bits = w.replace(0);
            while bits != 0 {
                pages.push(i as u64 * 64 + bits.trailing_zeros() as u64);
                bits &= bits - 1;
            }
        }
        pages
    }

    /// Whether the instruction at `rip` is indivisible (decoded once per RIP, then cached).
    pub fn insn_atomic(&self, rip: u64) -> bool {
        let slot = &self.atomic_cache[((rip ^ (rip >> 12)) as usize) & (ATOMIC_CACHE - 1)];
        let (r, a) = slot.get();
        if r == rip && rip != 0 {
            return a;
        }
        let mut bytes = [0u8; isa::MAX_INSN_LEN];
        let got = self.mem.read_up_to(rip, bytes.len());
        bytes[..got.len()].copy_from_slice(&got);
        let a = isa::decode(&bytes[..got.len()], rip).is_some_and(|i| isa::is_atomic(&i));
        slot.set((rip, a));
        a
    }
}

/// Check options against the board's limits.
pub fn validate_options(opts: &MachineOptions) -> Result<(), MachineError> {
    let bad = |m: String| Err(MachineError::Options(m));
    if opts.vcpus == 0 || opts.vcpus > MAX_VCPUS {
        return bad(format!(
            "--vcpus must be 1..={MAX_VCPUS}, not {}",
            opts.vcpus
        ));
    }
    if opts.ram_bytes == 0 || opts.ram_bytes % PAGE != 0 || opts.ram_bytes > 1 << 40 {
        return bad(format!(
            "--ram must be a non-zero multiple of 4 KiB up to 1 TiB, not {}",
            opts.ram_bytes
        ));
    }
    if opts.stack_bytes < PAGE || opts.stack_bytes % PAGE != 0 {
        return bad(format!(
            "--stack must be a multiple of 4 KiB, at least 4 KiB, not {}",
            opts.stack_bytes
        ));
    }
    let stacks = opts.stack_bytes.checked_mul(opts.vcpus as u64);
    if stacks.is_none_or(|s| s >= opts.ram_bytes) {
        return bad(format!(
            "{} stacks (--vcpus) of {} bytes (--stack) do not fit in {} bytes of RAM (--ram): \
             raise --ram or lower --stack",
            opts.vcpus, opts.stack_bytes, opts.ram_bytes
        ));
    }
    if opts.spin_threshold == 0 {
        return bad("the spin threshold must be at least 1".into());
    }
    Ok(())
}

/// What a finished run reports.
#[derive(Debug)]
pub struct RunOutcome {
    /// The guest's verdict; `None` when the run was cut short by the sink or the strategy.
    pub verdict: Option<Verdict>,
    pub stats: RunStats,
    /// The sink failed (e.g. disk full); the run stopped there.
    pub sink_error: Option<String>,
    /// The strategy picked a vCPU that could not run at this step (replay divergence or
    /// the end of a recorded schedule).
    pub bad_pick: Option<(weft_trace::Step, VcpuId)>,
    /// The run paused at `RunConfig::pause_at`.
    pub paused: Option<Paused>,
    /// The run was stopped through `RunConfig::interrupt`.
    pub interrupted: bool,
}

/// How a run reports while it goes.
#[derive(Default)]
pub struct RunConfig {
    /// Print console output to stdout as it happens.
    pub echo_console: bool,
    /// Called every 2^20 steps with the step count.
    pub progress: Option<ProgressFn>,
    /// Stop just before this step, with no verdict, and report where every vCPU is.
    pub pause_at: Option<u64>,
    /// Recording sessions: stop when the trace would grow past this many bytes.
    pub trace_limit: Option<u64>,
    /// Set from outside (a Ctrl-C handler) to stop the run at the next scheduling point,
    /// with no verdict.
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// One vCPU's registers where a run paused (`RunConfig::pause_at`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcpuSnapshot {
    pub rip: u64,
    /// As `CrashInfo::regs`: rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rflags.
    pub regs: [u64; 17],
}

/// Where a paused run stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paused {
    /// The step that was about to be decided.
    pub step: u64,
    /// Per vCPU: its registers, or `None` if it had not started or had ended.
    pub vcpus: Vec<Option<VcpuSnapshot>>,
}

/// A loaded guest, ready to run, as often as wanted: the vCPUs' unicorn instances are built
/// on the first run and kept; each later run resets them (registers, the RAM pages written)
/// instead of building new ones, which is what makes `weft explore` fast.
pub struct Machine {
    image: ElfImage,
    opts: MachineOptions,
    sites: Vec<(u64, isa::SiteKind)>,
    kept: RefCell<Option<Kept>>,
    /// Built for the debugger: a hook on every instruction (see `debug`).
    debug: bool,
}

/// What one run leaves for the next.
struct Kept {
    shared: Rc<Shared>,
    vcpus: Vec<vcpu::Vcpu>,
    stacks: Vec<corosensei::stack::DefaultStack>,
}

impl Machine {
    /// Parse and check `elf` for a board with `opts`.
    pub fn new(elf: &[u8], opts: &MachineOptions) -> Result<Machine, MachineError> {
        validate_options(opts)?;
        let limit = opts.ram_bytes - opts.stack_bytes * opts.vcpus as u64;
        let image = ElfImage::parse(elf, limit)?;
        let mut sites = Vec::new();
        for s in image.segments.iter().filter(|s| s.executable) {
            sites.extend(isa::find_sites(&s.data, s.addr));
        }
        Ok(Machine {
            image,
            opts: opts.clone(),
            sites,
            kept: RefCell::new(None),
            debug: false,
        })
    }

    /// A machine for the debugger: every instruction boundary can pause ([`DebugRun`]).
    /// Slower than [`Machine::new`] (one more hook per instruction).
    pub fn new_debug(elf: &[u8], opts: &MachineOptions) -> Result<Machine, MachineError> {
        let mut m = Machine::new(elf, opts)?;
        m.debug = true;
        Ok(m)
    }

    pub fn options(&self) -> &MachineOptions {
        &self.opts
    }

    /// Change the TM options for the next runs (they shape no part of the instances).
    pub fn set_tm_options(&mut self, tm: weft_trace::TmOptions) {
        self.opts.tm = tm;
    }

    /// Build the shared state and every vCPU (first run).
    fn build(&self, ctl: Controller) -> Result<Kept, MachineError> {
        let mem = GuestMemory::new(self.opts.ram_bytes).ok_or_else(|| {
            MachineError::Options(format!(
                "cannot allocate {} bytes of guest RAM (--ram): the host refused; try a smaller --ram",
                self.opts.ram_bytes
            ))
        })?;
        self.image.load(&mem);
        let pages = self.opts.ram_bytes.div_ceil(PAGE);
        let shared = Rc::new(Shared {
            ctl: RefCell::new(ctl),
            mem,
            tm: RefCell::new(tm::TmEngine::new(&self.opts.tm, self.opts.vcpus)),
            snapshots: RefCell::new(vec![None; self.opts.vcpus as usize]),
            atomic_cache: (0..ATOMIC_CACHE).map(|_| Cell::new((0, false))).collect(),
            dirty: (0..pages.div_ceil(64)).map(|_| Cell::new(0)).collect(),
            debug: self
                .debug
                .then(|| RefCell::new(debug::DebugCtl::new(self.opts.vcpus))),
            watching: Cell::new(false),
            code: smc::CodePages::new(self.opts.ram_bytes),
        });
        let mut vcpus = Vec::with_capacity(self.opts.vcpus as usize);
        let mut stacks = Vec::with_capacity(self.opts.vcpus as usize);
        for i in 0..self.opts.vcpus {
            let err = |err| MachineError::Unicorn { vcpu: i, err };
            vcpus.push(
                vcpu::create(VcpuId(i), &shared, self.image.entry, &self.sites).map_err(err)?,
            );
            stacks.push(vcpu::new_stack().map_err(err)?);
        }
        shared
            .code
            .set_vcpus(vcpus.iter().map(|v| v.handle()).collect());
        shared.take_dirty();
        Ok(Kept {
            shared,
            vcpus,
            stacks,
        })
    }

    /// Bring kept state back to the start: RAM pages written last time restored from the
    /// image (or zeroed), registers to the entry state, fresh per-run state.
    fn reset(&self, k: &mut Kept, ctl: Controller) -> Result<(), MachineError> {
        let mem = &k.shared.mem;
        let mut code_written = false;
        for page in k.shared.take_dirty() {
            let (lo, hi) = (page * PAGE, (page + 1) * PAGE);
            mem.write(lo, &[0u8; PAGE as usize]);
            for s in &self.image.segments {
                let (a, b) = (s.addr.max(lo), (s.addr + s.data.len() as u64).min(hi));
                if a < b {
                    mem.write(a, &s.data[(a - s.addr) as usize..(b - s.addr) as usize]);
                }
                code_written |= s.executable && s.addr < hi && lo < s.addr + s.mem_size;
            }
            code_written |= k.shared.code.is_code(lo, PAGE);
        }
        for (i, v) in k.vcpus.iter_mut().enumerate() {
            if code_written {
                v.flush_code();
            }
            v.reset().map_err(|err| MachineError::Unicorn {
                vcpu: i as u32,
                err,
            })?;
        }
        *k.shared.ctl.borrow_mut() = ctl;
        *k.shared.tm.borrow_mut() = tm::TmEngine::new(&self.opts.tm, self.opts.vcpus);
        *k.shared.snapshots.borrow_mut() = vec![None; self.opts.vcpus as usize];
        Ok(())
    }

    /// Run the guest to its end under `strategy`, sending events to `sink`.
    pub fn run(
        &self,
        strategy: Box<dyn Strategy>,
        sink: SharedSink,
        config: RunConfig,
    ) -> Result<RunOutcome, MachineError> {
        let (mut k, mut sched) = self.start(strategy, sink, config)?;
        while sched.drive(&k.shared).is_some() {}
        let shared = k.shared.clone();
        sched.finish(&shared, &mut k);
        let outcome = outcome(&shared);
        *self.kept.borrow_mut() = Some(k);
        Ok(outcome)
    }

    /// Reset (or build) the machine for a run and start its scheduler.
    fn start(
        &self,
        strategy: Box<dyn Strategy>,
        sink: SharedSink,
        config: RunConfig,
    ) -> Result<(Kept, Scheduler), MachineError> {
        let mut ctl = Controller::new(
            self.opts.clone(),
            strategy,
            sink,
            config.echo_console,
            config.progress,
        );
        ctl.pause_at = config.pause_at;
        ctl.interrupt = config.interrupt;
        let kept = self.kept.borrow_mut().take();
        let mut k = match kept {
            Some(mut k) => {
                self.reset(&mut k, ctl)?;
                k
            }
            None => self.build(ctl)?,
        };
        let handles = k.vcpus.iter().map(|v| v.handle()).collect();
        let coros: Vec<VcpuCoroutine> = k
            .vcpus
            .drain(..)
            .zip(k.stacks.drain(..))
            .map(|(v, st)| v.into_coroutine(st))
            .collect();
        let sched = Scheduler::start(&k.shared, coros, handles);
        Ok((k, sched))
    }

    /// Start a run the debugger drives ([`DebugRun::resume`]). Needs [`Machine::new_debug`].
    pub fn debug_run(
        &self,
        strategy: Box<dyn Strategy>,
        sink: SharedSink,
    ) -> Result<DebugRun, MachineError> {
        if !self.debug {
            return Err(MachineError::Options(
                "debug_run needs a machine built with Machine::new_debug".into(),
            ));
        }
        let (k, sched) = self.start(strategy, sink, RunConfig::default())?;
        Ok(DebugRun::new(k, sched))
    }
}

/// What the controller says of a finished (or stopped) run.
fn outcome(shared: &Rc<Shared>) -> RunOutcome {
    let (verdict, stats) = shared.ctl.borrow_mut().end_run();
    shared.ctl.borrow_mut().release_sink();
    let steps = stats.steps;
    let ctl = shared.ctl.borrow();
    RunOutcome {
        verdict: if ctl.sink_error.is_some() || ctl.bad_pick.is_some() {
            None
        } else {
            verdict
        },
        stats,
        sink_error: ctl.sink_error.clone(),
        bad_pick: ctl.bad_pick,
        paused: ctl.paused.then(|| Paused {
            step: steps,
            vcpus: shared.snapshots.borrow().clone(),
        }),
        interrupted: ctl.interrupted,
    }
}

/// The scheduler loop: resume whichever vCPU holds the token until the run is over (or,
/// on a debug machine, a vCPU pauses for the debugger), then let every other vCPU stop
/// cleanly (a suspended coroutine holds unicorn's C frames and must finish, not be dropped).
struct Scheduler {
    coros: Vec<Option<VcpuCoroutine>>,
    /// vCPUs whose coroutine returned, kept for the next run.
    back: Vec<Option<vcpu::Vcpu>>,
    /// Who holds the token (`None`: the run is over).
    cur: Option<VcpuId>,
    /// Raw unicorn handles, for reading registers while paused.
    handles: Vec<vcpu::Handle>,
}

impl Scheduler {
    fn start(
        shared: &Rc<Shared>,
        coros: Vec<VcpuCoroutine>,
        handles: Vec<vcpu::Handle>,
    ) -> Scheduler {
        let first = shared.ctl.borrow_mut().decide(None, 0, false);
        Scheduler {
            back: coros.iter().map(|_| None).collect(),
            handles,
            coros: coros.into_iter().map(Some).collect(),
            cur: match first {
                Decision::Switch(v) => Some(v),
                _ => None,
            },
        }
    }

    /// Run until the run is over (`None`) or a vCPU pauses for the debugger.
    fn drive(&mut self, shared: &Rc<Shared>) -> Option<debug::PauseReason> {
        while let Some(v) = self.cur {
            let i = v.0 as usize;
            let Some(c) = self.coros[i].as_mut() else {
                self.cur = None;
                break;
            };
            self.cur = match c.resume(Resume::Go) {
                CoroutineResult::Yield(Yield::SwitchTo(next)) => Some(next),
                CoroutineResult::Yield(Yield::Debug(reason)) => return Some(reason),
                CoroutineResult::Return((exit, vcpu)) => {
                    self.back[i] = Some(vcpu);
                    if let Some(dbg) = &shared.debug {
                        // A vCPU being stepped ended: the step ends at the next instruction.
                        let mut dbg = dbg.borrow_mut();
                        if let debug::Goal::Vcpu { vcpu, .. } = dbg.goal {
                            if vcpu == v.0 {
                                dbg.goal = debug::Goal::Position(dbg.g + 1);
                            }
                        }
                    }
                    let mut ctl = shared.ctl.borrow_mut();
                    match exit {
                        VcpuExit::Ended(reason) => ctl.vcpu_ended(v, reason),
                        VcpuExit::Crashed(info) => ctl.finish(Verdict::Crash(info)),
                        VcpuExit::Stopped => {}
                    }
                    if ctl.stopping {
                        None
                    } else if !ctl.any_runnable() {
                        ctl.finish(Verdict::Pass);
                        None
                    } else {
                        match ctl.decide(None, 0, false) {
                            Decision::Switch(n) => Some(n),
                            _ => None,
                        }
                    }
                }
            };
        }
        None
    }

    /// Stop every vCPU still suspended and hand all of them back to `k`.
    fn finish(mut self, shared: &Rc<Shared>, k: &mut Kept) {
        shared.ctl.borrow_mut().stopping = true;
        for (i, c) in self.coros.iter_mut().enumerate() {
            let Some(mut c) = c.take() else { continue };
            if self.back[i].is_none() {
                // Suspended in a hook: it sees Stop, asks unicorn to stop, and emu_start
                // returns. Never started: it returns at once.
                loop {
                    if let CoroutineResult::Return((_, vcpu)) = c.resume(Resume::Stop) {
                        self.back[i] = Some(vcpu);
                        break;
                    }
                }
            }
            let vcpu = self.back[i]
                .take()
                .expect("every coroutine returned its vCPU");
            k.vcpus.push(vcpu);
            k.stacks.push(c.into_stack());
        }
    }
}
