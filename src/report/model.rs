//! What the HTML report shows, as data: the JSON object embedded in the page.
//!
//! Large lists (runs, accesses, locations, notes) serialise as arrays rather than objects,
//! because a summarised 10 M-event trace still embeds a few hundred thousand of them and
//! the keys would double the page. The layout of each array is documented on its type and
//! in docs/report.md; the page's script is the one reader.

use serde::ser::SerializeTuple;
use serde::{Serialize, Serializer};

use crate::tmreport::TmReport;

/// Bumped when the JSON layout changes (the page checks it).
pub const MODEL_VERSION: u32 = 1;

/// A 64-bit guest value that stays exact in JavaScript: a number up to 2^53, else a hex
/// string (`"0xffffffffffffffff"`). JSON numbers beyond 2^53 lose bits in every browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Num(pub u64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 <= 1 << 53 {
            s.serialize_u64(self.0)
        } else {
            s.serialize_str(&format!("{:#x}", self.0))
        }
    }
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub version: u32,
    pub meta: Meta,
    /// `None` when the trace ends before the run did.
    pub verdict: Option<VerdictInfo>,
    pub failure: Option<Failure>,
    pub lod: Lod,
    /// Code locations; everything else refers to them by index.
    pub locs: Vec<Loc>,
    /// The schedule, in step order (all of it, or the runs that touch a detail window).
    pub runs: Vec<RunItem>,
    pub ends: Vec<VcpuEndItem>,
    /// Shared accesses in step order; a locked instruction's two halves are one RMW.
    pub accesses: Vec<AccessItem>,
    /// Outermost transactions, by begin step.
    pub txs: Vec<TxItem>,
    /// Race groups first (`weft races` order), then the ordered conflicts.
    pub races: Vec<RaceArc>,
    pub marks: Vec<Note>,
    pub console: Vec<Note>,
    pub warnings: Vec<Note>,
    /// `weft tm`'s per-site report.
    pub tm: TmReport,
    pub buckets: Buckets,
}

/// Where the report comes from.
#[derive(Debug, Serialize)]
pub struct Meta {
    /// The trace path as the user gave it (used in the replay commands the page shows).
    pub trace: String,
    pub guest: String,
    pub vcpus: u32,
    pub steps: u64,
    pub strategy: String,
    pub weft_version: String,
    /// The weft that wrote the report.
    pub report_by: String,
    pub events: u64,
    pub accesses: u64,
    pub switches: u64,
    pub transactions: u64,
    /// Race groups and ordered-conflict groups in the race report (at most 2000 of the
    /// latter are embedded).
    pub races: u64,
    pub conflicts: u64,
    pub complete: bool,
    pub reader_warning: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct VerdictInfo {
    pub pass: bool,
    /// pass, exit-status, assertion, crash, deadlock, budget.
    pub class: String,
    pub text: String,
}

/// The failure, pinned where it happened.
#[derive(Debug, Serialize)]
pub struct Failure {
    pub step: u64,
    pub vcpu: Option<u32>,
    pub class: String,
    pub text: String,
    pub loc: Option<usize>,
    /// Deadlock: every spinning vCPU and where it spins.
    pub spinning: Vec<(u32, usize)>,
    /// Crash: `name=value` registers.
    pub regs: Vec<String>,
    /// What `weft record` prints under the verdict: call stacks, waits, a lock cycle.
    pub details: String,
}

/// What was summarised, and how.
#[derive(Debug, Serialize)]
pub struct Lod {
    /// Every event is shown individually.
    pub full: bool,
    /// Steps per bucket of [`Buckets`].
    pub bucket_steps: u64,
    /// Where individual events are kept (summarised reports only), merged and sorted.
    pub windows: Vec<Window>,
    pub shown: Counts,
    pub total: Counts,
    /// One paragraph for people: what was summarised, shown at the top of the page.
    pub note: String,
}

/// A stretch of steps shown in full in a summarised report.
#[derive(Debug, Serialize, Clone)]
pub struct Window {
    pub from: u64,
    /// Inclusive.
    pub to: u64,
    /// Why: "failure", "race #2", "abort", "mark", "start".
    pub why: Vec<String>,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct Counts {
    pub accesses: u64,
    pub runs: u64,
    pub txs: u64,
    pub aborts: u64,
    pub marks: u64,
    /// Console bytes.
    pub console: u64,
}

/// `[rip, instruction, source]`.
#[derive(Debug, Clone)]
pub struct Loc {
    pub rip: u64,
    pub insn: String,
    pub source: String,
}

/// `[vcpu, start step, steps, switched away (0/1)]`: the vCPU made `steps` consecutive
/// scheduling decisions; "switched away" means it ran again later (it was preempted or
/// yielded), as opposed to its last run.
#[derive(Debug, Clone, Copy)]
pub struct RunItem {
    pub vcpu: u32,
    pub start: u64,
    pub len: u64,
    pub switched: bool,
}

/// `[vcpu, step, reason]`.
#[derive(Debug, Clone)]
pub struct VcpuEndItem {
    pub vcpu: u32,
    pub step: u64,
    pub reason: &'static str,
}

/// Access kinds in [`AccessItem`]: read, write, locked read-modify-write.
pub const KIND_R: u8 = 0;
pub const KIND_W: u8 = 1;
pub const KIND_RMW: u8 = 2;

/// `[step, vcpu, kind, addr, size, value, loc, old]`: kind 0 read, 1 write, 2 RMW; value
/// is the value read (R) or written (W, RMW); old is the value an RMW read, else null.
#[derive(Debug, Clone, Copy)]
pub struct AccessItem {
    pub step: u64,
    pub vcpu: u32,
    pub kind: u8,
    pub addr: u64,
    pub size: u8,
    pub value: u64,
    pub loc: usize,
    pub old: Option<u64>,
}

/// An outermost transaction: a span from XBEGIN to its commit or abort.
#[derive(Debug, Serialize, Clone)]
pub struct TxItem {
    pub vcpu: u32,
    pub begin: u64,
    /// The commit or abort step; the trace's last step for a transaction still open.
    pub end: u64,
    /// commit, abort, open.
    pub outcome: &'static str,
    /// The XBEGIN.
    pub site: usize,
    /// The XEND (commit) or the instruction the vCPU was at (abort).
    pub at: Option<usize>,
    /// Abort cause in words, and its class (conflict, capacity, explicit, ...).
    pub cause: String,
    pub cause_class: String,
    pub status: Option<u32>,
    /// Conflict aborts: the vCPU whose access aborted this one, and where.
    pub by: Option<u32>,
    pub by_loc: Option<usize>,
    pub read_lines: Option<u32>,
    pub write_lines: Option<u32>,
}

/// A group of conflicting pairs as `weft races` reports it (one code location pair on one
/// address range): one arc, from the earlier access of its first pair to the later.
#[derive(Debug, Serialize)]
pub struct RaceArc {
    pub id: usize,
    pub race: bool,
    pub class: String,
    /// Every class among the group's pairs (RaW, WaR, WaW).
    pub classes: Vec<String>,
    /// The bytes the pairs conflicted on, `[addr_start, addr_end)`, and the global there.
    pub addr_start: Num,
    pub addr_end: Num,
    pub object: String,
    pub count: u64,
    pub first_step: u64,
    pub last_step: u64,
    pub a: Side,
    pub b: Side,
}

#[derive(Debug, Serialize)]
pub struct Side {
    pub step: u64,
    pub vcpu: u32,
    /// R, W, aR, aW.
    pub kind: &'static str,
    pub addr: Num,
    pub size: u8,
    pub value: Num,
    pub loc: usize,
}

/// `[step, vcpu, text]`: a mark, console output, or a warning.
#[derive(Debug, Clone)]
pub struct Note {
    pub step: u64,
    pub vcpu: u32,
    pub text: String,
}

/// Per-bucket counts over the whole trace, per vCPU: what the page draws wherever it does
/// not draw single events. Each array has `n` entries per vCPU.
#[derive(Debug, Serialize, Default)]
pub struct Buckets {
    pub n: usize,
    /// Steps the vCPU ran in the bucket.
    pub run: Vec<Vec<u32>>,
    pub r: Vec<Vec<u32>>,
    pub w: Vec<Vec<u32>>,
    pub rmw: Vec<Vec<u32>>,
    /// Transactions begun and aborted.
    pub tx: Vec<Vec<u32>>,
    pub ab: Vec<Vec<u32>>,
}

impl Serialize for Loc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (Num(self.rip), &self.insn, &self.source).serialize(s)
    }
}

impl Serialize for RunItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.vcpu, self.start, self.len, self.switched as u8).serialize(s)
    }
}

impl Serialize for VcpuEndItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.vcpu, self.step, self.reason).serialize(s)
    }
}

impl Serialize for AccessItem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(8)?;
        t.serialize_element(&self.step)?;
        t.serialize_element(&self.vcpu)?;
        t.serialize_element(&self.kind)?;
        t.serialize_element(&Num(self.addr))?;
        t.serialize_element(&self.size)?;
        t.serialize_element(&Num(self.value))?;
        t.serialize_element(&self.loc)?;
        t.serialize_element(&self.old.map(Num))?;
        t.end()
    }
}

impl Serialize for Note {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.step, self.vcpu, &self.text).serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_2_pow_53_become_hex_strings() {
        assert_eq!(serde_json::to_string(&Num(42)).unwrap(), "42");
        assert_eq!(
            serde_json::to_string(&Num(1 << 53)).unwrap(),
            "9007199254740992"
        );
        assert_eq!(
            serde_json::to_string(&Num(u64::MAX)).unwrap(),
            "\"0xffffffffffffffff\""
        );
        let a = AccessItem {
            step: 7,
            vcpu: 1,
            kind: KIND_RMW,
            addr: 0x403230,
            size: 8,
            value: 2,
            loc: 3,
            old: Some(1),
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "[7,1,2,4207152,8,2,3,1]"
        );
    }
}
