//! fcntl record locks: POSIX locks (F_SETLK, F_SETLKW, F_GETLK), which SQLite and lockf
//! take, and open file description locks (F_OFD_SETLK, F_OFD_SETLKW, F_OFD_GETLK).
//!
//! weft runs one process, so POSIX locks, which belong to the process, never conflict with
//! one another: taking one always succeeds and F_GETLK finds no other process's lock. They
//! are still kept, because OFD locks belong to an open file description (an `open`, shared
//! by its dups) and conflict with other descriptions' locks and with the process's POSIX
//! locks, as on Linux. A thread whose F_OFD_SETLKW (or F_SETLKW against an OFD lock)
//! conflicts waits, in the controller, until some lock is released; threads that only wait
//! for each other's locks end in a deadlock verdict like any other wait.
//!
//! Locks are per path (the file the descriptor was opened as). Closing any descriptor of a
//! file drops the process's POSIX locks on it (POSIX says so); closing the last descriptor
//! of a description drops its OFD locks. Locks on what is not a file (standard streams,
//! pipes, devices) are accepted and not kept.

use std::collections::BTreeMap;

use super::files::Open;
use super::syscall::{Call, Ret, EAGAIN, EBADF, EINVAL};

/// The controller key every lock wait waits on (no futex word has it: futex words are
/// 4-byte aligned); any release wakes them all to try again.
pub const LOCK_KEY: u64 = 2;

const F_GETLK: u64 = 5;
const F_SETLK: u64 = 6;
const F_SETLKW: u64 = 7;
const F_OFD_GETLK: u64 = 36;
const F_OFD_SETLK: u64 = 37;
const F_OFD_SETLKW: u64 = 38;
const F_RDLCK: u16 = 0;
const F_WRLCK: u16 = 1;
const F_UNLCK: u16 = 2;

/// Who holds a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A POSIX lock: the process's.
    Process,
    /// An OFD lock: the open file description with this id.
    Desc(u64),
}

/// One held lock: bytes `[start, end)` of a file (`end` u64::MAX: to the end, however far).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    pub owner: Owner,
    pub write: bool,
    pub start: u64,
    pub end: u64,
}

impl Lock {
    fn conflicts(&self, other: &Lock) -> bool {
        self.owner != other.owner
            && (self.write || other.write)
            && self.start < other.end
            && other.start < self.end
    }
}

/// The process's record locks, per file path.
#[derive(Clone, Debug, Default)]
pub struct Locks {
    by_path: BTreeMap<String, Vec<Lock>>,
}

impl Locks {
    /// The first lock that `want` would conflict with.
    pub fn conflict(&self, path: &str, want: &Lock) -> Option<Lock> {
        self.by_path
            .get(path)?
            .iter()
            .find(|l| l.conflicts(want))
            .copied()
    }

    /// Release `owner`'s locks on `[start, end)` of `path` (splitting those that reach
    /// past it); whether anything was released.
    pub fn unlock(&mut self, path: &str, owner: Owner, start: u64, end: u64) -> bool {
        let Some(held) = self.by_path.get_mut(path) else {
            return false;
        };
        let mut kept = Vec::with_capacity(held.len() + 1);
        let mut released = false;
        for l in held.drain(..) {
            if l.owner != owner || l.end <= start || end <= l.start {
                kept.push(l);
                continue;
            }
            released = true;
            if l.start < start {
                kept.push(Lock { end: start, ..l });
            }
            if end < l.end {
                kept.push(Lock { start: end, ..l });
            }
        }
        *held = kept;
        if held.is_empty() {
            self.by_path.remove(path);
        }
        released
    }

    /// Take `lock` on `path` (the caller checked it conflicts with nothing): it replaces
    /// whatever its owner held on those bytes.
    pub fn lock(&mut self, path: &str, lock: Lock) {
        self.unlock(path, lock.owner, lock.start, lock.end);
        self.by_path.entry(path.to_string()).or_default().push(lock);
    }

    /// Drop every lock of `owner` on `path`; whether there were any.
    pub fn drop_owner(&mut self, path: &str, owner: Owner) -> bool {
        self.unlock(path, owner, 0, u64::MAX)
    }
}

/// `struct flock` (x86-64): l_type, l_whence (shorts), l_start, l_len (off_t), l_pid.
struct Flock {
    ty: u16,
    whence: u16,
    start: i64,
    len: i64,
    pid: i32,
}

fn read_flock(c: &Call, at: u64) -> Result<Flock, i32> {
    let b = c.read(at, 32)?;
    let i64_at = |o: usize| i64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    Ok(Flock {
        ty: u16::from_le_bytes([b[0], b[1]]),
        whence: u16::from_le_bytes([b[2], b[3]]),
        start: i64_at(8),
        len: i64_at(16),
        pid: i32::from_le_bytes(b[24..28].try_into().expect("4 bytes")),
    })
}

/// The byte range `[start, end)` a `struct flock` names, for a descriptor at offset
/// `pos` of a file of `size` bytes.
fn range(f: &Flock, pos: u64, size: u64) -> Result<(u64, u64), i32> {
    let base = match f.whence {
        0 => 0,
        1 => pos as i64,
        2 => size as i64,
        _ => return Err(EINVAL),
    };
    let start = base.checked_add(f.start).ok_or(EINVAL)?;
    let (start, end) = match f.len {
        0 => (start, i64::MAX),
        n if n > 0 => (start, start.saturating_add(n)),
        n => (start.checked_add(n).ok_or(EINVAL)?, start),
    };
    if start < 0 {
        return Err(EINVAL);
    }
    let end = if end == i64::MAX {
        u64::MAX
    } else {
        end as u64
    };
    Ok((start as u64, end))
}

/// fcntl's lock commands on `fd` (`cmd` one of F_GETLK .. F_OFD_SETLKW).
pub fn fcntl_lock(c: &Call, fd: i32, cmd: u64, arg: u64) -> Ret {
    let open = c.process().fds.get(fd).cloned();
    let Some(open) = open else {
        return Ret::Errno(EBADF);
    };
    let f = match read_flock(c, arg) {
        Ok(f) => f,
        Err(e) => return Ret::Errno(e),
    };
    let ofd = matches!(cmd, F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW);
    if f.ty > F_UNLCK || (ofd && f.pid != 0) {
        return Ret::Errno(EINVAL);
    }
    let getlk = matches!(cmd, F_GETLK | F_OFD_GETLK);
    if getlk && f.ty == F_UNLCK {
        return Ret::Errno(EINVAL);
    }
    let Open::File {
        path,
        data,
        pos,
        access,
        desc,
    } = open
    else {
        // Not a file: nothing another lock could be on. GETLK: no conflicting lock.
        return if getlk {
            c.write(arg, &F_UNLCK.to_le_bytes()).map(|_| 0).into()
        } else {
            Ret::ok(0u64)
        };
    };
    if !getlk && ((f.ty == F_RDLCK && !access.read) || (f.ty == F_WRLCK && !access.write)) {
        return Ret::Errno(EBADF);
    }
    let (start, end) = match range(&f, pos, data.len()) {
        Ok(r) => r,
        Err(e) => return Ret::Errno(e),
    };
    let owner = if ofd {
        Owner::Desc(desc)
    } else {
        Owner::Process
    };
    let want = Lock {
        owner,
        write: f.ty == F_WRLCK,
        start,
        end,
    };
    if getlk {
        let found = c.process().locks.conflict(&path, &want);
        return match found {
            None => c.write(arg, &F_UNLCK.to_le_bytes()).map(|_| 0).into(),
            Some(l) => {
                let mut b = [0u8; 32];
                let ty = if l.write { F_WRLCK } else { F_RDLCK };
                b[0..2].copy_from_slice(&ty.to_le_bytes());
                b[8..16].copy_from_slice(&(l.start as i64).to_le_bytes());
                let len = if l.end == u64::MAX {
                    0
                } else {
                    l.end - l.start
                };
                b[16..24].copy_from_slice(&(len as i64).to_le_bytes());
                let pid = match l.owner {
                    Owner::Process => super::PID as i32,
                    Owner::Desc(_) => -1,
                };
                b[24..28].copy_from_slice(&pid.to_le_bytes());
                c.write(arg, &b).map(|_| 0).into()
            }
        };
    }
    if f.ty == F_UNLCK {
        if c.process().locks.unlock(&path, owner, start, end) {
            released(c);
        }
        return Ret::ok(0u64);
    }
    loop {
        let conflict = {
            let mut p = c.process();
            let conflict = p.locks.conflict(&path, &want);
            if conflict.is_none() {
                p.locks.lock(&path, want);
            }
            conflict
        };
        if conflict.is_none() {
            // Taking a lock may have released part of a wider one of the same owner.
            released(c);
            return Ret::ok(0u64);
        }
        if !matches!(cmd, F_SETLKW | F_OFD_SETLKW) {
            return Ret::Errno(EAGAIN);
        }
        if let Ret::Stopped = c.block_on(LOCK_KEY, u32::MAX, None) {
            return Ret::Stopped;
        }
    }
}

/// `fd`, open as `open`, was closed (or replaced by dup2): drop the locks that go with it.
pub fn closed(c: &Call, open: &Open) {
    let Open::File { path, desc, .. } = open else {
        return;
    };
    let mut p = c.process();
    let mut any = p.locks.drop_owner(path, Owner::Process);
    let still_open = p
        .fds
        .iter()
        .any(|o| matches!(o, Open::File { desc: d, .. } if d == desc));
    if !still_open {
        any |= p.locks.drop_owner(path, Owner::Desc(*desc));
    }
    drop(p);
    if any {
        released(c);
    }
}

/// Some lock was released: every thread waiting for one tries again.
fn released(c: &Call) {
    c.ctl().wake(LOCK_KEY, u32::MAX, u32::MAX);
}

/// Whether fcntl's `cmd` is a lock command.
pub fn is_lock_cmd(cmd: u64) -> bool {
    matches!(
        cmd,
        F_GETLK | F_SETLK | F_SETLKW | F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(owner: Owner, write: bool, start: u64, end: u64) -> Lock {
        Lock {
            owner,
            write,
            start,
            end,
        }
    }

    #[test]
    fn the_process_never_conflicts_with_itself_but_descriptions_do() {
        let mut l = Locks::default();
        l.lock("/f", lock(Owner::Process, true, 0, 100));
        assert_eq!(l.conflict("/f", &lock(Owner::Process, true, 0, 10)), None);
        let d1 = lock(Owner::Desc(1), false, 50, 60);
        assert!(l.conflict("/f", &d1).is_some());
        assert_eq!(l.conflict("/g", &d1), None);
        assert_eq!(
            l.conflict("/f", &lock(Owner::Desc(1), false, 100, 200)),
            None
        );
        // Two readers do not conflict; a writer does.
        l.lock("/g", lock(Owner::Desc(1), false, 0, u64::MAX));
        assert_eq!(l.conflict("/g", &lock(Owner::Desc(2), false, 5, 6)), None);
        assert!(l
            .conflict("/g", &lock(Owner::Desc(2), true, 5, 6))
            .is_some());
    }

    #[test]
    fn unlocking_the_middle_splits_a_lock_and_dropping_the_owner_frees_all() {
        let mut l = Locks::default();
        l.lock("/f", lock(Owner::Desc(1), true, 0, 100));
        assert!(l.unlock("/f", Owner::Desc(1), 40, 60));
        let other = |s, e| lock(Owner::Desc(2), true, s, e);
        assert_eq!(l.conflict("/f", &other(45, 55)), None);
        assert!(l.conflict("/f", &other(30, 45)).is_some());
        assert!(l.conflict("/f", &other(55, 70)).is_some());
        assert!(!l.unlock("/f", Owner::Desc(2), 0, 100));
        assert!(l.drop_owner("/f", Owner::Desc(1)));
        assert_eq!(l.conflict("/f", &other(0, u64::MAX)), None);
    }

    #[test]
    fn ranges_follow_whence_and_negative_lengths() {
        let f = |whence, start, len| Flock {
            ty: F_WRLCK,
            whence,
            start,
            len,
            pid: 0,
        };
        assert_eq!(range(&f(0, 10, 0), 0, 0), Ok((10, u64::MAX)));
        assert_eq!(range(&f(1, 5, 10), 100, 0), Ok((105, 115)));
        assert_eq!(range(&f(2, -10, 5), 0, 50), Ok((40, 45)));
        assert_eq!(range(&f(0, 10, -5), 0, 0), Ok((5, 10)));
        assert_eq!(range(&f(0, 2, -5), 0, 0), Err(EINVAL));
        assert_eq!(range(&f(3, 0, 0), 0, 0), Err(EINVAL));
    }
}
