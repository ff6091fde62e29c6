//! The trace header: everything needed to re-create the machine of a recording.

use serde::{Deserialize, Serialize};

/// Options that shape a run. Same guest + same options + same schedule = same trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineOptions {
    /// Number of vCPUs (1..=MAX_VCPUS).
    pub vcpus: u32,
    /// Guest RAM size in bytes (mapped at address 0).
    pub ram_bytes: u64,
    /// Stack size per vCPU in bytes; vCPU i's stack ends at ram_bytes - i * stack_bytes.
    pub stack_bytes: u64,
    /// Stop with a budget verdict after this many steps (0 = no limit).
    pub max_steps: u64,
    /// Spin iterations (PAUSE or re-reads of an unchanged value) after which a vCPU counts
    /// as spinning: the strategy is told to run someone else.
    pub spin_threshold: u32,
    /// Steps without progress (no value-changing write, output or vCPU end) while every
    /// live vCPU spins, after which the run ends with a deadlock verdict.
    pub deadlock_window: u64,
    /// Log and schedule on accesses to a vCPU's own stack too (off: own stack is private).
    pub trace_stack: bool,
    /// Transactional memory (RTM): capacity and injected aborts.
    pub tm: TmOptions,
    /// Run the guest as a static Linux executable (threads, emulated system calls) instead
    /// of on the weft board. `vcpus` is then the most threads the process may have.
    pub linux: Option<LinuxOptions>,
    /// Which accesses are scheduling points and recorded (format 5; older traces: `All`).
    pub sharing: Sharing,
}

/// Which memory accesses a run treats as shared: they are its scheduling points, they are
/// recorded, and the strategy may switch vCPUs before each of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sharing {
    /// Every access outside a vCPU's own stack, whoever else touches the memory (how
    /// formats 3 and 4 recorded every run; `--sharing all`).
    All,
    /// Only accesses to pages (4 KiB) that more than one vCPU has touched. A page belongs
    /// to the first vCPU that touches it until another one does; from then on it is
    /// shared (a `Share` event says when). Accesses to a page its owner alone has touched
    /// are neither scheduling points nor recorded; a replay derives them when an analysis
    /// needs them.
    Pages {
        /// Page numbers (address / 4096), ascending, that are shared from the start:
        /// what earlier schedules of a search found shared.
        shared: Vec<u64>,
    },
}

impl Default for Sharing {
    fn default() -> Self {
        Sharing::Pages { shared: Vec::new() }
    }
}

/// The process a Linux guest runs as: everything it can see of the outside, fixed so that
/// the run is deterministic and recorded in the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxOptions {
    /// argv, argv[0] included.
    pub argv: Vec<String>,
    /// The environment, as `NAME=value` strings.
    pub env: Vec<String>,
    /// What reads of standard input return (then end of file).
    pub stdin: Vec<u8>,
    /// Seed of getrandom() and of the AT_RANDOM bytes.
    pub random_seed: u64,
    /// CPUs the process is told it has (sched_getaffinity, /sys/devices/system/cpu/online).
    pub cpus: u32,
}

/// How the TM engine behaves. Part of the trace header, so replay makes the same choices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TmOptions {
    /// Distinct 64-byte lines a transaction may read before it aborts (capacity).
    pub read_lines: u32,
    /// Distinct 64-byte lines a transaction may write before it aborts (capacity).
    pub write_lines: u32,
    /// Inject a spurious abort into this many of every million outermost transactions
    /// (at XBEGIN, status 0), drawn from a PRNG seeded with `abort_seed`.
    pub abort_ppm: u32,
    /// Seed of the injection PRNG.
    pub abort_seed: u64,
    /// Also abort these outermost transactions, counted from 1 in machine order.
    pub abort_nth: Vec<u64>,
}

impl Default for TmOptions {
    fn default() -> Self {
        TmOptions {
            read_lines: 4096,
            write_lines: 512,
            abort_ppm: 0,
            abort_seed: 0,
            abort_nth: Vec::new(),
        }
    }
}

impl Default for MachineOptions {
    fn default() -> Self {
        MachineOptions {
            vcpus: 2,
            ram_bytes: 64 << 20,
            stack_bytes: 64 << 10,
            max_steps: 0,
            spin_threshold: 64,
            deadlock_window: 1_000_000,
            trace_stack: false,
            tm: TmOptions::default(),
            linux: None,
            sharing: Sharing::default(),
        }
    }
}

/// The guest ELF, embedded so that a trace is self-contained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestImage {
    /// File name the guest was loaded from (informative).
    pub name: String,
    /// SHA-256 of `elf`.
    pub sha256: [u8; 32],
    /// The ELF file, byte for byte.
    #[serde(with = "crate::bytes")]
    pub elf: Vec<u8>,
}

impl GuestImage {
    /// Wrap an ELF image, computing its hash.
    pub fn new(name: impl Into<String>, elf: Vec<u8>) -> GuestImage {
        use sha2::Digest;
        let sha256: [u8; 32] = sha2::Sha256::digest(&elf).into();
        GuestImage {
            name: name.into(),
            sha256,
            elf,
        }
    }

    /// Hex form of the hash, as printed by `weft inspect`.
    pub fn sha256_hex(&self) -> String {
        self.sha256.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The header at the start of every trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Version of weft that wrote the trace (informative; compatibility is by format version).
    pub weft_version: String,
    pub guest: GuestImage,
    pub options: MachineOptions,
    /// The strategy that made the schedule, as a spec string (e.g. "random:seed=7").
    pub strategy: String,
}

/// The header of formats 3 and 4: `MachineOptions` had no `sharing` field (every access
/// outside the own stack was shared).
#[derive(Serialize, Deserialize)]
pub(crate) struct LegacyHeader {
    weft_version: String,
    guest: GuestImage,
    options: LegacyOptions,
    strategy: String,
}

#[derive(Serialize, Deserialize)]
struct LegacyOptions {
    vcpus: u32,
    ram_bytes: u64,
    stack_bytes: u64,
    max_steps: u64,
    spin_threshold: u32,
    deadlock_window: u64,
    trace_stack: bool,
    tm: TmOptions,
    linux: Option<LinuxOptions>,
}

impl From<LegacyHeader> for TraceHeader {
    fn from(h: LegacyHeader) -> TraceHeader {
        let o = h.options;
        TraceHeader {
            weft_version: h.weft_version,
            guest: h.guest,
            options: MachineOptions {
                vcpus: o.vcpus,
                ram_bytes: o.ram_bytes,
                stack_bytes: o.stack_bytes,
                max_steps: o.max_steps,
                spin_threshold: o.spin_threshold,
                deadlock_window: o.deadlock_window,
                trace_stack: o.trace_stack,
                tm: o.tm,
                linux: o.linux,
                sharing: Sharing::All,
            },
            strategy: h.strategy,
        }
    }
}

impl LegacyHeader {
    /// `h` as formats 3 and 4 wrote it; `None` unless it shares all memory (`Sharing::All`),
    /// the only way those formats recorded.
    pub(crate) fn from_current(h: &TraceHeader) -> Option<LegacyHeader> {
        let o = h.options.clone();
        (o.sharing == Sharing::All).then(|| LegacyHeader {
            weft_version: h.weft_version.clone(),
            guest: h.guest.clone(),
            options: LegacyOptions {
                vcpus: o.vcpus,
                ram_bytes: o.ram_bytes,
                stack_bytes: o.stack_bytes,
                max_steps: o.max_steps,
                spin_threshold: o.spin_threshold,
                deadlock_window: o.deadlock_window,
                trace_stack: o.trace_stack,
                tm: o.tm,
                linux: o.linux,
            },
            strategy: h.strategy.clone(),
        })
    }
}
