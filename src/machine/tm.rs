//! The transactional-memory engine (Intel RTM, SDM Vol. 1 ch. 16): which vCPUs are inside a
//! transaction, their read and write sets of 64-byte lines, an undo log per transaction,
//! eager conflict detection (requester wins), capacity, nesting and injected aborts.
//!
//! Transactions write guest RAM in place and log the old bytes, so committed code costs no
//! copying and an abort is a walk back through the log. Conflicts are found at the
//! conflicting access, before it happens: a victim's writes are undone before the requester
//! reads or overwrites them, so no other vCPU ever sees a transaction's uncommitted data.
//!
//! This module is bookkeeping over [`GuestMemory`] only; `vcpu.rs` traps the instructions,
//! saves and restores registers and moves RIP.

use std::collections::HashMap;

use weft_recorder::Rng;
use weft_trace::{AbortCause, ConflictClass, TmOptions, VcpuId};

use super::memory::GuestMemory;

/// Conflict-detection granularity: one cache line.
pub const LINE: u64 = 64;

/// Deepest nesting (MAX_RTM_NEST_COUNT); one more XBEGIN aborts the whole nest.
pub const MAX_NEST: u8 = 7;

/// EAX abort status bits (SDM Vol. 1, "RTM Abort Status Definition").
pub mod status {
    pub const EXPLICIT: u32 = 1 << 0;
    pub const RETRY: u32 = 1 << 1;
    pub const CONFLICT: u32 = 1 << 2;
    pub const CAPACITY: u32 = 1 << 3;
    pub const NESTED: u32 = 1 << 5;
}

/// One logged write: the bytes at `addr` before it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Undo {
    addr: u64,
    len: u8,
    old: [u8; 16],
}

impl Undo {
    /// The current bytes at `addr..addr+len` (`len` at most 16), to restore later.
    pub fn save(mem: &GuestMemory, addr: u64, len: usize) -> Undo {
        let len = len.min(16);
        let mut old = [0u8; 16];
        mem.read(addr, &mut old[..len]);
        Undo {
            addr,
            len: len as u8,
            old,
        }
    }

    pub fn restore(&self, mem: &GuestMemory) {
        mem.write(self.addr, &self.old[..self.len as usize]);
    }
}

/// A transaction in progress.
#[derive(Debug, Default)]
struct Tx {
    depth: u8,
    begin_rip: u64,
    fallback: u64,
    /// Lines read and written, each with the first instruction that touched it (reported
    /// on conflicts). Only looked up, never iterated: the order is irrelevant.
    read: HashMap<u64, u64>,
    write: HashMap<u64, u64>,
    undo: Vec<Undo>,
}

/// A transaction that aborted: memory is already rolled back; the vCPU must restore its
/// registers to the outermost XBEGIN, put `status` in EAX and go on at `fallback`. `rip` is
/// where it was aborted; for a conflict, its first access to the conflicting line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Abort {
    pub rip: u64,
    pub begin_rip: u64,
    pub fallback: u64,
    pub status: u32,
    pub cause: AbortCause,
}

/// What an XBEGIN did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Begin {
    /// A transaction started (depth 1) or nested (2..=7).
    Started { depth: u8 },
    /// The XBEGIN aborted (nesting overflow or an injected abort).
    Aborted(Abort),
}

/// What an XEND did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// XEND outside a transaction: #GP.
    NotInTransaction,
    /// An inner XEND: nothing commits yet.
    Inner { depth: u8 },
    Committed {
        begin_rip: u64,
        read_lines: u32,
        write_lines: u32,
    },
}

/// Every vCPU's transactional state.
pub(crate) struct TmEngine {
    opts: TmOptions,
    txs: Vec<Option<Tx>>,
    /// Aborts decided while their vCPU was suspended (conflicts), delivered when it resumes.
    pending: Vec<Option<Abort>>,
    active: usize,
    /// Outermost transactions begun so far (for `abort_nth`).
    started: u64,
    rng: Rng,
}

impl TmEngine {
    pub fn new(opts: &TmOptions, vcpus: u32) -> TmEngine {
        TmEngine {
            rng: Rng::new(opts.abort_seed),
            opts: opts.clone(),
            txs: (0..vcpus).map(|_| None).collect(),
            pending: (0..vcpus).map(|_| None).collect(),
            active: 0,
            started: 0,
        }
    }

    /// Whether any vCPU is inside a transaction (the fast path skips everything if not).
    pub fn any_active(&self) -> bool {
        self.active > 0
    }

    /// A line on `v`'s transaction for the debugger (`None`: not in one).
    pub fn describe(&self, v: VcpuId) -> Option<String> {
        let t = self.txs[v.0 as usize].as_ref()?;
        Some(format!(
            "in a transaction: depth {}, XBEGIN at {:#x}, fallback {:#x}, {} line(s) read, {} written",
            t.depth,
            t.begin_rip,
            t.fallback,
            t.read.len(),
            t.write.len()
        ))
    }

    pub fn depth(&self, v: VcpuId) -> u8 {
        self.txs[v.0 as usize].as_ref().map_or(0, |t| t.depth)
    }

    /// XBEGIN at `rip` with fallback address `fallback`.
    pub fn begin(&mut self, v: VcpuId, rip: u64, fallback: u64, mem: &GuestMemory) -> Begin {
        let i = v.0 as usize;
        if let Some(tx) = &mut self.txs[i] {
            if tx.depth >= MAX_NEST {
                let abort = self
                    .abort(v, rip, status::NESTED, AbortCause::NestingOverflow, mem)
                    .expect("in a transaction");
                return Begin::Aborted(abort);
            }
            tx.depth += 1;
            return Begin::Started { depth: tx.depth };
        }
        self.started += 1;
        let nth = self.opts.abort_nth.contains(&self.started);
        let draw =
            self.opts.abort_ppm > 0 && self.rng.below(1_000_000) < self.opts.abort_ppm as u64;
        if nth || draw {
            return Begin::Aborted(Abort {
                rip,
                begin_rip: rip,
                fallback,
                status: 0,
                cause: AbortCause::Injected,
            });
        }
        self.txs[i] = Some(Tx {
            depth: 1,
            begin_rip: rip,
            fallback,
            ..Tx::default()
        });
        self.active += 1;
        Begin::Started { depth: 1 }
    }

    /// XEND.
    pub fn end(&mut self, v: VcpuId) -> End {
        let i = v.0 as usize;
        let Some(tx) = &mut self.txs[i] else {
            return End::NotInTransaction;
        };
        if tx.depth > 1 {
            tx.depth -= 1;
            return End::Inner { depth: tx.depth };
        }
        let tx = self.txs[i].take().expect("checked above");
        self.active -= 1;
        End::Committed {
            begin_rip: tx.begin_rip,
            read_lines: tx.read.len() as u32,
            write_lines: tx.write.len() as u32,
        }
    }

    /// Abort `v`'s transaction, if it has one: roll its writes back and say where it goes.
    /// `base` holds the cause's status bits; the nested bit is added here.
    pub fn abort(
        &mut self,
        v: VcpuId,
        rip: u64,
        base: u32,
        cause: AbortCause,
        mem: &GuestMemory,
    ) -> Option<Abort> {
        let tx = self.txs[v.0 as usize].take()?;
        self.active -= 1;
        for u in tx.undo.iter().rev() {
            u.restore(mem);
        }
        Some(Abort {
            rip,
            begin_rip: tx.begin_rip,
            fallback: tx.fallback,
            status: base | if tx.depth > 1 { status::NESTED } else { 0 },
            cause,
        })
    }

    /// An abort decided while `v` was suspended, to act on now that it runs again.
    pub fn take_pending(&mut self, v: VcpuId) -> Option<Abort> {
        self.pending[v.0 as usize].take()
    }

    /// `v` is about to access `len` bytes at `addr` (from the instruction at `rip`). Aborts
    /// every other transaction this conflicts with (their aborts are returned, to be
    /// reported, and delivered to them when they resume), then adds the lines to `v`'s own
    /// sets and logs a write's old bytes. If `v`'s own transaction outgrows its capacity it
    /// aborts: that is `own`.
    pub fn access(
        &mut self,
        v: VcpuId,
        rip: u64,
        addr: u64,
        len: usize,
        write: bool,
        mem: &GuestMemory,
    ) -> AccessOutcome {
        let mut out = AccessOutcome::default();
        let first = addr / LINE;
        let last = (addr + len.max(1) as u64 - 1) / LINE;
        for o in 0..self.txs.len() {
            if o == v.0 as usize {
                continue;
            }
            let Some(tx) = &self.txs[o] else { continue };
            let hit = (first..=last).find_map(|line| {
                match (write, tx.write.get(&line), tx.read.get(&line)) {
                    (false, Some(&r), _) => Some((line, r, ConflictClass::RaW)),
                    (true, Some(&r), _) => Some((line, r, ConflictClass::WaW)),
                    (true, None, Some(&r)) => Some((line, r, ConflictClass::WaR)),
                    _ => None,
                }
            });
            if let Some((line, victim_rip, class)) = hit {
                let victim = VcpuId(o as u32);
                let cause = AbortCause::Conflict {
                    by: v,
                    by_rip: rip,
                    line: line * LINE,
                    class,
                };
                let base = status::CONFLICT | status::RETRY;
                let a = self
                    .abort(victim, victim_rip, base, cause, mem)
                    .expect("victim is in a transaction");
                self.pending[o] = Some(a.clone());
                out.victims.push((victim, a));
            }
        }
        let Some(tx) = &mut self.txs[v.0 as usize] else {
            return out;
        };
        for line in first..=last {
            let set = if write { &mut tx.write } else { &mut tx.read };
            set.entry(line).or_insert(rip);
        }
        if write {
            tx.undo.push(Undo::save(mem, addr, len));
        }
        let (over, write_set, lines) = if tx.write.len() > self.opts.write_lines as usize {
            (true, true, self.opts.write_lines)
        } else if tx.read.len() > self.opts.read_lines as usize {
            (true, false, self.opts.read_lines)
        } else {
            (false, false, 0)
        };
        if over {
            let cause = AbortCause::Capacity {
                write: write_set,
                lines,
            };
            out.own = self.abort(v, rip, status::CAPACITY, cause, mem);
        }
        out
    }
}

/// What an access did to transactions.
#[derive(Debug, Default)]
pub(crate) struct AccessOutcome {
    /// Other vCPUs' transactions this access aborted.
    pub victims: Vec<(VcpuId, Abort)>,
    /// The accessing vCPU's own transaction aborted (capacity).
    pub own: Option<Abort>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const V0: VcpuId = VcpuId(0);
    const V1: VcpuId = VcpuId(1);

    fn setup(opts: TmOptions) -> (TmEngine, GuestMemory) {
        (TmEngine::new(&opts, 2), GuestMemory::new(1 << 20).unwrap())
    }

    #[test]
    fn abort_rolls_back_every_write_in_reverse() {
        let (mut tm, mem) = setup(TmOptions::default());
        mem.write_u64(0x1000, 7);
        assert_eq!(
            tm.begin(V0, 0x400, 0x500, &mem),
            Begin::Started { depth: 1 }
        );
        for v in [1u64, 2, 3] {
            tm.access(V0, 0x410, 0x1000, 8, true, &mem);
            mem.write_u64(0x1000, v);
        }
        let a = tm.abort(
            V0,
            0x420,
            status::EXPLICIT,
            AbortCause::Explicit { code: 1 },
            &mem,
        );
        let a = a.unwrap();
        assert_eq!((a.fallback, a.begin_rip, a.status), (0x500, 0x400, 1));
        assert_eq!(mem.read_uint(0x1000, 8), Some(7));
        assert!(!tm.any_active());
    }

    #[test]
    fn nesting_flattens_and_commits_only_at_the_outermost_end() {
        let (mut tm, mem) = setup(TmOptions::default());
        for d in 1..=MAX_NEST {
            assert_eq!(
                tm.begin(V0, 0x400, 0x500, &mem),
                Begin::Started { depth: d }
            );
        }
        assert_eq!(tm.end(V0), End::Inner { depth: 6 });
        assert_eq!(
            tm.begin(V0, 0x400, 0x500, &mem),
            Begin::Started { depth: 7 }
        );
        match tm.begin(V0, 0x400, 0x500, &mem) {
            Begin::Aborted(a) => {
                assert_eq!(a.status, status::NESTED);
                assert_eq!(a.cause, AbortCause::NestingOverflow);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(tm.end(V0), End::NotInTransaction);
        tm.begin(V0, 0x400, 0x500, &mem);
        tm.begin(V0, 0x404, 0x500, &mem);
        assert_eq!(tm.end(V0), End::Inner { depth: 1 });
        assert!(matches!(
            tm.end(V0),
            End::Committed {
                begin_rip: 0x400,
                ..
            }
        ));
    }

    #[test]
    fn requester_wins_and_the_victim_sees_conflict_and_retry() {
        let (mut tm, mem) = setup(TmOptions::default());
        tm.begin(V0, 0x400, 0x500, &mem);
        tm.access(V0, 0x410, 0x2008, 8, true, &mem);
        mem.write_u64(0x2008, 99);
        // V1 reads another word of the same line: RaW, and it must read the old value.
        let out = tm.access(V1, 0x600, 0x2030, 4, false, &mem);
        assert_eq!(mem.read_uint(0x2008, 8), Some(0));
        assert_eq!(out.victims.len(), 1);
        let (victim, a) = &out.victims[0];
        assert_eq!(*victim, V0);
        assert_eq!(a.status, status::CONFLICT | status::RETRY);
        assert_eq!(
            a.cause,
            AbortCause::Conflict {
                by: V1,
                by_rip: 0x600,
                line: 0x2000,
                class: ConflictClass::RaW
            }
        );
        assert_eq!(tm.take_pending(V0), Some(a.clone()));
        assert_eq!(tm.take_pending(V0), None);
    }

    #[test]
    fn reads_only_conflict_with_writes() {
        let (mut tm, mem) = setup(TmOptions::default());
        tm.begin(V0, 0x400, 0x500, &mem);
        tm.access(V0, 0x410, 0x3000, 8, false, &mem);
        assert!(tm
            .access(V1, 0x600, 0x3000, 8, false, &mem)
            .victims
            .is_empty());
        let out = tm.access(V1, 0x600, 0x3038, 8, true, &mem);
        assert!(matches!(
            out.victims[0].1.cause,
            AbortCause::Conflict {
                class: ConflictClass::WaR,
                ..
            }
        ));
    }

    #[test]
    fn an_access_straddling_two_lines_touches_both() {
        let (mut tm, mem) = setup(TmOptions::default());
        tm.begin(V0, 0x400, 0x500, &mem);
        tm.access(V0, 0x410, 0x3040, 8, true, &mem);
        let out = tm.access(V1, 0x600, 0x303c, 8, false, &mem);
        assert!(matches!(
            out.victims[0].1.cause,
            AbortCause::Conflict {
                line: 0x3040,
                class: ConflictClass::RaW,
                ..
            }
        ));
    }

    #[test]
    fn capacity_is_counted_in_distinct_lines() {
        let opts = TmOptions {
            write_lines: 4,
            read_lines: 8,
            ..TmOptions::default()
        };
        let (mut tm, mem) = setup(opts);
        tm.begin(V0, 0x400, 0x500, &mem);
        for i in 0..4 {
            for w in 0..8 {
                let out = tm.access(V0, 0x410, 0x1000 + i * LINE + w * 8, 8, true, &mem);
                assert!(out.own.is_none());
            }
        }
        let out = tm.access(V0, 0x410, 0x1000 + 4 * LINE, 8, true, &mem);
        let a = out.own.expect("fifth line overflows");
        assert_eq!(a.status, status::CAPACITY);
        assert_eq!(
            a.cause,
            AbortCause::Capacity {
                write: true,
                lines: 4
            }
        );
    }

    #[test]
    fn injected_aborts_hit_the_nth_transaction_and_follow_the_seed() {
        let opts = TmOptions {
            abort_nth: vec![2],
            ..TmOptions::default()
        };
        let (mut tm, mem) = setup(opts);
        assert!(matches!(
            tm.begin(V0, 0x400, 0x500, &mem),
            Begin::Started { .. }
        ));
        tm.end(V0);
        match tm.begin(V0, 0x400, 0x500, &mem) {
            Begin::Aborted(a) => assert_eq!((a.status, a.cause), (0, AbortCause::Injected)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            tm.begin(V0, 0x400, 0x500, &mem),
            Begin::Started { .. }
        ));

        let draws = |seed| {
            let opts = TmOptions {
                abort_ppm: 500_000,
                abort_seed: seed,
                ..TmOptions::default()
            };
            let (mut tm, mem) = setup(opts);
            (0..64)
                .map(|_| {
                    let b = tm.begin(V0, 0x400, 0x500, &mem);
                    tm.end(V0);
                    matches!(b, Begin::Aborted(_))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
        let n = draws(3).iter().filter(|&&a| a).count();
        assert!((16..48).contains(&n), "{n} of 64 at 50%");
    }
}
