//! The event schema: everything a recording says about a run.
//!
//! Time in weft is the global *step*: the index of a scheduling point. At each point the
//! schedule controller decides which vCPU performs its next operation; every event carries
//! the step of the decision it belongs to (several events may share a step, e.g. the read
//! and write halves of one locked instruction).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a scheduling point: the one time axis of weft.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Step(pub u64);

/// A guest vCPU (0-based). The board supports up to [`MAX_VCPUS`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct VcpuId(pub u32);

/// A guest physical (= virtual, the board is flat) address.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GuestAddr(pub u64);

/// Most vCPUs one machine can have.
pub const MAX_VCPUS: u32 = 64;

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl fmt::Display for VcpuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcpu{}", self.0)
    }
}
impl fmt::Display for GuestAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// What a memory access did. `Atomic*` are the halves of one indivisible instruction
/// (LOCK-prefixed read-modify-write or XCHG with memory): the read comes first, the
/// write follows at the same step with no other vCPU in between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessKind {
    Read,
    Write,
    AtomicRead,
    AtomicWrite,
}

impl AccessKind {
    pub fn is_write(self) -> bool {
        matches!(self, AccessKind::Write | AccessKind::AtomicWrite)
    }
    pub fn is_atomic(self) -> bool {
        matches!(self, AccessKind::AtomicRead | AccessKind::AtomicWrite)
    }
    /// Short name used in listings: R, W, aR, aW.
    pub fn short(self) -> &'static str {
        match self {
            AccessKind::Read => "R",
            AccessKind::Write => "W",
            AccessKind::AtomicRead => "aR",
            AccessKind::AtomicWrite => "aW",
        }
    }
}

/// Memory-ordering instructions, recorded for happens-before analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FenceKind {
    Mfence,
    Sfence,
    Lfence,
}

/// Why a single vCPU stopped while the machine went on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VcpuEndReason {
    /// `_start` returned.
    Returned,
    /// The vCPU executed HLT.
    Hlt,
    /// The HALT hypercall.
    HaltCall,
    /// A Linux thread's `exit` system call, with its status.
    Exited { status: u32 },
}

/// How a run ended. Everything but `Pass` is a failure (CLI exit code 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// Every vCPU ended, or EXIT/port 0xF4 with status 0.
    Pass,
    /// EXIT hypercall or a write to port 0xF4 with a non-zero status.
    ExitStatus { vcpu: VcpuId, status: u64 },
    /// ASSERT_FAIL hypercall.
    Assertion {
        vcpu: VcpuId,
        rip: u64,
        message: String,
    },
    /// A CPU exception or invalid memory access outside a transaction.
    Crash(Box<CrashInfo>),
    /// Every live vCPU is spinning (or blocked) without any progress.
    Deadlock { vcpus: Vec<(VcpuId, u64)> },
    /// `--max-steps` reached.
    Budget { max_steps: u64 },
    /// A Linux guest was killed by a signal it sent itself (abort(): SIGABRT, `kill`).
    Signal { vcpu: VcpuId, signal: u32 },
}

impl Verdict {
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }
    /// One word naming the verdict class: pass, exit-status, assertion, crash, deadlock, budget.
    pub fn class(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::ExitStatus { .. } => "exit-status",
            Verdict::Assertion { .. } => "assertion",
            Verdict::Crash(_) => "crash",
            Verdict::Deadlock { .. } => "deadlock",
            Verdict::Budget { .. } => "budget",
            Verdict::Signal { .. } => "signal",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Pass => write!(f, "pass"),
            Verdict::ExitStatus { vcpu, status } => {
                write!(f, "exit status {status} (from {vcpu})")
            }
            Verdict::Assertion { vcpu, rip, message } => {
                write!(f, "assertion failed on {vcpu} at rip {rip:#x}: {message}")
            }
            Verdict::Crash(c) => write!(f, "{c}"),
            Verdict::Deadlock { vcpus } => {
                write!(
                    f,
                    "deadlock: every live vCPU is blocked or spins without progress ("
                )?;
                for (i, (v, rip)) in vcpus.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{v} at {rip:#x}")?;
                }
                write!(f, ")")
            }
            Verdict::Budget { max_steps } => {
                write!(f, "budget exceeded: {max_steps} steps (--max-steps)")
            }
            Verdict::Signal { vcpu, signal } => {
                write!(
                    f,
                    "killed by signal {} ({signal}) sent by {vcpu}",
                    signal_name(*signal)
                )
            }
        }
    }
}

/// The name of a Linux signal number (`SIGABRT`), or `signal N`.
pub fn signal_name(signal: u32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match NAMES.get(signal as usize) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => format!("signal {signal}"),
    }
}

/// A guest crash: where, what, and the machine state at that moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashInfo {
    pub vcpu: VcpuId,
    pub rip: u64,
    /// What went wrong, e.g. "#UD invalid opcode" or "read of unmapped address 0x...".
    pub what: String,
    /// The faulting instruction, disassembled (Intel syntax), or "" when unreadable.
    pub instruction: String,
    /// General-purpose registers, RFLAGS: rax rbx rcx rdx rsi rdi rbp rsp r8..r15 rflags.
    pub regs: [u64; 17],
}

/// Register names in the order of [`CrashInfo::regs`].
pub const CRASH_REG_NAMES: [&str; 17] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rflags",
];

impl fmt::Display for CrashInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest crash on {} at rip {:#x}: {}",
            self.vcpu, self.rip, self.what
        )?;
        if !self.instruction.is_empty() {
            write!(f, " [{}]", self.instruction)?;
        }
        Ok(())
    }
}

/// One recorded event. Events are stored in step order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Run-length encoded schedule: `vcpu` made the next `points` scheduling decisions.
    /// Emitted when the running vCPU changes and at the end of the run, so the steps of
    /// all `Run` events add up to the run's step count.
    Run { vcpu: VcpuId, points: u64 },
    /// A memory access that may be shared (anything but the vCPU's own stack).
    Access {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        addr: GuestAddr,
        size: u8,
        kind: AccessKind,
        /// The value read or written, little-endian, zero-extended.
        value: u64,
    },
    /// Bytes for the console (port 0xE9, or the WRITE hypercall), or a Linux guest's write
    /// to standard output or error.
    Console {
        step: Step,
        vcpu: VcpuId,
        /// 1: the board console or standard output; 2: standard error.
        fd: u8,
        #[serde(with = "crate::bytes")]
        bytes: Vec<u8>,
    },
    /// A hypercall (VMCALL) and its result; `nr` is RAX, `args` RDI, RSI, RDX.
    Hypercall {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        nr: u64,
        args: [u64; 3],
        ret: u64,
    },
    /// A Linux system call and its result (RAX after it, e.g. `-ENOSYS` as a u64); `nr` is
    /// RAX before it, `args` RDI, RSI, RDX, R10, R8, R9 (boxed: events stay small).
    Syscall {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        nr: u64,
        args: Box<[u64; 6]>,
        ret: u64,
    },
    /// A Linux guest opened a host file: its contents (or the errno of the failure) as read
    /// at recording time, so that a replay needs no host files.
    FileData {
        step: Step,
        vcpu: VcpuId,
        path: String,
        data: Result<Vec<u8>, i32>,
    },
    /// A Linux guest thread (`vcpu`) created a thread: vCPU `child`, Linux thread id `tid`.
    Spawn {
        step: Step,
        vcpu: VcpuId,
        child: VcpuId,
        tid: u32,
    },
    /// A memory fence instruction.
    Fence {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        kind: FenceKind,
    },
    /// The MARK hypercall: a label the guest put on this moment.
    Mark {
        step: Step,
        vcpu: VcpuId,
        label: String,
    },
    /// Something odd the guest did that did not stop it (e.g. an unknown hypercall).
    Warning {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        message: String,
    },
    /// One vCPU stopped; the others go on.
    VcpuEnd {
        step: Step,
        vcpu: VcpuId,
        reason: VcpuEndReason,
    },
    /// The run ended: always the last event of a complete trace.
    End { step: Step, verdict: Verdict },
    /// XBEGIN: a transaction starts (`depth` 1) or nests (`depth` 2..=7).
    TxBegin {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        depth: u8,
    },
    /// The outermost XEND at `rip` committed the transaction begun at `begin_rip`.
    TxCommit {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        begin_rip: u64,
        /// Distinct 64-byte lines read and written.
        read_lines: u32,
        write_lines: u32,
    },
    /// The transaction begun at `begin_rip` aborted: memory rolled back, registers restored,
    /// execution goes on at its fallback address with `status` in EAX. `rip` is the
    /// instruction the vCPU was at (for a conflict: its first access to the line).
    TxAbort {
        step: Step,
        vcpu: VcpuId,
        rip: u64,
        begin_rip: u64,
        status: u32,
        cause: AbortCause,
    },
    /// Where a vCPU the failure concerns stood when the run ended (format 4): its call
    /// stack from the guest's call frame information, innermost first (`frames[0]` is its
    /// RIP, then return addresses). Emitted just before `End` of a failed run, for the
    /// failing vCPU (crash, assertion, signal, exit status) or every live one (deadlock,
    /// budget).
    /// (Encoded as step, then the stack's fields in order: vcpu, frames, futex, owner,
    /// joins.)
    Backtrace { step: Step, stack: Backtrace },
    /// (Format 5.) `vcpu`'s access at this step changed the state of the page (`len`
    /// 4096) or the 64-byte line (`len` 64) at `addr` (see `Sharing::Pages`): it was
    /// `owner`'s alone (`Some`) or read-shared (`None`), and it is read-shared now
    /// (`read_only`: `vcpu` read it; until someone writes, reads are neither points nor
    /// recorded) or shared (every later access a point and recorded). A line event on a
    /// page not shared before makes the page shared, its other lines keeping the state the
    /// page had. The accesses it saw before are not in the recording (a replay derives
    /// them); this access is.
    Share {
        step: Step,
        vcpu: VcpuId,
        addr: GuestAddr,
        len: u32,
        owner: Option<VcpuId>,
        read_only: bool,
    },
}

/// A vCPU's call stack at the end of a failed run: what a `Backtrace` event says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backtrace {
    pub vcpu: VcpuId,
    /// Innermost first: the RIP, then return addresses.
    pub frames: Vec<u64>,
    /// The futex word it waits on (a blocked Linux thread).
    pub futex: Option<u64>,
    /// The live thread a locked glibc mutex at `futex` names as its owner.
    pub owner: Option<VcpuId>,
    /// The live thread whose id word is at `futex`: a pthread_join waits for it to exit.
    pub joins: Option<VcpuId>,
}

/// Why a transaction aborted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortCause {
    /// XABORT with this immediate.
    Explicit { code: u8 },
    /// Another vCPU (`by`, at `by_rip`) accessed a line of this transaction's read or write
    /// set: requester wins. `class` orders the two: the victim's access, then `by`'s.
    Conflict {
        by: VcpuId,
        by_rip: u64,
        line: u64,
        class: ConflictClass,
    },
    /// The read set (`write` false) or the write set outgrew its capacity.
    Capacity { write: bool, lines: u32 },
    /// An 8th nested XBEGIN.
    NestingOverflow,
    /// An instruction that may not run in a transaction: cpuid, pause, in/out, hlt, vmcall.
    Instruction { name: String },
    /// A CPU exception (suppressed: the transaction aborts instead).
    Exception { what: String },
    /// A spurious abort injected by `--tm-abort-rate` / `--tm-abort-nth`.
    Injected,
}

/// The order of two conflicting accesses: RaW = a read after a write, and so on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConflictClass {
    RaW,
    WaR,
    WaW,
}

impl fmt::Display for ConflictClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConflictClass::RaW => "RaW",
            ConflictClass::WaR => "WaR",
            ConflictClass::WaW => "WaW",
        })
    }
}

impl AbortCause {
    /// One word naming the cause: explicit, conflict, capacity, nesting, instruction,
    /// exception, injected.
    pub fn class(&self) -> &'static str {
        match self {
            AbortCause::Explicit { .. } => "explicit",
            AbortCause::Conflict { .. } => "conflict",
            AbortCause::Capacity { .. } => "capacity",
            AbortCause::NestingOverflow => "nesting",
            AbortCause::Instruction { .. } => "instruction",
            AbortCause::Exception { .. } => "exception",
            AbortCause::Injected => "injected",
        }
    }
}

impl fmt::Display for AbortCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortCause::Explicit { code } => write!(f, "XABORT {code:#x}"),
            AbortCause::Conflict {
                by,
                by_rip,
                line,
                class,
            } => write!(
                f,
                "conflict ({class}) on line {line:#x} with {by} at {by_rip:#x}"
            ),
            AbortCause::Capacity { write, lines } => write!(
                f,
                "capacity: more than {lines} lines {}",
                if *write { "written" } else { "read" }
            ),
            AbortCause::NestingOverflow => write!(f, "nesting deeper than 7"),
            AbortCause::Instruction { name } => write!(f, "{name} in a transaction"),
            AbortCause::Exception { what } => write!(f, "exception: {what}"),
            AbortCause::Injected => write!(f, "injected spurious abort"),
        }
    }
}

impl Event {
    /// The step this event belongs to; `None` for `Run`, which spans steps.
    pub fn step(&self) -> Option<Step> {
        match self {
            Event::Run { .. } => None,
            Event::Access { step, .. }
            | Event::Console { step, .. }
            | Event::Hypercall { step, .. }
            | Event::Syscall { step, .. }
            | Event::FileData { step, .. }
            | Event::Spawn { step, .. }
            | Event::Fence { step, .. }
            | Event::Mark { step, .. }
            | Event::Warning { step, .. }
            | Event::VcpuEnd { step, .. }
            | Event::TxBegin { step, .. }
            | Event::TxCommit { step, .. }
            | Event::TxAbort { step, .. }
            | Event::Backtrace { step, .. }
            | Event::Share { step, .. }
            | Event::End { step, .. } => Some(*step),
        }
    }

    /// The vCPU this event belongs to; `None` for `End`.
    pub fn vcpu(&self) -> Option<VcpuId> {
        match self {
            Event::Run { vcpu, .. }
            | Event::Access { vcpu, .. }
            | Event::Console { vcpu, .. }
            | Event::Hypercall { vcpu, .. }
            | Event::Syscall { vcpu, .. }
            | Event::FileData { vcpu, .. }
            | Event::Spawn { vcpu, .. }
            | Event::Fence { vcpu, .. }
            | Event::Mark { vcpu, .. }
            | Event::Warning { vcpu, .. }
            | Event::VcpuEnd { vcpu, .. }
            | Event::TxBegin { vcpu, .. }
            | Event::TxCommit { vcpu, .. }
            | Event::TxAbort { vcpu, .. }
            | Event::Share { vcpu, .. } => Some(*vcpu),
            Event::Backtrace { stack, .. } => Some(stack.vcpu),
            Event::End { .. } => None,
        }
    }
}

/// Where events go while a machine runs: a trace file, a replay checker, or nowhere.
/// Called on the hot path: implementations must not allocate per event where avoidable.
pub trait EventSink {
    /// Take one event. An error stops the run (e.g. the disk is full).
    fn event(&mut self, event: &Event) -> Result<(), SinkError>;
    /// Whether this sink wants `Access` events at all (a plain `weft run` does not).
    fn wants_accesses(&self) -> bool {
        true
    }
    /// Whether this sink wants the accesses a recording leaves out: those to pages only
    /// their owner has touched so far (`Sharing::Pages`), which are no scheduling points.
    /// A run that says yes is slower (every access is seen); its schedule is the same.
    fn wants_private(&self) -> bool {
        false
    }
    /// One such access (an `Access` event), when `wants_private` says so.
    fn private_access(&mut self, _event: &Event) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Why a sink refused an event; the run stops with this message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

/// A sink that drops everything: the fastest way to run.
#[derive(Debug, Default)]
pub struct NullSink;

impl EventSink for NullSink {
    fn event(&mut self, _event: &Event) -> Result<(), SinkError> {
        Ok(())
    }
    fn wants_accesses(&self) -> bool {
        false
    }
}

/// A sink that keeps every event in memory (tests, small runs).
#[derive(Debug, Default)]
pub struct VecSink(pub Vec<Event>);

impl EventSink for VecSink {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        self.0.push(event.clone());
        Ok(())
    }
}
