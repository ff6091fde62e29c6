//! Files a Linux guest can open: host files, whose contents a recording keeps (so a replay
//! needs no host files), a few virtual files that describe the virtual machine rather
//! than the host, files the guest writes (kept in the process: the host is never
//! changed), and the table of open file descriptors.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// Largest host file a guest may open (its contents go into the trace).
pub const MAX_FILE: u64 = 64 << 20;

pub const ENOENT: i32 = 2;
pub const EISDIR: i32 = 21;
pub const EFBIG: i32 = 27;
pub const EACCES: i32 = 13;
pub const EEXIST: i32 = 17;
/// A host device, FIFO or socket: weft does not read it (see `devices`).
pub const ENXIO: i32 = 6;

/// The bytes of a file the guest created or opened for writing, shared by every
/// descriptor open on it; they live as long as the run.
pub type Written = Rc<RefCell<Vec<u8>>>;

/// What an open file's bytes are.
#[derive(Clone, Debug)]
pub enum Data {
    /// A host or virtual file opened read-only: as recorded.
    Host(Rc<[u8]>),
    /// A file of the process's own (see [`Written`]).
    Written(Written),
}

impl Data {
    pub fn len(&self) -> u64 {
        match self {
            Data::Host(d) => d.len() as u64,
            Data::Written(w) => w.borrow().len() as u64,
        }
    }

    /// At most `n` bytes from offset `from`.
    pub fn read(&self, from: u64, n: u64) -> Vec<u8> {
        let read = |d: &[u8]| {
            let from = from.min(d.len() as u64) as usize;
            let n = (n as usize).min(d.len() - from);
            d[from..from + n].to_vec()
        };
        match self {
            Data::Host(d) => read(d),
            Data::Written(w) => read(&w.borrow()),
        }
    }

    /// The bytes as they are now (for mmap, which copies them).
    pub fn snapshot(&self) -> Rc<[u8]> {
        match self {
            Data::Host(d) => d.clone(),
            Data::Written(w) => Rc::from(w.borrow().as_slice()),
        }
    }
}

/// What a file descriptor may do, from its open flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    /// O_APPEND: every write goes to the end.
    pub append: bool,
}

impl Access {
    /// The O_ACCMODE bits and O_APPEND of `flags`, as open and F_GETFL have them.
    pub fn from_flags(flags: u64) -> Access {
        const O_APPEND: u64 = 0o2000;
        let mode = flags & 3;
        Access {
            read: mode != 1,
            write: mode == 1 || mode == 2,
            append: flags & O_APPEND != 0,
        }
    }

    pub fn flags(self) -> u64 {
        let mode = match (self.read, self.write) {
            (_, false) => 0,
            (false, true) => 1,
            (true, true) => 2,
        };
        mode | if self.append { 0o2000 } else { 0 }
    }
}

/// A file's bytes, or the errno opening it gave.
pub type Contents = Result<Rc<[u8]>, i32>;

/// Where the contents of host files come from.
pub enum FileSource {
    /// Read from the host when first opened in this machine's life, then the same bytes
    /// for every later open and run (so every schedule of a search sees one file system).
    Host(RefCell<BTreeMap<String, Contents>>),
    /// What a recording saw, per path, in the order its opens happened.
    Recorded(RefCell<BTreeMap<String, VecDeque<Contents>>>),
}

impl Default for FileSource {
    fn default() -> Self {
        FileSource::Host(RefCell::default())
    }
}

impl FileSource {
    /// A source that gives back what a recording saw (its `FileData` events, in order).
    pub fn recorded(files: impl IntoIterator<Item = (String, Result<Vec<u8>, i32>)>) -> Self {
        let mut map: BTreeMap<String, VecDeque<Contents>> = BTreeMap::new();
        for (path, data) in files {
            map.entry(path).or_default().push_back(data.map(Rc::from));
        }
        FileSource::Recorded(RefCell::new(map))
    }

    /// The contents of host file `path` (an errno if it cannot be read); `None` when a
    /// replay asks for a file its recording never opened (the replay has diverged).
    pub fn open(&self, path: &str) -> Option<Result<Rc<[u8]>, i32>> {
        match self {
            FileSource::Host(cache) => Some(
                cache
                    .borrow_mut()
                    .entry(path.to_string())
                    .or_insert_with(|| read_host(path))
                    .clone(),
            ),
            FileSource::Recorded(map) => map.borrow_mut().get_mut(path)?.pop_front(),
        }
    }

    /// The entries of host directory `dir` (see `dirs::listing_key`), recorded and
    /// replayed like a file's contents.
    pub fn list(&self, dir: &str) -> Option<Result<Rc<[u8]>, i32>> {
        let key = super::dirs::listing_key(dir);
        match self {
            FileSource::Host(cache) => Some(
                cache
                    .borrow_mut()
                    .entry(key)
                    .or_insert_with(|| super::dirs::read_host_dir(dir))
                    .clone(),
            ),
            FileSource::Recorded(map) => map.borrow_mut().get_mut(&key)?.pop_front(),
        }
    }
}

/// A host file's bytes. Only regular files are read (a device, FIFO or socket could be
/// endless or block: ENXIO), and never more than [`MAX_FILE`] of them, even when the
/// file grows while it is read.
fn read_host(path: &str) -> Result<Rc<[u8]>, i32> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.raw_os_error().unwrap_or(ENOENT))?;
    if meta.is_dir() {
        return Err(EISDIR);
    }
    if !meta.is_file() {
        return Err(ENXIO);
    }
    if meta.len() > MAX_FILE {
        return Err(EFBIG);
    }
    let os = |e: std::io::Error| e.raw_os_error().unwrap_or(EACCES);
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .map_err(os)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(os)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(EFBIG);
    }
    Ok(Rc::from(bytes))
}

/// Files under /proc and /sys describe the machine; the guest sees the virtual one.
/// Returns `Some` for every path there (an errno for those not provided).
pub fn virtual_file(path: &str, cpus: u32, exe: &str) -> Option<Result<Rc<[u8]>, i32>> {
    let text = |s: String| Some(Ok(Rc::from(s.into_bytes())));
    match path {
        "/sys/devices/system/cpu/online" | "/sys/devices/system/cpu/possible" => {
            text(format!("0-{}\n", cpus.saturating_sub(1)))
        }
        "/proc/sys/kernel/osrelease" => text(format!("{}\n", super::UNAME_RELEASE)),
        "/proc/self/cmdline" => text(format!("{exe}\0")),
        _ if path.starts_with("/proc/") || path.starts_with("/sys/") => Some(Err(ENOENT)),
        _ => None,
    }
}

/// What a file descriptor refers to.
#[derive(Clone, Debug)]
pub enum Open {
    Stdin,
    Stdout,
    Stderr,
    /// A file and the offset of the next read or write. `desc` names the open file
    /// description (one `open`, shared by its dups) for OFD locks (`locks`).
    File {
        path: String,
        data: Data,
        pos: u64,
        access: Access,
        desc: u64,
    },
    /// An emulated device (see `devices`).
    Device {
        dev: super::devices::Device,
        access: Access,
    },
    /// The read end of the process's pipe `id` (see `pipes`).
    PipeRead {
        id: usize,
        nonblock: bool,
    },
    /// Its write end.
    PipeWrite {
        id: usize,
        nonblock: bool,
    },
    /// A directory opened for reading its entries (`dirs`): the listing as it was at
    /// open, and the index of the next entry getdents64 returns.
    Dir {
        path: String,
        listing: Rc<[u8]>,
        pos: u64,
    },
}

impl Open {
    pub fn is_pipe(&self) -> bool {
        matches!(self, Open::PipeRead { .. } | Open::PipeWrite { .. })
    }
}

/// The open file descriptors of the process.
#[derive(Clone, Debug)]
pub struct FdTable {
    fds: BTreeMap<i32, Open>,
}

/// Most file descriptors open at once (RLIMIT_NOFILE).
pub const MAX_FDS: i32 = 1024;

impl Default for FdTable {
    fn default() -> Self {
        let fds = [(0, Open::Stdin), (1, Open::Stdout), (2, Open::Stderr)]
            .into_iter()
            .collect();
        FdTable { fds }
    }
}

impl FdTable {
    pub fn get(&self, fd: i32) -> Option<&Open> {
        self.fds.get(&fd)
    }

    pub fn get_mut(&mut self, fd: i32) -> Option<&mut Open> {
        self.fds.get_mut(&fd)
    }

    /// The lowest free descriptor now refers to `open`; `None` when the table is full.
    pub fn insert(&mut self, open: Open) -> Option<i32> {
        let fd = (0..MAX_FDS).find(|fd| !self.fds.contains_key(fd))?;
        self.fds.insert(fd, open);
        Some(fd)
    }

    /// Another descriptor for what `fd` refers to (dup): at least `min`.
    pub fn dup(&mut self, fd: i32, min: i32) -> Option<i32> {
        let open = self.fds.get(&fd)?.clone();
        let new = (min.max(0)..MAX_FDS).find(|fd| !self.fds.contains_key(fd))?;
        self.fds.insert(new, open);
        Some(new)
    }

    pub fn close(&mut self, fd: i32) -> bool {
        self.take(fd).is_some()
    }

    /// Close `fd`, handing back what it referred to.
    pub fn take(&mut self, fd: i32) -> Option<Open> {
        self.fds.remove(&fd)
    }

    /// Everything open, in descriptor order.
    pub fn iter(&self) -> impl Iterator<Item = &Open> {
        self.fds.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_source_answers_in_recording_order() {
        let s = FileSource::recorded([
            ("/a".to_string(), Ok(b"one".to_vec())),
            ("/a".to_string(), Err(ENOENT)),
        ]);
        assert_eq!(s.open("/a").unwrap().unwrap().as_ref(), b"one");
        assert_eq!(s.open("/a").unwrap(), Err(ENOENT));
        assert!(s.open("/a").is_none());
        assert!(s.open("/b").is_none());
    }

    #[test]
    fn host_files_are_read_once_per_machine() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"first").unwrap();
        let s = FileSource::default();
        let path = p.to_str().unwrap();
        assert_eq!(s.open(path).unwrap().unwrap().as_ref(), b"first");
        std::fs::write(&p, b"second").unwrap();
        assert_eq!(s.open(path).unwrap().unwrap().as_ref(), b"first");
        assert_eq!(s.open("/nonexistent/x").unwrap(), Err(ENOENT));
        assert_eq!(s.open(dir.path().to_str().unwrap()).unwrap(), Err(EISDIR));
    }

    #[test]
    fn host_devices_are_never_read() {
        // Endless on the host: reading either to its end would never end.
        let s = FileSource::default();
        assert_eq!(s.open("/dev/zero").unwrap(), Err(ENXIO));
        assert_eq!(s.open("/dev/urandom").unwrap(), Err(ENXIO));
    }

    #[test]
    fn descriptors_are_the_lowest_free() {
        let mut t = FdTable::default();
        let f = || Open::File {
            path: "x".into(),
            data: Data::Host(Rc::from(&b""[..])),
            pos: 0,
            access: Access::from_flags(0),
            desc: 0,
        };
        assert_eq!(t.insert(f()), Some(3));
        assert_eq!(t.insert(f()), Some(4));
        assert!(t.close(3));
        assert!(!t.close(3));
        assert_eq!(t.insert(f()), Some(3));
        assert_eq!(t.dup(1, 10), Some(10));
        assert!(matches!(t.get(10), Some(Open::Stdout)));
    }

    #[test]
    fn open_flags_give_the_access_back() {
        for flags in [0u64, 1, 2, 0o2001, 0o2002] {
            assert_eq!(Access::from_flags(flags).flags(), flags);
        }
        assert!(!Access::from_flags(1).read);
        assert!(Access::from_flags(0o2001).append);
    }

    #[test]
    fn written_data_reads_back_as_it_is_now() {
        let w: Written = Rc::default();
        let d = Data::Written(w.clone());
        w.borrow_mut().extend_from_slice(b"hello");
        assert_eq!(d.len(), 5);
        assert_eq!(d.read(1, 3), b"ell");
        assert_eq!(d.read(9, 3), b"");
        assert_eq!(d.snapshot().as_ref(), b"hello");
    }

    #[test]
    fn proc_and_sys_are_virtual() {
        let online = virtual_file("/sys/devices/system/cpu/online", 4, "p").unwrap();
        assert_eq!(online.unwrap().as_ref(), b"0-3\n");
        assert_eq!(virtual_file("/proc/cpuinfo", 4, "p").unwrap(), Err(ENOENT));
        assert!(virtual_file("/etc/hosts", 4, "p").is_none());
    }
}
