//! Pipes between the threads of a process: pipe and pipe2 make a buffer of 64 KiB with a
//! read end and a write end. A read of an empty pipe and a write to a full one block like
//! a futex wait (a blocking point for the scheduler); closing the last write end gives
//! readers end of file, closing the last read end gives writers EPIPE. Nothing of a pipe
//! is recorded: its bytes follow from the program.
//!
//! Every waiter of every pipe waits on one key, [`PIPE_KEY`], and every change to any pipe
//! wakes them all to look again: simple, deterministic, and cheap for the few threads a
//! program has.

use super::files::Open;
use super::syscall::{Call, Ret, EAGAIN, EBADF, EFAULT, EINVAL};

/// Linux's default pipe capacity.
pub const CAPACITY: usize = 1 << 16;
/// Writes up to this size are atomic (POSIX PIPE_BUF).
const PIPE_BUF: usize = 4096;
/// The wait key of every pipe wait: not an address a futex word can have (futex words are
/// 4-byte aligned, and the first page is never mapped).
pub const PIPE_KEY: u64 = 1;
const EPIPE: i32 = 32;
const O_NONBLOCK: u64 = 0o4000;

/// One pipe's buffered bytes.
#[derive(Clone, Debug, Default)]
pub struct Pipe {
    pub buf: std::collections::VecDeque<u8>,
}

/// How many descriptors are open on each end of pipe `id`: (read ends, write ends).
fn ends(c: &Call, id: usize) -> (usize, usize) {
    let p = c.process();
    p.fds.iter().fold((0, 0), |(r, w), o| match o {
        Open::PipeRead { id: i, .. } if *i == id => (r + 1, w),
        Open::PipeWrite { id: i, .. } if *i == id => (r, w + 1),
        _ => (r, w),
    })
}

/// Something changed in a pipe: every pipe waiter looks again.
pub fn changed(c: &Call) {
    c.ctl().wake(PIPE_KEY, u32::MAX, u32::MAX);
}

/// pipe / pipe2: two descriptors, the read end first, written to `fds`.
pub fn pipe2(c: &Call, fds: u64, flags: u64) -> Ret {
    const O_CLOEXEC: u64 = 0o2000000;
    if flags & !(O_NONBLOCK | O_CLOEXEC) != 0 {
        return Ret::Errno(EINVAL);
    }
    let nonblock = flags & O_NONBLOCK != 0;
    let pair = {
        let mut p = c.process();
        let id = p.pipes.len();
        let r = p.fds.insert(Open::PipeRead { id, nonblock });
        let w = p.fds.insert(Open::PipeWrite { id, nonblock });
        match (r, w) {
            (Some(r), Some(w)) => {
                p.pipes.push(Pipe::default());
                Some((r, w))
            }
            (r, w) => {
                for fd in [r, w].into_iter().flatten() {
                    p.fds.close(fd);
                }
                None
            }
        }
    };
    let Some((r, w)) = pair else {
        return Ret::Errno(24); // EMFILE
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&r.to_le_bytes());
    b[4..].copy_from_slice(&w.to_le_bytes());
    if c.write(fds, &b).is_err() {
        let mut p = c.process();
        p.fds.close(r);
        p.fds.close(w);
        return Ret::Errno(EFAULT);
    }
    Ret::ok(0u64)
}

/// read from pipe `id`: what is there (at most `len`), end of file when no write end is
/// open, or wait.
pub fn read(c: &Call, id: usize, nonblock: bool, buf: u64, len: u64) -> Ret {
    if len == 0 {
        return Ret::ok(0u64);
    }
    loop {
        let bytes: Vec<u8> = {
            let mut p = c.process();
            let Some(pipe) = p.pipes.get_mut(id) else {
                return Ret::Errno(EBADF);
            };
            let n = (len as usize).min(pipe.buf.len());
            pipe.buf.drain(..n).collect()
        };
        if !bytes.is_empty() {
            changed(c);
            return c.write(buf, &bytes).map(|_| bytes.len() as u64).into();
        }
        if ends(c, id).1 == 0 {
            return Ret::ok(0u64);
        }
        if nonblock {
            return Ret::Errno(EAGAIN);
        }
        if let Ret::Stopped = c.block_on(PIPE_KEY, u32::MAX, None) {
            return Ret::Stopped;
        }
    }
}

/// write `bytes` to pipe `id`: all of them, waiting for room as needed (a write of at most
/// PIPE_BUF bytes goes in whole); EPIPE when no read end is open.
pub fn write(c: &Call, id: usize, nonblock: bool, bytes: &[u8]) -> Ret {
    let mut done = 0usize;
    loop {
        if ends(c, id).0 == 0 {
            if done == 0 {
                c.warn("write to a pipe with no reader: EPIPE (weft delivers no SIGPIPE)".into());
                return Ret::Errno(EPIPE);
            }
            return Ret::ok(done as u64);
        }
        let wrote = {
            let mut p = c.process();
            let Some(pipe) = p.pipes.get_mut(id) else {
                return Ret::Errno(EBADF);
            };
            let room = CAPACITY - pipe.buf.len();
            let left = bytes.len() - done;
            let n = if left <= PIPE_BUF && room < left {
                0
            } else {
                room.min(left)
            };
            pipe.buf.extend(&bytes[done..done + n]);
            n
        };
        if wrote > 0 {
            done += wrote;
            changed(c);
        }
        if done == bytes.len() {
            return Ret::ok(done as u64);
        }
        if nonblock {
            return if done > 0 {
                Ret::ok(done as u64)
            } else {
                Ret::Errno(EAGAIN)
            };
        }
        if let Ret::Stopped = c.block_on(PIPE_KEY, u32::MAX, None) {
            return Ret::Stopped;
        }
    }
}

/// Whether a pipe end is ready for poll: (readable, writable, the other end is all
/// closed). A read end with no writer left is readable (end of file); a write end with no
/// reader is writable (the write fails at once).
pub fn ready(c: &Call, open: &Open) -> (bool, bool, bool) {
    match *open {
        Open::PipeRead { id, .. } => {
            let empty = c.process().pipes.get(id).is_none_or(|p| p.buf.is_empty());
            let hung_up = ends(c, id).1 == 0;
            (!empty || hung_up, false, hung_up)
        }
        Open::PipeWrite { id, .. } => {
            let full = c
                .process()
                .pipes
                .get(id)
                .is_none_or(|p| p.buf.len() >= CAPACITY);
            let hung_up = ends(c, id).0 == 0;
            (false, !full || hung_up, hung_up)
        }
        _ => (false, false, false),
    }
}

/// The flags F_GETFL reports for a pipe end.
pub fn flags(open: &Open) -> Option<u64> {
    match *open {
        Open::PipeRead { nonblock, .. } => Some(if nonblock { O_NONBLOCK } else { 0 }),
        Open::PipeWrite { nonblock, .. } => Some(1 | if nonblock { O_NONBLOCK } else { 0 }),
        _ => None,
    }
}

/// F_SETFL on a pipe end: O_NONBLOCK on or off.
pub fn set_flags(open: &mut Open, flags: u64) {
    if let Open::PipeRead { nonblock, .. } | Open::PipeWrite { nonblock, .. } = open {
        *nonblock = flags & O_NONBLOCK != 0;
    }
}
