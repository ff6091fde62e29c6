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
pub mod linux;
mod memory;
mod pages;
mod regs;
mod smc;
mod spawn;
mod stacks;
mod tm;
mod vcpu;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use corosensei::CoroutineResult;
use weft_recorder::Strategy;
use weft_trace::{MachineOptions, VcpuId, Verdict, MAX_VCPUS};

pub use controller::{ProgressFn, RunStats, SharedSink};
pub use debug_run::{DebugEvent, DebugRegs, DebugRun};
pub use elf::{
    load_bias, looks_like_linux, resembles_linux, ElfError, ElfImage, Segment, STATIC_PIE_BASE,
};
pub use memory::{GuestMemory, PAGE};

use controller::{Controller, Decision};
use vcpu::{Resume, VcpuCoroutine, VcpuExit, Yield};

/// Why a machine cannot be built from an image and options.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error(transparent)]
    Elf(#[from] ElfError),
    #[error("{0}")]
    Linux(#[from] linux::LinuxError),
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
    /// Which vCPU owns each page, and which pages are shared (see `pages`).
    pub pages: pages::PageOwners,
    /// vCPUs run on fast instances where they can (`Sharing::Pages`; see `vcpu`).
    pub fast: bool,
    /// Fast instances also report accesses to pages their vCPU owns (a machine that
    /// derives the full access log: `Machine::new_deriving`).
    pub derive: bool,
    /// Each vCPU's fast instance (null until it has one), whose TLB is flushed when a page
    /// stops being that vCPU's own.
    fast_handles: RefCell<Vec<vcpu::Handle>>,
    /// Raw unicorn handles of the vCPUs that exist (a Linux process's grow with its threads).
    pub handles: RefCell<Vec<vcpu::Handle>>,
    /// The Linux process (Linux machines only).
    pub linux: Option<RefCell<linux::Process>>,
    /// Linux: instances (and coroutine stacks) of vCPUs not running now, by id, for new threads.
    pub pool: RefCell<Vec<Option<(vcpu::Vcpu, corosensei::stack::DefaultStack)>>>,
    /// Linux: coroutines of threads created since the scheduler last looked.
    pub spawned: RefCell<Vec<(VcpuId, VcpuCoroutine)>>,
    /// XBEGIN, PAUSE and fence sites, for instances created during a run.
    pub sites: Rc<[(u64, isa::SiteKind)]>,
    /// The guest's call frame information, for the call stacks of a failure.
    pub unwinder: Option<Rc<crate::unwind::Unwinder>>,
    /// Those call stacks, for the run's outcome.
    pub backtraces: RefCell<Vec<weft_trace::Backtrace>>,
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

    /// Note that every page of `[addr, addr + len)` was written.
    pub fn mark_dirty_range(&self, addr: u64, len: u64) {
        if len == 0 {
            return;
        }
        let last = addr.saturating_add(len - 1) / PAGE;
        for page in addr / PAGE..=last {
            if let Some(w) = self.dirty.get((page / 64) as usize) {
                w.set(w.get() | 1 << (page % 64));
            } else {
                break;
            }
        }
    }

    /// Whether `page` was written since the last reset.
    fn is_dirty(&self, page: u64) -> bool {
        self.dirty
            .get((page / 64) as usize)
            .is_some_and(|w| w.get() & (1 << (page % 64)) != 0)
    }

    /// Make `[addr, addr + len)` read as zero, writing only pages written since the last
    /// reset (the others, outside the image, are zero already): new mappings and heap are
    /// cheap however large.
    pub fn zero_range(&self, addr: u64, len: u64) {
        let end = addr.saturating_add(len).min(self.mem.size());
        let mut a = addr;
        while a < end {
            let page_end = ((a / PAGE) + 1) * PAGE;
            let b = page_end.min(end);
            if self.is_dirty(a / PAGE) {
                self.mem.write(a, &vec![0u8; (b - a) as usize]);
            }
            a = b;
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

    /// `vcpu`'s fast instance is `h`.
    pub(crate) fn set_fast(&self, vcpu: VcpuId, h: vcpu::Handle) {
        let mut f = self.fast_handles.borrow_mut();
        let i = vcpu.0 as usize;
        if f.len() <= i {
            f.resize(i + 1, vcpu::Handle(std::ptr::null_mut()));
        }
        f[i] = h;
    }

    /// `vcpu` (`pages::ANYONE`: every vCPU) may no longer reach some page unseen: its fast
    /// instance forgets every page it could.
    pub(crate) fn revoke(&self, vcpu: VcpuId) {
        let handles = self.fast_handles.borrow();
        let all = vcpu.0 == pages::ANYONE;
        for (i, h) in handles.iter().enumerate() {
            if (all || i == vcpu.0 as usize) && !h.0.is_null() {
                ffi::flush_tlb(h.0);
            }
        }
    }

    /// The page at `page` changed (it holds code now): its owner, if any, loses its grant.
    pub(crate) fn revoke_page(&self, page: u64) {
        if let Some(o) = self.pages.owner(page) {
            self.revoke(o);
        }
    }

    /// `vcpu`'s stack is `[stack.0, stack.1)` and `more` is its too (a thread's TLS and
    /// descriptor): its pages become its own, or shared from the start with
    /// `--trace-stack` (every access to the stack is then a point, as it is recorded).
    pub fn own_stack(&self, vcpu: VcpuId, stack: (u64, u64), more: (u64, u64)) {
        let mut lost = if self.ctl.borrow().options().trace_stack {
            self.pages.share(stack.0, stack.1)
        } else {
            self.pages.give(vcpu, stack.0, stack.1)
        };
        lost.extend(self.pages.give(vcpu, more.0, more.1));
        for v in lost {
            self.revoke(v);
        }
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
    /// Call stacks of the vCPUs a failure concerns (also in the trace as `Backtrace`
    /// events), innermost frame first.
    pub backtraces: Vec<weft_trace::Backtrace>,
    /// With `RunConfig::keep_files`: each file the Linux program created or changed, by
    /// path, as the run left it.
    pub files: Vec<(String, Vec<u8>)>,
    /// Pages (address / 4096) shared when the run ended, ascending: what a search carries
    /// into its later schedules (`Sharing::Pages::shared`).
    pub shared_pages: Vec<u64>,
    /// Linux: the system calls the run answered with ENOSYS because weft does not
    /// emulate them (a failure after one may be weft's, not the program's).
    pub unsupported: Vec<String>,
    /// What the run's events say about its failure (panics, unemulated calls).
    pub clues: crate::failure::Clues,
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
    /// Linux: hand back the files the program created or changed (`RunOutcome::files`).
    pub keep_files: bool,
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
    /// Built to derive the full access log (`Machine::new_deriving`).
    derive: bool,
    /// A Linux process: its address space at the start, its main thread's RSP.
    linux: Option<(linux::AddressSpace, u64)>,
    /// Where a Linux guest's host files come from (the host, or a recording).
    files: Rc<linux::FileSource>,
    /// The guest's call frame information (`None`: it has none).
    unwinder: Option<Rc<crate::unwind::Unwinder>>,
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
        let limit = match opts.linux {
            Some(_) => opts.ram_bytes - linux::MAIN_STACK,
            None => opts.ram_bytes - opts.stack_bytes * opts.vcpus as u64,
        };
        let mut image = ElfImage::parse(elf, limit)?;
        if image.bias != 0 && opts.linux.is_none() {
            return Err(ElfError::NotExecutable(
                "a static-pie executable; board guests are built with -static -no-pie",
            )
            .into());
        }
        let linux = match &opts.linux {
            Some(l) => {
                let lay = linux::layout(&image, l, opts.ram_bytes)?;
                // The initial stack (argv, envp, auxv) is part of the image: reset restores it.
                image.segments.push(lay.stack);
                Some((lay.mm, lay.rsp))
            }
            None => None,
        };
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
            derive: false,
            linux,
            files: Rc::default(),
            unwinder: crate::unwind::Unwinder::new(elf).map(Rc::new),
        })
    }

    /// Where a Linux guest's host files come from for the next runs: a replay passes what
    /// the recording saw.
    pub fn set_files(&mut self, files: linux::FileSource) {
        self.files = Rc::new(files);
    }

    /// A fresh Linux process state for a run.
    fn process(&self) -> Option<linux::Process> {
        let (mm, _) = self.linux.as_ref()?;
        let l = self.opts.linux.as_ref()?;
        let mut p = linux::Process::new(l, mm.clone(), self.opts.vcpus, self.files.clone());
        p.stacks.push((mm.stack_bottom, self.opts.ram_bytes));
        Some(p)
    }

    /// Where vCPU 0 of a Linux process starts, or vCPU `i` of the board.
    fn start_of(&self, i: u32) -> vcpu::Start {
        match &self.linux {
            Some((mm, rsp)) => vcpu::Start {
                entry: self.image.entry,
                rsp: *rsp,
                regs: Vec::new(),
                ret_slot: None,
                private: (mm.stack_bottom, self.opts.ram_bytes),
                map_from: linux::NULL_GUARD,
            },
            None => vcpu::board_start(VcpuId(i), self.image.entry, self.opts.ram_bytes, &self.opts),
        }
    }

    /// A machine whose runs also report the accesses to pages only their owner has touched
    /// (`EventSink::private_access`), which a plain machine's fast instances do not see.
    /// Slower; its schedules are the same.
    pub fn new_deriving(elf: &[u8], opts: &MachineOptions) -> Result<Machine, MachineError> {
        let mut m = Machine::new(elf, opts)?;
        m.derive = true;
        Ok(m)
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
            pages: pages::PageOwners::new(self.opts.ram_bytes),
            fast: self.opts.sharing != weft_trace::Sharing::All,
            derive: self.derive,
            fast_handles: RefCell::new(Vec::new()),
            handles: RefCell::new(Vec::new()),
            linux: self.process().map(RefCell::new),
            pool: RefCell::new(Vec::new()),
            spawned: RefCell::new(Vec::new()),
            sites: self.sites.clone().into(),
            unwinder: self.unwinder.clone(),
            backtraces: RefCell::new(Vec::new()),
        });
        let mut vcpus = Vec::with_capacity(self.opts.vcpus as usize);
        let mut stacks = Vec::with_capacity(self.opts.vcpus as usize);
        // A Linux process starts with one thread; the others' vCPUs are made by clone.
        let first = if self.linux.is_some() {
            1
        } else {
            self.opts.vcpus
        };
        for i in 0..first {
            let err = |err| MachineError::Unicorn { vcpu: i, err };
            let start = self.start_of(i);
            vcpus.push(vcpu::create(VcpuId(i), &shared, &start).map_err(err)?);
            stacks.push(vcpu::new_stack().map_err(err)?);
        }
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
        if let (Some(cell), Some(p)) = (&k.shared.linux, self.process()) {
            *cell.borrow_mut() = p;
        }
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
        ctl.keep_files = config.keep_files;
        let kept = self.kept.borrow_mut().take();
        let mut k = match kept {
            Some(mut k) => {
                self.reset(&mut k, ctl)?;
                k
            }
            None => self.build(ctl)?,
        };
        *k.shared.handles.borrow_mut() = k.vcpus.iter().map(|v| v.handle()).collect();
        k.shared.pages.reset(&self.opts.sharing);
        let first = if self.linux.is_some() {
            1
        } else {
            self.opts.vcpus
        };
        for i in 0..first {
            let (lo, hi) = self.start_of(i).private;
            k.shared.own_stack(VcpuId(i), (lo, hi), (hi, hi));
        }
        let mut pairs = k.vcpus.drain(..).zip(k.stacks.drain(..));
        let coros: Vec<VcpuCoroutine> = if self.linux.is_some() {
            // The main thread runs; the other instances wait in the pool for a clone.
            let (main, st) = pairs.next().expect("a Linux machine has vCPU 0");
            k.shared.handles.borrow_mut().truncate(1);
            *k.shared.pool.borrow_mut() = std::iter::once(None).chain(pairs.map(Some)).collect();
            vec![main.into_coroutine(st)]
        } else {
            pairs.map(|(v, st)| v.into_coroutine(st)).collect()
        };
        let sched = Scheduler::start(&k.shared, coros);
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
        backtraces: shared.backtraces.take(),
        files: match &shared.linux {
            Some(p) if ctl.keep_files => p.borrow().written_files(),
            _ => Vec::new(),
        },
        shared_pages: shared.pages.shared_pages(|p| shared.is_dirty(p)),
        unsupported: shared.linux.as_ref().map_or_else(Vec::new, |p| {
            p.borrow().unsupported.iter().cloned().collect()
        }),
        clues: ctl.clues.clone(),
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
}

impl Scheduler {
    fn start(shared: &Rc<Shared>, coros: Vec<VcpuCoroutine>) -> Scheduler {
        let first = shared.ctl.borrow_mut().decide(None, 0, false);
        Scheduler {
            back: coros.iter().map(|_| None).collect(),
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
            self.adopt(shared);
            let i = v.0 as usize;
            let Some(c) = self.coros.get_mut(i).and_then(Option::as_mut) else {
                self.cur = None;
                break;
            };
            self.cur = match c.resume(Resume::Go) {
                CoroutineResult::Yield(Yield::SwitchTo(next)) => Some(next),
                CoroutineResult::Yield(Yield::Debug(reason)) => return Some(reason),
                CoroutineResult::Return((exit, vcpu)) => {
                    self.back[i] = Some(vcpu);
                    if matches!(exit, VcpuExit::Ended(_)) && shared.linux.is_some() {
                        self.recycle(shared, i);
                    }
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

    /// A Linux thread's vCPU ended: its instance and stack go back to the pool, where a
    /// later thread may take them (`Process::reusable`); `finish` returns them from there.
    fn recycle(&mut self, shared: &Shared, i: usize) {
        if let (Some(c), Some(vcpu)) = (self.coros[i].take(), self.back[i].take()) {
            let mut pool = shared.pool.borrow_mut();
            if pool.len() <= i {
                pool.resize_with(i + 1, || None);
            }
            pool[i] = Some((vcpu, c.into_stack()));
        }
    }

    /// Take in the coroutines of threads created since the last look.
    fn adopt(&mut self, shared: &Shared) {
        for (v, c) in shared.spawned.borrow_mut().drain(..) {
            let i = v.0 as usize;
            if self.coros.len() <= i {
                self.coros.resize_with(i + 1, || None);
                self.back.resize_with(i + 1, || None);
            }
            self.coros[i] = Some(c);
        }
    }

    /// Stop every vCPU still suspended and hand all of them back to `k`, in vCPU order
    /// (with a Linux process's unused instances from the pool).
    fn finish(mut self, shared: &Rc<Shared>, k: &mut Kept) {
        self.adopt(shared);
        stacks::record(shared);
        shared.ctl.borrow_mut().stopping = true;
        let mut pool = std::mem::take(&mut *shared.pool.borrow_mut());
        let n = self.coros.len().max(pool.len());
        self.coros.resize_with(n, || None);
        self.back.resize_with(n, || None);
        for (i, c) in self.coros.iter_mut().enumerate() {
            let Some(mut c) = c.take() else {
                // Never started this run: back from the pool (the pool owns no Rc cycle
                // once emptied).
                if let Some((v, st)) = pool.get_mut(i).and_then(Option::take) {
                    k.vcpus.push(v);
                    k.stacks.push(st);
                }
                continue;
            };
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
