//! Threads, futexes, signals and time: the system calls through which threads affect one
//! another. A futex wait or a sleep blocks the vCPU in the controller (it is not runnable
//! until a wake or its deadline); time is virtual (`Controller::now_ns`).

use weft_trace::{AccessKind, Event, Verdict};

use super::super::controller::WakeReason;
use super::super::spawn::{spawn_thread, Child, SpawnError};
use super::syscall::{Call, Ret, EAGAIN, EFAULT, EINVAL, ENOMEM, ESRCH, ETIMEDOUT};
use super::{Thread, PID};

/// 2026-01-01T00:00:00Z: what CLOCK_REALTIME says at the start of every run.
const REALTIME_BASE_NS: u64 = 1_767_225_600 * 1_000_000_000;
/// CLOCK_MONOTONIC at the start of a run: the machine booted a second earlier.
const MONOTONIC_BASE_NS: u64 = 1_000_000_000;

impl Call<'_> {
    /// A 4-byte load the kernel makes on the thread's behalf (a futex word): recorded as
    /// an atomic access, so the race analysis treats the word as a synchronisation variable.
    fn kernel_load(&self, addr: u64) -> Result<u32, i32> {
        let v = self.read_u32(addr)?;
        self.ctl().access(
            self.d.id,
            self.rip,
            addr,
            4,
            AccessKind::AtomicRead,
            v as u64,
            v as u64,
            false,
        );
        Ok(v)
    }

    /// A 4-byte store the kernel makes (a thread id, a robust futex): recorded as atomic.
    fn kernel_store(&self, addr: u64, v: u32) -> Result<(), i32> {
        let old = self.read_u32(addr)?;
        self.write(addr, &v.to_le_bytes())?;
        self.ctl().access(
            self.d.id,
            self.rip,
            addr,
            4,
            AccessKind::AtomicWrite,
            v as u64,
            old as u64,
            false,
        );
        Ok(())
    }

    /// A `struct timespec` as nanoseconds (EINVAL when malformed).
    pub(super) fn timespec(&self, addr: u64) -> Result<u64, i32> {
        let sec = self.read_u64(addr)? as i64;
        let nsec = self.read_u64(addr + 8)? as i64;
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(EINVAL);
        }
        Ok((sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as u64))
    }

    fn put_timespec(&self, addr: u64, ns: u64) -> Result<(), i32> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&(ns % 1_000_000_000).to_le_bytes());
        self.write(addr, &b)
    }

    /// Emit this call's event now (for calls that end the thread or the run).
    fn log_final(&self, ret: u64) {
        let (d, rip, nr, args) = (self.d, self.rip, self.nr, self.a);
        self.ctl().emit_at_step(|step| Event::Syscall {
            step,
            vcpu: d.id,
            rip,
            nr,
            args: Box::new(args),
            ret,
        });
    }

    /// Block until a wake on `key` or the virtual `deadline`; 0, or -ETIMEDOUT.
    pub(super) fn block_on(&self, key: u64, bitset: u32, deadline: Option<u64>) -> Ret {
        self.ctl().wait(self.d.id, self.rip, key, bitset, deadline);
        match self.d.block(self.h, self.rip) {
            None => Ret::Stopped,
            Some(WakeReason::Woken) => Ret::ok(0u64),
            Some(WakeReason::TimedOut) => Ret::Errno(ETIMEDOUT),
        }
    }
}

/// Virtual time on `clock` (a clockid), in nanoseconds.
fn clock_ns(c: &Call, clock: u64) -> Result<u64, i32> {
    let now = c.ctl().now_ns();
    match clock {
        0 | 5 | 8 => Ok(REALTIME_BASE_NS + now),
        1 | 4 | 6 | 7 | 9 => Ok(MONOTONIC_BASE_NS + now),
        2 | 3 => Ok(now),
        // Negative ids: another thread's or process's CPU clock.
        c if (c as i64) < 0 => Ok(now),
        _ => Err(EINVAL),
    }
}

/// CLOCK_MONOTONIC now: time since the virtual machine booted.
pub fn monotonic_ns(c: &Call) -> u64 {
    MONOTONIC_BASE_NS + c.ctl().now_ns()
}

pub fn clock_gettime(c: &Call, clock: u64, ts: u64) -> Ret {
    match clock_ns(c, clock) {
        Ok(ns) => c.put_timespec(ts, ns).map(|_| 0).into(),
        Err(e) => Ret::Errno(e),
    }
}

pub fn clock_getres(c: &Call, ts: u64) -> Ret {
    if ts == 0 {
        return Ret::ok(0u64);
    }
    c.put_timespec(ts, 1).map(|_| 0).into()
}

pub fn gettimeofday(c: &Call, tv: u64) -> Ret {
    let ns = REALTIME_BASE_NS + c.ctl().now_ns();
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    c.write_opt(tv, &b).map(|_| 0).into()
}

pub fn time(c: &Call, t: u64) -> Ret {
    let secs = (REALTIME_BASE_NS + c.ctl().now_ns()) / 1_000_000_000;
    match c.write_opt(t, &secs.to_le_bytes()) {
        Ok(()) => Ret::ok(secs),
        Err(e) => Ret::Errno(e),
    }
}

/// nanosleep and clock_nanosleep: the thread sleeps in virtual time (when every thread
/// sleeps, time jumps to the first wake-up).
pub fn nanosleep(c: &Call, clock: u64, flags: u64, req: u64) -> Ret {
    const TIMER_ABSTIME: u64 = 1;
    let t = match c.timespec(req) {
        Ok(t) => t,
        Err(e) => return Ret::Errno(e),
    };
    let now = c.ctl().now_ns();
    let deadline = if flags & TIMER_ABSTIME != 0 {
        match clock_ns(c, clock) {
            Ok(on_clock) => now + t.saturating_sub(on_clock),
            Err(e) => return Ret::Errno(e),
        }
    } else {
        now.saturating_add(t)
    };
    if deadline <= now {
        return Ret::ok(0u64);
    }
    match c.block_on(0, 0, Some(deadline)) {
        Ret::Errno(ETIMEDOUT) => Ret::ok(0u64),
        other => other,
    }
}

const FUTEX_WAIT: u64 = 0;
const FUTEX_WAKE: u64 = 1;
const FUTEX_REQUEUE: u64 = 3;
const FUTEX_CMP_REQUEUE: u64 = 4;
const FUTEX_WAKE_OP: u64 = 5;
const FUTEX_WAIT_BITSET: u64 = 9;
const FUTEX_WAKE_BITSET: u64 = 10;
const FUTEX_PRIVATE: u64 = 128;
const FUTEX_CLOCK_REALTIME: u64 = 256;

/// futex: wait, wake, requeue, wake-op, with bitsets; priority-inheritance is not emulated.
pub fn futex(c: &Call) -> Ret {
    let [uaddr, op, val, timeout, uaddr2, val3] = c.a;
    let (val, val3) = (val as u32, val3 as u32);
    let cmd = op & !(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME);
    if uaddr % 4 != 0 {
        return Ret::Errno(EINVAL);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 };
            if bitset == 0 {
                return Ret::Errno(EINVAL);
            }
            let now = c.ctl().now_ns();
            let deadline = if timeout == 0 {
                None
            } else {
                let t = match c.timespec(timeout) {
                    Ok(t) => t,
                    Err(e) => return Ret::Errno(e),
                };
                if cmd == FUTEX_WAIT {
                    Some(now.saturating_add(t))
                } else {
                    let clock = if op & FUTEX_CLOCK_REALTIME != 0 { 0 } else { 1 };
                    let on_clock = clock_ns(c, clock).unwrap_or(now);
                    Some(now + t.saturating_sub(on_clock))
                }
            };
            match c.kernel_load(uaddr) {
                Ok(v) if v != val => return Ret::Errno(EAGAIN),
                Ok(_) => {}
                Err(e) => return Ret::Errno(e),
            }
            if deadline.is_some_and(|d| d <= now) {
                return Ret::Errno(ETIMEDOUT);
            }
            c.block_on(uaddr, bitset, deadline)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Ret::Errno(EINVAL);
            }
            Ret::ok(c.ctl().wake(uaddr, val, bitset) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if cmd == FUTEX_CMP_REQUEUE {
                match c.kernel_load(uaddr) {
                    Ok(v) if v != val3 => return Ret::Errno(EAGAIN),
                    Ok(_) => {}
                    Err(e) => return Ret::Errno(e),
                }
            }
            let (woken, moved) = c.ctl().requeue(uaddr, uaddr2, val, timeout as u32);
            Ret::ok((woken + if cmd == FUTEX_CMP_REQUEUE { moved } else { 0 }) as u64)
        }
        FUTEX_WAKE_OP => wake_op(c, uaddr, val, timeout as u32, uaddr2, val3),
        _ => c.unsupported("this futex operation (priority inheritance) is not emulated"),
    }
}

/// FUTEX_WAKE_OP: change the word at `uaddr2` atomically, wake `n` on `uaddr`, and `n2`
/// on `uaddr2` if its old value passed the comparison encoded in `val3`.
fn wake_op(c: &Call, uaddr: u64, n: u32, n2: u32, uaddr2: u64, val3: u32) -> Ret {
    let op = (val3 >> 28) & 7;
    let cmp = (val3 >> 24) & 15;
    let mut oparg = (val3 >> 12) & 0xfff;
    let cmparg = val3 & 0xfff;
    if val3 & (8 << 28) != 0 {
        oparg = 1u32.checked_shl(oparg).unwrap_or(0);
    }
    let old = match c.kernel_load(uaddr2) {
        Ok(v) => v,
        Err(e) => return Ret::Errno(e),
    };
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Ret::Errno(EINVAL),
    };
    if let Err(e) = c.kernel_store(uaddr2, new) {
        return Ret::Errno(e);
    }
    let pass = match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => (old as i32) < cmparg as i32,
        3 => (old as i32) <= cmparg as i32,
        4 => (old as i32) > cmparg as i32,
        5 => (old as i32) >= cmparg as i32,
        _ => return Ret::Errno(EINVAL),
    };
    let mut woken = c.ctl().wake(uaddr, n, u32::MAX);
    if pass {
        woken += c.ctl().wake(uaddr2, n2, u32::MAX);
    }
    Ret::ok(woken as u64)
}

/// The wait key of a clone waiting for a vCPU (no futex word is at an odd address; pipes
/// use 1).
const SLOT_KEY: u64 = 3;

const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;
const CLONE_THREAD: u64 = 0x10000;
const CLONE_SETTLS: u64 = 0x80000;
const CLONE_PARENT_SETTID: u64 = 0x100000;
const CLONE_CHILD_CLEARTID: u64 = 0x200000;
const CLONE_CHILD_SETTID: u64 = 0x1000000;

/// clone: threads only (CLONE_VM | CLONE_THREAD); no new processes.
pub fn clone(c: &Call, flags: u64, stack: u64, ptid: u64, ctid: u64, tls: u64) -> Ret {
    if flags & CLONE_VM == 0 {
        return c.unsupported("fork is not supported: a weft process has one address space");
    }
    if flags & CLONE_THREAD == 0 || flags & CLONE_VFORK != 0 {
        return c.unsupported("a new process sharing memory (vfork, posix_spawn) is not supported");
    }
    let child = Child {
        stack,
        tls: (flags & CLONE_SETTLS != 0).then_some(tls),
    };
    let mut warned = false;
    let id = loop {
        match spawn_thread(c.d, c.h, c.rip, &child) {
            Ok(id) => break id,
            Err(SpawnError::NoVcpu) => {
                // Every vCPU has a live thread: wait until one exits (a schedule where
                // more threads live at once is not explored; docs/linux.md).
                let max = c.ctl().options().vcpus;
                if !warned {
                    c.warn(format!(
                        "clone: {max} threads live, the most weft runs at once (--max-threads); \
                         this thread waits until one exits"
                    ));
                    warned = true;
                }
                match c.block_on(SLOT_KEY, u32::MAX, None) {
                    Ret::Value(_) => continue,
                    other => return other,
                }
            }
            Err(SpawnError::NoMemory) => return Ret::Errno(ENOMEM),
        }
    };
    let tid = c.process().new_tid(id);
    {
        let mut p = c.process();
        let sigmask = p.thread(c.d.id).sigmask;
        p.threads[id.0 as usize] = Some(Thread {
            tid,
            clear_child_tid: if flags & CLONE_CHILD_CLEARTID != 0 {
                ctid
            } else {
                0
            },
            robust_list: 0,
            sigmask,
            ..Thread::default()
        });
    }
    if flags & CLONE_PARENT_SETTID != 0 && c.kernel_store(ptid, tid).is_err() {
        return Ret::Errno(EFAULT);
    }
    if flags & CLONE_CHILD_SETTID != 0 && c.kernel_store(ctid, tid).is_err() {
        return Ret::Errno(EFAULT);
    }
    let parent = c.d.id;
    c.ctl().emit_at_step(|step| Event::Spawn {
        step,
        vcpu: parent,
        child: id,
        tid,
    });
    Ret::ok(tid)
}

/// clone3: `struct clone_args` in memory; the same threads as clone.
pub fn clone3(c: &Call, args: u64, size: u64) -> Ret {
    if size < 64 {
        return Ret::Errno(EINVAL);
    }
    let field = |i: u64| c.read_u64(args + 8 * i);
    let got = (|| -> Result<[u64; 8], i32> {
        let mut f = [0u64; 8];
        for (i, x) in f.iter_mut().enumerate() {
            *x = field(i as u64)?;
        }
        Ok(f)
    })();
    let [flags, _pidfd, child_tid, parent_tid, _exit_signal, stack, stack_size, tls] = match got {
        Ok(f) => f,
        Err(e) => return Ret::Errno(e),
    };
    let sp = if stack == 0 { 0 } else { stack + stack_size };
    clone(c, flags, sp, parent_tid, child_tid, tls)
}

/// exit: this thread ends. Its robust futexes are marked owner-died, its clear-child-tid
/// word is zeroed and woken (how pthread_join learns of it).
pub fn exit(c: &Call, status: u32) -> Ret {
    let (tid, ctid, robust) = {
        let mut p = c.process();
        let t = p.thread(c.d.id);
        (t.tid, t.clear_child_tid, t.robust_list)
    };
    if robust != 0 {
        release_robust(c, tid, robust);
    }
    if ctid != 0 && c.kernel_store(ctid, 0).is_ok() {
        c.ctl().wake(ctid, 1, u32::MAX);
    }
    c.process().thread(c.d.id).exited = true;
    c.ctl().wake(SLOT_KEY, u32::MAX, u32::MAX);
    c.log_final(0);
    c.d.thread_exit(c.h, status);
    Ret::Stopped
}

/// The robust list of an exiting thread: each futex it holds gets FUTEX_OWNER_DIED and
/// one waiter is woken.
fn release_robust(c: &Call, tid: u32, head: u64) {
    const OWNER_DIED: u32 = 0x4000_0000;
    const WAITERS: u32 = 0x8000_0000;
    let Ok(offset) = c.read_u64(head + 8) else {
        return;
    };
    let release = |entry: u64| {
        let word = entry.wrapping_add(offset) & !3;
        if let Ok(v) = c.read_u32(word) {
            if v & 0x3fff_ffff == tid
                && c.kernel_store(word, (v & WAITERS) | OWNER_DIED).is_ok()
                && v & WAITERS != 0
            {
                c.ctl().wake(word, 1, u32::MAX);
            }
        }
    };
    let mut entry = c.read_u64(head).unwrap_or(head) & !1;
    for _ in 0..2048 {
        if entry == head || entry == 0 {
            break;
        }
        release(entry);
        entry = c.read_u64(entry).unwrap_or(head) & !1;
    }
    if let Ok(pending) = c.read_u64(head + 16) {
        if pending & !1 != 0 {
            release(pending & !1);
        }
    }
}

/// exit_group: the process ends with `status` (0: the guest passed).
pub fn exit_group(c: &Call, status: u64) -> Ret {
    let status = status & 0xff;
    c.log_final(0);
    let verdict = if status == 0 {
        Verdict::Pass
    } else {
        Verdict::ExitStatus {
            vcpu: c.d.id,
            status,
        }
    };
    c.ctl().finish(verdict);
    c.d.stop_run(c.h);
    Ret::Stopped
}

const SIGABRT: u64 = 6;
const SIG_IGN: u64 = 1;

/// kill, tkill, tgkill to this process: a signal whose default action ends the process
/// ends the run (SIGABRT after an assert() message: an assertion verdict); signals with a
/// handler cannot be delivered and are ignored with a warning.
pub fn kill(c: &Call, pid: u64, tid: Option<u64>, sig: u64) -> Ret {
    let ours = pid as i64 == PID as i64 || pid as i64 == 0 || pid as i64 == -1;
    let thread_ok = tid.is_none_or(|t| c.process().vcpu_of_tid(t).is_some());
    if !ours || !thread_ok {
        return Ret::Errno(ESRCH);
    }
    if sig > 64 {
        return Ret::Errno(EINVAL);
    }
    if sig == 0 {
        return Ret::ok(0u64);
    }
    let handler = c.process().sigactions.get(&sig).map_or(0, |a| {
        u64::from_le_bytes(a[..8].try_into().expect("8 bytes"))
    });
    // Ignored by default: SIGCHLD, SIGCONT, SIGURG, SIGWINCH.
    if handler == SIG_IGN || matches!(sig, 17 | 18 | 23 | 28) {
        return Ret::ok(0u64);
    }
    if handler != 0 && sig != 9 && sig != 19 {
        c.warn(format!(
            "signal {} has a handler, but weft delivers no signals: ignored",
            weft_trace::signal_name(sig as u32)
        ));
        return Ret::ok(0u64);
    }
    c.log_final(0);
    let message = {
        let p = c.process();
        let text = String::from_utf8_lossy(&p.stderr_tail).into_owned();
        text.lines()
            .rev()
            .find(|l| l.contains("Assertion") && l.contains("failed"))
            .map(str::to_string)
    };
    let verdict = match message {
        Some(message) if sig == SIGABRT => Verdict::Assertion {
            vcpu: c.d.id,
            rip: c.rip,
            message,
        },
        _ => Verdict::Signal {
            vcpu: c.d.id,
            signal: sig as u32,
        },
    };
    c.ctl().finish(verdict);
    c.d.stop_run(c.h);
    Ret::Stopped
}

/// rt_sigaction: actions are kept (and reported back) but never run.
pub fn rt_sigaction(c: &Call) -> Ret {
    let [sig, act, oact, _size, ..] = c.a;
    if sig == 0 || sig > 64 || (act != 0 && (sig == 9 || sig == 19)) {
        return Ret::Errno(EINVAL);
    }
    let old = c.process().sigactions.get(&sig).copied().unwrap_or([0; 32]);
    if act != 0 {
        match c.read(act, 32) {
            Ok(b) => {
                let mut a = [0u8; 32];
                a.copy_from_slice(&b);
                c.process().sigactions.insert(sig, a);
            }
            Err(e) => return Ret::Errno(e),
        }
    }
    c.write_opt(oact, &old).map(|_| 0).into()
}

pub fn rt_sigprocmask(c: &Call) -> Ret {
    let [how, set, oset, ..] = c.a;
    let old = c.process().thread(c.d.id).sigmask;
    if let Err(e) = c.write_opt(oset, &old.to_le_bytes()) {
        return Ret::Errno(e);
    }
    if set == 0 {
        return Ret::ok(0u64);
    }
    let s = match c.read_u64(set) {
        Ok(s) => s,
        Err(e) => return Ret::Errno(e),
    };
    let new = match how {
        0 => old | s,
        1 => old & !s,
        2 => s,
        _ => return Ret::Errno(EINVAL),
    };
    c.process().thread(c.d.id).sigmask = new;
    Ret::ok(0u64)
}
