//! Disassembly of a guest's code by address, for reports: maps a RIP to the bytes of the
//! embedded ELF image and formats the instruction there (cached per RIP).

use std::collections::BTreeMap;

use crate::machine::{isa, ElfImage, Segment};

/// The loaded segments of a guest image, for looking up instructions by address.
pub struct CodeMap {
    segments: Vec<Segment>,
    cache: BTreeMap<u64, String>,
}

impl CodeMap {
    /// Map `elf`; an image that does not parse gives an empty map (every lookup says so).
    pub fn new(elf: &[u8]) -> CodeMap {
        let segments = ElfImage::parse(elf, u64::MAX)
            .map(|i| i.segments)
            .unwrap_or_default();
        CodeMap {
            segments,
            cache: BTreeMap::new(),
        }
    }

    /// Up to 15 bytes of the image at `addr`.
    fn bytes_at(&self, addr: u64) -> Option<&[u8]> {
        self.segments.iter().find_map(|s| {
            let off = addr.checked_sub(s.addr)?;
            if off >= s.data.len() as u64 {
                return None;
            }
            let end = (off as usize + isa::MAX_INSN_LEN).min(s.data.len());
            Some(&s.data[off as usize..end])
        })
    }

    /// The instruction at `rip`, Intel syntax, or "(no code at 0x...)".
    pub fn disasm(&mut self, rip: u64) -> &str {
        if !self.cache.contains_key(&rip) {
            let text = match self.bytes_at(rip) {
                Some(b) => isa::disassemble(b, rip),
                None => format!("(no code at {rip:#x})"),
            };
            self.cache.insert(rip, text);
        }
        &self.cache[&rip]
    }
}
