//! Directories a guest reads (opendir, readdir: open with O_DIRECTORY, getdents64).
//!
//! A host directory's entries are read once, sorted by name (the host's order is
//! arbitrary), and recorded in the trace like a file's contents: a `FileData` event for
//! the path [`listing_key`] gives, so a replay lists the same entries without the host.
//! The process's own files (created in the run) are added, and paths it removed left out.
//! Making, removing and renaming directories is not supported (docs/linux.md).

use std::rc::Rc;

use weft_trace::Event;

use super::files::Open;
use super::syscall::{Call, Ret, EBADF, EINVAL, ENOENT};

const DT_UNKNOWN: u8 = 0;
const DT_DIR: u8 = 4;
const DT_REG: u8 = 8;
const DT_LNK: u8 = 10;

/// The path under which a directory's listing is recorded: the directory with `/.`
/// appended (names the directory itself, so it can never be a file's contents).
pub fn listing_key(dir: &str) -> String {
    format!("{}/.", dir.trim_end_matches('/'))
}

/// A listing as bytes: per entry, its type (a `DT_*` byte), its name, a NUL; sorted by
/// name, `.` and `..` first.
fn encode(entries: &[(String, u8)]) -> Rc<[u8]> {
    let mut out = Vec::new();
    for (name, kind) in entries {
        out.push(*kind);
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    Rc::from(out)
}

fn decode(listing: &[u8]) -> Vec<(String, u8)> {
    let mut out = Vec::new();
    let mut rest = listing;
    while let Some((&kind, tail)) = rest.split_first() {
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        out.push((String::from_utf8_lossy(&tail[..end]).into_owned(), kind));
        rest = tail.get(end + 1..).unwrap_or(&[]);
    }
    out
}

/// The host directory `dir`'s entries (see [`encode`]), or the errno reading it gave.
pub fn read_host_dir(dir: &str) -> Result<Rc<[u8]>, i32> {
    let rd = std::fs::read_dir(dir).map_err(|e| e.raw_os_error().unwrap_or(ENOENT))?;
    let mut entries: Vec<(String, u8)> = rd
        .filter_map(Result::ok)
        .map(|e| {
            let kind = match e.file_type() {
                Ok(t) if t.is_dir() => DT_DIR,
                Ok(t) if t.is_file() => DT_REG,
                Ok(t) if t.is_symlink() => DT_LNK,
                _ => DT_UNKNOWN,
            };
            (e.file_name().to_string_lossy().into_owned(), kind)
        })
        .collect();
    entries.sort();
    let mut all = vec![(".".to_string(), DT_DIR), ("..".to_string(), DT_DIR)];
    all.extend(entries);
    Ok(encode(&all))
}

/// Open directory `path` for reading its entries (an open of a directory, read-only).
pub fn open_dir(c: &Call, path: String) -> Ret {
    let source = c.process().files.clone();
    let Some(got) = source.list(&path) else {
        c.warn(format!(
            "{path}: not listed by the recording; replay has diverged"
        ));
        return Ret::Errno(ENOENT);
    };
    c.ctl().emit_at_step(|step| Event::FileData {
        step,
        vcpu: c.d.id,
        path: listing_key(&path),
        data: got.as_ref().map(|d| d.to_vec()).map_err(|e| *e),
    });
    let host = match got {
        Ok(l) => l,
        Err(e) => return Ret::Errno(e),
    };
    // The process's own view: its files in this directory added, removed ones left out.
    let mut entries = decode(&host);
    {
        let p = c.process();
        let prefix = format!("{}/", path.trim_end_matches('/'));
        entries.retain(|(n, _)| !p.removed.contains(&format!("{prefix}{n}")));
        for own in p.written.keys() {
            if let Some(name) = own.strip_prefix(&prefix) {
                if !name.contains('/') && !entries.iter().any(|(n, _)| n == name) {
                    entries.push((name.to_string(), DT_REG));
                }
            }
        }
    }
    let dots = 2.min(entries.len());
    entries[dots..].sort();
    let fd = c.process().fds.insert(Open::Dir {
        path,
        listing: encode(&entries),
        pos: 0,
    });
    fd.map(|f| f as u64).ok_or(24).into()
}

/// getdents64: as many `struct linux_dirent64` as fit in `count` bytes from the
/// directory's position; 0 at the end; EINVAL if not even the next one fits.
pub fn getdents64(c: &Call, fd: i32, buf: u64, count: u64) -> Ret {
    let (path, listing, pos) = match c.process().fds.get(fd) {
        Some(Open::Dir { path, listing, pos }) => (path.clone(), listing.clone(), *pos),
        Some(_) => return Ret::Errno(20), // ENOTDIR
        None => return Ret::Errno(EBADF),
    };
    let entries = decode(&listing);
    let mut out = Vec::new();
    let mut next = pos;
    for (name, kind) in entries.iter().skip(pos as usize) {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        if (out.len() + reclen) as u64 > count {
            break;
        }
        next += 1;
        let ino = files_inode(&format!("{}/{name}", path.trim_end_matches('/')));
        let mut rec = vec![0u8; reclen];
        rec[..8].copy_from_slice(&ino.to_le_bytes());
        rec[8..16].copy_from_slice(&next.to_le_bytes());
        rec[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        rec[18] = *kind;
        rec[19..19 + name.len()].copy_from_slice(name.as_bytes());
        out.extend_from_slice(&rec);
    }
    if out.is_empty() && (pos as usize) < entries.len() {
        return Ret::Errno(EINVAL);
    }
    if let Err(e) = c.write(buf, &out) {
        return Ret::Errno(e);
    }
    if let Some(Open::Dir { pos, .. }) = c.process().fds.get_mut(fd) {
        *pos = next;
    }
    Ret::ok(out.len() as u64)
}

/// A directory's position after lseek (rewinddir, seekdir: offsets are entry indices,
/// as getdents64's `d_off` says).
pub fn seek(pos: &mut u64, off: i64, whence: u64) -> Ret {
    match (whence, u64::try_from(off)) {
        (0, Ok(n)) => {
            *pos = n;
            Ret::ok(n)
        }
        (1, _) if off == 0 => Ret::ok(*pos),
        _ => Ret::Errno(EINVAL),
    }
}

fn files_inode(path: &str) -> u64 {
    super::stat::inode(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_sorted_with_dot_entries_first() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b"), b"").unwrap();
        std::fs::write(dir.path().join("a"), b"").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let l = read_host_dir(dir.path().to_str().unwrap()).unwrap();
        let names: Vec<(String, u8)> = decode(&l);
        assert_eq!(
            names,
            vec![
                (".".into(), DT_DIR),
                ("..".into(), DT_DIR),
                ("a".into(), DT_REG),
                ("b".into(), DT_REG),
                ("sub".into(), DT_DIR),
            ]
        );
        assert_eq!(read_host_dir("/nonexistent/dir").unwrap_err(), ENOENT);
        assert_eq!(listing_key("/a/b/"), "/a/b/.");
    }
}
