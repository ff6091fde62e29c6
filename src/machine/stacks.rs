//! Call stacks of the vCPUs a failure concerns, taken when the run ends (while every vCPU
//! is still suspended where it stopped) and recorded as `Backtrace` events before `End`.

use weft_recorder::VcpuSet;
use weft_trace::{Backtrace, VcpuId, Verdict};

use super::{ffi, regs, Shared};

/// Record the call stacks for the run's failing verdict, if it has one: the failing vCPU
/// (crash, assertion, signal, exit status) or every vCPU still live (deadlock, budget).
/// Nothing for a pass, a pause, or a run the sink cut short.
pub(crate) fn record(shared: &Shared) {
    let Some(unwinder) = shared.unwinder.as_deref() else {
        return;
    };
    let mut ctl = shared.ctl.borrow_mut();
    if ctl.paused || ctl.sink_error.is_some() {
        return;
    }
    let Some(verdict) = ctl.verdict().cloned() else {
        return;
    };
    let handles = shared.handles.borrow();
    let live = |v: VcpuId| {
        handles
            .get(v.0 as usize)
            .map(|h| h.0)
            .filter(|h| !h.is_null())
    };
    // (vCPU, RIP, general registers) of each stack to take.
    let from_handle = |v: VcpuId, rip: Option<u64>| {
        let h = live(v)?;
        let mut gprs = [0u64; 16];
        for (g, r) in gprs.iter_mut().zip(regs::GPRS) {
            *g = ffi::reg_read(h, r);
        }
        let rip = rip.unwrap_or_else(|| ffi::reg_read(h, unicorn_engine::RegisterX86::RIP));
        Some((v, rip, gprs))
    };
    let wanted: Vec<(VcpuId, u64, [u64; 16])> = match &verdict {
        Verdict::Pass => return,
        Verdict::Crash(c) => {
            let mut gprs = [0u64; 16];
            gprs.copy_from_slice(&c.regs[..16]);
            vec![(c.vcpu, c.rip, gprs)]
        }
        Verdict::Assertion { vcpu, rip, .. } => {
            from_handle(*vcpu, Some(*rip)).into_iter().collect()
        }
        Verdict::Signal { vcpu, .. } | Verdict::ExitStatus { vcpu, .. } => {
            from_handle(*vcpu, None).into_iter().collect()
        }
        Verdict::Deadlock { vcpus } => vcpus
            .iter()
            .filter_map(|(v, rip)| from_handle(*v, Some(*rip)))
            .collect(),
        Verdict::Budget { .. } => ctl
            .live()
            .iter()
            .filter_map(|v| from_handle(v, None))
            .collect(),
    };
    drop(handles);
    let read = |a: u64| shared.mem.read_uint(a, 8);
    for (vcpu, rip, gprs) in wanted {
        let frames = unwinder.backtrace(rip, &gprs, &read);
        // Key 0 is a wait nothing wakes (a sleep, a poll), key 1 a pipe's: no futex word.
        let futex = ctl.waiting_on(vcpu).filter(|&k| k > 1);
        let b = Backtrace {
            vcpu,
            frames,
            futex,
            owner: futex.and_then(|f| mutex_owner(shared, f, ctl.live())),
            joins: futex.and_then(|f| joined(shared, f, ctl.live())),
        };
        shared.backtraces.borrow_mut().push(b.clone());
        ctl.emit_backtrace(b);
    }
}

/// The live thread whose thread-id word (CLONE_CHILD_CLEARTID, which pthread_join waits
/// on) is at `futex`.
fn joined(shared: &Shared, futex: u64, live: VcpuSet) -> Option<VcpuId> {
    let process = shared.linux.as_ref()?.borrow();
    let v = process
        .threads
        .iter()
        .position(|t| t.as_ref().is_some_and(|t| t.clear_child_tid == futex))?;
    Some(VcpuId(v as u32)).filter(|&v| live.contains(v))
}

/// The holder of a locked glibc mutex whose lock word is at `futex`: glibc's
/// `pthread_mutex_t` keeps the lock word first and the owner's thread id 8 bytes in; both
/// must say "locked by a live thread of this process" (a condition variable's or a
/// semaphore's words almost never do).
fn mutex_owner(shared: &Shared, futex: u64, live: VcpuSet) -> Option<VcpuId> {
    let process = shared.linux.as_ref()?.borrow();
    let lock = shared.mem.read_uint(futex, 4)?;
    let owner_tid = shared.mem.read_uint(futex.checked_add(8)?, 4)?;
    if lock == 0 || owner_tid == 0 {
        return None;
    }
    // Only a thread that is still there holds anything.
    process.vcpu_of_tid(owner_tid).filter(|&v| live.contains(v))
}
