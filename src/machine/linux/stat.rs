//! What stat and access say: Linux's `struct stat` for the process's files, devices,
//! pipes and standard streams, and whether a path exists.

use super::devices::{self, DevicePath};
use super::files::{self, Open};
use super::fs::{find, path_arg, Found};
use super::syscall::{Call, Ret, EBADF, ENOENT};

const AT_EMPTY_PATH: u64 = 0x1000;

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
pub(super) fn inode(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

fn stat_of(open: &Open) -> [u8; 144] {
    match open {
        Open::File { path, data, .. } => stat_bytes(S_IFREG | 0o644, data.len(), inode(path), 0),
        // The standard streams are character devices that are not terminals (see ioctl).
        Open::Stdin => stat_bytes(S_IFCHR | 0o620, 0, 3, 0x0103),
        Open::Stdout | Open::Stderr => stat_bytes(S_IFCHR | 0o620, 0, 3, 0x0103),
        Open::PipeRead { id, .. } | Open::PipeWrite { id, .. } => {
            stat_bytes(S_IFIFO | 0o600, 0, 0x1000 + *id as u64, 0)
        }
        Open::Device { dev, .. } => device_stat(*dev),
        Open::Dir { path, .. } => stat_bytes(S_IFDIR | 0o755, 4096, inode(path), 0),
    }
}

fn device_stat(dev: devices::Device) -> [u8; 144] {
    stat_bytes(S_IFCHR | 0o666, 0, dev.rdev(), dev.rdev())
}

/// Whether `fd` is open (fchmod: modes are not modelled).
pub fn fstat_exists(c: &Call, fd: i32) -> Ret {
    match c.process().fds.get(fd) {
        Some(_) => Ret::ok(0u64),
        None => Ret::Errno(EBADF),
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
    let st = match find(c, &path) {
        Found::Device(DevicePath::Device(dev)) => device_stat(dev),
        Found::Device(DevicePath::Fd(n)) => match c.process().fds.get(n) {
            Some(o) => stat_of(o),
            None => return Ret::Errno(ENOENT),
        },
        Found::Own(w) => stat_bytes(S_IFREG | 0o644, w.borrow().len() as u64, inode(&path), 0),
        Found::Host(Ok(d)) => stat_bytes(S_IFREG | 0o644, d.len() as u64, inode(&path), 0),
        Found::Host(Err(files::EISDIR)) => stat_bytes(S_IFDIR | 0o755, 4096, inode(&path), 0),
        Found::Removed => return Ret::Errno(ENOENT),
        Found::Host(Err(e)) => return Ret::Errno(e),
    };
    c.write(buf, &st).map(|_| 0).into()
}

/// access / faccessat: whether the file exists (every file may be read and written:
/// writes stay in the process).
pub fn access(c: &Call, dirfd: i32, path: u64, _mode: u64) -> Ret {
    let path = match path_arg(c, dirfd, path) {
        Ok(p) => p,
        Err(e) => return Ret::Errno(e),
    };
    match find(c, &path) {
        Found::Device(_) | Found::Own(_) | Found::Host(Ok(_)) | Found::Host(Err(files::EISDIR)) => {
            Ret::ok(0u64)
        }
        Found::Removed => Ret::Errno(ENOENT),
        Found::Host(Err(e)) => Ret::Errno(e),
    }
}
