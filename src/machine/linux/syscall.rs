//! System calls of a Linux guest: RAX = number, RDI, RSI, RDX, R10, R8, R9 = arguments,
//! result in RAX (`-errno` on failure), RCX and R11 clobbered as by SYSCALL. Each call is
//! a scheduling point and leaves a `Syscall` event; what is not emulated returns -ENOSYS
//! with a warning naming the call (docs/linux.md lists what is).

use std::cell::RefMut;

use unicorn_engine::hook::uc_engine;
use unicorn_engine::RegisterX86;
use weft_trace::{AbortCause, Event};

use super::super::controller::Controller;
use super::super::memory::GuestMemory;
use super::super::vcpu::VcpuData;
use super::super::{ffi, Shared};
use super::{dirs, fs, poll, sched, stat, threads, Process, NULL_GUARD};

pub const ENOENT: i32 = 2;
pub const ESRCH: i32 = 3;
pub const EBADF: i32 = 9;
pub const ECHILD: i32 = 10;
pub const EAGAIN: i32 = 11;
pub const ENOMEM: i32 = 12;
pub const EFAULT: i32 = 14;
pub const EINVAL: i32 = 22;
pub const ENOTTY: i32 = 25;
pub const ESPIPE: i32 = 29;
pub const EROFS: i32 = 30;
pub const ERANGE: i32 = 34;
pub const ENOSYS: i32 = 38;
pub const ETIMEDOUT: i32 = 110;

/// How a system call ended.
pub(crate) enum Ret {
    /// Its result for RAX.
    Value(u64),
    Errno(i32),
    /// Emulation stopped: the thread or the run ended (nothing more to set).
    Stopped,
}

impl Ret {
    pub fn ok(v: impl Into<u64>) -> Ret {
        Ret::Value(v.into())
    }
}

impl From<Result<u64, i32>> for Ret {
    fn from(r: Result<u64, i32>) -> Ret {
        match r {
            Ok(v) => Ret::Value(v),
            Err(e) => Ret::Errno(e),
        }
    }
}

/// One system call in progress: the caller, its registers, and access to its process.
pub(crate) struct Call<'a> {
    pub d: &'a VcpuData,
    pub h: *mut uc_engine,
    pub rip: u64,
    pub nr: u64,
    pub a: [u64; 6],
}

impl Call<'_> {
    pub fn shared(&self) -> &Shared {
        &self.d.shared
    }

    pub fn mem(&self) -> &GuestMemory {
        &self.d.shared.mem
    }

    pub fn ctl(&self) -> RefMut<'_, Controller> {
        self.d.shared.ctl.borrow_mut()
    }

    pub fn process(&self) -> RefMut<'_, Process> {
        self.d
            .shared
            .linux
            .as_ref()
            .expect("system calls only on Linux machines")
            .borrow_mut()
    }

    /// Whether `[addr, addr+len)` is process memory (an empty range always is, as Linux
    /// checks no pointer for zero bytes).
    fn valid(&self, addr: u64, len: u64) -> bool {
        len == 0 || (addr >= NULL_GUARD && self.mem().contains(addr, len))
    }

    /// Guest memory the call reads (EFAULT outside the process's memory).
    pub fn read(&self, addr: u64, len: u64) -> Result<Vec<u8>, i32> {
        if !self.valid(addr, len) {
            return Err(EFAULT);
        }
        Ok(self.mem().read_up_to(addr, len as usize))
    }

    pub fn read_u32(&self, addr: u64) -> Result<u32, i32> {
        let b = self.read(addr, 4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    pub fn read_u64(&self, addr: u64) -> Result<u64, i32> {
        let b = self.read(addr, 8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// Guest memory the call writes (EFAULT outside the process's memory).
    pub fn write(&self, addr: u64, bytes: &[u8]) -> Result<(), i32> {
        if !self.valid(addr, bytes.len() as u64) {
            return Err(EFAULT);
        }
        self.mem().write(addr, bytes);
        self.shared().mark_dirty_range(addr, bytes.len() as u64);
        Ok(())
    }

    pub fn write_u64(&self, addr: u64, v: u64) -> Result<(), i32> {
        self.write(addr, &v.to_le_bytes())
    }

    /// Write `bytes` at `addr` unless `addr` is NULL (optional out-arguments).
    pub fn write_opt(&self, addr: u64, bytes: &[u8]) -> Result<(), i32> {
        if addr == 0 {
            Ok(())
        } else {
            self.write(addr, bytes)
        }
    }

    /// A NUL-terminated string (at most 4096 bytes, as PATH_MAX).
    pub fn cstr(&self, addr: u64) -> Result<String, i32> {
        if !self.valid(addr, 1) {
            return Err(EFAULT);
        }
        let bytes = self.mem().read_up_to(addr, 4096);
        let end = bytes.iter().position(|&b| b == 0).ok_or(ERANGE)?;
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// A warning event at this call.
    pub fn warn(&self, message: String) {
        self.ctl().warn(self.d.id, self.rip, message);
    }

    pub fn name(&self) -> String {
        super::syscall_name(self.nr).map_or_else(|| format!("syscall {}", self.nr), str::to_string)
    }

    /// Not supported: -ENOSYS, and a warning naming the call and why.
    pub fn unsupported(&self, why: &str) -> Ret {
        self.process().unsupported.insert(self.name());
        self.warn(format!(
            "{} ({}): {why}; returned -ENOSYS",
            self.name(),
            self.nr
        ));
        Ret::Errno(ENOSYS)
    }
}

/// The SYSCALL at `rip` of vCPU `d`.
pub(crate) fn syscall(d: &VcpuData, h: *mut uc_engine, rip: u64) {
    if d.shared.ctl.borrow().stopping {
        return;
    }
    if d.abort_own(
        h,
        rip,
        0,
        AbortCause::Instruction {
            name: "syscall".into(),
        },
    ) {
        return;
    }
    let nr = ffi::reg_read(h, RegisterX86::RAX);
    let a = [
        ffi::reg_read(h, RegisterX86::RDI),
        ffi::reg_read(h, RegisterX86::RSI),
        ffi::reg_read(h, RegisterX86::RDX),
        ffi::reg_read(h, RegisterX86::R10),
        ffi::reg_read(h, RegisterX86::R8),
        ffi::reg_read(h, RegisterX86::R9),
    ];
    if !d.hypercall_point(h, rip, yields(d, nr, &a)) {
        return;
    }
    let call = Call { d, h, rip, nr, a };
    let ret = match dispatch(&call) {
        Ret::Stopped => return,
        Ret::Value(v) => v,
        Ret::Errno(e) => (-(e as i64)) as u64,
    };
    d.shared
        .ctl
        .borrow_mut()
        .emit_at_step(|step| Event::Syscall {
            step,
            vcpu: d.id,
            rip,
            nr,
            args: Box::new(a),
            ret,
        });
    ffi::reg_write(h, RegisterX86::RAX, ret);
    ffi::reg_write(h, RegisterX86::RCX, rip + 2);
    ffi::reg_write(h, RegisterX86::R11, ffi::reg_read(h, RegisterX86::RFLAGS));
}

const SCHED_YIELD: u64 = 24;

/// Whether the call only gives the processor away: sched_yield, or a sleep of zero
/// (`sleep(0)`, `usleep(0)`), the spin loops of programs that wait for another thread.
/// Such a point is a spin, so fair strategies run someone else (a sleep that ends at
/// once would otherwise let a spinner starve the thread it waits for).
fn yields(d: &VcpuData, nr: u64, a: &[u64; 6]) -> bool {
    let zero = |ts: u64| {
        let b = d.shared.mem.read_up_to(ts, 16);
        b.len() == 16 && b.iter().all(|&x| x == 0)
    };
    match nr {
        SCHED_YIELD => true,
        35 => zero(a[0]),
        230 => a[1] == 0 && zero(a[2]),
        _ => false,
    }
}

fn dispatch(c: &Call) -> Ret {
    let a = c.a;
    match c.nr {
        0 => fs::read(c, a[0] as i32, a[1], a[2], None),
        1 => fs::write(c, a[0] as i32, &[(a[1], a[2])], None),
        2 => fs::open(c, fs::AT_FDCWD, a[0], a[1]),
        3 => fs::close(c, a[0] as i32),
        4 | 6 => stat::stat_path(c, fs::AT_FDCWD, a[0], a[1], 0),
        5 => stat::fstat(c, a[0] as i32, a[1]),
        7 => {
            // A negative timeout (in ms) is forever.
            let ms = a[2] as i32;
            let timeout = (ms >= 0).then(|| ms as u64 * 1_000_000);
            poll::poll(c, a[0], a[1], timeout)
        }
        8 => fs::lseek(c, a[0] as i32, a[1] as i64, a[2]),
        9 => mmap(c),
        10 => mprotect(c),
        11 => c
            .process()
            .mm
            .unmap(a[0], a[1])
            .map(|_| 0)
            .map_err(map_errno)
            .into(),
        12 => brk(c, a[0]),
        13 => threads::rt_sigaction(c),
        14 => threads::rt_sigprocmask(c),
        15 => {
            c.unsupported("signals are not delivered, so there is no signal frame to return from")
        }
        16 => fs::ioctl(c, a[0] as i32),
        17 => fs::read(c, a[0] as i32, a[1], a[2], Some(a[3])),
        18 => fs::write(c, a[0] as i32, &[(a[1], a[2])], Some(a[3])),
        19 => fs::readv(c, a[0] as i32, a[1], a[2]),
        20 => fs::writev(c, a[0] as i32, a[1], a[2]),
        21 => stat::access(c, fs::AT_FDCWD, a[0], a[1]),
        22 => super::pipes::pipe2(c, a[0], 0),
        24 => Ret::ok(0u64),
        25 => Ret::Errno(ENOMEM), // mremap: glibc then allocates, copies and frees
        26 => msync(c),
        28 => madvise(c),
        32 => dup(c, a[0] as i32, None),
        33 => dup(c, a[0] as i32, Some(a[1] as i32)),
        35 => threads::nanosleep(c, 1, 0, a[0]),
        39 => Ret::ok(super::PID),
        56 => threads::clone(c, a[0], a[1], a[2], a[3], a[4]),
        57 | 58 => c.unsupported("fork is not supported: a weft process has one address space"),
        59 | 322 => c.unsupported("exec is not supported: a trace holds one program"),
        60 => threads::exit(c, a[0] as u32),
        61 => Ret::Errno(ECHILD),
        62 => threads::kill(c, a[0], None, a[1]),
        63 => uname(c, a[0]),
        72 => fs::fcntl(c, a[0] as i32, a[1], a[2]),
        74 | 75 => fs::fsync(c, a[0] as i32),
        77 => fs::ftruncate(c, a[0] as i32, a[1]),
        79 => getcwd(c, a[0], a[1]),
        82 => fs::rename(c, fs::AT_FDCWD, a[0], fs::AT_FDCWD, a[1]),
        85 => fs::open(c, fs::AT_FDCWD, a[0], 0o1101), // creat: O_CREAT | O_WRONLY | O_TRUNC
        87 => fs::unlink(c, fs::AT_FDCWD, a[0], 0),
        89 => fs::readlink(c, a[0], a[1], a[2]),
        // Modes are not modelled (every file may be read and written): only existence.
        90 => stat::access(c, fs::AT_FDCWD, a[0], 0),
        91 => stat::fstat_exists(c, a[0] as i32),
        96 => threads::gettimeofday(c, a[0]),
        97 => getrlimit(c, a[0], 0, a[1]),
        98 => c.write(a[1], &[0u8; 144]).map(|_| 0).into(),
        99 => sched::sysinfo(c, a[0]),
        100 => sched::times(c, a[0]),
        102 | 104 | 107 | 108 => Ret::ok(super::UID),
        110 => Ret::ok(1u64),
        131 => sigaltstack(c, a[1]),
        142 => sched::setscheduler(c, a[0], None, a[1]),
        143 => sched::getparam(c, a[0], a[1]),
        144 => sched::setscheduler(c, a[0], Some(a[1]), a[2]),
        145 => sched::getscheduler(c, a[0]),
        146 => sched::priority_max(a[0]),
        147 => sched::priority_min(a[0]),
        148 => sched::rr_interval(c, a[0], a[1]),
        158 => arch_prctl(c, a[0], a[1]),
        186 => Ret::ok(c.process().thread(c.d.id).tid),
        200 => threads::kill(c, super::PID as u64, Some(a[0]), a[1]),
        201 => threads::time(c, a[0]),
        202 => threads::futex(c),
        203 => Ret::ok(0u64),
        204 => sched_getaffinity(c, a[1], a[2]),
        217 => dirs::getdents64(c, a[0] as i32, a[1], a[2]),
        218 => {
            c.process().thread(c.d.id).clear_child_tid = a[0];
            Ret::ok(c.process().thread(c.d.id).tid)
        }
        228 => threads::clock_gettime(c, a[0], a[1]),
        229 => threads::clock_getres(c, a[1]),
        230 => threads::nanosleep(c, a[0], a[1], a[2]),
        231 => threads::exit_group(c, a[0]),
        234 => threads::kill(c, a[0], Some(a[1]), a[2]),
        257 => fs::open(c, a[0] as i32, a[1], a[2]),
        262 => stat::stat_path(c, a[0] as i32, a[1], a[2], a[3]),
        263 => fs::unlink(c, a[0] as i32, a[1], a[2]),
        264 | 316 => fs::rename(c, a[0] as i32, a[1], a[2] as i32, a[3]),
        267 => fs::readlink(c, a[1], a[2], a[3]),
        268 => stat::access(c, a[0] as i32, a[1], 0),
        269 | 439 => stat::access(c, a[0] as i32, a[1], a[2]),
        271 => poll::ppoll(c, a[0], a[1], a[2]),
        273 => set_robust_list(c, a[0], a[1]),
        292 => dup3(c, a[0] as i32, a[1] as i32),
        293 => super::pipes::pipe2(c, a[0], a[1]),
        302 => getrlimit(c, a[1], a[2], a[3]),
        318 => getrandom(c, a[0], a[1]),
        334 => Ret::Errno(ENOSYS), // rseq: glibc goes on without it
        435 => threads::clone3(c, a[0], a[1]),
        _ => c.unsupported("not emulated by weft"),
    }
}

fn map_errno(e: super::mm::MapError) -> i32 {
    match e {
        super::mm::MapError::Invalid => EINVAL,
        super::mm::MapError::NoMemory => ENOMEM,
    }
}

const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;

/// mmap: anonymous memory (shared or not: one process), or a private copy of an open
/// file. Memory is zero-filled.
fn mmap(c: &Call) -> Ret {
    let [addr, len, _prot, flags, fd, off] = c.a;
    let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
    let file = if flags & MAP_ANONYMOUS == 0 {
        match fs::file_data(c, fd as i32) {
            Ok(data) => Some(data),
            Err(e) => return Ret::Errno(e),
        }
    } else {
        None
    };
    let at = c.process().mm.map(len, fixed.then_some(addr));
    let at = match at {
        Ok(a) => a,
        Err(e) => return Ret::Errno(map_errno(e)),
    };
    c.shared().zero_range(at, len);
    if let Some(data) = file {
        let from = (off as usize).min(data.len());
        let n = (len as usize).min(data.len() - from);
        if c.write(at, &data[from..from + n]).is_err() {
            return Ret::Errno(ENOMEM);
        }
    }
    Ret::ok(at)
}

/// mprotect: checked, not enforced (docs/linux.md).
fn mprotect(c: &Call) -> Ret {
    let ram = c.mem().size();
    if c.a[0] % super::super::memory::PAGE != 0 {
        return Ret::Errno(EINVAL);
    }
    if c.process().mm.is_mapped(c.a[0], c.a[1], ram) {
        Ret::ok(0u64)
    } else {
        Ret::Errno(ENOMEM)
    }
}

/// msync: nothing to write back (no file mapping is shared with a file); checked like
/// mprotect.
fn msync(c: &Call) -> Ret {
    const MS_ASYNC: u64 = 1;
    const MS_INVALIDATE: u64 = 2;
    const MS_SYNC: u64 = 4;
    let [addr, len, flags, ..] = c.a;
    if addr % super::super::memory::PAGE != 0
        || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0
        || flags & (MS_ASYNC | MS_SYNC) == MS_ASYNC | MS_SYNC
    {
        return Ret::Errno(EINVAL);
    }
    if c.process().mm.is_mapped(addr, len, c.mem().size()) {
        Ret::ok(0u64)
    } else {
        Ret::Errno(ENOMEM)
    }
}

/// madvise: MADV_DONTNEED zeroes (private anonymous memory reads as zero after it).
fn madvise(c: &Call) -> Ret {
    const MADV_DONTNEED: u64 = 4;
    if c.a[2] == MADV_DONTNEED {
        c.shared().zero_range(c.a[0], c.a[1]);
    }
    Ret::ok(0u64)
}

fn brk(c: &Call, want: u64) -> Ret {
    let (now, grown) = c.process().mm.set_brk(want);
    if let Some((lo, hi)) = grown {
        c.shared().zero_range(lo, hi - lo);
    }
    Ret::ok(now)
}

fn dup(c: &Call, fd: i32, to: Option<i32>) -> Ret {
    let mut p = c.process();
    match to {
        None => p.fds.dup(fd, 0).map(|f| f as u64).ok_or(EBADF).into(),
        Some(new) if new == fd => {
            if p.fds.get(fd).is_some() {
                Ret::ok(fd as u64)
            } else {
                Ret::Errno(EBADF)
            }
        }
        Some(new) => {
            if p.fds.get(fd).is_none() || !(0..super::files::MAX_FDS).contains(&new) {
                return Ret::Errno(EBADF);
            }
            let replaced = p.fds.take(new);
            let r = p.fds.dup(fd, new).map(|f| f as u64).ok_or(EBADF);
            drop(p);
            if let Some(o) = replaced {
                fs::was_closed(c, &o);
            }
            r.into()
        }
    }
}

fn dup3(c: &Call, fd: i32, new: i32) -> Ret {
    if fd == new {
        return Ret::Errno(EINVAL);
    }
    dup(c, fd, Some(new))
}

fn uname(c: &Call, buf: u64) -> Ret {
    let mut u = [0u8; 65 * 6];
    for (i, f) in [
        super::UNAME_SYSNAME,
        super::UNAME_NODENAME,
        super::UNAME_RELEASE,
        super::UNAME_VERSION,
        super::UNAME_MACHINE,
        "(none)",
    ]
    .iter()
    .enumerate()
    {
        u[i * 65..i * 65 + f.len()].copy_from_slice(f.as_bytes());
    }
    c.write(buf, &u).map(|_| 0).into()
}

/// The working directory a guest sees (relative paths still name host files relative to
/// where weft runs).
pub const CWD: &str = "/home/weft";

fn getcwd(c: &Call, buf: u64, size: u64) -> Ret {
    let s = format!("{CWD}\0");
    if (s.len() as u64) > size {
        return Ret::Errno(ERANGE);
    }
    c.write(buf, s.as_bytes()).map(|_| s.len() as u64).into()
}

/// getrlimit / prlimit64 (of this process only): stack 8 MiB, 1024 files, others unlimited.
fn getrlimit(c: &Call, resource: u64, _new: u64, old: u64) -> Ret {
    const RLIMIT_STACK: u64 = 3;
    const RLIMIT_NOFILE: u64 = 7;
    let (cur, max) = match resource {
        RLIMIT_STACK => (super::MAIN_STACK, u64::MAX),
        RLIMIT_NOFILE => (super::files::MAX_FDS as u64, super::files::MAX_FDS as u64),
        0..=15 => (u64::MAX, u64::MAX),
        _ => return Ret::Errno(EINVAL),
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&cur.to_le_bytes());
    b[8..].copy_from_slice(&max.to_le_bytes());
    c.write_opt(old, &b).map(|_| 0).into()
}

fn sigaltstack(c: &Call, old: u64) -> Ret {
    const SS_DISABLE: u32 = 2;
    let mut b = [0u8; 24];
    b[8..12].copy_from_slice(&SS_DISABLE.to_le_bytes());
    c.write_opt(old, &b).map(|_| 0).into()
}

fn arch_prctl(c: &Call, code: u64, addr: u64) -> Ret {
    const ARCH_SET_GS: u64 = 0x1001;
    const ARCH_SET_FS: u64 = 0x1002;
    const ARCH_GET_FS: u64 = 0x1003;
    const ARCH_GET_GS: u64 = 0x1004;
    let (reg, set) = match code {
        ARCH_SET_FS => (RegisterX86::FS_BASE, true),
        ARCH_SET_GS => (RegisterX86::GS_BASE, true),
        ARCH_GET_FS => (RegisterX86::FS_BASE, false),
        ARCH_GET_GS => (RegisterX86::GS_BASE, false),
        _ => return Ret::Errno(EINVAL),
    };
    if set {
        ffi::reg_write(c.h, reg, addr);
        Ret::ok(0u64)
    } else {
        c.write_u64(addr, ffi::reg_read(c.h, reg)).map(|_| 0).into()
    }
}

fn sched_getaffinity(c: &Call, size: u64, mask: u64) -> Ret {
    let cpus = c.process().opts.cpus.clamp(1, 1024) as u64;
    let bytes = cpus.div_ceil(64) * 8;
    if size < bytes {
        return Ret::Errno(EINVAL);
    }
    let mut m = vec![0u8; bytes as usize];
    for cpu in 0..cpus {
        m[(cpu / 8) as usize] |= 1 << (cpu % 8);
    }
    c.write(mask, &m).map(|_| bytes).into()
}

fn set_robust_list(c: &Call, head: u64, len: u64) -> Ret {
    if len != 24 {
        return Ret::Errno(EINVAL);
    }
    c.process().thread(c.d.id).robust_list = head;
    Ret::ok(0u64)
}

fn getrandom(c: &Call, buf: u64, len: u64) -> Ret {
    let len = len.min(1 << 25);
    let mut bytes = Vec::with_capacity(len as usize + 8);
    {
        let mut p = c.process();
        while (bytes.len() as u64) < len {
            bytes.extend_from_slice(&p.random.next_u64().to_le_bytes());
        }
    }
    bytes.truncate(len as usize);
    c.write(buf, &bytes).map(|_| len).into()
}
