//! File and descriptor system calls: standard output and error go to the console events,
//! standard input reads the bytes the options give, files are host files (their contents
//! recorded: `FileData` events) or virtual files under /proc and /sys; a file opened for
//! writing becomes the process's own copy, so nothing a guest does reaches the host.

use std::rc::Rc;

use weft_trace::Event;

use super::devices::{self, DevicePath};
use super::files::{self, Open};
use super::locks;
use super::pipes;
use super::syscall::{Call, Ret, EBADF, EINVAL, ENOENT, ENOTTY, EROFS, ESPIPE};

pub const AT_FDCWD: i32 = -100;
/// Bytes one read or write moves at most (Linux: a little under 2 GiB).
const MAX_IO: u64 = 1 << 26;
/// How much standard error a failed assert() message is looked for in.
const STDERR_TAIL: usize = 4096;

/// Resolve a path for `openat`-like calls: only absolute paths or ones relative to the
/// working directory (`dirfd` AT_FDCWD) name files.
pub(super) fn path_arg(c: &Call, dirfd: i32, addr: u64) -> Result<String, i32> {
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
    if got == Err(files::ENXIO) {
        c.warn(format!(
            "{path}: a device, FIFO or socket on the host; weft reads only regular files \
             and emulates /dev/null, /dev/zero, /dev/full and /dev/urandom (ENXIO)"
        ));
    }
    c.ctl().emit_at_step(|step| Event::FileData {
        step,
        vcpu: c.d.id,
        path: path.to_string(),
        data: got.as_ref().map(|d| d.to_vec()).map_err(|e| *e),
    });
    got
}

/// What `path` is to the process: an emulated device, one of its own files, a removed
/// one, or whatever the host (or a virtual file) has.
pub(super) enum Found {
    Device(DevicePath),
    Own(files::Written),
    Removed,
    Host(Result<Rc<[u8]>, i32>),
}

pub(super) fn find(c: &Call, path: &str) -> Found {
    if let Some(d) = devices::lookup(path) {
        return Found::Device(d);
    }
    {
        let p = c.process();
        if let Some(w) = p.written.get(path) {
            return Found::Own(w.clone());
        }
        if p.removed.contains(path) {
            return Found::Removed;
        }
    }
    Found::Host(contents(c, path))
}

/// Make `path` one of the process's own files, holding `bytes`.
fn own(c: &Call, path: &str, bytes: Vec<u8>) -> files::Written {
    let w: files::Written = Rc::new(std::cell::RefCell::new(bytes));
    let mut p = c.process();
    p.removed.remove(path);
    p.written.insert(path.to_string(), w.clone());
    w
}

pub fn open(c: &Call, dirfd: i32, path: u64, flags: u64) -> Ret {
    const O_CREAT: u64 = 0o100;
    const O_EXCL: u64 = 0o200;
    const O_TRUNC: u64 = 0o1000;
    const O_DIRECTORY: u64 = 0o200000;
    const ENOTDIR: i32 = 20;
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    let access = files::Access::from_flags(flags);
    let (create, excl, trunc) = (
        flags & O_CREAT != 0,
        flags & O_CREAT != 0 && flags & O_EXCL != 0,
        flags & O_TRUNC != 0,
    );
    let writing = access.write || create || trunc;
    match devices::lookup(&path) {
        Some(_) if excl => return Ret::Errno(files::EEXIST),
        Some(DevicePath::Device(dev)) => {
            let fd = c.process().fds.insert(Open::Device { dev, access });
            return fd.map(|f| f as u64).ok_or(24).into();
        }
        // The standard streams by name: the descriptor again (ENOENT if it is closed).
        Some(DevicePath::Fd(n)) => {
            let mut p = c.process();
            if p.fds.get(n).is_none() {
                return Ret::Errno(ENOENT);
            }
            return p.fds.dup(n, 0).map(|f| f as u64).ok_or(24).into();
        }
        None => {}
    }
    let data = if !writing {
        match find(c, &path) {
            Found::Own(_) | Found::Host(Ok(_)) if flags & O_DIRECTORY != 0 => {
                return Ret::Errno(ENOTDIR)
            }
            Found::Own(w) => files::Data::Written(w),
            Found::Device(_) => unreachable!("devices are opened above"),
            Found::Removed => return Ret::Errno(ENOENT),
            Found::Host(Ok(d)) => files::Data::Host(d),
            Found::Host(Err(files::EISDIR)) => return super::dirs::open_dir(c, path),
            Found::Host(Err(e)) => return Ret::Errno(e),
        }
    } else {
        let virtual_file = {
            let p = c.process();
            files::virtual_file(&path, p.opts.cpus, p.exe()).is_some()
        };
        if virtual_file {
            return Ret::Errno(files::EACCES);
        }
        // Truncating a file needs nothing of the host's copy, unless O_EXCL asks whether
        // it exists.
        let found = if trunc && !excl && !c.process().removed.contains(&path) {
            match c.process().written.get(&path) {
                Some(w) => Found::Own(w.clone()),
                None => Found::Host(Err(ENOENT)),
            }
        } else {
            find(c, &path)
        };
        let w = match found {
            Found::Own(_) | Found::Host(Ok(_)) if excl => return Ret::Errno(files::EEXIST),
            Found::Device(_) => unreachable!("devices are opened above"),
            Found::Own(w) => w,
            Found::Host(Ok(d)) => own(c, &path, if trunc { Vec::new() } else { d.to_vec() }),
            Found::Removed | Found::Host(Err(ENOENT)) if create || trunc => {
                own(c, &path, Vec::new())
            }
            Found::Removed => return Ret::Errno(ENOENT),
            Found::Host(Err(e)) => return Ret::Errno(e),
        };
        if trunc {
            w.borrow_mut().clear();
        }
        files::Data::Written(w)
    };
    let mut p = c.process();
    p.descs += 1;
    let desc = p.descs;
    let fd = p.fds.insert(Open::File {
        path,
        data,
        pos: 0,
        access,
        desc,
    });
    fd.map(|f| f as u64).ok_or(24).into()
}

pub fn close(c: &Call, fd: i32) -> Ret {
    let closed = c.process().fds.take(fd);
    match closed {
        Some(o) => {
            was_closed(c, &o);
            Ret::ok(0u64)
        }
        None => Ret::Errno(EBADF),
    }
}

/// What closing a descriptor (close, or dup2 onto it) does besides: pipe ends wake their
/// waiters, files drop the record locks that go with it.
pub fn was_closed(c: &Call, o: &Open) {
    if o.is_pipe() {
        pipes::changed(c);
    }
    locks::closed(c, o);
}

/// The bytes of the file open as `fd` (for mmap of a file, which copies them).
pub fn file_data(c: &Call, fd: i32) -> Result<Rc<[u8]>, i32> {
    match c.process().fds.get(fd) {
        Some(Open::File { data, .. }) => Ok(data.snapshot()),
        // Mapping /dev/zero is a way to ask for zeroed memory.
        Some(Open::Device {
            dev: devices::Device::Zero,
            ..
        }) => Ok(Rc::from(&[][..])),
        Some(_) => Err(19), // ENODEV: the standard streams and other devices cannot be mapped
        None => Err(EBADF),
    }
}

/// read / pread64 (at `at`, leaving the offset alone).
pub fn read(c: &Call, fd: i32, buf: u64, len: u64, at: Option<u64>) -> Ret {
    let len = len.min(MAX_IO);
    let pipe = c.process().fds.get(fd).cloned();
    match pipe {
        Some(Open::PipeRead { .. }) if at.is_some() => return Ret::Errno(ESPIPE),
        Some(Open::PipeRead { id, nonblock }) => return pipes::read(c, id, nonblock, buf, len),
        Some(Open::PipeWrite { .. }) => return Ret::Errno(EBADF),
        Some(Open::Device { access, .. }) if !access.read => return Ret::Errno(EBADF),
        Some(Open::Device { dev, .. }) => return dev.read(c, buf, len).into(),
        _ => {}
    }
    let bytes = {
        let mut p = c.process();
        let stdin_at = p.stdin_pos;
        let Some(open) = p.fds.get_mut(fd) else {
            return Ret::Errno(EBADF);
        };
        let (data, pos) = match open {
            Open::File { access, .. } if !access.read => return Ret::Errno(EBADF),
            Open::File { data, pos, .. } => (data.clone(), pos),
            Open::Dir { .. } => return Ret::Errno(files::EISDIR),
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
            // Pipes and devices were handled above.
            Open::Stdout
            | Open::Stderr
            | Open::PipeRead { .. }
            | Open::PipeWrite { .. }
            | Open::Device { .. } => return Ret::Errno(EBADF),
        };
        let bytes = data.read(at.unwrap_or(*pos), len);
        if at.is_none() {
            *pos += bytes.len() as u64;
        }
        bytes
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

/// write / writev / pwrite64 (at `at`, leaving the offset alone): standard output and
/// error become console events; files opened for writing change in the process.
pub fn write(c: &Call, fd: i32, bufs: &[(u64, u64)], at: Option<u64>) -> Ret {
    let target = c.process().fds.get(fd).cloned();
    let stream = match target {
        Some(Open::Stdout) => 1u8,
        Some(Open::Stderr) => 2,
        Some(Open::File { access, .. }) if !access.write => return Ret::Errno(EBADF),
        Some(Open::File { .. }) => 0,
        Some(Open::PipeWrite { .. }) => 3,
        Some(Open::Device { access, .. }) if !access.write => return Ret::Errno(EBADF),
        // Nothing to keep: the bytes are not even read (bounded whatever the length).
        Some(Open::Device { dev, .. }) => {
            let len = bufs.iter().fold(0u64, |n, b| n.saturating_add(b.1));
            return dev.write(len.min(MAX_IO)).into();
        }
        Some(Open::Stdin | Open::PipeRead { .. } | Open::Dir { .. }) | None => {
            return Ret::Errno(EBADF)
        }
    };
    if stream != 0 && at.is_some() {
        return Ret::Errno(ESPIPE);
    }
    let mut bytes = Vec::new();
    for &(addr, len) in bufs {
        match c.read(addr, len.min(MAX_IO)) {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(e) => return Ret::Errno(e),
        }
    }
    if let Some(Open::PipeWrite { id, nonblock }) = target {
        return pipes::write(c, id, nonblock, &bytes);
    }
    if stream == 0 {
        let mut p = c.process();
        let Some(Open::File {
            data: files::Data::Written(w),
            pos,
            access,
            ..
        }) = p.fds.get_mut(fd)
        else {
            return Ret::Errno(EBADF);
        };
        let mut file = w.borrow_mut();
        let from = match at {
            Some(off) => off,
            None if access.append => file.len() as u64,
            None => *pos,
        };
        let end = from.saturating_add(bytes.len() as u64);
        if end > files::MAX_FILE {
            return Ret::Errno(files::EFBIG);
        }
        if file.len() < end as usize {
            file.resize(end as usize, 0);
        }
        file[from as usize..end as usize].copy_from_slice(&bytes);
        if at.is_none() {
            *pos = end;
        }
        return Ret::ok(bytes.len() as u64);
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

/// ftruncate: a file opened for writing gets `len` bytes (cut, or grown with zeros).
pub fn ftruncate(c: &Call, fd: i32, len: u64) -> Ret {
    if len > files::MAX_FILE {
        return Ret::Errno(files::EFBIG);
    }
    match c.process().fds.get(fd) {
        Some(Open::File {
            data: files::Data::Written(w),
            access,
            ..
        }) if access.write => {
            w.borrow_mut().resize(len as usize, 0);
            Ret::ok(0u64)
        }
        Some(_) => Ret::Errno(EINVAL),
        None => Ret::Errno(EBADF),
    }
}

/// fsync, fdatasync: nothing to do (nothing leaves the process).
pub fn fsync(c: &Call, fd: i32) -> Ret {
    if c.process().fds.get(fd).is_some() {
        Ret::ok(0u64)
    } else {
        Ret::Errno(EBADF)
    }
}

/// unlink / unlinkat: the file is gone for the process (the host's stays as it is).
pub fn unlink(c: &Call, dirfd: i32, path: u64, flags: u64) -> Ret {
    const AT_REMOVEDIR: u64 = 0x200;
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    if flags & AT_REMOVEDIR != 0 {
        return Ret::Errno(EROFS);
    }
    match find(c, &path) {
        Found::Own(_) | Found::Host(Ok(_)) => {
            let mut p = c.process();
            p.written.remove(&path);
            p.removed.insert(path);
            Ret::ok(0u64)
        }
        Found::Removed => Ret::Errno(ENOENT),
        Found::Device(_) => Ret::Errno(files::EACCES),
        Found::Host(Err(files::EISDIR)) => Ret::Errno(files::EISDIR),
        Found::Host(Err(e)) => Ret::Errno(e),
    }
}

/// rename / renameat / renameat2: within the process's view of the file system.
pub fn rename(c: &Call, olddir: i32, old: u64, newdir: i32, new: u64) -> Ret {
    let (old, new) = match (path_arg(c, olddir, old), path_arg(c, newdir, new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return Ret::Errno(e),
    };
    let bytes = match find(c, &old) {
        Found::Own(w) => w.borrow().clone(),
        Found::Host(Ok(d)) => d.to_vec(),
        Found::Device(_) => return Ret::Errno(files::EACCES),
        Found::Removed => return Ret::Errno(ENOENT),
        Found::Host(Err(e)) => return Ret::Errno(e),
    };
    if old != new {
        let w = {
            let mut p = c.process();
            p.removed.insert(old.clone());
            p.written.remove(&old)
        };
        match w {
            // Descriptors open on it keep the same file under its new name.
            Some(w) => {
                let mut p = c.process();
                p.removed.remove(&new);
                p.written.insert(new, w);
            }
            None => {
                own(c, &new, bytes);
            }
        }
    }
    Ret::ok(0u64)
}

pub fn writev(c: &Call, fd: i32, iov: u64, count: u64) -> Ret {
    match iovecs(c, iov, count) {
        Ok(bufs) => write(c, fd, &bufs, None),
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
        Some(Open::Dir { pos, .. }) => super::dirs::seek(pos, off, whence),
        // Linux's memory devices ignore seeks.
        Some(Open::Device { .. }) => Ret::ok(0u64),
        Some(_) => Ret::Errno(ESPIPE),
        None => Ret::Errno(EBADF),
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
    if locks::is_lock_cmd(cmd) {
        return locks::fcntl_lock(c, fd, cmd, arg);
    }
    let mut p = c.process();
    let Some(open) = p.fds.get(fd) else {
        return Ret::Errno(EBADF);
    };
    let flags = match open {
        Open::Stdout | Open::Stderr => 1,
        Open::Stdin => 0,
        Open::File { access, .. } | Open::Device { access, .. } => access.flags(),
        Open::Dir { .. } => 0o200000, // O_RDONLY | O_DIRECTORY
        pipe => pipes::flags(pipe).unwrap_or(0),
    };
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => p.fds.dup(fd, arg as i32).map(|f| f as u64).ok_or(24).into(),
        F_SETFL => {
            if let Some(o) = p.fds.get_mut(fd) {
                pipes::set_flags(o, arg);
            }
            Ret::ok(0u64)
        }
        F_GETFD | F_SETFD => Ret::ok(0u64),
        F_GETFL => Ret::ok(flags),
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
