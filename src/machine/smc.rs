//! Self- and cross-modifying code. Each vCPU's unicorn instance caches its own translations
//! of guest code, and notices stores only by itself: a vCPU that rewrites code it runs sees
//! the new code (QEMU tracks its own code pages), but one vCPU rewriting code another vCPU
//! has already translated would leave that vCPU running the old code. So the machine notes
//! every page any vCPU has run code from (at each block start), and a store to such a page
//! drops the stored range's translations in every other vCPU's instance.

use std::cell::{Cell, RefCell};

use super::ffi;
use super::memory::PAGE;
use super::vcpu::Handle;

/// Pages that hold translated code, and the instances to tell when one is written.
pub(crate) struct CodePages {
    bits: Box<[Cell<u64>]>,
    vcpus: RefCell<Vec<Handle>>,
}

impl CodePages {
    pub fn new(ram_bytes: u64) -> CodePages {
        let pages = ram_bytes.div_ceil(PAGE);
        CodePages {
            bits: (0..pages.div_ceil(64)).map(|_| Cell::new(0)).collect(),
            vcpus: RefCell::new(Vec::new()),
        }
    }

    /// The instances of every vCPU, in vCPU order (set once they are built).
    pub fn set_vcpus(&self, handles: Vec<Handle>) {
        *self.vcpus.borrow_mut() = handles;
    }

    /// A block of `len` bytes at `addr` is about to run.
    #[inline]
    pub fn note_block(&self, addr: u64, len: u32) {
        for page in [addr / PAGE, (addr + (len.max(1) as u64) - 1) / PAGE] {
            if let Some(w) = self.bits.get((page / 64) as usize) {
                let bit = 1 << (page % 64);
                if w.get() & bit == 0 {
                    w.set(w.get() | bit);
                }
            }
        }
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

    /// vCPU `writer` is about to store `len` bytes at `addr`: if that is code, every other
    /// vCPU forgets its translations of those bytes.
    #[inline]
    pub fn written(&self, writer: usize, addr: u64, len: u64) {
        if !self.is_code(addr, len) {
            return;
        }
        for (i, h) in self.vcpus.borrow().iter().enumerate() {
            if i != writer {
                ffi::remove_cache(h.0, addr, addr + len.max(1));
            }
        }
    }
}
