//! weft-gdb: the gdb remote stub of weft.
//!
//! A gdbstub target over a small [`Debuggee`] trait: whatever can show registers and memory
//! of numbered vCPUs, run forwards and backwards to the next stop, and answer monitor
//! commands can be debugged from gdb. weft's replayer implements it; nothing here knows the
//! emulator. vCPU `n` is gdb thread `n + 1`, named "vcpu n" (", ended" once it has ended,
//! ", not started" before a thread that is created later exists);
//! every vCPU is listed at every position, so gdb's numbering never changes.

mod tap;
mod target;

use std::net::TcpStream;

pub use target::serve;

/// A vCPU number (0-based).
pub type Vcpu = u32;

/// One vCPU's registers, in the shape gdb's x86-64 description wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    /// rax rbx rcx rdx rsi rdi rbp rsp r8..r15.
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    /// cs ss ds es fs gs.
    pub segments: [u64; 6],
    pub st: [[u8; 10]; 8],
    pub fctrl: u64,
    pub fstat: u64,
    pub ftag: u64,
    pub xmm: [u128; 16],
    pub mxcsr: u64,
}

/// What a watchpoint watches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum WatchKind {
    Write,
    Read,
    Access,
}

impl WatchKind {
    /// Whether an access (a write if `write`) triggers this kind.
    pub fn matches(self, write: bool) -> bool {
        match self {
            WatchKind::Write => write,
            WatchKind::Read => !write,
            WatchKind::Access => true,
        }
    }
}

/// A watched range of guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Watch {
    pub addr: u64,
    pub len: u64,
    pub kind: WatchKind,
}

/// The breakpoints and watchpoints gdb has set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stops {
    pub breakpoints: Vec<u64>,
    pub watches: Vec<Watch>,
}

/// Which way to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Motion {
    Continue,
    /// Until this vCPU has executed one instruction (others run as the schedule says).
    Step(Vcpu),
    /// Back to where this vCPU was one instruction earlier.
    ReverseStep(Vcpu),
    /// Back to the previous breakpoint or watchpoint hit, on any vCPU.
    ReverseContinue,
}

/// Why a motion stopped, and on which vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// A step finished.
    Step,
    Breakpoint,
    /// A watched range was accessed by the vCPU's previous instruction.
    Watch {
        addr: u64,
        kind: WatchKind,
    },
    /// The end of the recorded history (the last instruction of the trace is next).
    EndOfHistory,
    /// The start of the recorded history.
    StartOfHistory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub vcpu: Vcpu,
    pub kind: StopKind,
}

/// What the stub debugs.
pub trait Debuggee {
    /// vCPUs of the machine (live or not).
    fn vcpus(&self) -> u32;
    /// vCPUs that have not ended at the current position.
    fn live_vcpus(&mut self) -> Result<Vec<Vcpu>, String>;
    /// vCPUs that do not exist yet at the current position (a thread created later).
    fn unborn_vcpus(&mut self) -> Result<Vec<Vcpu>, String> {
        Ok(Vec::new())
    }
    /// The vCPU of the current position (the one that ran last).
    fn current_vcpu(&mut self) -> Result<Vcpu, String>;
    fn regs(&mut self, vcpu: Vcpu) -> Result<Regs, String>;
    /// Read memory at `addr`; returns how many bytes could be read.
    fn read_memory(&mut self, addr: u64, out: &mut [u8]) -> Result<usize, String>;
    /// Run in the given direction until a stop.
    fn resume(&mut self, motion: Motion, stops: &Stops) -> Result<Stop, String>;
    /// A `monitor` command; returns its output.
    fn monitor(&mut self, cmd: &str) -> Result<String, String>;
    /// How far the program is loaded from its link addresses (a static-pie's load
    /// address): gdb moves the ELF's symbols by it (qOffsets).
    fn load_bias(&self) -> u64 {
        0
    }
}

/// Serve one gdb connection on an accepted TCP stream until gdb detaches or disconnects.
pub fn serve_tcp<D: Debuggee>(stream: TcpStream, debuggee: D) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    serve(stream, debuggee)
}
