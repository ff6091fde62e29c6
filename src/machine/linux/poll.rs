//! poll and ppoll: which descriptors are ready, and waiting for pipes to become so.

use super::files::{self, Open};
use super::pipes;
use super::syscall::{Call, Ret, EINVAL};

/// poll / ppoll: standard input and files are always ready to read, standard output and
/// error and files opened for writing to write; a pipe end when it has bytes or room (or
/// its other end is all closed: POLLHUP, POLLERR); unknown descriptors POLLNVAL. With
/// nothing ready the call waits for pipe activity or its timeout in virtual time (with no
/// pipe polled and no timeout, it blocks for good). `timeout_ns`: `None` is forever.
pub fn poll(c: &Call, fds: u64, nfds: u64, timeout_ns: Option<u64>) -> Ret {
    if nfds > files::MAX_FDS as u64 {
        return Ret::Errno(EINVAL);
    }
    let deadline = timeout_ns.map(|t| c.ctl().now_ns().saturating_add(t));
    loop {
        let (ready, pipes_polled) = match poll_once(c, fds, nfds) {
            Ok(r) => r,
            Err(e) => return Ret::Errno(e),
        };
        if ready > 0 || timeout_ns == Some(0) {
            return Ret::ok(ready);
        }
        // Only a pipe can become ready: wait for pipe activity (or the timeout), then
        // look again.
        let key = if pipes_polled { pipes::PIPE_KEY } else { 0 };
        match c.block_on(key, if pipes_polled { u32::MAX } else { 0 }, deadline) {
            Ret::Errno(super::syscall::ETIMEDOUT) => return Ret::ok(0u64),
            Ret::Stopped => return Ret::Stopped,
            _ => {}
        }
    }
}

/// One look at every pollfd: (how many are ready, whether any is a pipe), revents
/// written back.
fn poll_once(c: &Call, fds: u64, nfds: u64) -> Result<(u64, bool), i32> {
    const POLLIN: u16 = 0x1;
    const POLLOUT: u16 = 0x4;
    const POLLERR: u16 = 0x8;
    const POLLHUP: u16 = 0x10;
    const POLLNVAL: u16 = 0x20;
    const POLLRDNORM: u16 = 0x40;
    const POLLWRNORM: u16 = 0x100;
    let mut ready = 0u64;
    let mut pipes_polled = false;
    for i in 0..nfds {
        let at = fds + i * 8;
        let entry = c.read(at, 8)?;
        let fd = i32::from_le_bytes(entry[0..4].try_into().expect("4 bytes"));
        let events = u16::from_le_bytes([entry[4], entry[5]]);
        let open = if fd < 0 {
            None
        } else {
            c.process().fds.get(fd).cloned()
        };
        let revents = match &open {
            _ if fd < 0 => 0,
            None => POLLNVAL,
            Some(pipe) if pipe.is_pipe() => {
                pipes_polled = true;
                let (read, write, hung_up) = pipes::ready(c, pipe);
                let mut r = 0;
                if read {
                    r |= events & (POLLIN | POLLRDNORM);
                }
                if write {
                    r |= events & (POLLOUT | POLLWRNORM);
                }
                if hung_up {
                    // No writer left (a read end), or no reader (a write end).
                    r |= if matches!(pipe, Open::PipeRead { .. }) {
                        POLLHUP
                    } else {
                        POLLERR
                    };
                }
                r
            }
            Some(o) => {
                let (read, write) = match o {
                    Open::Stdin => (true, false),
                    Open::File { access, .. } | Open::Device { access, .. } => {
                        (access.read, access.write)
                    }
                    _ => (false, true),
                };
                let r = if read { POLLIN | POLLRDNORM } else { 0 };
                let w = if write { POLLOUT | POLLWRNORM } else { 0 };
                events & (r | w)
            }
        };
        if revents != 0 {
            ready += 1;
        }
        c.write(at + 6, &revents.to_le_bytes())?;
    }
    Ok((ready, pipes_polled))
}

/// ppoll's timeout: a `struct timespec`, or NULL for forever.
pub fn ppoll(c: &Call, fds: u64, nfds: u64, ts: u64) -> Ret {
    let timeout = if ts == 0 {
        None
    } else {
        match c.timespec(ts) {
            Ok(t) => Some(t),
            Err(e) => return Ret::Errno(e),
        }
    };
    poll(c, fds, nfds, timeout)
}
