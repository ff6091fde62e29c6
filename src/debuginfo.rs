//! Source lines and symbols for guest addresses, read from the guest ELF's DWARF line
//! tables (.debug_line, via gimli) and its symbol table, so that reports can say
//! `locked_counter.c:31 in worker+0x12` instead of a bare RIP.
//!
//! A guest built without `-g` or stripped simply has no lines or symbols: every lookup
//! then says `None`, and reports fall back to addresses.

use std::rc::Rc;

use gimli::LittleEndian;

type Reader = gimli::EndianRcSlice<LittleEndian>;

/// One ELF section: name, file bytes, load address.
pub(crate) struct Section<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
    pub addr: u64,
}

/// The sections of an ELF64 little-endian image; empty if it does not parse.
pub(crate) fn sections(elf: &[u8]) -> Vec<Section<'_>> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    let parse = || -> Option<Vec<Section<'_>>> {
        if elf.get(0..6)? != b"\x7fELF\x02\x01" {
            return None;
        }
        let shoff = u64_at(0x28)? as usize;
        let shentsize = u16_at(0x3A)? as usize;
        let shnum = u16_at(0x3C)? as usize;
        let shstrndx = u16_at(0x3E)? as usize;
        if shentsize < 64 || shstrndx >= shnum {
            return None;
        }
        let header = |i: usize| -> Option<(u32, u32, u64, usize, usize)> {
            let h = shoff.checked_add(i.checked_mul(shentsize)?)?;
            Some((
                u32_at(h)?,
                u32_at(h + 4)?,
                u64_at(h + 16)?,
                u64_at(h + 24)? as usize,
                u64_at(h + 32)? as usize,
            ))
        };
        let (_, _, _, stroff, strsize) = header(shstrndx)?;
        let strtab = elf.get(stroff..stroff.checked_add(strsize)?)?;
        let mut out = Vec::with_capacity(shnum);
        for i in 0..shnum {
            let (name, kind, addr, off, size) = header(i)?;
            const SHT_NOBITS: u32 = 8;
            let data = if kind == SHT_NOBITS {
                &[][..]
            } else {
                elf.get(off..off.checked_add(size)?).unwrap_or(&[])
            };
            let name = strtab.get(name as usize..).unwrap_or(&[]);
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            let name = std::str::from_utf8(&name[..end]).unwrap_or("");
            out.push(Section { name, data, addr });
        }
        Some(out)
    };
    parse().unwrap_or_default()
}

/// A Rust or C++ symbol in source form (`std::rt::lang_start_internal` for
/// `_RNvNtCs..._3std2rt19lang_start_internal`, `std::terminate()` for `_ZSt9terminatev`),
/// keeping a suffix gcc adds for split-off code (`.cold`, `.constprop.0`); other names as
/// they are.
fn demangle(name: &str) -> String {
    if !name.starts_with("_Z") && !name.starts_with("_R") {
        return name.to_string();
    }
    // Rust's own (v0 and legacy) first: `{:#}` leaves out the legacy hash.
    if let Ok(d) = rustc_demangle::try_demangle(name) {
        return format!("{d:#}");
    }
    let (mangled, suffix) = match name.find('.') {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    let opts = cpp_demangle::DemangleOptions::new()
        .no_params()
        .no_return_type();
    match cpp_demangle::Symbol::new(mangled).map(|s| s.demangle(&opts)) {
        Ok(Ok(d)) => format!("{d}{suffix}"),
        _ => name.to_string(),
    }
}

/// `name`, or `name+0x12` past its start.
fn symbol_text(name: &str, off: u64) -> String {
    if off == 0 {
        name.to_string()
    } else {
        format!("{name}+{off:#x}")
    }
}

/// A source position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLine {
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for SourceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Address -> source line and symbol, for one guest image.
#[derive(Default)]
pub struct SourceMap {
    /// DWARF lines and inlining, when the image has them.
    lines: Option<addr2line::Context<Reader>>,
    /// (start, size, name) of functions and data objects, sorted by start (load addresses).
    symbols: Vec<(u64, u64, String)>,
    /// Load address minus link address (a static-pie's load address; else 0).
    bias: u64,
}

/// The address ranges of the program's own code: every compilation unit with DWARF debug
/// information (what `-g` built; a distribution's static C library has none), at load
/// addresses, sorted and merged. `None` when the image has no such unit. Focused PCT
/// places its change points there (`weft_recorder::Pct::focused`).
pub fn program_code(elf: &[u8]) -> Option<weft_recorder::Focus> {
    let secs = sections(elf);
    let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
        let data = secs
            .iter()
            .find(|s| s.name == id.name())
            .map_or(&[][..], |s| s.data);
        Ok(Reader::new(Rc::from(data), LittleEndian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    let bias = crate::machine::load_bias(elf);
    let mut ranges = Vec::new();
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Ok(mut rs) = dwarf.unit_ranges(&unit) else {
            continue;
        };
        while let Ok(Some(r)) = rs.next() {
            if r.begin < r.end {
                ranges.push((r.begin.wrapping_add(bias), r.end.wrapping_add(bias)));
            }
        }
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    (!merged.is_empty()).then(|| merged.into())
}

impl SourceMap {
    /// Read what `elf` has; missing or malformed debug information just leaves gaps.
    pub fn new(elf: &[u8]) -> SourceMap {
        let secs = sections(elf);
        let mut map = SourceMap {
            bias: crate::machine::load_bias(elf),
            ..SourceMap::default()
        };
        map.read_symbols(&secs);
        map.read_lines(&secs);
        map
    }

    fn read_symbols(&mut self, secs: &[Section<'_>]) {
        let (Some(symtab), Some(strtab)) = (
            secs.iter().find(|s| s.name == ".symtab"),
            secs.iter().find(|s| s.name == ".strtab"),
        ) else {
            return;
        };
        for e in symtab.data.chunks_exact(24) {
            let kind = e[4] & 0xF;
            const STT_OBJECT: u8 = 1;
            const STT_FUNC: u8 = 2;
            if kind != STT_OBJECT && kind != STT_FUNC {
                continue;
            }
            let name_off = u32::from_le_bytes(e[0..4].try_into().unwrap()) as usize;
            let value = u64::from_le_bytes(e[8..16].try_into().unwrap());
            let size = u64::from_le_bytes(e[16..24].try_into().unwrap());
            let name = strtab.data.get(name_off..).unwrap_or(&[]);
            let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if end == 0 {
                continue;
            }
            let name = demangle(&String::from_utf8_lossy(&name[..end]));
            self.symbols
                .push((value.wrapping_add(self.bias), size.max(1), name));
        }
        self.symbols.sort();
    }

    fn read_lines(&mut self, secs: &[Section<'_>]) {
        let load = |id: gimli::SectionId| -> Result<Reader, gimli::Error> {
            let data = secs
                .iter()
                .find(|s| s.name == id.name())
                .map_or(&[][..], |s| s.data);
            Ok(Reader::new(Rc::from(data), LittleEndian))
        };
        let Ok(dwarf) = gimli::Dwarf::load(load) else {
            return;
        };
        self.lines = addr2line::Context::from_dwarf(dwarf).ok();
    }

    /// The address of the function or data object called `name`.
    pub fn address_of(&self, name: &str) -> Option<u64> {
        self.symbols.iter().find(|s| s.2 == name).map(|s| s.0)
    }

    /// Source positions of the instruction at `addr`, innermost first: with inlining, the
    /// inlined function's line, then each call site out to the real function.
    pub fn frames(&self, addr: u64) -> Vec<SourceLine> {
        let mut out = Vec::new();
        let Some(ctx) = &self.lines else {
            return out;
        };
        let Ok(mut frames) = ctx
            .find_frames(addr.wrapping_sub(self.bias))
            .skip_all_loads()
        else {
            return out;
        };
        while let Ok(Some(f)) = frames.next() {
            if let Some(l) = f.location {
                if let (Some(mut file), Some(line)) = (l.file, l.line) {
                    // Guests built with a "." comp dir give "././examples/x.c".
                    while let Some(rest) = file.strip_prefix("./") {
                        file = rest;
                    }
                    out.push(SourceLine {
                        file: file.to_string(),
                        line,
                    });
                }
            }
        }
        out
    }

    /// The function whose code the instruction at `addr` is, demangled: for code inlined
    /// from another function, that function (the innermost DWARF frame), else the symbol
    /// containing `addr`. The race analysis asks it to recognise atomic operations and the
    /// runtime's synchronisation code.
    pub fn function(&self, addr: u64) -> Option<String> {
        let inner = self.lines.as_ref().and_then(|ctx| {
            let mut frames = ctx
                .find_frames(addr.wrapping_sub(self.bias))
                .skip_all_loads()
                .ok()?;
            let f = frames.next().ok()??;
            let name = f.function?.raw_name().ok()?.into_owned();
            Some(demangle(&name))
        });
        inner.or_else(|| self.symbol(addr).map(|(n, _)| n.to_string()))
    }

    /// Load address minus link address (a static-pie's load address; else 0).
    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// The source line of the instruction at `addr` (innermost, for inlined code).
    pub fn line(&self, addr: u64) -> Option<SourceLine> {
        self.frames(addr).into_iter().next()
    }

    /// The function or object containing `addr` and the offset into it.
    pub fn symbol(&self, addr: u64) -> Option<(&str, u64)> {
        let i = self.symbols.partition_point(|s| s.0 <= addr);
        self.symbols[..i]
            .iter()
            .rev()
            .take(8)
            .find(|s| addr < s.0.saturating_add(s.1))
            .map(|s| (s.2.as_str(), addr - s.0))
    }

    /// `name+0x12 (file.c:42)`, or whatever part of it is known; "" if nothing is. For
    /// inlined code the call site in the real function follows:
    /// `_start+0x12 (weft.h:480, inlined at counter.c:31)`.
    pub fn describe(&self, addr: u64) -> String {
        self.describe_as(addr, addr)
    }

    /// `name` or `name+0x12`: the function or object containing `addr`, `None` if none.
    pub fn symbol_text(&self, addr: u64) -> Option<String> {
        self.symbol(addr).map(|(n, off)| symbol_text(n, off))
    }

    /// [`describe`](Self::describe) of the instruction at `at`, its symbol's offset
    /// given for `shown` (a return address `shown` is described by its call at `at`).
    fn describe_as(&self, at: u64, shown: u64) -> String {
        let sym = self
            .symbol(at)
            .map(|(n, off)| symbol_text(n, (off + shown).saturating_sub(at)));
        let frames = self.frames(at);
        let line = match (frames.first(), frames.last()) {
            (Some(inner), Some(outer)) if frames.len() > 1 => {
                Some(format!("{inner}, inlined at {outer}"))
            }
            (Some(inner), _) => Some(inner.to_string()),
            _ => None,
        };
        match (sym, line) {
            (Some(s), Some(l)) => format!("{s} ({l})"),
            (Some(s), None) => s,
            (None, Some(l)) => l,
            (None, None) => String::new(),
        }
    }
}

impl SourceMap {
    /// A call stack (`frames[0]` the stopped instruction, then return addresses) as lines
    /// `#1 0x401a2e transfer+0x3e (lock_order.c:31)`, like gdb's `bt`. A return address is
    /// looked up one byte back, at its call: the call's line, even when it is a function's
    /// last instruction.
    pub fn describe_stack(&self, frames: &[u64]) -> Vec<String> {
        frames
            .iter()
            .enumerate()
            .map(|(i, &pc)| {
                let at = if i == 0 { pc } else { pc.wrapping_sub(1) };
                let what = self.describe_as(at, pc);
                if what.is_empty() {
                    format!("#{i} {pc:#x}")
                } else {
                    format!("#{i} {pc:#x} {what}")
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_and_cxx_names_are_demangled() {
        assert_eq!(demangle("_ZSt9terminatev"), "std::terminate");
        assert_eq!(
            demangle("_ZN9__gnu_cxx27__verbose_terminate_handlerEv.cold"),
            "__gnu_cxx::__verbose_terminate_handler.cold"
        );
        assert_eq!(
            demangle("_ZN3std2rt10lang_start17h0123456789abcdefE"),
            "std::rt::lang_start"
        );
        assert_eq!(
            demangle("_RNvNtCsjrHSEGnQ3l9_3std2rt19lang_start_internal"),
            "std::rt::lang_start_internal"
        );
        for plain in ["main", "_start", "_Z", "__lll_lock_wait"] {
            assert_eq!(demangle(plain), plain);
        }
    }

    #[test]
    fn garbage_gives_an_empty_map() {
        for bytes in [&b""[..], b"\x7fELF", &[0u8; 200][..]] {
            let m = SourceMap::new(bytes);
            assert_eq!(m.line(0x401000), None);
            assert_eq!(m.symbol(0x401000), None);
            assert_eq!(m.describe(0x401000), "");
        }
    }

    #[test]
    fn lines_and_symbols_of_a_built_in_example() {
        let (_, src, elf) = crate::examples::EXAMPLES
            .iter()
            .find(|(n, _, _)| *n == "locked_counter")
            .expect("example");
        let m = SourceMap::new(elf);
        // `_start` is a function of the example; its first line is in locked_counter.c.
        let start = m
            .symbols
            .iter()
            .find(|s| s.2 == "_start")
            .expect("_start symbol")
            .0;
        assert_eq!(m.symbol(start + 1), Some(("_start", 1)));
        let l = m.line(start).expect("a line for _start");
        assert!(l.file.ends_with("locked_counter.c"), "{l}");
        let text_line = src.lines().nth(l.line as usize - 1).unwrap_or("");
        assert!(text_line.contains("_start"), "line {l}: {text_line}");
    }
}
