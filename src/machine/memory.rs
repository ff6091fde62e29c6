//! Guest RAM: one host buffer shared by every vCPU's unicorn instance.
//!
//! All vCPUs map the same buffer (`mem_map_ptr`), so a store by one is seen by the others
//! with no copying. This type owns the buffer and every raw access weft makes to it;
//! bounds are checked here, once, and errors name the guest address.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Page size of the board and alignment of guest RAM.
pub const PAGE: u64 = 4096;

/// The shared guest RAM, mapped at guest address 0.
pub struct GuestMemory {
    /// Page-aligned start of RAM, inside `alloc`.
    base: NonNull<u8>,
    len: u64,
    /// The allocation itself (one page larger than RAM, 16-byte aligned).
    alloc: NonNull<u8>,
}

/// The allocation behind `len` bytes of RAM: a page of slack to align the start. The
/// alignment stays at 16 so that `alloc_zeroed` is `calloc`, which hands out fresh zero
/// pages lazily; a page-aligned `alloc_zeroed` would memset all of RAM up front (64 MiB
/// per run: it was 80% of the time of a short run).
fn layout(len: u64) -> Option<Layout> {
    Layout::from_size_align(len.checked_add(PAGE)? as usize, 16).ok()
}

impl GuestMemory {
    /// Allocate `len` bytes of zeroed RAM (`len` a non-zero multiple of [`PAGE`]).
    pub fn new(len: u64) -> Option<GuestMemory> {
        if len == 0 || len % PAGE != 0 || len > isize::MAX as u64 - PAGE {
            return None;
        }
        // SAFETY: the layout has a non-zero size (checked above).
        let alloc = NonNull::new(unsafe { alloc::alloc_zeroed(layout(len)?) })?;
        let offset = alloc.as_ptr().align_offset(PAGE as usize);
        // SAFETY: offset < PAGE and the allocation is PAGE bytes longer than RAM.
        let base = unsafe { alloc.add(offset) };
        Some(GuestMemory { base, len, alloc })
    }

    /// RAM size in bytes.
    pub fn size(&self) -> u64 {
        self.len
    }

    /// Host pointer to the start of RAM, for `mem_map_ptr`.
    pub fn host_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Whether `[addr, addr + len)` lies wholly inside RAM (no wrap-around).
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Read a little-endian value of `size` (1..=8) bytes; `None` outside RAM.
    #[inline]
    pub fn read_uint(&self, addr: u64, size: usize) -> Option<u64> {
        if size == 0 || size > 8 || !self.contains(addr, size as u64) {
            return None;
        }
        // SAFETY: the range is inside the allocation (checked above); weft runs one vCPU at a
        // time on one host thread, so no unicorn instance writes the buffer concurrently, and
        // no Rust reference to the buffer exists while we read from it.
        let p = unsafe { self.base.as_ptr().add(addr as usize) };
        // SAFETY: `p..p+size` is in bounds (above); unaligned reads of plain integers.
        let v = unsafe {
            match size {
                8 => p.cast::<u64>().read_unaligned(),
                4 => p.cast::<u32>().read_unaligned() as u64,
                2 => p.cast::<u16>().read_unaligned() as u64,
                1 => *p as u64,
                _ => {
                    let mut buf = [0u8; 8];
                    std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), size);
                    u64::from_le_bytes(buf)
                }
            }
        };
        Some(u64::from_le(v))
    }

    /// Copy `out.len()` bytes starting at `addr`; `false` (and nothing copied) outside RAM.
    pub fn read(&self, addr: u64, out: &mut [u8]) -> bool {
        if !self.contains(addr, out.len() as u64) {
            return false;
        }
        // SAFETY: as in `read_uint`: in bounds, single-threaded, no live references.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.base.as_ptr().add(addr as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        true
    }

    /// Copy at most `max` bytes starting at `addr`, stopping at the end of RAM.
    pub fn read_up_to(&self, addr: u64, max: usize) -> Vec<u8> {
        let avail = self.len.saturating_sub(addr).min(max as u64) as usize;
        let mut v = vec![0u8; avail];
        self.read(addr, &mut v);
        v
    }

    /// Write `data` at `addr`; `false` (and nothing written) outside RAM.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        if !self.contains(addr, data.len() as u64) {
            return false;
        }
        // SAFETY: in bounds; single-threaded (no vCPU executes while weft writes), and no
        // Rust reference to the buffer exists.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.base.as_ptr().add(addr as usize),
                data.len(),
            )
        };
        true
    }

    /// Write a little-endian u64 at `addr`.
    pub fn write_u64(&self, addr: u64, value: u64) -> bool {
        self.write(addr, &value.to_le_bytes())
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout; the machine drops every unicorn
        // instance (which map this buffer) before it drops the memory.
        unsafe {
            alloc::dealloc(
                self.alloc.as_ptr(),
                layout(self.len).expect("checked in new"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let m = GuestMemory::new(2 * PAGE).unwrap();
        assert!(m.write_u64(8, 0x1122_3344_5566_7788));
        assert_eq!(m.read_uint(8, 8), Some(0x1122_3344_5566_7788));
        assert_eq!(m.read_uint(8, 2), Some(0x7788));
        assert_eq!(m.read_uint(2 * PAGE - 4, 8), None);
        assert_eq!(m.read_uint(u64::MAX - 2, 8), None);
        assert!(!m.write(2 * PAGE - 1, &[1, 2]));
        assert!(m.contains(0, 2 * PAGE));
        assert!(!m.contains(1, u64::MAX));
        assert!(GuestMemory::new(100).is_none());
    }
}
