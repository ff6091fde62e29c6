//! The Linux user-mode platform: a static x86-64 Linux executable runs unchanged as one
//! process whose threads are vCPUs, with its system calls emulated deterministically.
//! docs/linux.md says what is supported.

mod names;

pub use names::syscall_name;

/// How many arguments system call `nr` takes (6 when weft does not know), for listings.
pub fn syscall_arity(nr: u64) -> usize {
    match nr {
        24 | 39 | 102 | 104 | 107 | 108 | 110 | 186 => 0,
        3 | 12 | 22 | 32 | 60 | 63 | 74 | 75 | 87 | 99 | 100 | 145..=147 | 201 | 218 | 231 => 1,
        90 | 91 | 142 | 143 | 148 => 2,
        26 | 144 | 217 | 268 => 3,
        4..=6
        | 11
        | 21
        | 33
        | 35
        | 62
        | 77
        | 79
        | 82
        | 85
        | 96
        | 97
        | 158
        | 200
        | 228
        | 229
        | 273
        | 293
        | 435 => 2,
        0..=2 | 7 | 8 | 10 | 16 | 19 | 20 | 28 | 72 | 89 | 204 | 234 | 263 | 318 | 292 => 3,
        13 | 14 | 17 | 18 | 230 | 257 | 262 | 264 | 267 | 271 | 302 | 334 => 4,
        56 | 316 => 5,
        _ => 6,
    }
}

/// A system call's result as Linux returns it in RAX, for listings: `-ENOENT`, or hex.
pub fn describe_result(ret: u64) -> String {
    let signed = ret as i64;
    if (-4095..0).contains(&signed) {
        format!("-{}", errno_name((-signed) as i32))
    } else {
        format!("{ret:#x}")
    }
}

/// The name of an errno value (`ENOENT`), or its number.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        10 => "ECHILD",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        14 => "EFAULT",
        17 => "EEXIST",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        24 => "EMFILE",
        25 => "ENOTTY",
        27 => "EFBIG",
        28 => "ENOSPC",
        29 => "ESPIPE",
        30 => "EROFS",
        32 => "EPIPE",
        34 => "ERANGE",
        35 => "EDEADLK",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        95 => "EOPNOTSUPP",
        110 => "ETIMEDOUT",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

mod devices;
mod dirs;
mod files;
mod fs;
mod locks;
mod mm;
mod pipes;
mod poll;
mod sched;
mod stat;
pub(crate) mod syscall;
mod threads;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use weft_recorder::Rng;
use weft_trace::{LinuxOptions, VcpuId};

pub use files::FileSource;
pub use mm::{AddressSpace, MAIN_STACK, NULL_GUARD};

use super::elf::{ElfImage, Segment};
use super::memory::PAGE;
use files::FdTable;

/// The process id of every Linux guest; thread `i` (vCPU i) has thread id `PID + i`.
pub const PID: u32 = 1000;
/// What uname() says.
pub const UNAME_SYSNAME: &str = "Linux";
pub const UNAME_NODENAME: &str = "weft";
pub const UNAME_RELEASE: &str = "6.1.0-weft";
pub const UNAME_VERSION: &str = "#1 SMP weft virtual machine";
pub const UNAME_MACHINE: &str = "x86_64";
/// The user and group ids the process runs as.
pub const UID: u64 = 1000;
/// Guest RAM of a Linux process unless `--ram` says otherwise: room for glibc's 64 MiB
/// malloc arenas and 8 MiB thread stacks; pages never touched cost the host nothing.
pub const DEFAULT_RAM: u64 = 2 << 30;
/// CPUs a process is told it has unless `--cpus` says otherwise.
pub const DEFAULT_CPUS: u32 = 4;
/// Default environment of a Linux guest (`--env` adds to it or overrides).
pub const DEFAULT_ENV: &[&str] = &[
    "PATH=/usr/local/bin:/usr/bin:/bin",
    "HOME=/home/weft",
    "LANG=C",
    "TERM=dumb",
];

/// Why a Linux image cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinuxError {
    #[error("a dynamically linked executable (it names an interpreter); weft runs static ones: build with -static")]
    Dynamic,
    #[error("segment {addr:#x}..{end:#x} lies outside the process's image area {lo:#x}..{hi:#x}")]
    Outside {
        addr: u64,
        end: u64,
        lo: u64,
        hi: u64,
    },
    #[error("--ram {0:#x} is too small for a Linux process (at least 64 MiB)")]
    TooSmall(u64),
    #[error("argv and the environment take {0} bytes; at most 1 MiB fits on the stack")]
    ArgsTooLarge(u64),
}

/// One thread of the process.
#[derive(Clone, Debug, Default)]
pub(crate) struct Thread {
    pub tid: u32,
    /// set_tid_address / CLONE_CHILD_CLEARTID: zeroed and woken when the thread exits.
    pub clear_child_tid: u64,
    /// set_robust_list: the head of the thread's list of robust futexes.
    pub robust_list: u64,
    pub sigmask: u64,
    /// The thread has exited: its vCPU may be given to a later thread (see `reusable`).
    pub exited: bool,
    /// sched_setscheduler's policy and priority (answered back, never acted on).
    pub policy: u32,
    pub priority: u32,
}

/// The state of a Linux process during one run, beside what the controller keeps.
pub(crate) struct Process {
    pub opts: LinuxOptions,
    pub mm: AddressSpace,
    pub fds: FdTable,
    /// Index: vCPU.
    pub threads: Vec<Option<Thread>>,
    /// Installed signal actions (kept, never delivered: weft delivers no signals).
    pub sigactions: std::collections::BTreeMap<u64, [u8; 32]>,
    pub random: Rng,
    /// The latest standard error output, for the message of a failed assert().
    pub stderr_tail: Vec<u8>,
    pub files: Rc<FileSource>,
    /// How much of `opts.stdin` has been read.
    pub stdin_pos: u64,
    /// Where each thread's own stack lies, for `--trace-stack` off: [lo, hi).
    pub stacks: Vec<(u64, u64)>,
    /// Files the process created or opened for writing, by path (they hide the host's).
    pub written: BTreeMap<String, files::Written>,
    /// Paths the process removed (unlink, the old name of a rename): they hide the host's.
    pub removed: BTreeSet<String>,
    /// The process's pipes, by id (never reused within a run).
    pub pipes: Vec<pipes::Pipe>,
    /// Threads that started on a vCPU an earlier thread had (`new_tid`).
    pub reused: u32,
    /// System calls the run answered with ENOSYS because weft does not emulate them.
    pub unsupported: BTreeSet<String>,
    /// fcntl record locks held (`locks`).
    pub locks: locks::Locks,
    /// Open file descriptions made so far (the next one's id).
    pub descs: u64,
}

impl Process {
    pub fn new(
        opts: &LinuxOptions,
        mm: AddressSpace,
        capacity: u32,
        files: Rc<FileSource>,
    ) -> Process {
        let mut threads = vec![None; capacity as usize];
        threads[0] = Some(Thread {
            tid: PID,
            ..Thread::default()
        });
        Process {
            opts: opts.clone(),
            mm,
            fds: FdTable::default(),
            threads,
            sigactions: Default::default(),
            random: Rng::new(opts.random_seed ^ 0x7765_6674_7261_6e64),
            stderr_tail: Vec::new(),
            files,
            stdin_pos: 0,
            stacks: Vec::new(),
            written: BTreeMap::new(),
            removed: BTreeSet::new(),
            pipes: Vec::new(),
            reused: 0,
            unsupported: BTreeSet::new(),
            locks: Default::default(),
            descs: 0,
        }
    }

    pub fn thread(&mut self, v: VcpuId) -> &mut Thread {
        self.threads[v.0 as usize].get_or_insert_with(Thread::default)
    }

    /// The vCPU of thread id `tid`, if it is a thread of this process.
    pub fn vcpu_of_tid(&self, tid: u64) -> Option<VcpuId> {
        self.threads
            .iter()
            .position(|t| t.as_ref().is_some_and(|t| t.tid as u64 == tid))
            .map(|i| VcpuId(i as u32))
    }

    /// The next vCPU never used by a thread of this run.
    pub fn free_vcpu(&self) -> Option<VcpuId> {
        self.threads
            .iter()
            .position(Option::is_none)
            .map(|i| VcpuId(i as u32))
    }

    /// Once every vCPU has had a thread: the lowest one whose thread has exited and whose
    /// instance `ready` says is back (a program that makes more threads over its life than
    /// can live at once: each vCPU id then names one thread at a time, and a `Spawn`
    /// event starts each; docs/linux.md).
    pub fn reusable(&self, ready: impl Fn(VcpuId) -> bool) -> Option<VcpuId> {
        self.threads
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| t.exited))
            .map(|(i, _)| VcpuId(i as u32))
            .find(|&v| ready(v))
    }

    /// The thread id of a new thread on vCPU `v`: `PID + v` for the first thread of each
    /// vCPU; later ones count on from `PID + capacity`, so no id is ever given twice.
    pub fn new_tid(&mut self, v: VcpuId) -> u32 {
        match &self.threads[v.0 as usize] {
            None => PID + v.0,
            Some(_) => {
                self.reused += 1;
                PID + self.threads.len() as u32 + self.reused - 1
            }
        }
    }

    /// The files the process created or changed, by path, with their bytes now.
    pub fn written_files(&self) -> Vec<(String, Vec<u8>)> {
        self.written
            .iter()
            .map(|(path, w)| (path.clone(), w.borrow().clone()))
            .collect()
    }

    pub fn exe(&self) -> &str {
        self.opts.argv.first().map_or("", String::as_str)
    }
}

/// A Linux executable laid out in RAM: where everything goes, and the initial stack
/// (argv, envp, auxv), which becomes one more segment of the image.
pub(crate) struct Layout {
    pub mm: AddressSpace,
    pub stack: Segment,
    /// RSP of the main thread at entry (pointing at argc).
    pub rsp: u64,
}

/// Check a parsed image as a Linux executable for RAM of `ram` bytes and lay it out.
pub(crate) fn layout(
    image: &ElfImage,
    opts: &LinuxOptions,
    ram: u64,
) -> Result<Layout, LinuxError> {
    if image.program.interp {
        return Err(LinuxError::Dynamic);
    }
    if ram < 64 << 20 {
        return Err(LinuxError::TooSmall(ram));
    }
    let mm = AddressSpace::new(ram, image.end()).ok_or(LinuxError::TooSmall(ram))?;
    for s in &image.segments {
        let end = s.addr + s.mem_size;
        if s.addr < NULL_GUARD {
            return Err(LinuxError::Outside {
                addr: s.addr,
                end,
                lo: NULL_GUARD,
                hi: mm.mmap_top,
            });
        }
    }
    let (stack, rsp) = initial_stack(image, opts, ram)?;
    Ok(Layout { mm, stack, rsp })
}

// Auxiliary vector keys (include/uapi/linux/auxvec.h).
const AT_NULL: u64 = 0;
const AT_PHDR: u64 = 3;
const AT_PHENT: u64 = 4;
const AT_PHNUM: u64 = 5;
const AT_PAGESZ: u64 = 6;
const AT_BASE: u64 = 7;
const AT_FLAGS: u64 = 8;
const AT_ENTRY: u64 = 9;
const AT_UID: u64 = 11;
const AT_EUID: u64 = 12;
const AT_GID: u64 = 13;
const AT_EGID: u64 = 14;
const AT_PLATFORM: u64 = 15;
const AT_HWCAP: u64 = 16;
const AT_CLKTCK: u64 = 17;
const AT_SECURE: u64 = 23;
const AT_RANDOM: u64 = 25;
const AT_HWCAP2: u64 = 26;
const AT_EXECFN: u64 = 31;
const AT_MINSIGSTKSZ: u64 = 51;

/// The main thread's stack at entry, as Linux builds it: argc, argv, envp, auxv, then the
/// strings they point at, at the top of RAM. Returns it as a segment, and the RSP.
fn initial_stack(
    image: &ElfImage,
    opts: &LinuxOptions,
    ram: u64,
) -> Result<(Segment, u64), LinuxError> {
    // Strings, from the top of RAM down.
    let mut strings: Vec<u8> = Vec::new();
    let mut place = |bytes: &[u8]| -> u64 {
        strings.splice(0..0, bytes.iter().copied());
        strings.len() as u64 // distance from the top; turned into an address below
    };
    let execfn = place(format!("{}\0", opts.argv.first().map_or("", String::as_str)).as_bytes());
    let argv: Vec<u64> = opts
        .argv
        .iter()
        .map(|a| place(format!("{a}\0").as_bytes()))
        .collect();
    let envp: Vec<u64> = opts
        .env
        .iter()
        .map(|e| place(format!("{e}\0").as_bytes()))
        .collect();
    let platform = place(b"x86_64\0");
    let mut random = [0u8; 16];
    let mut rng = Rng::new(opts.random_seed);
    for chunk in random.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let random = place(&random);
    let top = ram;
    let at = |d: u64| top - d;
    let strings_bottom = (top - strings.len() as u64) & !15;
    let hwcap = super::cpuid::leaf(1, 0, 0, 1)[3] as u64;
    let auxv = [
        (AT_PHDR, image.program.phdr),
        (AT_PHENT, image.program.phentsize),
        (AT_PHNUM, image.program.phnum),
        (AT_PAGESZ, PAGE),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, image.entry),
        (AT_UID, UID),
        (AT_EUID, UID),
        (AT_GID, UID),
        (AT_EGID, UID),
        (AT_PLATFORM, at(platform)),
        (AT_HWCAP, hwcap),
        (AT_CLKTCK, 100),
        (AT_SECURE, 0),
        (AT_RANDOM, at(random)),
        (AT_HWCAP2, 0),
        (AT_EXECFN, at(execfn)),
        (AT_MINSIGSTKSZ, 2048),
        (AT_NULL, 0),
    ];
    let mut words: Vec<u64> = vec![opts.argv.len() as u64];
    words.extend(argv.iter().map(|&d| at(d)));
    words.push(0);
    words.extend(envp.iter().map(|&d| at(d)));
    words.push(0);
    for (k, v) in auxv {
        words.extend([k, v]);
    }
    let mut rsp = strings_bottom - words.len() as u64 * 8;
    rsp &= !15;
    let size = top - rsp;
    if size > 1 << 20 {
        return Err(LinuxError::ArgsTooLarge(size));
    }
    let mut data = vec![0u8; size as usize];
    for (i, w) in words.iter().enumerate() {
        data[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    let off = (top - strings.len() as u64 - rsp) as usize;
    data[off..].copy_from_slice(&strings);
    Ok((
        Segment {
            addr: rsp,
            mem_size: size,
            data,
            executable: false,
        },
        rsp,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> LinuxOptions {
        LinuxOptions {
            argv: vec!["prog".into(), "a b".into()],
            env: vec!["X=1".into()],
            stdin: Vec::new(),
            random_seed: 7,
            cpus: 4,
        }
    }

    fn image() -> ElfImage {
        ElfImage {
            bias: 0,
            entry: 0x401000,
            segments: vec![Segment {
                addr: 0x400000,
                mem_size: 0x2000,
                data: vec![0; 0x100],
                executable: true,
            }],
            program: super::super::elf::ProgramInfo {
                phdr: 0x400040,
                phnum: 3,
                phentsize: 56,
                ..Default::default()
            },
        }
    }

    #[test]
    fn the_initial_stack_is_what_linux_gives() {
        let ram = 1u64 << 30;
        let (seg, rsp) = initial_stack(&image(), &opts(), ram).unwrap();
        assert_eq!(rsp % 16, 0);
        assert_eq!(seg.addr + seg.mem_size, ram);
        let word = |a: u64| {
            let o = (a - seg.addr) as usize;
            u64::from_le_bytes(seg.data[o..o + 8].try_into().unwrap())
        };
        let cstr = |a: u64| {
            let o = (a - seg.addr) as usize;
            let end = seg.data[o..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8(seg.data[o..o + end].to_vec()).unwrap()
        };
        assert_eq!(word(rsp), 2);
        assert_eq!(cstr(word(rsp + 8)), "prog");
        assert_eq!(cstr(word(rsp + 16)), "a b");
        assert_eq!(word(rsp + 24), 0);
        assert_eq!(cstr(word(rsp + 32)), "X=1");
        assert_eq!(word(rsp + 40), 0);
        let mut aux = std::collections::BTreeMap::new();
        let mut a = rsp + 48;
        loop {
            let (k, v) = (word(a), word(a + 8));
            if k == AT_NULL {
                break;
            }
            aux.insert(k, v);
            a += 16;
        }
        assert_eq!(aux[&AT_PHDR], 0x400040);
        assert_eq!(aux[&AT_PHNUM], 3);
        assert_eq!(aux[&AT_ENTRY], 0x401000);
        assert_eq!(aux[&AT_PAGESZ], 4096);
        assert_eq!(cstr(aux[&AT_EXECFN]), "prog");
        assert_eq!(cstr(aux[&AT_PLATFORM]), "x86_64");
        assert!(aux[&AT_RANDOM] > rsp && aux[&AT_RANDOM] + 16 <= ram);
    }

    #[test]
    fn dynamic_and_misplaced_images_are_refused() {
        let mut i = image();
        i.program.interp = true;
        assert_eq!(
            layout(&i, &opts(), 1 << 30).err(),
            Some(LinuxError::Dynamic)
        );
        let mut i = image();
        i.segments[0].addr = 0x1000;
        assert!(matches!(
            layout(&i, &opts(), 1 << 30),
            Err(LinuxError::Outside { .. })
        ));
        assert!(matches!(
            layout(&image(), &opts(), 1 << 20),
            Err(LinuxError::TooSmall(_))
        ));
    }
}
