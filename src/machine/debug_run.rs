//! A run the debugger drives: resume to the next pause, look at registers and memory while
//! every vCPU is stopped, resume again.

use std::cell::RefMut;

use unicorn_engine::RegisterX86;
use weft_trace::VcpuId;

use super::debug::{DebugCtl, PauseReason};
use super::regs::{GPRS, SEGMENTS, ST, XMM};
use super::{ffi, outcome, Kept, RunOutcome, Scheduler};

/// What a resume ended with.
#[derive(Debug)]
pub enum DebugEvent {
    /// Paused at an instruction boundary of vCPU `vcpu`.
    Paused { reason: PauseReason, vcpu: u32 },
    /// The run is over (the verdict, or `None` if the schedule ran out or diverged).
    Ended(Box<RunOutcome>),
}

/// One vCPU's registers, as a debugger shows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugRegs {
    /// rax rbx rcx rdx rsi rdi rbp rsp r8..r15 (gdb's order).
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// cs ss ds es fs gs.
    pub segments: [u64; 6],
    pub fs_base: u64,
    pub gs_base: u64,
    /// x87 stack registers, 80 bits each.
    pub st: [[u8; 10]; 8],
    /// x87 control, status and tag words.
    pub fctrl: u64,
    pub fstat: u64,
    pub ftag: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u64,
}

impl DebugRegs {
    /// Read them from a vCPU's instance (suspended, or inside one of its hooks).
    pub(crate) fn read(h: *mut unicorn_engine::hook::uc_engine) -> DebugRegs {
        let mut r = DebugRegs::default();
        for (out, reg) in r.gprs.iter_mut().zip(GPRS) {
            *out = ffi::reg_read(h, reg);
        }
        for (out, reg) in r.segments.iter_mut().zip(SEGMENTS) {
            *out = ffi::reg_read(h, reg);
        }
        r.rip = ffi::reg_read(h, RegisterX86::RIP);
        r.rflags = ffi::reg_read(h, RegisterX86::RFLAGS);
        r.fs_base = ffi::reg_read(h, RegisterX86::FS_BASE);
        r.gs_base = ffi::reg_read(h, RegisterX86::GS_BASE);
        r.fctrl = ffi::reg_read(h, RegisterX86::FPCW);
        r.fstat = ffi::reg_read(h, RegisterX86::FPSW);
        r.ftag = ffi::reg_read(h, RegisterX86::FPTAG);
        r.mxcsr = ffi::reg_read(h, RegisterX86::MXCSR);
        let mut buf = [0u8; 16];
        for (i, st) in r.st.iter_mut().enumerate() {
            ffi::reg_read_bytes(h, ST[i], &mut buf);
            st.copy_from_slice(&buf[..10]);
        }
        for (i, x) in r.xmm.iter_mut().enumerate() {
            ffi::reg_read_bytes(h, XMM[i], &mut buf);
            *x = u128::from_le_bytes(buf);
        }
        r
    }
}

/// A debug machine's run in progress.
pub struct DebugRun {
    k: Option<Kept>,
    sched: Option<Scheduler>,
    ended: bool,
}

impl DebugRun {
    pub(super) fn new(k: Kept, sched: Scheduler) -> DebugRun {
        DebugRun {
            k: Some(k),
            sched: Some(sched),
            ended: false,
        }
    }

    fn kept(&self) -> &Kept {
        self.k.as_ref().expect("a debug run keeps its machine")
    }

    /// The debugger's controls: goal, breakpoints, watchpoints, scans, checkpoint requests.
    /// Call `sync_watching` after changing the watchpoints.
    pub fn ctl(&self) -> RefMut<'_, DebugCtl> {
        self.kept()
            .shared
            .debug
            .as_ref()
            .expect("a debug machine has a DebugCtl")
            .borrow_mut()
    }

    /// Tell the memory hook whether any watchpoint is set.
    pub fn sync_watching(&self) {
        let w = self.ctl().watching();
        self.kept().shared.watching.set(w);
    }

    /// Run until the next pause or the end of the run.
    pub fn resume(&mut self) -> DebugEvent {
        let shared = self.kept().shared.clone();
        if !self.ended {
            let sched = self.sched.as_mut().expect("a scheduler until the run ends");
            if let Some(reason) = sched.drive(&shared) {
                let vcpu = self.ctl().last_vcpu;
                return DebugEvent::Paused { reason, vcpu };
            }
        }
        self.ended = true;
        if let Some(sched) = self.sched.take() {
            let mut k = self.k.take().expect("kept");
            sched.finish(&shared, &mut k);
            self.k = Some(k);
        }
        DebugEvent::Ended(Box::new(outcome(&shared)))
    }

    /// Whether vCPU `v` is still running (not ended).
    pub fn is_live(&self, v: u32) -> bool {
        !self.ended && self.kept().shared.ctl.borrow().is_live(VcpuId(v))
    }

    /// The number the next scheduling decision gets.
    pub fn next_step(&self) -> u64 {
        self.kept().shared.ctl.borrow().next_step()
    }

    /// The registers of vCPU `v` (its state before the instruction it is at).
    pub fn regs(&self, v: u32) -> DebugRegs {
        match self.sched_handle(v) {
            Some(h) => DebugRegs::read(h),
            // A Linux thread not created yet.
            None => DebugRegs::default(),
        }
    }

    fn sched_handle(&self, v: u32) -> Option<*mut unicorn_engine::hook::uc_engine> {
        let handles = self.kept().shared.handles.borrow();
        handles
            .get(v as usize)
            .map(|h| h.0)
            .filter(|h| !h.is_null())
    }

    /// Read guest RAM; returns how many bytes exist there (0 outside RAM).
    pub fn read_memory(&self, addr: u64, out: &mut [u8]) -> usize {
        let mem = &self.kept().shared.mem;
        let n = (mem.size().saturating_sub(addr) as usize).min(out.len());
        if n > 0 && mem.read(addr, &mut out[..n]) {
            n
        } else {
            0
        }
    }

    /// vCPU `v`'s transaction, described (`None`: not in one).
    pub fn transaction(&self, v: u32) -> Option<String> {
        self.kept().shared.tm.borrow().describe(VcpuId(v))
    }

    /// Whether the run is over.
    pub fn ended(&self) -> bool {
        self.ended
    }
}
