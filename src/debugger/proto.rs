//! Messages between the debugger front (which talks to gdb) and the executor process that
//! holds the replaying machine: length-prefixed bincode over a Unix stream.

use std::io::{Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::machine::debug::{Goal, Hit, PauseReason, Watch};

/// Most bytes one message may have (a memory read of gdb is a few KiB).
const MAX_MESSAGE: u32 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Status,
    Regs(u32),
    Memory {
        addr: u64,
        len: u32,
    },
    Run(RunRequest),
    /// Take a checkpoint here.
    Checkpoint,
    /// Every vCPU's transaction, described.
    Transactions,
    Quit,
}

/// Run forward to `goal`, stopping earlier at a breakpoint or watchpoint hit (not when
/// scanning), at `limit`, and pausing for checkpoints on the way.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunRequest {
    pub goal: Goal,
    pub breakpoints: Vec<u64>,
    pub watches: Vec<Watch>,
    /// Note hits below this position instead of stopping at them.
    pub scan_below: Option<u64>,
    pub limit: Option<u64>,
    /// Take a checkpoint every this many steps, skipping the multiples listed.
    pub checkpoint_every: u64,
    pub have_checkpoints: Vec<u64>,
}

/// Where the executor's machine is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Status {
    /// Instructions begun over all vCPUs (the position).
    pub g: u64,
    /// The next scheduling step to be decided.
    pub next_step: u64,
    /// The vCPU of the latest instruction.
    pub vcpu: u32,
    pub icount: Vec<u64>,
    /// Per vCPU: the position at which it began its current instruction (0: none yet).
    pub began: Vec<u64>,
    pub live: Vec<u32>,
    /// The executor's process id.
    pub pid: i32,
}

/// A dormant copy of the executor at a position, waiting on a Unix socket.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub status: Status,
    pub socket: std::path::PathBuf,
    pub pid: i32,
    /// The multiple of the checkpoint interval it was taken for (`None`: asked for).
    pub slot: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RunEnd {
    Paused(PauseReason),
    /// The run ended: its position count and verdict line.
    Ended {
        g: u64,
        verdict: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Status(Status),
    Regs(Box<RegsMsg>),
    Memory(Vec<u8>),
    Ran {
        end: RunEnd,
        status: Status,
        hit: Option<Hit>,
        checkpoints: Vec<CheckpointInfo>,
    },
    Checkpoint(CheckpointInfo),
    Text(String),
    Error(String),
}

/// `weft_gdb::Regs` on the wire.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RegsMsg {
    pub gprs: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub segments: [u64; 6],
    pub st: [[u8; 10]; 8],
    pub fctrl: u64,
    pub fstat: u64,
    pub ftag: u64,
    pub xmm: Vec<u128>,
    pub mxcsr: u64,
}

pub fn send<T: Serialize>(w: &mut impl Write, msg: &T) -> std::io::Result<()> {
    let bytes = bincode::serialize(msg).map_err(std::io::Error::other)?;
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

pub fn receive<T: DeserializeOwned>(r: &mut impl Read) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_MESSAGE {
        return Err(std::io::Error::other(format!("message of {len} bytes")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf)?;
    bincode::deserialize(&buf).map_err(std::io::Error::other)
}
