//! The schedule controller: the single token, the step counter, spin and deadlock
//! detection, the verdict, and the event stream.
//!
//! Every scheduling point of every vCPU comes through [`Controller::decide`], which asks the
//! strategy who performs the next operation. Only one vCPU executes guest code at a time,
//! so the controller is plain single-threaded state shared by the vCPUs' hooks.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use weft_recorder::{Point, Strategy, VcpuSet};
use weft_trace::{
    AccessKind, Event, EventSink, GuestAddr, MachineOptions, Step, VcpuEndReason, VcpuId, Verdict,
};

/// What a vCPU at a scheduling point does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go on: it keeps the token.
    Continue,
    /// Hand the token to this vCPU.
    Switch(VcpuId),
    /// The run is over; stop executing.
    Stop,
}

/// Preemption positions a run keeps for minimization (`RunStats::preempted_runs`).
const MAX_PREEMPTED_RUNS: usize = 1 << 16;

/// How many recent (address, value) reads a vCPU remembers for spin detection.
const RECENT_READS: usize = 4;

/// A blocked vCPU's wait (Linux futex waits and sleeps): it is not runnable until a wake
/// on `key` with a matching `bitset`, or until virtual time reaches `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Wait {
    /// The futex word's address; 0 for a plain sleep (no wake can end it).
    pub key: u64,
    pub bitset: u32,
    /// Virtual nanoseconds (`Controller::now_ns`).
    pub deadline: Option<u64>,
    /// Order of arrival, for FIFO wakes.
    seq: u64,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WakeReason {
    Woken,
    TimedOut,
}

/// Per-vCPU scheduling state.
#[derive(Clone, Debug, Default)]
struct VcpuState {
    /// Recent distinct reads; reading one of them again with the same value is a spin.
    recent: [(u64, u64); RECENT_READS],
    recent_next: usize,
    /// Consecutive spin events (PAUSE, YIELD, unchanged re-reads, writes of the same value).
    spin: u32,
    /// Decisions this vCPU was picked for.
    points: u64,
    /// RIP at its latest scheduling point (reported where it deadlocks).
    last_rip: u64,
    /// Proven to loop forever on its own (`cycle`), as of this progress count.
    stuck_at: Option<u64>,
    /// Blocked in this wait.
    wait: Option<Wait>,
    /// How its last wait ended, until it takes it.
    woke: Option<WakeReason>,
}

/// Shared sink handle: the caller keeps its own clone to finish the sink after the run.
pub type SharedSink = Rc<RefCell<dyn EventSink>>;

/// Called now and then with the number of steps taken, for progress displays.
pub type ProgressFn = Box<dyn FnMut(u64)>;

pub(crate) struct Controller {
    opts: MachineOptions,
    strategy: Box<dyn Strategy>,
    sink: SharedSink,
    /// Whether the sink wants `Access` events (a plain run does not).
    pub log_accesses: bool,
    /// Whether the sink wants the accesses to pages only their owner touched
    /// (`EventSink::wants_private`: a replay deriving the full access log).
    pub log_private: bool,
    echo_console: bool,
    progress: Option<ProgressFn>,
    /// Steps taken so far; the next decision gets this step number.
    next_step: u64,
    /// vCPUs that have not ended (the name says what strategies may pick, minus `blocked`).
    runnable: VcpuSet,
    /// Live vCPUs blocked in a wait: no strategy may pick them.
    blocked: VcpuSet,
    /// Virtual nanoseconds skipped forward when every live vCPU slept.
    time_skip: u64,
    wait_seq: u64,
    /// The earliest deadline of a wait (may be one that already ended: then it is only
    /// looked at once more).
    next_deadline: Option<u64>,
    run_vcpu: Option<VcpuId>,
    run_len: u64,
    switches: u64,
    preemptions: u64,
    /// `Run` events emitted so far, and the indices of those that ended in a preemption.
    runs: u64,
    preempted_runs: Vec<u64>,
    /// Decisions with more than one vCPU to choose from.
    contended: u64,
    vcpus: Vec<VcpuState>,
    last_progress: u64,
    /// How many times anything progressed (a value-changing write, output, a vCPU end).
    progress_count: u64,
    verdict: Option<Verdict>,
    /// Set once the run is over: every later hook does nothing.
    pub stopping: bool,
    /// The sink failed: the run stopped with this message.
    pub sink_error: Option<String>,
    /// The strategy picked a vCPU that cannot run (a replay schedule that diverged or ran out).
    pub bad_pick: Option<(Step, VcpuId)>,
    /// Stop before deciding this step (no verdict): `weft replay --goto`.
    pub pause_at: Option<u64>,
    /// The run stopped at `pause_at`.
    pub paused: bool,
    /// Stop at the next decision when this is set (Ctrl-C during `weft record`).
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub interrupted: bool,
    /// Hand back the files a Linux program wrote (`RunConfig::keep_files`).
    pub keep_files: bool,
    /// What the events say about a failure beyond its verdict (panics, unemulated calls).
    pub clues: crate::failure::Clues,
}

/// Counters a finished run reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Scheduling decisions made (the step count).
    pub steps: u64,
    /// Decisions each vCPU was picked for.
    pub points: Vec<u64>,
    /// Times the token moved from one vCPU to another.
    pub switches: u64,
    /// Switches away from a vCPU that could have gone on (not ended, not spinning).
    pub preemptions: u64,
    /// Indices (among the run's `Run` events) of the runs that ended in a preemption.
    pub preempted_runs: Vec<u64>,
    /// Decisions with more than one vCPU to choose from (what PCT's `steps` counts).
    pub contended: u64,
}

impl Controller {
    pub fn new(
        opts: MachineOptions,
        strategy: Box<dyn Strategy>,
        sink: SharedSink,
        echo_console: bool,
        progress: Option<ProgressFn>,
    ) -> Controller {
        let log_accesses = sink.borrow().wants_accesses();
        let log_private = sink.borrow().wants_private();
        let n = opts.vcpus;
        Controller {
            vcpus: vec![VcpuState::default(); n as usize],
            // A Linux process starts with its main thread only; threads come by clone.
            runnable: if opts.linux.is_some() {
                VcpuSet::first(1)
            } else {
                VcpuSet::first(n)
            },
            blocked: VcpuSet::empty(),
            time_skip: 0,
            wait_seq: 0,
            next_deadline: None,
            opts,
            strategy,
            sink,
            log_accesses,
            log_private,
            echo_console,
            progress,
            next_step: 0,
            run_vcpu: None,
            run_len: 0,
            switches: 0,
            preemptions: 0,
            runs: 0,
            preempted_runs: Vec::new(),
            contended: 0,
            last_progress: 0,
            progress_count: 0,
            verdict: None,
            stopping: false,
            sink_error: None,
            bad_pick: None,
            pause_at: None,
            paused: false,
            interrupt: None,
            interrupted: false,
            keep_files: false,
            clues: Default::default(),
        }
    }

    /// The step of the latest decision: the step every event of the running vCPU carries.
    pub fn step(&self) -> Step {
        Step(self.next_step.saturating_sub(1))
    }

    /// The number the next decision gets.
    pub fn next_step(&self) -> u64 {
        self.next_step
    }

    /// Whether `v` has not ended.
    pub fn is_live(&self, v: VcpuId) -> bool {
        self.runnable.contains(v)
    }

    pub fn options(&self) -> &MachineOptions {
        &self.opts
    }

    /// A scheduling point: `current` wants to perform its next operation (or nobody holds
    /// the token, at the start and after a vCPU ended). `spin_hint` says the operation is
    /// itself a spin (PAUSE, YIELD).
    pub fn decide(&mut self, current: Option<VcpuId>, rip: u64, spin_hint: bool) -> Decision {
        if self.stopping {
            return Decision::Stop;
        }
        if self.opts.max_steps != 0 && self.next_step >= self.opts.max_steps {
            self.finish(Verdict::Budget {
                max_steps: self.opts.max_steps,
            });
            return Decision::Stop;
        }
        if self.pause_at == Some(self.next_step) {
            self.paused = true;
            self.stopping = true;
            return Decision::Stop;
        }
        if self
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
        {
            self.interrupted = true;
            self.stopping = true;
            return Decision::Stop;
        }
        if !self.blocked.is_empty()
            && (self.runnable.0 & !self.blocked.0 == 0
                || self.next_deadline.is_some_and(|d| d <= self.now_ns()))
            && !self.wake_sleepers(false)
        {
            let vcpus = self
                .runnable
                .iter()
                .map(|v| (v, self.vcpus[v.0 as usize].last_rip))
                .collect();
            self.finish(Verdict::Deadlock { vcpus });
            return Decision::Stop;
        }
        let mut spinning = false;
        if let Some(v) = current {
            let st = &mut self.vcpus[v.0 as usize];
            st.last_rip = rip;
            if spin_hint {
                st.spin = st.spin.saturating_add(1);
            }
            spinning = spin_hint || st.spin >= self.opts.spin_threshold;
            if spinning && self.next_deadline.is_some() && self.all_spinning() {
                // Everyone who can run only spins: what they wait for can only come from a
                // sleeper, so let virtual time pass to the first deadline.
                self.wake_sleepers(true);
            }
            if spinning && (self.no_progress_anywhere() || self.all_stuck()) {
                let vcpus = self
                    .runnable
                    .iter()
                    .map(|v| (v, self.vcpus[v.0 as usize].last_rip))
                    .collect();
                self.finish(Verdict::Deadlock { vcpus });
                return Decision::Stop;
            }
        }
        let step = Step(self.next_step);
        let choice = VcpuSet(self.runnable.0 & !self.blocked.0);
        if choice.len() > 1 {
            self.contended += 1;
        }
        let pick = self.strategy.pick(&Point {
            step,
            current,
            runnable: choice,
            spinning,
            rip: if current.is_some() { rip } else { 0 },
        });
        if !choice.contains(pick) {
            self.bad_pick = Some((step, pick));
            self.stopping = true;
            return Decision::Stop;
        }
        self.next_step += 1;
        self.vcpus[pick.0 as usize].points += 1;
        let preempted = current.is_some_and(|c| c != pick) && !spinning;
        if self.run_vcpu == Some(pick) {
            self.run_len += 1;
        } else {
            self.flush_run();
            if preempted {
                self.preemptions += 1;
                // Kept for minimization, which only needs the first ones: bounded, so a long
                // random recording does not grow by 8 bytes per switch.
                if self.preempted_runs.len() < MAX_PREEMPTED_RUNS {
                    self.preempted_runs.push(self.runs.saturating_sub(1));
                }
            }
            if self.run_vcpu.is_some() {
                self.switches += 1;
            }
            self.run_vcpu = Some(pick);
            self.run_len = 1;
        }
        if self.next_step & 0xF_FFFF == 0 {
            if let Some(p) = self.progress.as_mut() {
                p(self.next_step);
            }
        }
        if current == Some(pick) {
            Decision::Continue
        } else {
            Decision::Switch(pick)
        }
    }

    /// Whether every live vCPU that is not blocked spins and nothing changed for
    /// `deadlock_window` steps, with no sleeper left to wake (a deadline ends in
    /// `wake_sleepers` first, so spinners waiting for a sleeper are never deadlocked).
    fn no_progress_anywhere(&self) -> bool {
        self.next_step - self.last_progress >= self.opts.deadlock_window
            && self.next_deadline.is_none()
            && self.all_spinning()
    }

    /// Whether every live vCPU that is not blocked has spun `spin_threshold` times in a row.
    fn all_spinning(&self) -> bool {
        VcpuSet(self.runnable.0 & !self.blocked.0)
            .iter()
            .all(|v| self.vcpus[v.0 as usize].spin >= self.opts.spin_threshold)
    }

    /// Whether every live vCPU is proven to loop forever without touching shared memory
    /// (nothing can change for any of them again: a livelock, decided at once).
    fn all_stuck(&self) -> bool {
        let now = Some(self.progress_count);
        // Blocked vCPUs stay blocked (the stuck ones wake nobody), unless a deadline ends
        // their wait.
        VcpuSet(self.runnable.0 & !self.blocked.0)
            .iter()
            .all(|v| self.vcpus[v.0 as usize].stuck_at == now)
            && self.blocked.iter().all(|v| {
                self.vcpus[v.0 as usize]
                    .wait
                    .is_none_or(|w| w.deadline.is_none())
            })
    }

    /// `vcpu`, at `rip`, provably loops forever on its own registers and stack.
    pub fn stuck(&mut self, vcpu: VcpuId, rip: u64) {
        let st = &mut self.vcpus[vcpu.0 as usize];
        if st.stuck_at == Some(self.progress_count) {
            return;
        }
        st.stuck_at = Some(self.progress_count);
        let msg = "loops forever without touching shared memory: its registers and stack \
                   repeat exactly (a flag read once into a register? make it volatile)";
        self.warn(vcpu, rip, msg.to_string());
    }

    /// Changes whenever anything in the machine progresses (see `cycle`).
    pub fn progress_stamp(&self) -> u64 {
        self.progress_count
    }

    /// Virtual time in nanoseconds: a microsecond per step, plus the time skipped while
    /// every thread slept. Deterministic, and never decreasing.
    pub fn now_ns(&self) -> u64 {
        self.next_step
            .saturating_mul(1000)
            .saturating_add(self.time_skip)
    }

    /// A Linux thread was created: vCPU `v` may run.
    pub fn spawn(&mut self, v: VcpuId) {
        self.vcpus[v.0 as usize] = VcpuState::default();
        self.runnable.insert(v);
        self.last_progress = self.next_step;
        self.progress_count += 1;
    }

    /// Block `v` until a wake on `key` (matching `bitset`) or the `deadline`; it must then
    /// give up the token (`decide(None, ..)`).
    pub fn wait(&mut self, v: VcpuId, rip: u64, key: u64, bitset: u32, deadline: Option<u64>) {
        self.wait_seq += 1;
        let st = &mut self.vcpus[v.0 as usize];
        st.last_rip = rip;
        st.woke = None;
        st.wait = Some(Wait {
            key,
            bitset,
            deadline,
            seq: self.wait_seq,
        });
        self.blocked.insert(v);
        if let Some(d) = deadline {
            self.next_deadline = Some(self.next_deadline.map_or(d, |n| n.min(d)));
        }
    }

    fn unblock(&mut self, v: VcpuId, why: WakeReason) {
        let st = &mut self.vcpus[v.0 as usize];
        st.wait = None;
        st.woke = Some(why);
        st.spin = 0;
        self.blocked.remove(v);
        self.last_progress = self.next_step;
        self.progress_count += 1;
    }

    /// Blocked vCPUs waiting on `key` whose bitset meets `bitset`, oldest first.
    fn waiters(&self, key: u64, bitset: u32) -> Vec<VcpuId> {
        let mut w: Vec<(u64, VcpuId)> = self
            .blocked
            .iter()
            .filter_map(|v| {
                let wait = self.vcpus[v.0 as usize].wait?;
                (wait.key == key && key != 0 && wait.bitset & bitset != 0).then_some((wait.seq, v))
            })
            .collect();
        w.sort_unstable();
        w.into_iter().map(|(_, v)| v).collect()
    }

    /// Wake up to `n` vCPUs waiting on `key` (FIFO); returns how many.
    pub fn wake(&mut self, key: u64, n: u32, bitset: u32) -> u32 {
        let woken: Vec<VcpuId> = self
            .waiters(key, bitset)
            .into_iter()
            .take(n as usize)
            .collect();
        for &v in &woken {
            self.unblock(v, WakeReason::Woken);
        }
        woken.len() as u32
    }

    /// Wake up to `n` waiters on `key` and move up to `m` more to `to`; returns
    /// (woken, moved).
    pub fn requeue(&mut self, key: u64, to: u64, n: u32, m: u32) -> (u32, u32) {
        let woken = self.wake(key, n, u32::MAX);
        let rest: Vec<VcpuId> = self
            .waiters(key, u32::MAX)
            .into_iter()
            .take(m as usize)
            .collect();
        for &v in &rest {
            if let Some(w) = self.vcpus[v.0 as usize].wait.as_mut() {
                w.key = to;
            }
        }
        (woken, rest.len() as u32)
    }

    /// How `v`'s last wait ended (taken once, after it runs again).
    pub fn take_wake(&mut self, v: VcpuId) -> WakeReason {
        self.vcpus[v.0 as usize]
            .woke
            .take()
            .unwrap_or(WakeReason::Woken)
    }

    /// End the waits whose deadline has passed. If nothing could run, or `skip` says that
    /// whoever can run only spins, first skip virtual time forward to the earliest
    /// deadline. Returns whether some vCPU can run.
    fn wake_sleepers(&mut self, skip: bool) -> bool {
        let choice = |c: &Controller| VcpuSet(c.runnable.0 & !c.blocked.0);
        let deadlines = |c: &Controller| {
            c.blocked
                .iter()
                .filter_map(|v| {
                    c.vcpus[v.0 as usize]
                        .wait
                        .and_then(|w| w.deadline)
                        .map(|d| (d, v))
                })
                .collect::<Vec<_>>()
        };
        let mut due = deadlines(self);
        self.next_deadline = due.iter().map(|d| d.0).min();
        if due.is_empty() {
            return !choice(self).is_empty();
        }
        if skip || choice(self).is_empty() {
            let first = due.iter().map(|d| d.0).min().expect("not empty");
            self.time_skip += first.saturating_sub(self.now_ns());
        }
        let now = self.now_ns();
        due.sort_unstable();
        for &(d, v) in &due {
            if d <= now {
                self.unblock(v, WakeReason::TimedOut);
            }
        }
        self.next_deadline = due.iter().filter(|d| d.0 > now).map(|d| d.0).min();
        !choice(self).is_empty()
    }

    /// Something that is no progress happened to `vcpu` (its transaction aborted): a spin
    /// event, so that transactions retried forever end as a livelock.
    pub fn spin_event(&mut self, vcpu: VcpuId) {
        let st = &mut self.vcpus[vcpu.0 as usize];
        st.spin = st.spin.saturating_add(1);
    }

    /// Record something that moved the run forward: resets the deadlock clock.
    pub fn progress(&mut self, vcpu: VcpuId) {
        self.last_progress = self.next_step;
        self.progress_count += 1;
        self.vcpus[vcpu.0 as usize].spin = 0;
    }

    /// Account for a memory access that just got the token; logs it when wanted. A write
    /// inside a transaction (`speculative`) is not progress: it may be rolled back (only the
    /// commit is), so transactions that abort each other forever end as a livelock.
    #[allow(clippy::too_many_arguments)]
    pub fn access(
        &mut self,
        vcpu: VcpuId,
        rip: u64,
        addr: u64,
        size: u8,
        kind: AccessKind,
        value: u64,
        old: u64,
        speculative: bool,
    ) {
        let st = &mut self.vcpus[vcpu.0 as usize];
        if kind.is_write() {
            if speculative {
                // Neither progress nor spinning: decided when the transaction ends.
            } else if value != old {
                self.last_progress = self.next_step;
                self.progress_count += 1;
                st.spin = 0;
            } else if kind.is_atomic() {
                // A test-and-set that finds the lock taken (`xchg` writing 1 over 1).
                st.spin = st.spin.saturating_add(1);
            }
            // A plain store of the value already there (memset over fresh zeroed memory)
            // is neither progress nor a spin: counting it as one made long memsets look
            // like spin loops, and PCT demote the thread doing them.
        } else if st.recent.contains(&(addr, value)) {
            st.spin = st.spin.saturating_add(1);
        } else {
            st.spin = 0;
            st.recent[st.recent_next] = (addr, value);
            st.recent_next = (st.recent_next + 1) % RECENT_READS;
        }
        if self.log_accesses {
            let step = self.step();
            self.emit(&Event::Access {
                step,
                vcpu,
                rip,
                addr: GuestAddr(addr),
                size,
                kind,
                value,
            });
        }
    }

    /// An access to a page only `vcpu` has touched (no point, not recorded), for a sink
    /// that derives the full access log.
    pub fn private_access(
        &mut self,
        vcpu: VcpuId,
        rip: u64,
        addr: u64,
        size: u8,
        kind: AccessKind,
        value: u64,
    ) {
        if self.sink_error.is_some() {
            return;
        }
        let e = Event::Access {
            step: self.step(),
            vcpu,
            rip,
            addr: GuestAddr(addr),
            size,
            kind,
            value,
        };
        if let Err(e) = self.sink.borrow_mut().private_access(&e) {
            self.sink_error = Some(e.to_string());
            self.stopping = true;
        }
    }

    /// Console bytes from `vcpu` (the board's console or a Linux guest's standard output:
    /// `fd` 1; standard error: 2).
    pub fn console(&mut self, vcpu: VcpuId, fd: u8, bytes: &[u8]) {
        if self.echo_console {
            if fd == 2 {
                let _ = std::io::stderr().lock().write_all(bytes);
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(bytes);
                if bytes.contains(&b'\n') {
                    let _ = out.flush();
                }
            }
        }
        self.progress(vcpu);
        let step = self.step();
        self.emit(&Event::Console {
            step,
            vcpu,
            fd,
            bytes: bytes.to_vec(),
        });
    }

    /// A vCPU ended; the others go on.
    pub fn vcpu_ended(&mut self, vcpu: VcpuId, reason: VcpuEndReason) {
        self.runnable.remove(vcpu);
        self.blocked.remove(vcpu);
        self.last_progress = self.next_step;
        self.progress_count += 1;
        let step = self.step();
        self.emit(&Event::VcpuEnd { step, vcpu, reason });
    }

    /// Whether any vCPU is still live.
    pub fn any_runnable(&self) -> bool {
        !self.runnable.is_empty()
    }

    /// Something odd the guest did that does not stop it, as a warning event.
    pub fn warn(&mut self, vcpu: VcpuId, rip: u64, message: String) {
        let step = self.step();
        self.emit(&Event::Warning {
            step,
            vcpu,
            rip,
            message,
        });
    }

    /// Give the event to the sink; a sink error ends the run.
    pub fn emit(&mut self, event: &Event) {
        if self.sink_error.is_some() {
            return;
        }
        self.clues.observe(event);
        if let Err(e) = self.sink.borrow_mut().event(event) {
            self.sink_error = Some(e.to_string());
            self.stopping = true;
        }
    }

    /// End the run with `verdict` (the first verdict wins).
    /// The verdict the run ended with, once it has one.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// The futex word `v` waits on, if it is blocked in a wait.
    pub fn waiting_on(&self, v: VcpuId) -> Option<u64> {
        self.vcpus.get(v.0 as usize)?.wait.as_ref().map(|w| w.key)
    }

    /// vCPUs that have not ended.
    pub fn live(&self) -> VcpuSet {
        self.runnable
    }

    /// Record `vcpu`'s call stack at the step the run ends on (after the last `Run`).
    pub fn emit_backtrace(&mut self, stack: weft_trace::Backtrace) {
        self.flush_run();
        let step = Step(self.next_step);
        self.emit(&Event::Backtrace { step, stack });
    }

    pub fn finish(&mut self, verdict: Verdict) {
        if self.verdict.is_none() && !self.stopping {
            self.verdict = Some(verdict);
        }
        self.stopping = true;
    }

    fn flush_run(&mut self) {
        if let Some(v) = self.run_vcpu {
            if self.run_len > 0 {
                let points = self.run_len;
                self.run_len = 0;
                self.runs += 1;
                self.emit(&Event::Run { vcpu: v, points });
            }
        }
    }

    /// Emit an event made for the current step.
    pub fn emit_at_step(&mut self, make: impl FnOnce(Step) -> Event) {
        let step = self.step();
        self.emit(&make(step));
    }

    /// Let go of the sink (the caller finishes it: a trace writer must be the only owner).
    pub fn release_sink(&mut self) {
        self.sink = Rc::new(RefCell::new(weft_trace::NullSink));
    }

    /// Close the event stream (last `Run`, then `End`) and hand back the outcome.
    pub fn end_run(&mut self) -> (Option<Verdict>, RunStats) {
        if self.verdict.is_none() && !self.runnable.is_empty() {
            // Stopped by a sink error or a bad pick: no verdict of the guest's own.
        } else if self.verdict.is_none() {
            self.verdict = Some(Verdict::Pass);
        }
        // A sink error already happened: nothing more can be written. A pause (replay
        // --goto) is not the end of the recording's current run: closing it here would
        // give the checker a shorter `Run` than the recording has, a false divergence.
        let sink_failed = self.sink_error.is_some();
        if !sink_failed && !self.paused {
            self.flush_run();
            if let Some(v) = self.verdict.clone() {
                let step = Step(self.next_step);
                self.emit(&Event::End { step, verdict: v });
            }
        }
        let stats = RunStats {
            steps: self.next_step,
            points: self.vcpus.iter().map(|v| v.points).collect(),
            switches: self.switches,
            preemptions: self.preemptions,
            preempted_runs: std::mem::take(&mut self.preempted_runs),
            contended: self.contended,
        };
        (self.verdict.clone(), stats)
    }

    /// Virtual time stamp counter: deterministic, strictly increasing per vCPU because each
    /// read is a scheduling point with its own step.
    pub fn tsc(&self) -> u64 {
        (self.next_step + 1) * 1000
    }
}
