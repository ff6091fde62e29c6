//! Proof that a vCPU loops forever on its own: a vCPU that reaches no scheduling point
//! gets a tick every 1024 blocks (see `vcpu::on_block`). Between two such ticks it touched
//! nothing but its registers and its own stack: any other access would have been a
//! scheduling point. Its future is then a function of its CPU state, its stack and the
//! code it runs. If, at a later tick, all of these are exactly as at an earlier one, it will
//! repeat that stretch forever: it can never reach shared memory, produce output or end.
//!
//! The detector compares tick states with Brent's cycle finding (an anchor state, replaced
//! at exponentially spaced ticks), so a loop of period p ticks is found within about 2p
//! ticks of its start. Checking costs a few register reads per tick; the full state (every
//! register and the stack) is compared only when the general registers match.
//!
//! What counts as unchanged: the general registers, RIP, RFLAGS, segment registers and
//! bases, x87 and SSE state, CR0/CR3/CR4 and the vCPU's whole stack, and nothing else
//! in the machine having progressed (no value-changing write, output or vCPU end anywhere:
//! the code it runs could have been rewritten otherwise). Code on a stack is the one thing
//! a store to which is not progress (stacks are private), so no proof is made while any
//! code runs from the stack area. A loop whose state keeps changing (a counter) is never
//! proven; it ends by `--deadlock-window` or `--max-steps` as before.

use unicorn_engine::hook::uc_engine;
use unicorn_engine::RegisterX86;

use super::debug_run::DebugRegs;
use super::memory::GuestMemory;
use super::{ffi, regs};

/// Consecutive ticks before the detector starts looking (ordinary code reaches a
/// scheduling point long before).
pub(crate) const WARMUP: u32 = 4;

/// Registers compared first, at every tick.
const QUICK: [RegisterX86; 18] = regs::gprs_and([RegisterX86::RIP, RegisterX86::RFLAGS]);

/// A vCPU's state at one tick.
#[derive(Default)]
struct Anchor {
    quick: [u64; 18],
    full: DebugRegs,
    control: [u64; 3],
    stack: Vec<u8>,
    /// The machine's progress stamp then (`Controller::progress_stamp`).
    progress: u64,
}

/// One vCPU's loop detector.
#[derive(Default)]
pub(crate) struct LoopDetector {
    anchor: Option<Anchor>,
    /// Ticks since the anchor was taken, and after how many it is replaced.
    since: u32,
    span: u32,
    /// The buffer of the last anchor, kept to avoid allocating the next one.
    spare: Vec<u8>,
    /// The progress stamp at the previous tick: an anchor is taken only when nothing
    /// progressed since (while others progress no proof can be made, and copying the
    /// stack at every tick would cost a vCPU that computes while others write).
    last_stamp: Option<u64>,
}

fn quick(h: *mut uc_engine) -> [u64; 18] {
    let mut q = [0u64; 18];
    for (v, r) in q.iter_mut().zip(QUICK) {
        *v = ffi::reg_read(h, r);
    }
    q
}

fn control(h: *mut uc_engine) -> [u64; 3] {
    [
        ffi::reg_read(h, RegisterX86::CR0),
        ffi::reg_read(h, RegisterX86::CR3),
        ffi::reg_read(h, RegisterX86::CR4),
    ]
}

impl LoopDetector {
    /// The vCPU reached a real scheduling point: whatever was seen is void.
    pub fn reset(&mut self) {
        if let Some(a) = self.anchor.take() {
            self.spare = a.stack;
        }
        self.since = 0;
        self.span = 1;
        self.last_stamp = None;
    }

    /// The `row`-th consecutive tick of vCPU `h`, whose own stack is `stack`. Returns
    /// whether its state equals an earlier tick's: it provably loops forever.
    pub fn tick(
        &mut self,
        h: *mut uc_engine,
        row: u32,
        mem: &GuestMemory,
        stack: (u64, u64),
        progress: u64,
    ) -> bool {
        if row <= 1 {
            self.reset();
        }
        let quiet = self.last_stamp.replace(progress) == Some(progress);
        if row < WARMUP || stack.0 >= stack.1 || !quiet {
            return false;
        }
        let q = quick(h);
        if let Some(a) = &self.anchor {
            if a.progress == progress
                && a.quick == q
                && a.control == control(h)
                && a.full == DebugRegs::read(h)
                && same_bytes(mem, stack.0, &a.stack)
            {
                return true;
            }
        }
        let stale = self.anchor.as_ref().is_none_or(|a| a.progress != progress);
        if stale || self.since >= self.span {
            if !stale {
                self.span = self.span.saturating_mul(2);
            }
            let mut buf = match self.anchor.take() {
                Some(a) => a.stack,
                None => std::mem::take(&mut self.spare),
            };
            buf.resize((stack.1 - stack.0) as usize, 0);
            mem.read(stack.0, &mut buf);
            self.anchor = Some(Anchor {
                quick: q,
                full: DebugRegs::read(h),
                control: control(h),
                stack: buf,
                progress,
            });
            self.since = 0;
        } else {
            self.since += 1;
        }
        false
    }
}

/// Whether RAM at `addr` holds exactly `bytes`.
fn same_bytes(mem: &GuestMemory, addr: u64, bytes: &[u8]) -> bool {
    const PIECE: usize = 4096;
    let mut buf = [0u8; PIECE];
    bytes.chunks(PIECE).enumerate().all(|(i, want)| {
        let got = &mut buf[..want.len()];
        mem.read(addr + (i * PIECE) as u64, got) && got == want
    })
}
