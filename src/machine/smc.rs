//! Self- and cross-modifying code. Each vCPU's unicorn instance caches its own translations
//! of guest code, and notices stores only by itself: a vCPU that rewrites code it runs sees
//! the new code (QEMU tracks its own code pages), but one vCPU rewriting code another vCPU
//! has already translated would leave that vCPU running the old code. So the machine notes
//! every page any vCPU has run code from (at each block start), and a store to such a page
//! drops the stored range's translations in every other vCPU's instance.

use std::cell::{Cell, RefCell};

use unicorn_engine::hook::uc_engine;

use super::ffi;
use super::memory::PAGE;
use super::vcpu::Handle;

/// Pages that hold translated code, and the instances to tell when one is written.
pub(crate) struct CodePages {
    bits: Box<[Cell<u64>]>,
    /// Every instance of every vCPU (each has its own translations).
    instances: RefCell<Vec<Handle>>,
}

impl CodePages {
    pub fn new(ram_bytes: u64) -> CodePages {
        let pages = ram_bytes.div_ceil(PAGE);
        CodePages {
            bits: (0..pages.div_ceil(64)).map(|_| Cell::new(0)).collect(),
            instances: RefCell::new(Vec::new()),
        }
    }

    /// A new instance (it lives as long as the machine).
    pub fn add_instance(&self, h: Handle) {
        self.instances.borrow_mut().push(h);
    }

    /// A block of `len` bytes at `addr` is about to run. Returns the pages (addresses)
    /// that hold code from now on, which did not before.
    #[inline]
    pub fn note_block(&self, addr: u64, len: u32) -> [Option<u64>; 2] {
        let mut new = [None, None];
        let pages = [addr / PAGE, (addr + (len.max(1) as u64) - 1) / PAGE];
        for (i, page) in pages.into_iter().enumerate() {
            if let Some(w) = self.bits.get((page / 64) as usize) {
                let bit = 1 << (page % 64);
                if w.get() & bit == 0 {
                    w.set(w.get() | bit);
                    new[i] = Some(page * PAGE);
                }
            }
        }
        new
    }

    /// Whether any page of `[addr, addr + len)` holds code some vCPU ran.
    #[inline]
    pub fn is_code(&self, addr: u64, len: u64) -> bool {
        [addr / PAGE, (addr + len.max(1) - 1) / PAGE]
            .iter()
            .any(|&p| {
                self.bits
                    .get((p / 64) as usize)
                    .is_some_and(|w| w.get() & (1 << (p % 64)) != 0)
            })
    }

    /// Whether any page in `[lo, hi)` holds code some vCPU ran.
    pub fn any_in(&self, lo: u64, hi: u64) -> bool {
        (lo / PAGE..hi.div_ceil(PAGE)).any(|p| {
            self.bits
                .get((p / 64) as usize)
                .is_some_and(|w| w.get() & (1 << (p % 64)) != 0)
        })
    }

    /// The instance `writer` is about to store `len` bytes at `addr`: if that is code,
    /// every other instance (of any vCPU, its own other instance too) forgets its
    /// translations of those bytes. The writer notices its own stores.
    #[inline]
    pub fn written(&self, writer: *mut uc_engine, addr: u64, len: u64) {
        if !self.is_code(addr, len) {
            return;
        }
        for h in self.instances.borrow().iter().filter(|h| h.0 != writer) {
            ffi::remove_cache(h.0, addr, addr + len.max(1));
        }
    }
}
