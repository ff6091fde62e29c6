//! File and descriptor system calls: standard output and error go to the console events,
//! standard input reads the bytes the options give, files are host files opened read-only
//! (their contents recorded: `FileData` events) or virtual files under /proc and /sys.

use std::rc::Rc;

use weft_trace::Event;

use super::files::{self, Open};
use super::syscall::{Call, Ret, EBADF, EINVAL, ENOENT, ENOTTY, EROFS, ESPIPE};

pub const AT_FDCWD: i32 = -100;
const AT_EMPTY_PATH: u64 = 0x1000;
/// Bytes one read or write moves at most (Linux: a little under 2 GiB).
const MAX_IO: u64 = 1 << 26;
/// How much standard error a failed assert() message is looked for in.
const STDERR_TAIL: usize = 4096;

/// Resolve a path for `openat`-like calls: only absolute paths or ones relative to the
/// working directory (`dirfd` AT_FDCWD) name files.
fn path_arg(c: &Call, dirfd: i32, addr: u64) -> Result<String, i32> {
    let path = c.cstr(addr)?;
    if path.is_empty() {
        return Err(ENOENT);
    }
    if !path.starts_with('/') && dirfd != AT_FDCWD {
        return Err(EBADF);
    }
    Ok(path)
}

/// The contents of `path`: a virtual file, or a host file (recorded in the trace).
fn contents(c: &Call, path: &str) -> Result<Rc<[u8]>, i32> {
    let (cpus, exe, source) = {
        let p = c.process();
        (p.opts.cpus, p.exe().to_string(), p.files.clone())
    };
    if let Some(v) = files::virtual_file(path, cpus, &exe) {
        return v;
    }
    let Some(got) = source.open(path) else {
        // A replay asked for a file its recording did not open: it has diverged; the
        // checker reports where. Answer as for a missing file.
        c.warn(format!(
            "{path}: not opened by the recording; replay has diverged"
        ));
        return Err(ENOENT);
    };
    c.ctl().emit_at_step(|step| Event::FileData {
        step,
        vcpu: c.d.id,
        path: path.to_string(),
        data: got.as_ref().map(|d| d.to_vec()).map_err(|e| *e),
    });
    got
}

pub fn open(c: &Call, dirfd: i32, path: u64, flags: u64) -> Ret {
    const O_ACCMODE: u64 = 3;
    const O_CREAT: u64 = 0o100;
    const O_TRUNC: u64 = 0o1000;
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    if flags & (O_ACCMODE | O_CREAT | O_TRUNC) != 0 {
        c.warn(format!(
            "{}: opened for writing; weft's file system is read-only (returned -EROFS)",
            path
        ));
        return Ret::Errno(EROFS);
    }
    let data = match contents(c, &path) {
        Ok(d) => d,
        Err(e) => return Ret::Errno(e),
    };
    let fd = c.process().fds.insert(Open::File { path, data, pos: 0 });
    fd.map(|f| f as u64).ok_or(24).into()
}

pub fn close(c: &Call, fd: i32) -> Ret {
    if c.process().fds.close(fd) {
        Ret::ok(0u64)
    } else {
        Ret::Errno(EBADF)
    }
}

/// The bytes of the file open as `fd` (for mmap of a file).
pub fn file_data(c: &Call, fd: i32) -> Result<Rc<[u8]>, i32> {
    match c.process().fds.get(fd) {
        Some(Open::File { data, .. }) => Ok(data.clone()),
        Some(_) => Err(19), // ENODEV: the standard streams cannot be mapped
        None => Err(EBADF),
    }
}

/// read / pread64 (at `at`, leaving the offset alone).
pub fn read(c: &Call, fd: i32, buf: u64, len: u64, at: Option<u64>) -> Ret {
    let len = len.min(MAX_IO);
    let bytes = {
        let mut p = c.process();
        let stdin_at = p.stdin_pos;
        let Some(open) = p.fds.get_mut(fd) else {
            return Ret::Errno(EBADF);
        };
        let (data, pos): (Rc<[u8]>, &mut u64) = match open {
            Open::File { data, pos, .. } => (data.clone(), pos),
            Open::Stdin => {
                if at.is_some() {
                    return Ret::Errno(ESPIPE);
                }
                let data: Rc<[u8]> = Rc::from(p.opts.stdin.as_slice());
                let from = (stdin_at as usize).min(data.len());
                let n = (len as usize).min(data.len() - from);
                p.stdin_pos += n as u64;
                let bytes = data[from..from + n].to_vec();
                drop(p);
                return c.write(buf, &bytes).map(|_| n as u64).into();
            }
            Open::Stdout | Open::Stderr => return Ret::Errno(EBADF),
        };
        let from = at.unwrap_or(*pos).min(data.len() as u64) as usize;
        let n = (len as usize).min(data.len() - from);
        if at.is_none() {
            *pos += n as u64;
        }
        data[from..from + n].to_vec()
    };
    c.write(buf, &bytes).map(|_| bytes.len() as u64).into()
}

/// readv: reads into each buffer in turn.
pub fn readv(c: &Call, fd: i32, iov: u64, count: u64) -> Ret {
    let bufs = match iovecs(c, iov, count) {
        Ok(b) => b,
        Err(e) => return Ret::Errno(e),
    };
    let mut total = 0u64;
    for (base, len) in bufs {
        match read(c, fd, base, len, None) {
            Ret::Value(0) => break,
            Ret::Value(n) => {
                total += n;
                if n < len {
                    break;
                }
            }
            other if total == 0 => return other,
            _ => break,
        }
    }
    Ret::ok(total)
}

fn iovecs(c: &Call, iov: u64, count: u64) -> Result<Vec<(u64, u64)>, i32> {
    if count > 1024 {
        return Err(EINVAL);
    }
    (0..count)
        .map(|i| Ok((c.read_u64(iov + i * 16)?, c.read_u64(iov + i * 16 + 8)?)))
        .collect()
}

/// write / writev: standard output and error only (files are read-only).
pub fn write(c: &Call, fd: i32, bufs: &[(u64, u64)]) -> Ret {
    let target = c.process().fds.get(fd).cloned();
    let stream = match target {
        Some(Open::Stdout) => 1u8,
        Some(Open::Stderr) => 2,
        Some(_) => return Ret::Errno(EBADF),
        None => return Ret::Errno(EBADF),
    };
    let mut bytes = Vec::new();
    for &(addr, len) in bufs {
        match c.read(addr, len.min(MAX_IO)) {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(e) => return Ret::Errno(e),
        }
    }
    if stream == 2 {
        let mut p = c.process();
        p.stderr_tail.extend_from_slice(&bytes);
        let over = p.stderr_tail.len().saturating_sub(STDERR_TAIL);
        p.stderr_tail.drain(..over);
    }
    if !bytes.is_empty() {
        c.ctl().console(c.d.id, stream, &bytes);
    }
    Ret::ok(bytes.len() as u64)
}

pub fn writev(c: &Call, fd: i32, iov: u64, count: u64) -> Ret {
    match iovecs(c, iov, count) {
        Ok(bufs) => write(c, fd, &bufs),
        Err(e) => Ret::Errno(e),
    }
}

pub fn lseek(c: &Call, fd: i32, off: i64, whence: u64) -> Ret {
    let mut p = c.process();
    match p.fds.get_mut(fd) {
        Some(Open::File { data, pos, .. }) => {
            let base = match whence {
                0 => 0,
                1 => *pos as i64,
                2 => data.len() as i64,
                _ => return Ret::Errno(EINVAL),
            };
            match base.checked_add(off) {
                Some(n) if n >= 0 => {
                    *pos = n as u64;
                    Ret::ok(n as u64)
                }
                _ => Ret::Errno(EINVAL),
            }
        }
        Some(_) => Ret::Errno(ESPIPE),
        None => Ret::Errno(EBADF),
    }
}

/// Linux's `struct stat` for x86-64 (144 bytes).
fn stat_bytes(mode: u32, size: u64, ino: u64, rdev: u64) -> [u8; 144] {
    let mut b = [0u8; 144];
    let put = |b: &mut [u8; 144], at: usize, v: u64, n: usize| {
        b[at..at + n].copy_from_slice(&v.to_le_bytes()[..n]);
    };
    put(&mut b, 0, 0x801, 8); // st_dev
    put(&mut b, 8, ino, 8);
    put(&mut b, 16, 1, 8); // st_nlink
    put(&mut b, 24, mode as u64, 4);
    put(&mut b, 28, super::UID, 4);
    put(&mut b, 32, super::UID, 4);
    put(&mut b, 40, rdev, 8);
    put(&mut b, 48, size, 8);
    put(&mut b, 56, 4096, 8); // st_blksize
    put(&mut b, 64, size.div_ceil(512), 8); // st_blocks
    b
}

/// A stable inode number for a path (FNV-1a).
fn inode(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;

fn stat_of(open: &Open) -> [u8; 144] {
    match open {
        Open::File { path, data, .. } => {
            stat_bytes(S_IFREG | 0o444, data.len() as u64, inode(path), 0)
        }
        // The standard streams are character devices that are not terminals (see ioctl).
        Open::Stdin => stat_bytes(S_IFCHR | 0o620, 0, 3, 0x0103),
        Open::Stdout | Open::Stderr => stat_bytes(S_IFCHR | 0o620, 0, 3, 0x0103),
    }
}

pub fn fstat(c: &Call, fd: i32, buf: u64) -> Ret {
    let st = match c.process().fds.get(fd) {
        Some(o) => stat_of(o),
        None => return Ret::Errno(EBADF),
    };
    c.write(buf, &st).map(|_| 0).into()
}

/// stat, lstat, newfstatat.
pub fn stat_path(c: &Call, dirfd: i32, path: u64, buf: u64, flags: u64) -> Ret {
    if flags & AT_EMPTY_PATH != 0 && c.cstr(path).is_ok_and(|p| p.is_empty()) {
        return fstat(c, dirfd, buf);
    }
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    let st = match contents(c, &path) {
        Ok(d) => stat_bytes(S_IFREG | 0o444, d.len() as u64, inode(&path), 0),
        Err(files::EISDIR) => stat_bytes(S_IFDIR | 0o555, 4096, inode(&path), 0),
        Err(e) => return Ret::Errno(e),
    };
    c.write(buf, &st).map(|_| 0).into()
}

/// access / faccessat: whether the file can be read (nothing can be written).
pub fn access(c: &Call, dirfd: i32, path: u64, mode: u64) -> Ret {
    const W_OK: u64 = 2;
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    match contents(c, &path) {
        Ok(_) | Err(files::EISDIR) if mode & W_OK != 0 => Ret::Errno(EROFS),
        Ok(_) | Err(files::EISDIR) => Ret::ok(0u64),
        Err(e) => Ret::Errno(e),
    }
}

/// The standard streams are not terminals (so glibc buffers standard output fully, the
/// same whether weft's own output is a terminal or not).
pub fn ioctl(c: &Call, fd: i32) -> Ret {
    if c.process().fds.get(fd).is_some() {
        Ret::Errno(ENOTTY)
    } else {
        Ret::Errno(EBADF)
    }
}

pub fn fcntl(c: &Call, fd: i32, cmd: u64, arg: u64) -> Ret {
    const F_DUPFD: u64 = 0;
    const F_GETFD: u64 = 1;
    const F_SETFD: u64 = 2;
    const F_GETFL: u64 = 3;
    const F_SETFL: u64 = 4;
    const F_DUPFD_CLOEXEC: u64 = 1030;
    let mut p = c.process();
    let Some(open) = p.fds.get(fd) else {
        return Ret::Errno(EBADF);
    };
    let writable = matches!(open, Open::Stdout | Open::Stderr);
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => p.fds.dup(fd, arg as i32).map(|f| f as u64).ok_or(24).into(),
        F_GETFD | F_SETFD | F_SETFL => Ret::ok(0u64),
        F_GETFL => Ret::ok(if writable { 1u64 } else { 0 }),
        _ => Ret::Errno(EINVAL),
    }
}

/// readlink / readlinkat: only /proc/self/exe is a link: to argv[0], made absolute
/// against the virtual working directory (glibc insists on an absolute path).
pub fn readlink(c: &Call, path: u64, buf: u64, size: u64) -> Ret {
    let path = match c.cstr(path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    if path != "/proc/self/exe" {
        return Ret::Errno(if path.starts_with("/proc/") {
            ENOENT
        } else {
            EINVAL
        });
    }
    let exe = c.process().exe().to_string();
    let exe = if exe.starts_with('/') {
        exe
    } else {
        format!("{}/{}", super::syscall::CWD, exe.trim_start_matches("./"))
    };
    let n = exe.len().min(size as usize);
    c.write(buf, &exe.as_bytes()[..n]).map(|_| n as u64).into()
}
