//! Scheduling policy and system information calls: what a thread library asks about
//! priorities (NSPR maps its thread priorities onto them) and what a program asks about
//! the machine. weft's scheduling is the controller's; these calls only answer as an
//! unprivileged Linux process would, consistently, and never change how a run is
//! scheduled.

use super::syscall::{Call, Ret, EFAULT, EINVAL, ESRCH};
use super::PID;

pub const SCHED_OTHER: u32 = 0;
const SCHED_FIFO: u32 = 1;
const SCHED_RR: u32 = 2;
const SCHED_BATCH: u32 = 3;
const SCHED_IDLE: u32 = 5;
const EPERM: i32 = 1;

/// The priority range of `policy` (Linux: 1..=99 for the real-time ones, 0 otherwise).
fn range(policy: u64) -> Option<(u32, u32)> {
    match policy as u32 {
        SCHED_FIFO | SCHED_RR => Some((1, 99)),
        SCHED_OTHER | SCHED_BATCH | SCHED_IDLE => Some((0, 0)),
        _ => None,
    }
}

pub fn priority_max(policy: u64) -> Ret {
    range(policy).map_or(Ret::Errno(EINVAL), |r| Ret::ok(r.1))
}

pub fn priority_min(policy: u64) -> Ret {
    range(policy).map_or(Ret::Errno(EINVAL), |r| Ret::ok(r.0))
}

/// The vCPU a `pid` argument names: 0 is the caller, the process id its main thread.
fn target(c: &Call, pid: u64) -> Result<weft_trace::VcpuId, i32> {
    if (pid as i64) < 0 {
        return Err(EINVAL);
    }
    if pid == 0 {
        return Ok(c.d.id);
    }
    let tid = if pid == PID as u64 { PID as u64 } else { pid };
    c.process().vcpu_of_tid(tid).ok_or(ESRCH)
}

pub fn getscheduler(c: &Call, pid: u64) -> Ret {
    match target(c, pid) {
        Ok(v) => Ret::ok(c.process().thread(v).policy),
        Err(e) => Ret::Errno(e),
    }
}

pub fn getparam(c: &Call, pid: u64, param: u64) -> Ret {
    let v = match target(c, pid) {
        Ok(v) => v,
        Err(e) => return Ret::Errno(e),
    };
    if param == 0 {
        return Ret::Errno(EINVAL);
    }
    let prio = c.process().thread(v).priority;
    c.write(param, &prio.to_le_bytes()).map(|_| 0).into()
}

/// sched_setscheduler (`policy` given) and sched_setparam (`None`: keep the policy).
/// Real-time policies need a privilege the process does not have: EPERM, as Linux says
/// to an unprivileged process; the others take priority 0 only.
pub fn setscheduler(c: &Call, pid: u64, policy: Option<u64>, param: u64) -> Ret {
    let v = match target(c, pid) {
        Ok(v) => v,
        Err(e) => return Ret::Errno(e),
    };
    if param == 0 {
        return Ret::Errno(EINVAL);
    }
    let prio = match c.read_u32(param) {
        Ok(p) => p,
        Err(_) => return Ret::Errno(EFAULT),
    };
    // SCHED_RESET_ON_FORK may be or'ed into the policy.
    let policy = policy.map_or_else(|| c.process().thread(v).policy as u64, |p| p & !0x4000_0000);
    let Some((lo, hi)) = range(policy) else {
        return Ret::Errno(EINVAL);
    };
    if !(lo..=hi).contains(&prio) {
        return Ret::Errno(EINVAL);
    }
    if lo > 0 {
        return Ret::Errno(EPERM);
    }
    let mut p = c.process();
    let t = p.thread(v);
    t.policy = policy as u32;
    t.priority = prio;
    Ret::ok(0u64)
}

/// sched_rr_get_interval: Linux's default 100 ms time slice.
pub fn rr_interval(c: &Call, pid: u64, ts: u64) -> Ret {
    if let Err(e) = target(c, pid) {
        return Ret::Errno(e);
    }
    let mut b = [0u8; 16];
    b[8..].copy_from_slice(&100_000_000u64.to_le_bytes());
    c.write(ts, &b).map(|_| 0).into()
}

/// sysinfo: uptime from virtual time, RAM from `--ram`, one process, no swap, no load.
pub fn sysinfo(c: &Call, info: u64) -> Ret {
    let uptime = super::threads::monotonic_ns(c) / 1_000_000_000;
    let ram = c.mem().size();
    let mut b = [0u8; 112];
    let mut put =
        |at: usize, v: u64, n: usize| b[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
    put(0, uptime, 8);
    put(32, ram, 8); // totalram
    put(40, ram / 2, 8); // freeram
    put(80, 1, 2); // procs
    put(104, 1, 4); // mem_unit
    c.write(info, &b).map(|_| 0).into()
}

/// times: the process's CPU time is virtual time (as its CPU-time clocks say), in clock
/// ticks of 100 Hz; the result is ticks since boot.
pub fn times(c: &Call, buf: u64) -> Ret {
    let ticks = |ns: u64| ns / 10_000_000;
    let cpu = ticks(c.ctl().now_ns());
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&cpu.to_le_bytes());
    if let Err(e) = c.write_opt(buf, &b) {
        return Ret::Errno(e);
    }
    Ret::ok(ticks(super::threads::monotonic_ns(c)))
}
