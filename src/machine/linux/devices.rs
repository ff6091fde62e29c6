//! Device files a program opens: /dev/null, /dev/zero, /dev/full, /dev/urandom and
//! /dev/random are emulated, never read from the host. A host device is endless (reading
//! /dev/urandom to its end never ends) and not deterministic, so the host's must not be
//! read at open as regular files are; these produce their bytes at each read, as many as
//! the read asks for, so host memory stays bounded whatever the guest does.
//!
//! Nothing of them goes into the trace: the null and zero devices have nothing to record,
//! and the random devices read the process's seeded stream (the one getrandom reads, from
//! `--random-seed`, which the trace header keeps), so a replay regenerates the same bytes.
//! The standard streams' names (/dev/stdin, /dev/stdout, /dev/stderr) open the process's
//! own standard streams. Any other device, FIFO or socket on the host is refused (ENXIO,
//! with a warning) rather than read.

use super::syscall::Call;

/// Bytes a random-device read produces per step of writing it to guest memory, so that a
/// large read costs this much host memory at a time, not its whole length.
const CHUNK: u64 = 64 << 10;

/// An emulated device file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// /dev/null: reads end at once, writes vanish.
    Null,
    /// /dev/zero: reads give zeros, writes vanish; mmap gives zeroed memory.
    Zero,
    /// /dev/full: reads give zeros, writes fail with ENOSPC.
    Full,
    /// /dev/urandom and /dev/random: the process's seeded random stream; writes vanish.
    Random,
}

/// What opening a path under /dev gives instead of a host file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevicePath {
    Device(Device),
    /// /dev/stdin (0), /dev/stdout (1), /dev/stderr (2), /dev/fd/N: that descriptor again.
    Fd(i32),
}

/// The emulated device (or standard stream) `path` names, if it names one.
pub fn lookup(path: &str) -> Option<DevicePath> {
    Some(match path {
        "/dev/null" => DevicePath::Device(Device::Null),
        "/dev/zero" => DevicePath::Device(Device::Zero),
        "/dev/full" => DevicePath::Device(Device::Full),
        "/dev/urandom" | "/dev/random" => DevicePath::Device(Device::Random),
        "/dev/stdin" => DevicePath::Fd(0),
        "/dev/stdout" => DevicePath::Fd(1),
        "/dev/stderr" => DevicePath::Fd(2),
        _ => {
            let n = path.strip_prefix("/dev/fd/")?;
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 4 {
                return None;
            }
            DevicePath::Fd(n.parse().ok()?)
        }
    })
}

impl Device {
    /// Linux's device number (major 1, the memory devices), for stat.
    pub fn rdev(self) -> u64 {
        let minor = match self {
            Device::Null => 3,
            Device::Zero => 5,
            Device::Full => 7,
            Device::Random => 9,
        };
        (1 << 8) | minor
    }

    /// Read `len` bytes into guest memory at `buf`: how many were read, or an errno.
    pub fn read(self, c: &Call, buf: u64, len: u64) -> Result<u64, i32> {
        if self == Device::Null {
            return Ok(0);
        }
        let mut done = 0;
        let mut chunk = Vec::new();
        while done < len {
            let n = (len - done).min(CHUNK);
            chunk.clear();
            match self {
                Device::Random => {
                    let mut p = c.process();
                    while (chunk.len() as u64) < n {
                        chunk.extend_from_slice(&p.random.next_u64().to_le_bytes());
                    }
                    chunk.truncate(n as usize);
                }
                _ => chunk.resize(n as usize, 0),
            }
            if let Err(e) = c.write(buf + done, &chunk) {
                // Like Linux: a fault after some bytes were read returns what was read.
                return if done == 0 { Err(e) } else { Ok(done) };
            }
            done += n;
        }
        Ok(done)
    }

    /// A write of `len` bytes: how many were taken, or an errno.
    pub fn write(self, len: u64) -> Result<u64, i32> {
        const ENOSPC: i32 = 28;
        match self {
            Device::Full if len > 0 => Err(ENOSPC),
            _ => Ok(len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_paths_are_recognised_and_others_are_not() {
        assert_eq!(lookup("/dev/zero"), Some(DevicePath::Device(Device::Zero)));
        assert_eq!(
            lookup("/dev/random"),
            Some(DevicePath::Device(Device::Random))
        );
        assert_eq!(lookup("/dev/stderr"), Some(DevicePath::Fd(2)));
        assert_eq!(lookup("/dev/fd/7"), Some(DevicePath::Fd(7)));
        assert_eq!(lookup("/dev/fd/"), None);
        assert_eq!(lookup("/dev/fd/x"), None);
        assert_eq!(lookup("/dev/fd/99999"), None);
        assert_eq!(lookup("/dev/sda"), None);
        assert_eq!(lookup("/etc/passwd"), None);
    }

    #[test]
    fn writes_vanish_except_on_the_full_device() {
        assert_eq!(Device::Null.write(10), Ok(10));
        assert_eq!(Device::Random.write(3), Ok(3));
        assert_eq!(Device::Full.write(1), Err(28));
        assert_eq!(Device::Full.write(0), Ok(0));
        assert_eq!(Device::Zero.rdev(), 0x105);
    }
}
