//! Loading a static ELF64 x86-64 executable onto the weft board.
//!
//! Only what the board needs is parsed: the file header and the program headers. Every
//! field read from the file is bounds-checked, so a broken image gets a clear error and
//! never a panic.

use super::memory::GuestMemory;

/// Why an image cannot be loaded. Messages read as sentences about the image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    #[error("not an ELF file (bad magic)")]
    NotElf,
    #[error("a 32-bit ELF; weft runs ELF64 x86-64 executables")]
    Not64Bit,
    #[error("a big-endian ELF; weft runs little-endian x86-64 executables")]
    BigEndian,
    #[error("an ELF for machine {0}, not x86-64 (62)")]
    WrongMachine(u16),
    #[error("{0}; weft runs static executables (build with -static -no-pie)")]
    NotExecutable(&'static str),
    #[error("the ELF is truncated or malformed: {0}")]
    Malformed(String),
    #[error("segment {index} ({addr:#x}..{end:#x}) does not fit below the vCPU stacks, which start at {stacks:#x}; use a larger --ram or fewer/smaller stacks")]
    DoesNotFit {
        index: usize,
        addr: u64,
        end: u64,
        stacks: u64,
    },
    #[error("the entry point {0:#x} is not inside any loaded segment")]
    EntryOutside(u64),
    #[error("the ELF has no loadable segment")]
    NoSegments,
}

/// A loadable segment, as the machine needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest address (p_paddr).
    pub addr: u64,
    /// Size in memory (p_memsz); bytes past `data.len()` are zero.
    pub mem_size: u64,
    /// File contents (p_filesz bytes).
    pub data: Vec<u8>,
    pub executable: bool,
}

/// Where a static-pie executable (ET_DYN without an interpreter, which relocates itself)
/// is loaded: a fixed address, so its runs are deterministic like any other's.
pub const STATIC_PIE_BASE: u64 = 0x1000_0000;

/// What is added to `elf`'s link-time addresses where it is loaded: [`STATIC_PIE_BASE`]
/// for a static-pie executable, 0 for everything else. Symbols, lines, call frame
/// information and disassembly of the image apply it too.
pub fn load_bias(elf: &[u8]) -> u64 {
    let static_pie = || -> Option<bool> {
        if elf.get(0..4)? != b"\x7fELF" || u16_at(elf, 16).ok()? != 3 {
            return Some(false);
        }
        let phoff = u64_at(elf, 32).ok()?;
        let phentsize = u16_at(elf, 54).ok()? as u64;
        let phnum = u16_at(elf, 56).ok()? as u64;
        let interp = (0..phnum).any(|i| {
            let at = phoff.saturating_add(i.saturating_mul(phentsize)) as usize;
            u32_at(elf, at).is_ok_and(|t| t == PT_INTERP)
        });
        Some(!interp)
    };
    if static_pie().unwrap_or(false) {
        STATIC_PIE_BASE
    } else {
        0
    }
}

/// A parsed, validated guest image.
#[derive(Clone, Debug)]
pub struct ElfImage {
    pub entry: u64,
    /// Added to every link-time address ([`load_bias`]).
    pub bias: u64,
    pub segments: Vec<Segment>,
    /// What a Linux process needs to know of its image, and what tells a Linux program.
    pub program: ProgramInfo,
}

/// The program headers as a Linux process sees them (auxv AT_PHDR, AT_PHNUM) and the
/// marks of a Linux executable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramInfo {
    /// Guest address of the program header table (0: not inside any segment).
    pub phdr: u64,
    pub phnum: u64,
    pub phentsize: u64,
    /// EI_OSABI: 3 is GNU/Linux.
    pub osabi: u8,
    /// A GNU ABI tag note (glibc puts one in every executable).
    pub abi_tag: bool,
    /// A PT_INTERP segment: a dynamically linked executable.
    pub interp: bool,
    /// A PT_TLS segment: thread-local storage, which only a C library sets up (a hint that
    /// an unmarked executable, like a static musl one, is a Linux program).
    pub tls: bool,
}

impl ProgramInfo {
    /// Whether the image says it is a Linux program (OS ABI GNU/Linux, or glibc's ABI tag).
    pub fn is_linux(&self) -> bool {
        self.osabi == 3 || self.abi_tag
    }
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    bytes
        .get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| ElfError::Malformed(format!("header field at byte {at} is past the end")))
}
fn u16_at(b: &[u8], at: usize) -> Result<u16, ElfError> {
    field::<2>(b, at).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], at: usize) -> Result<u32, ElfError> {
    field::<4>(b, at).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], at: usize) -> Result<u64, ElfError> {
    field::<8>(b, at).map(u64::from_le_bytes)
}

const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_TLS: u32 = 7;
const PF_X: u32 = 1;

impl ElfImage {
    /// Parse and check an image. `limit` is the first guest address that segments must stay
    /// below (the bottom of the vCPU stacks).
    pub fn parse(bytes: &[u8], limit: u64) -> Result<ElfImage, ElfError> {
        if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        match bytes.get(4) {
            Some(2) => {}
            Some(1) => return Err(ElfError::Not64Bit),
            _ => return Err(ElfError::Malformed("unknown ELF class".into())),
        }
        if bytes.get(5) != Some(&1) {
            return Err(ElfError::BigEndian);
        }
        let e_type = u16_at(bytes, 16)?;
        let machine = u16_at(bytes, 18)?;
        if machine != 62 {
            return Err(ElfError::WrongMachine(machine));
        }
        let bias = load_bias(bytes);
        match e_type {
            2 => {}
            3 if bias != 0 => {}
            3 => {
                return Err(ElfError::NotExecutable(
                    "a position-independent or shared object",
                ))
            }
            1 => {
                return Err(ElfError::NotExecutable(
                    "a relocatable object file, not linked",
                ))
            }
            4 => return Err(ElfError::NotExecutable("a core dump")),
            _ => return Err(ElfError::NotExecutable("not an executable")),
        }
        let entry = u64_at(bytes, 24)?.wrapping_add(bias);
        let phoff = u64_at(bytes, 32)?;
        let phentsize = u16_at(bytes, 54)? as u64;
        let phnum = u16_at(bytes, 56)? as u64;
        if phnum > 0 && phentsize < 56 {
            return Err(ElfError::Malformed(format!(
                "program header size {phentsize} < 56"
            )));
        }
        let mut segments = Vec::new();
        let mut program = ProgramInfo {
            phnum,
            phentsize,
            osabi: bytes[7],
            ..ProgramInfo::default()
        };
        let mut phdr_segment = None;
        for i in 0..phnum {
            let at = phoff
                .checked_add(i * phentsize)
                .filter(|a| a.checked_add(56).is_some_and(|e| e <= bytes.len() as u64))
                .ok_or_else(|| {
                    ElfError::Malformed(format!("program header {i} lies past the end of the file"))
                })? as usize;
            let p_type = u32_at(bytes, at)?;
            let offset = u64_at(bytes, at + 8)?;
            match p_type {
                PT_LOAD => {}
                PT_INTERP => {
                    program.interp = true;
                    continue;
                }
                PT_PHDR => {
                    phdr_segment = Some(u64_at(bytes, at + 16)?.wrapping_add(bias));
                    continue;
                }
                PT_TLS => {
                    program.tls = true;
                    continue;
                }
                PT_NOTE => {
                    let size = u64_at(bytes, at + 32)?;
                    let note = offset
                        .checked_add(size)
                        .and_then(|e| bytes.get(offset as usize..e as usize));
                    program.abi_tag |= note.is_some_and(has_gnu_abi_tag);
                    continue;
                }
                _ => continue,
            }
            let flags = u32_at(bytes, at + 4)?;
            let vaddr = u64_at(bytes, at + 16)?.wrapping_add(bias);
            let paddr = u64_at(bytes, at + 24)?.wrapping_add(bias);
            let filesz = u64_at(bytes, at + 32)?;
            let memsz = u64_at(bytes, at + 40)?;
            if filesz > memsz {
                return Err(ElfError::Malformed(format!(
                    "segment {i} has file size {filesz:#x} larger than memory size {memsz:#x}"
                )));
            }
            let data = offset
                .checked_add(filesz)
                .filter(|e| *e <= bytes.len() as u64)
                .map(|e| bytes[offset as usize..e as usize].to_vec())
                .ok_or_else(|| {
                    ElfError::Malformed(format!("segment {i} data lies past the end of the file"))
                })?;
            let end =
                paddr
                    .checked_add(memsz)
                    .filter(|e| *e <= limit)
                    .ok_or(ElfError::DoesNotFit {
                        index: i as usize,
                        addr: paddr,
                        end: paddr.saturating_add(memsz),
                        stacks: limit,
                    })?;
            let _ = end;
            if program.phdr == 0 && phoff >= offset && phoff < offset.saturating_add(filesz) {
                program.phdr = vaddr + (phoff - offset);
            }
            segments.push(Segment {
                addr: paddr,
                mem_size: memsz,
                data,
                executable: flags & PF_X != 0,
            });
        }
        if segments.is_empty() {
            return Err(ElfError::NoSegments);
        }
        if !segments
            .iter()
            .any(|s| entry >= s.addr && entry < s.addr + s.mem_size)
        {
            return Err(ElfError::EntryOutside(entry));
        }
        if let Some(p) = phdr_segment {
            program.phdr = p;
        }
        Ok(ElfImage {
            entry,
            bias,
            segments,
            program,
        })
    }

    /// The first address past every segment.
    pub fn end(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.addr + s.mem_size)
            .max()
            .unwrap_or(0)
    }

    /// Copy every segment into guest RAM (memory beyond the file size is zeroed).
    pub fn load(&self, mem: &GuestMemory) {
        for s in &self.segments {
            // Both writes are within `limit` <= RAM size, checked by `parse`.
            mem.write(s.addr, &s.data);
            let zeros = vec![0u8; (s.mem_size - s.data.len() as u64) as usize];
            mem.write(s.addr + s.data.len() as u64, &zeros);
        }
    }
}

/// Whether `elf` says it is a Linux program (see [`ProgramInfo::is_linux`]); a file
/// that does not parse is not (the board then reports what is wrong with it).
pub fn looks_like_linux(elf: &[u8]) -> bool {
    ElfImage::parse(elf, u64::MAX).is_ok_and(|i| i.program.is_linux() || i.program.interp)
}

/// Whether `elf`, whatever its marks say, has what only a C library's program has: a
/// thread-local storage segment, SYSCALL instructions (the board has none to offer), or
/// the startup code of glibc or musl. A board guest that crashes and has them is likely a
/// Linux program run without `--linux`.
pub fn resembles_linux(elf: &[u8]) -> bool {
    let Ok(image) = ElfImage::parse(elf, u64::MAX) else {
        return false;
    };
    let syscalls: usize = image
        .segments
        .iter()
        .filter(|s| s.executable)
        .map(|s| super::isa::count_syscalls(&s.data))
        .sum();
    image.program.tls || image.program.is_linux() || syscalls >= 4 || {
        let map = crate::debuginfo::SourceMap::new(elf);
        [
            "__libc_start_main",
            "__libc_start_call_main",
            "__init_libc",
            "_start_c",
        ]
        .iter()
        .any(|s| map.address_of(s).is_some())
    }
}

/// Whether a PT_NOTE segment's notes hold a GNU ABI tag (name "GNU", type 1).
fn has_gnu_abi_tag(mut notes: &[u8]) -> bool {
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 4)
            .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
    };
    while let (Some(namesz), Some(descsz), Some(kind)) =
        (word(notes, 0), word(notes, 4), word(notes, 8))
    {
        let name_end = 12 + namesz as usize;
        if kind == 1 && notes.get(12..name_end) == Some(b"GNU\0") {
            return true;
        }
        let next = name_end.div_ceil(4) * 4 + (descsz as usize).div_ceil(4) * 4;
        match notes.get(next..) {
            Some(rest) if next > 0 => notes = rest,
            _ => break,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable with one PT_LOAD segment holding `code` at 0x400000.
    pub fn tiny_elf(code: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&0x400078u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        f[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        f[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
        f[ph + 16..ph + 24].copy_from_slice(&0x400000u64.to_le_bytes());
        f[ph + 24..ph + 32].copy_from_slice(&0x400000u64.to_le_bytes());
        let total = (64 + 56 + code.len()) as u64;
        f[ph + 32..ph + 40].copy_from_slice(&total.to_le_bytes());
        f[ph + 40..ph + 48].copy_from_slice(&(total + 0x100).to_le_bytes());
        f.extend_from_slice(code);
        f
    }

    #[test]
    fn a_static_pie_is_loaded_at_its_base_and_a_dynamic_pie_is_refused() {
        let mut e = tiny_elf(&[0xf4]);
        e[16..18].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(load_bias(&e), STATIC_PIE_BASE);
        let img = ElfImage::parse(&e, u64::MAX).unwrap();
        assert_eq!(img.bias, STATIC_PIE_BASE);
        assert_eq!(img.entry, STATIC_PIE_BASE + 0x400078);
        assert_eq!(img.segments[0].addr, STATIC_PIE_BASE + 0x400000);
        // The same with an interpreter: an ordinary dynamically linked PIE.
        e[64..68].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(load_bias(&e), 0);
        assert!(ElfImage::parse(&e, u64::MAX).is_err());
        assert_eq!(load_bias(&tiny_elf(&[0xf4])), 0);
    }

    #[test]
    fn parses_a_minimal_executable() {
        let img = ElfImage::parse(&tiny_elf(&[0xf4]), 1 << 26).unwrap();
        assert_eq!(img.entry, 0x400078);
        assert_eq!(img.segments.len(), 1);
        assert!(img.segments[0].executable);
        assert_eq!(img.segments[0].mem_size, 64 + 56 + 1 + 0x100);
    }

    #[test]
    fn rejects_bad_images_with_reasons() {
        assert_eq!(
            ElfImage::parse(b"hello", 1 << 26).unwrap_err(),
            ElfError::NotElf
        );
        let mut e = tiny_elf(&[0xf4]);
        e[4] = 1;
        assert_eq!(
            ElfImage::parse(&e, 1 << 26).unwrap_err(),
            ElfError::Not64Bit
        );
        let mut e = tiny_elf(&[0xf4]);
        e[18] = 3;
        assert_eq!(
            ElfImage::parse(&e, 1 << 26).unwrap_err(),
            ElfError::WrongMachine(3)
        );
        let mut e = tiny_elf(&[0xf4]);
        e[16] = 1; // a relocatable object (ET_DYN: see the static-pie test)
        assert!(matches!(
            ElfImage::parse(&e, 1 << 26),
            Err(ElfError::NotExecutable(_))
        ));
        let e = tiny_elf(&[0xf4]);
        assert!(matches!(
            ElfImage::parse(&e, 0x400010),
            Err(ElfError::DoesNotFit { .. })
        ));
        let mut e = tiny_elf(&[0xf4]);
        e[24..32].copy_from_slice(&0x10u64.to_le_bytes());
        assert_eq!(
            ElfImage::parse(&e, 1 << 26).unwrap_err(),
            ElfError::EntryOutside(0x10)
        );
        // Every truncation of a valid image is an error, never a panic.
        let e = tiny_elf(&[0xf4]);
        for cut in 0..e.len() {
            assert!(ElfImage::parse(&e[..cut], 1 << 26).is_err(), "cut at {cut}");
        }
    }
}
