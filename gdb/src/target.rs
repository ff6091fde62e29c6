//! The gdbstub side: a multi-threaded x86-64 target whose threads are vCPUs, with software
//! and hardware breakpoints, watchpoints, single steps, reverse execution and `monitor`.
//! Registers and memory are read-only: a recorded run cannot be changed (see docs/gdb.md).

use std::net::TcpStream;
use std::num::NonZeroUsize;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::Connection;
use gdbstub::stub::{run_blocking, DisconnectReason, GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::reverse_exec::{
    ReplayLogPosition, ReverseCont, ReverseContOps, ReverseStep, ReverseStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind as GdbWatch,
};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::section_offsets::{Offsets, SectionOffsets, SectionOffsetsOps};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;

use crate::tap::{Seen, Tap};
use crate::{Debuggee, Motion, StopKind, Stops, Vcpu, Watch, WatchKind};
use std::cell::RefCell;
use std::rc::Rc;

/// The gdbstub target: the debuggee, gdb's stops, and the motion gdb asked for.
struct GdbTarget<D: Debuggee> {
    d: D,
    stops: Stops,
    /// Set by `resume`, carried out by the event loop.
    motion: Option<Motion>,
    step: Option<Vcpu>,
    /// The vCPUs live, and not yet created, at the latest thread listing, for the names.
    live: Vec<Vcpu>,
    unborn: Vec<Vcpu>,
    /// The thread selections gdb made, read off the connection.
    seen: Rc<RefCell<Seen>>,
}

fn tid(v: Vcpu) -> Tid {
    NonZeroUsize::new(v as usize + 1).expect("vcpu + 1 is never zero")
}

fn vcpu(t: Tid) -> Vcpu {
    (t.get() - 1) as Vcpu
}

/// A failure of the debuggee as gdb sees it: the command fails, the session goes on.
fn soft<T, D: Debuggee>(r: Result<T, String>) -> TargetResult<T, GdbTarget<D>> {
    r.map_err(|_| TargetError::NonFatal)
}

impl<D: Debuggee> Target for GdbTarget<D> {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_section_offsets(&mut self) -> Option<SectionOffsetsOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> SectionOffsets for GdbTarget<D> {
    fn get_section_offsets(&mut self) -> Result<Offsets<u64>, Self::Error> {
        let bias = self.d.load_bias();
        Ok(Offsets::Sections {
            text: bias,
            data: bias,
            bss: Some(bias),
        })
    }
}

impl<D: Debuggee> MultiThreadBase for GdbTarget<D> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, t: Tid) -> TargetResult<(), Self> {
        let r = soft::<_, D>(self.d.regs(vcpu(t)))?;
        regs.regs = r.gprs;
        regs.rip = r.rip;
        regs.eflags = r.rflags as u32;
        let [cs, ss, ds, es, fs, gs] = r.segments.map(|s| s as u32);
        regs.segments.cs = cs;
        regs.segments.ss = ss;
        regs.segments.ds = ds;
        regs.segments.es = es;
        regs.segments.fs = fs;
        regs.segments.gs = gs;
        regs.st = r.st;
        regs.fpu.fctrl = r.fctrl as u32;
        regs.fpu.fstat = r.fstat as u32;
        regs.fpu.ftag = r.ftag as u32;
        regs.xmm = r.xmm;
        regs.mxcsr = r.mxcsr as u32;
        Ok(())
    }

    fn write_registers(&mut self, _: &X86_64CoreRegs, _: Tid) -> TargetResult<(), Self> {
        // A replay shows what happened; changing it would make it something else.
        Err(TargetError::NonFatal)
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _: Tid) -> TargetResult<usize, Self> {
        soft::<_, D>(self.d.read_memory(start, data))
    }

    fn write_addrs(&mut self, _: u64, _: &[u8], _: Tid) -> TargetResult<(), Self> {
        Err(TargetError::NonFatal)
    }

    /// Every vCPU, ended or not: gdb numbers threads in the order it first sees them, so a
    /// thread that vanished and came back (going backwards past its end) would get a new
    /// number. Listing all keeps gdb's thread N as vCPU N-1 for the whole session; the name
    /// says which have ended.
    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        self.live = self.d.live_vcpus()?;
        self.unborn = self.d.unborn_vcpus()?;
        for v in 0..self.d.vcpus() {
            active(tid(v));
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> ThreadExtraInfo for GdbTarget<D> {
    fn thread_extra_info(&self, t: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let v = vcpu(t);
        let name = if self.live.contains(&v) {
            format!("vcpu {v}")
        } else if self.unborn.contains(&v) {
            format!("vcpu {v}, not started")
        } else {
            format!("vcpu {v}, ended")
        };
        let n = name.len().min(buf.len());
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        Ok(n)
    }
}

impl<D: Debuggee> MultiThreadResume for GdbTarget<D> {
    fn resume(&mut self) -> Result<(), Self::Error> {
        self.motion = Some(match self.step.take() {
            Some(v) => Motion::Step(v),
            None => Motion::Continue,
        });
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.step = None;
        Ok(())
    }

    fn set_resume_action_continue(&mut self, _: Tid, _: Option<Signal>) -> Result<(), String> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_reverse_step(&mut self) -> Option<ReverseStepOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_reverse_cont(&mut self) -> Option<ReverseContOps<'_, Tid, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> MultiThreadSchedulerLocking for GdbTarget<D> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        // The recorded schedule decides who runs: other vCPUs run as they did when recorded
        // (a replay cannot hold them back without changing what happened).
        Ok(())
    }
}

impl<D: Debuggee> MultiThreadSingleStep for GdbTarget<D> {
    fn set_resume_action_step(&mut self, t: Tid, _: Option<Signal>) -> Result<(), String> {
        self.step = Some(vcpu(t));
        Ok(())
    }
}

impl<D: Debuggee> ReverseStep<Tid> for GdbTarget<D> {
    /// gdb asks with resume thread "any", meaning the thread it has selected; gdbstub then
    /// passes the first thread, so take gdb's selection instead.
    fn reverse_step(&mut self, t: Tid) -> Result<(), Self::Error> {
        let seen = self.seen.borrow();
        let t = match (seen.resume_any, seen.general.and_then(NonZeroUsize::new)) {
            (true, Some(selected)) => selected,
            _ => t,
        };
        drop(seen);
        self.motion = Some(Motion::ReverseStep(vcpu(t)));
        Ok(())
    }
}

impl<D: Debuggee> ReverseCont<Tid> for GdbTarget<D> {
    fn reverse_cont(&mut self) -> Result<(), Self::Error> {
        self.motion = Some(Motion::ReverseContinue);
        Ok(())
    }
}

impl<D: Debuggee> Breakpoints for GdbTarget<D> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }
    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl<D: Debuggee> GdbTarget<D> {
    fn add_breakpoint(&mut self, addr: u64) -> TargetResult<bool, Self> {
        if !self.stops.breakpoints.contains(&addr) {
            self.stops.breakpoints.push(addr);
        }
        Ok(true)
    }

    fn remove_breakpoint(&mut self, addr: u64) -> TargetResult<bool, Self> {
        let before = self.stops.breakpoints.len();
        self.stops.breakpoints.retain(|&a| a != addr);
        Ok(self.stops.breakpoints.len() != before)
    }
}

impl<D: Debuggee> SwBreakpoint for GdbTarget<D> {
    fn add_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        self.add_breakpoint(addr)
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        self.remove_breakpoint(addr)
    }
}

impl<D: Debuggee> HwBreakpoint for GdbTarget<D> {
    fn add_hw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        self.add_breakpoint(addr)
    }
    fn remove_hw_breakpoint(&mut self, addr: u64, _: usize) -> TargetResult<bool, Self> {
        self.remove_breakpoint(addr)
    }
}

fn watch_kind(k: GdbWatch) -> WatchKind {
    match k {
        GdbWatch::Write => WatchKind::Write,
        GdbWatch::Read => WatchKind::Read,
        GdbWatch::ReadWrite => WatchKind::Access,
    }
}

impl<D: Debuggee> HwWatchpoint for GdbTarget<D> {
    fn add_hw_watchpoint(&mut self, addr: u64, len: u64, k: GdbWatch) -> TargetResult<bool, Self> {
        let w = Watch {
            addr,
            len,
            kind: watch_kind(k),
        };
        if !self.stops.watches.contains(&w) {
            self.stops.watches.push(w);
        }
        Ok(true)
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        k: GdbWatch,
    ) -> TargetResult<bool, Self> {
        let w = Watch {
            addr,
            len,
            kind: watch_kind(k),
        };
        let before = self.stops.watches.len();
        self.stops.watches.retain(|x| *x != w);
        Ok(self.stops.watches.len() != before)
    }
}

impl<D: Debuggee> MonitorCmd for GdbTarget<D> {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), String> {
        let cmd = String::from_utf8_lossy(cmd);
        let text = match self.d.monitor(cmd.trim()) {
            Ok(t) => t,
            Err(e) => format!("error: {e}"),
        };
        for line in text.lines() {
            gdbstub::outputln!(out, "{}", line);
        }
        Ok(())
    }
}

/// Carry out the motion gdb asked for and say how it stopped.
fn run_motion<D: Debuggee>(t: &mut GdbTarget<D>) -> Result<MultiThreadStopReason<u64>, String> {
    let motion = t.motion.take().unwrap_or(Motion::Continue);
    let stop = t.d.resume(motion, &t.stops)?;
    let id = tid(stop.vcpu);
    // The stop reply selects the stopped thread for gdb.
    t.seen.borrow_mut().general = Some(id.get());
    Ok(match stop.kind {
        StopKind::Step => MultiThreadStopReason::SignalWithThread {
            tid: id,
            signal: Signal::SIGTRAP,
        },
        StopKind::Breakpoint => MultiThreadStopReason::SwBreak(id),
        StopKind::Watch { addr, kind } => MultiThreadStopReason::Watch {
            tid: id,
            kind: match kind {
                WatchKind::Write => GdbWatch::Write,
                WatchKind::Read => GdbWatch::Read,
                WatchKind::Access => GdbWatch::ReadWrite,
            },
            addr,
        },
        StopKind::EndOfHistory => MultiThreadStopReason::ReplayLog {
            tid: Some(id),
            pos: ReplayLogPosition::End,
        },
        StopKind::StartOfHistory => MultiThreadStopReason::ReplayLog {
            tid: Some(id),
            pos: ReplayLogPosition::Begin,
        },
    })
}

enum EventLoop<D> {
    _Never(std::marker::PhantomData<D>),
}

impl<D: Debuggee> run_blocking::BlockingEventLoop for EventLoop<D> {
    type Target = GdbTarget<D>;
    type Connection = Tap;
    type StopReason = MultiThreadStopReason<u64>;

    #[allow(clippy::type_complexity)]
    fn wait_for_stop_reason(
        target: &mut GdbTarget<D>,
        _conn: &mut Tap,
    ) -> Result<
        run_blocking::Event<Self::StopReason>,
        run_blocking::WaitForStopReasonError<String, <Tap as Connection>::Error>,
    > {
        run_motion(target)
            .map(run_blocking::Event::TargetStopped)
            .map_err(run_blocking::WaitForStopReasonError::Target)
    }

    fn on_interrupt(
        _target: &mut GdbTarget<D>,
    ) -> Result<Option<MultiThreadStopReason<u64>>, String> {
        // Motions run to completion before the stub reads again; nothing is running here.
        Ok(None)
    }
}

/// Serve gdb on `conn` until it detaches, disconnects or kills the session.
pub fn serve<D: Debuggee>(conn: TcpStream, debuggee: D) -> Result<(), String> {
    let conn = Tap::new(conn);
    let mut target = GdbTarget {
        seen: conn.seen(),
        d: debuggee,
        stops: Stops::default(),
        motion: None,
        step: None,
        live: Vec::new(),
        unborn: Vec::new(),
    };
    match GdbStub::new(conn).run_blocking::<EventLoop<D>>(&mut target) {
        Ok(DisconnectReason::Disconnect | DisconnectReason::Kill) => Ok(()),
        Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => Ok(()),
        Err(e) => Err(format!("gdb session: {e}")),
    }
}
