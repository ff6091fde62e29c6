//! The process's address space: where the image, the heap (brk), the mappings and the main
//! thread's stack lie in guest RAM, and which ranges are mapped. Guest RAM is one flat
//! buffer, so mapping is bookkeeping: weft hands out addresses deterministically (no
//! randomisation) and zeroes what a new mapping must read as zero.

use std::collections::BTreeMap;

use super::super::memory::PAGE;

/// Below this nothing is mapped: a NULL dereference faults, as on Linux.
pub const NULL_GUARD: u64 = 0x10000;
/// The main thread's stack, at the top of RAM (Linux's default RLIMIT_STACK).
pub const MAIN_STACK: u64 = 8 << 20;
/// Unmapped space between the lowest mapping allowed and the main stack.
const STACK_GAP: u64 = 1 << 20;

fn page_up(x: u64) -> Option<u64> {
    x.checked_add(PAGE - 1).map(|v| v & !(PAGE - 1))
}

/// Why a mapping request fails (an errno for the guest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// EINVAL: misaligned, zero length, or outside the address space.
    Invalid,
    /// ENOMEM: no room.
    NoMemory,
}

/// The layout and the mappings of one run.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    /// Start of the heap: the page after the image.
    pub brk_start: u64,
    /// The current program break.
    pub brk: u64,
    /// The heap may not grow past this.
    pub brk_max: u64,
    /// Mappings are placed in `[brk_max, mmap_top)`, highest first.
    pub mmap_top: u64,
    /// Bottom of the main thread's stack (its top is the end of RAM).
    pub stack_bottom: u64,
    /// Mapped ranges outside image, heap and main stack: start -> end.
    maps: BTreeMap<u64, u64>,
}

impl AddressSpace {
    /// The layout for RAM of `ram` bytes and an image ending at `image_end`; `None` if it
    /// does not fit.
    pub fn new(ram: u64, image_end: u64) -> Option<AddressSpace> {
        let brk_start = page_up(image_end.max(NULL_GUARD))?;
        let stack_bottom = ram.checked_sub(MAIN_STACK)?;
        let mmap_top = stack_bottom.checked_sub(STACK_GAP)?;
        // The heap gets an eighth of what is left, at most 256 MiB; mappings the rest.
        let room = mmap_top.checked_sub(brk_start)?;
        let brk_max = brk_start + (room / 8).min(256 << 20) / PAGE * PAGE;
        if mmap_top <= brk_max {
            return None;
        }
        Some(AddressSpace {
            brk_start,
            brk: brk_start,
            brk_max,
            mmap_top,
            stack_bottom,
            maps: BTreeMap::new(),
        })
    }

    /// Move the break to `want` if it stays in the heap's range; returns the break after
    /// (Linux returns the old break on failure) and the range that became newly usable.
    pub fn set_brk(&mut self, want: u64) -> (u64, Option<(u64, u64)>) {
        if want < self.brk_start || want > self.brk_max {
            return (self.brk, None);
        }
        let old = self.brk;
        self.brk = want;
        let grown = (want > old).then_some((old, want));
        (want, grown)
    }

    /// Map `len` bytes anywhere (`hint` 0) or at `fixed`; returns the address.
    pub fn map(&mut self, len: u64, fixed: Option<u64>) -> Result<u64, MapError> {
        let len = page_up(len).filter(|&l| l > 0).ok_or(MapError::Invalid)?;
        if let Some(addr) = fixed {
            let end = addr.checked_add(len).ok_or(MapError::Invalid)?;
            if addr % PAGE != 0 || addr < self.brk_max || end > self.mmap_top {
                return Err(MapError::Invalid);
            }
            self.unmap(addr, len)?;
            self.maps.insert(addr, end);
            return Ok(addr);
        }
        // Highest gap that fits, below the top: walk mappings from the top down.
        let mut top = self.mmap_top;
        for (&start, &end) in self.maps.iter().rev() {
            if top >= end && top - end >= len {
                break;
            }
            top = top.min(start);
        }
        let addr = top.checked_sub(len).ok_or(MapError::NoMemory)?;
        if addr < self.brk_max {
            return Err(MapError::NoMemory);
        }
        self.maps.insert(addr, addr + len);
        Ok(addr)
    }

    /// Unmap `[addr, addr+len)` (parts of mappings are split off; nothing mapped is fine).
    pub fn unmap(&mut self, addr: u64, len: u64) -> Result<(), MapError> {
        let len = page_up(len).ok_or(MapError::Invalid)?;
        if addr % PAGE != 0 || len == 0 {
            return Err(MapError::Invalid);
        }
        let end = addr.checked_add(len).ok_or(MapError::Invalid)?;
        let hit: Vec<(u64, u64)> = self
            .maps
            .range(..end)
            .filter(|(_, &e)| e > addr)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in hit {
            self.maps.remove(&s);
            if s < addr {
                self.maps.insert(s, addr);
            }
            if e > end {
                self.maps.insert(end, e);
            }
        }
        Ok(())
    }

    /// The mapping that contains `addr`, as `[start, end)`.
    pub fn mapping_of(&self, addr: u64) -> Option<(u64, u64)> {
        let (&s, &e) = self.maps.range(..=addr).next_back()?;
        (addr < e).then_some((s, e))
    }

    /// Whether `[addr, addr+len)` is mapped memory of the process (image, heap, mappings
    /// or the main stack): what mprotect and madvise may name.
    pub fn is_mapped(&self, addr: u64, len: u64, ram: u64) -> bool {
        let Some(end) = addr.checked_add(len) else {
            return false;
        };
        let in_heap = addr >= NULL_GUARD && end <= page_up(self.brk).unwrap_or(self.brk);
        let in_stack = addr >= self.stack_bottom && end <= ram;
        let in_maps = self.mapping_of(addr).is_some_and(|(_, e)| end <= e);
        in_heap || in_stack || in_maps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> AddressSpace {
        AddressSpace::new(1 << 30, 0x4a_1234).unwrap()
    }

    #[test]
    fn the_layout_is_ordered() {
        let a = space();
        assert_eq!(a.brk_start, 0x4a_2000);
        assert!(a.brk_start < a.brk_max && a.brk_max < a.mmap_top);
        assert!(a.mmap_top < a.stack_bottom && a.stack_bottom + MAIN_STACK == 1 << 30);
        assert!(AddressSpace::new(4 << 20, 0x40_0000).is_none());
    }

    #[test]
    fn mappings_go_top_down_reuse_holes_and_split() {
        let mut a = space();
        let top = a.mmap_top;
        let m1 = a.map(3 * PAGE, None).unwrap();
        assert_eq!(m1, top - 3 * PAGE);
        let m2 = a.map(1, None).unwrap();
        assert_eq!(m2, m1 - PAGE);
        assert_eq!(a.mapping_of(m1 + 5), Some((m1, top)));
        // Unmapping the middle page of m1 splits it; a one-page mapping fills the hole.
        a.unmap(m1 + PAGE, PAGE).unwrap();
        assert_eq!(a.mapping_of(m1 + PAGE), None);
        assert_eq!(a.mapping_of(m1), Some((m1, m1 + PAGE)));
        assert_eq!(a.map(PAGE, None).unwrap(), m1 + PAGE);
        // A two-page request does not fit any hole: below everything.
        assert_eq!(a.map(2 * PAGE, None).unwrap(), m2 - 2 * PAGE);
        // Fixed mappings replace what was there.
        assert_eq!(a.map(PAGE, Some(m1)).unwrap(), m1);
        assert_eq!(a.map(PAGE, Some(1)), Err(MapError::Invalid));
        assert_eq!(a.map(0, None), Err(MapError::Invalid));
    }

    #[test]
    fn the_break_moves_within_the_heap_only() {
        let mut a = space();
        let b = a.brk_start;
        assert_eq!(a.set_brk(0), (b, None));
        assert_eq!(a.set_brk(b + 100), (b + 100, Some((b, b + 100))));
        assert_eq!(a.set_brk(b + 50), (b + 50, None));
        assert_eq!(a.set_brk(a.brk_max + 1), (b + 50, None));
        assert!(a.is_mapped(b, 50, 1 << 30));
    }

    #[test]
    fn running_out_of_room_is_enomem() {
        let mut a = space();
        let room = a.mmap_top - a.brk_max;
        assert!(a.map(room, None).is_ok());
        assert_eq!(a.map(PAGE, None), Err(MapError::NoMemory));
    }
}
