//! The few process calls time travel needs: fork for checkpoints, waiting and killing.
//!
//! A checkpoint is a forked copy of the executor process, stopped at an instruction
//! boundary. Forking is the only way to copy a machine mid-run: every suspended vCPU holds
//! unicorn's C frames on its coroutine stack, inside `emu_start`, which no API can save;
//! a forked process carries all of it (stacks, translation caches, guest RAM) with
//! copy-on-write pages. Callers fork only from single-threaded processes.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Which side of a fork this is.
pub enum Fork {
    Parent(i32),
    Child,
}

/// fork(2).
pub fn fork() -> io::Result<Fork> {
    // SAFETY: the debugger's processes are single-threaded when they fork (the executor runs
    // its vCPUs as coroutines on its only thread; the front forks before it starts gdb or
    // any thread), so the child's copy of every lock and allocator is consistent.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Make orphaned descendants (checkpoints whose executor is gone) children of this
/// process, so that it can reap them.
pub fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Let the kernel reap this process's children (a checkpoint does not wait for the
/// executors it spawns).
pub fn ignore_children() {
    // SAFETY: setting SIGCHLD's disposition to SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
}

/// Kill `pid` and reap it if it is a child of this process.
pub fn kill(pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: plain system calls on a pid this session created; a pid that is gone or not
    // our child only makes them fail.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
}

/// Reap `pid` if it has exited (without blocking).
pub fn reap(pid: i32) {
    // SAFETY: as in `kill`.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
}

/// Leave at once, running no destructors or exit handlers (a forked copy must not flush
/// its parent's buffers or unwind suspended coroutines).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// Wait until `a` is readable (`Some(true)`), `b` is readable or hung up (`Some(false)`),
/// or the timeout passes (`None`).
pub fn wait_readable(a: &impl AsRawFd, b: &impl AsRawFd, timeout: Duration) -> Option<bool> {
    let mut fds = [
        libc::pollfd {
            fd: a.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return None;
    }
    if fds[1].revents != 0 {
        return Some(false);
    }
    Some(fds[0].revents != 0)
}
