//! What the race analysis treats as synchronisation, found before the happens-before pass.
//!
//! Two kinds of evidence, both byte-precise:
//!
//! - **Sync bytes** (atomic *locations*): every byte a locked instruction (LOCK prefix,
//!   XCHG with memory, the kernel's futex and thread-id accesses) touched anywhere in the
//!   trace, every byte named by ANNOTATE_ATOMIC, every byte of a global variable whose
//!   DWARF type is atomic ([`super::atomics`]), and every byte accessed by the code of an
//!   atomic type's operations (`core::sync::atomic::*`, `std::atomic<T>::*`,
//!   `std::__atomic_base<T>::*`, inlined or not: the innermost DWARF frame says whose code
//!   an instruction is). Every access to a sync byte is a synchronisation access.
//! - **Runtime synchronisation code** (atomic *accesses*): the plain accesses made by the
//!   code of the C and C++ runtime's synchronisation functions (glibc's mutexes, condition
//!   variables, rwlocks, barriers, once, semaphores, thread start and join, the malloc
//!   arenas and heaps, stdio's FILE locks; libstdc++'s futures and static-init guards).
//!   Their sources use atomic operations (glibc's `atomic_load_relaxed`,
//!   `atomic_store_release`, ...) that compile to plain MOVs, on words the program itself
//!   never touches directly. Those accesses are synchronisation accesses; the locations
//!   they touch are not sync bytes for everyone else, so a user's plain access to memory
//!   the runtime also touched (a block malloc handed out, a buffer printf read) is still
//!   checked.
//!
//! docs/analysis.md says what each kind implies and why it is sound.

use weft_trace::{Event, TraceHeader};

use super::shadow::{cell_masks, CellMap};
use crate::debuginfo::SourceMap;
use crate::machine::hypercall as hc;

/// Whose code an instruction is, as far as synchronisation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// Ordinary code.
    Plain,
    /// An atomic type's operation: what it touches is an atomic location.
    AtomicType,
    /// The runtime's synchronisation code: its accesses synchronise.
    Runtime,
}

/// glibc (and libstdc++) functions whose plain accesses are atomic operations of their
/// sources: the synchronisation objects' own words and the allocator's shared state.
const RUNTIME_FUNCTIONS: &[&str] = &[
    // Mutexes and the low-level lock.
    "pthread_mutex_lock",
    "__pthread_mutex_lock",
    "___pthread_mutex_lock",
    "__pthread_mutex_lock_full",
    "pthread_mutex_trylock",
    "__pthread_mutex_trylock",
    "___pthread_mutex_trylock",
    "pthread_mutex_timedlock",
    "__pthread_mutex_clocklock_common",
    "pthread_mutex_unlock",
    "__pthread_mutex_unlock",
    "___pthread_mutex_unlock",
    "__pthread_mutex_unlock_usercnt",
    "__pthread_mutex_unlock_full",
    "__lll_lock_wait",
    "__lll_lock_wait_private",
    "__lll_lock_wake",
    "__lll_lock_wake_private",
    // Condition variables.
    "pthread_cond_wait",
    "__pthread_cond_wait",
    "___pthread_cond_wait",
    "__pthread_cond_wait_common",
    "pthread_cond_timedwait",
    "__pthread_cond_timedwait",
    "pthread_cond_clockwait",
    "__pthread_cond_clockwait",
    "pthread_cond_signal",
    "__pthread_cond_signal",
    "___pthread_cond_signal",
    "pthread_cond_broadcast",
    "__pthread_cond_broadcast",
    "___pthread_cond_broadcast",
    // Reader-writer locks, barriers, once, spinlocks, semaphores.
    "pthread_barrier_wait",
    "__pthread_barrier_wait",
    "pthread_once",
    "__pthread_once",
    "___pthread_once",
    "__pthread_once_slow",
    "call_once",
    "sem_wait",
    "__new_sem_wait",
    "__new_sem_wait_slow",
    "__new_sem_wait_slow64",
    "sem_trywait",
    "sem_timedwait",
    "sem_post",
    "__new_sem_post",
    // Threads: creation, start, exit, join, stacks.
    "pthread_create",
    "__pthread_create_2_1",
    "start_thread",
    "pthread_join",
    "__pthread_join",
    "__pthread_clockjoin_ex",
    "pthread_detach",
    "__pthread_detach",
    "pthread_exit",
    "__pthread_exit",
    "__nptl_free_tcb",
    "__nptl_deallocate_stack",
    "__nptl_free_stacks",
    "__nptl_stack_list_add",
    "__nptl_stack_list_del",
    "allocate_stack",
    "get_cached_stack",
    "queue_stack",
    // The allocator: arenas, heaps, bins, per-thread caches.
    "malloc",
    "__libc_malloc",
    "__malloc",
    "free",
    "__libc_free",
    "__free",
    "cfree",
    "realloc",
    "__libc_realloc",
    "calloc",
    "__libc_calloc",
    "memalign",
    "__libc_memalign",
    "aligned_alloc",
    "posix_memalign",
    "_mid_memalign",
    "_int_malloc",
    "_int_free",
    "_int_free_merge_chunk",
    "_int_free_create_chunk",
    "_int_free_maybe_consolidate",
    "_int_realloc",
    "_int_memalign",
    "unlink_chunk",
    "malloc_consolidate",
    "sysmalloc",
    "sysmalloc_mmap",
    "systrim",
    "munmap_chunk",
    "mremap_chunk",
    "tcache_init",
    "tcache_thread_shutdown",
    "arena_get2",
    "arena_get_retry",
    "get_free_list",
    "reused_arena",
    "_int_new_arena",
    "new_heap",
    "alloc_new_heap",
    "grow_heap",
    "shrink_heap",
    "heap_trim",
    "__malloc_arena_thread_freeres",
    "__libc_thread_freeres",
    "ptmalloc_init",
    "malloc_trim",
    "__malloc_trim",
    // stdio: FILE locks (the owner and count beside the lock word), the stream's mode and
    // flags read before the lock is taken, the list of files; the entry points that take
    // a FILE's lock inline, and (by prefix) the `_IO_*` internals they call under it.
    "puts",
    "fputs",
    "fwrite",
    "fread",
    "fputc",
    "putc",
    "putchar",
    "fgets",
    "fgetc",
    "getc",
    "getchar",
    "fflush",
    "fclose",
    "fopen",
    "fdopen",
    "vfprintf",
    "__vfprintf_internal",
    "__vfwprintf_internal",
    "__vfscanf_internal",
    "__overflow",
    "__uflow",
    "__underflow",
    "new_do_write",
    "flockfile",
    "_IO_flockfile",
    "funlockfile",
    "_IO_funlockfile",
    "ftrylockfile",
    "_IO_ftrylockfile",
    "_IO_link_in",
    "_IO_un_link",
    "_IO_flush_all",
    "_IO_flush_all_lockp",
    "_IO_cleanup",
    "_IO_unbuffer_all",
    // libstdc++: function-local static guards.
    "__cxa_guard_acquire",
    "__cxa_guard_release",
    "__cxa_guard_abort",
];

/// Name prefixes of runtime synchronisation code (glibc's rwlocks and condition-variable
/// helpers, libstdc++'s futures).
const RUNTIME_PREFIXES: &[&str] = &[
    "pthread_rwlock_",
    "__pthread_rwlock_",
    "___pthread_rwlock_",
    "__condvar_",
    "pthread_spin_",
    "_IO_",
    "std::__future_base::",
    "std::__atomic_futex_unsigned_base::",
];

/// Name prefixes of the operations of atomic types.
const ATOMIC_TYPE_PREFIXES: &[&str] = &[
    "core::sync::atomic::",
    "std::atomic<",
    "std::__atomic_base<",
    "std::__atomic_float<",
    "std::__atomic_ref<",
    "std::atomic_ref<",
    "std::atomic_flag::",
    "std::__atomic_flag_base::",
    "std::__atomic_impl::",
];

/// How the code of the function called `name` synchronises.
pub fn classify(name: &str) -> CodeKind {
    if ATOMIC_TYPE_PREFIXES.iter().any(|p| name.starts_with(p)) {
        CodeKind::AtomicType
    } else if RUNTIME_FUNCTIONS.contains(&name)
        || RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        CodeKind::Runtime
    } else {
        CodeKind::Plain
    }
}

/// The synchronisation of a trace: sync bytes, and how each instruction that accessed
/// memory synchronises. Pass one's result.
pub struct SyncCells {
    /// Cell -> mask of its sync bytes.
    bytes: CellMap<u8>,
    /// RIP -> kind of code (every RIP of an access in the trace).
    code: CellMap<CodeKind>,
}

impl SyncCells {
    /// The mask of sync bytes of cell `c`.
    pub fn mask(&self, c: u64) -> u8 {
        self.bytes.get(&c).copied().unwrap_or(0)
    }

    /// Whether there is any sync byte at all.
    pub fn has_bytes(&self) -> bool {
        !self.bytes.is_empty()
    }

    /// How the instruction at `rip` synchronises (`Plain` for one pass one never saw).
    pub fn code(&self, rip: u64) -> CodeKind {
        self.code.get(&rip).copied().unwrap_or(CodeKind::Plain)
    }

    /// Sync bytes in all.
    pub fn byte_count(&self) -> u64 {
        self.bytes.values().map(|m| m.count_ones() as u64).sum()
    }
}

/// Pass one, one event at a time.
pub struct SyncBuilder {
    src: SourceMap,
    /// Kinds by RIP; a BTreeMap-free hash map: only looked up, never iterated for output.
    code: CellMap<CodeKind>,
    bytes: CellMap<u8>,
    last: Option<(u64, CodeKind)>,
}

impl SyncBuilder {
    pub fn new(header: &TraceHeader) -> SyncBuilder {
        let elf = &header.guest.elf;
        let src = SourceMap::new(elf);
        let mut b = SyncBuilder {
            bytes: CellMap::default(),
            code: CellMap::default(),
            last: None,
            src,
        };
        for (addr, len) in super::atomics::atomic_globals(elf, b.src.bias()) {
            b.mark(addr, len);
        }
        b
    }

    fn mark(&mut self, addr: u64, len: u64) {
        let len = len.min(1 << 20);
        let mut at = addr;
        while at < addr.saturating_add(len) {
            let n = (addr.saturating_add(len) - at).min(8 - at % 8) as u8;
            for (c, m) in cell_masks(at, n) {
                *self.bytes.entry(c).or_default() |= m;
            }
            at += n as u64;
        }
    }

    fn kind(&mut self, rip: u64) -> CodeKind {
        if let Some((r, k)) = self.last {
            if r == rip {
                return k;
            }
        }
        let src = &self.src;
        let k = *self
            .code
            .entry(rip)
            .or_insert_with(|| src.function(rip).map_or(CodeKind::Plain, |f| classify(&f)));
        self.last = Some((rip, k));
        k
    }

    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::Access {
                rip,
                addr,
                size,
                kind,
                ..
            } => {
                let code = self.kind(*rip);
                if kind.is_atomic() || code == CodeKind::AtomicType {
                    self.mark(addr.0, (*size).max(1) as u64);
                }
            }
            Event::Hypercall { nr, args, .. } if *nr == hc::ANNOTATE_ATOMIC => {
                self.mark(args[0], args[1]);
            }
            _ => {}
        }
    }

    pub fn finish(self) -> SyncCells {
        SyncCells {
            bytes: self.bytes,
            code: self.code,
        }
    }
}

/// Pass one over `events`.
pub fn sync_cells(header: &TraceHeader, events: impl IntoIterator<Item = Event>) -> SyncCells {
    let mut b = SyncBuilder::new(header);
    for e in events {
        b.observe(&e);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_classified_by_whose_code_they_are() {
        assert_eq!(
            classify("core::sync::atomic::atomic_load<u8>"),
            CodeKind::AtomicType
        );
        assert_eq!(
            classify("std::__atomic_base<int>::load"),
            CodeKind::AtomicType
        );
        assert_eq!(classify("std::atomic<bool>::store"), CodeKind::AtomicType);
        assert_eq!(classify("pthread_rwlock_wrlock"), CodeKind::Runtime);
        assert_eq!(
            classify("__condvar_quiesce_and_switch_g1"),
            CodeKind::Runtime
        );
        assert_eq!(classify("alloc_new_heap"), CodeKind::Runtime);
        for plain in [
            "main",
            "worker",
            "memcpy",
            "pthread_mutex_lock_x",
            "std::sync::Mutex",
        ] {
            assert_eq!(classify(plain), CodeKind::Plain, "{plain}");
        }
    }

    #[test]
    fn marked_ranges_become_sync_bytes_exactly() {
        let h = TraceHeader {
            weft_version: String::new(),
            guest: weft_trace::GuestImage::new("t", Vec::new()),
            options: weft_trace::MachineOptions::default(),
            strategy: String::new(),
        };
        let mut b = SyncBuilder::new(&h);
        b.mark(0x104, 4);
        b.mark(0x10e, 4);
        let s = b.finish();
        assert_eq!(s.mask(0x20), 0xF0);
        assert_eq!(s.mask(0x21), 0xC0);
        assert_eq!(s.mask(0x22), 0x03);
        assert_eq!(s.byte_count(), 8);
    }
}
