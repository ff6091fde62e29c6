//! x86-64 instruction knowledge weft needs beyond unicorn: disassembly for reports, which
//! instructions are indivisible, and where the instructions unicorn cannot hook live.

use iced_x86::{
    Code, Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic, OpKind,
};

/// Longest x86 instruction.
pub const MAX_INSN_LEN: usize = 15;

/// Decode one instruction from `bytes` as if it sat at `rip`; `None` if invalid.
pub fn decode(bytes: &[u8], rip: u64) -> Option<Instruction> {
    let mut d = Decoder::with_ip(64, bytes, rip, DecoderOptions::NONE);
    let insn = d.decode();
    (!insn.is_invalid()).then_some(insn)
}

/// Intel-syntax text of one instruction (e.g. "add dword ptr [rip+0x2f3e],1").
pub fn format(insn: &Instruction) -> String {
    let mut out = String::new();
    let mut f = IntelFormatter::new();
    // Absolute addresses ([0x403230], not [rip+1D99h]): they match the trace's addresses.
    f.options_mut().set_rip_relative_addresses(false);
    f.options_mut().set_hex_prefix("0x");
    f.options_mut().set_hex_suffix("");
    f.options_mut().set_uppercase_hex(false);
    // Branch targets as 0x401e38, not 0x0000000000401e38.
    f.options_mut().set_branch_leading_zeros(false);
    f.format(insn, &mut out);
    out
}

/// Disassemble the instruction at the start of `bytes`, or describe why not.
pub fn disassemble(bytes: &[u8], rip: u64) -> String {
    match decode(bytes, rip) {
        Some(i) => format(&i),
        None if bytes.is_empty() => "(unreadable)".to_string(),
        None => format!(
            "(invalid: {})",
            bytes
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// Whether the instruction is one indivisible unit: LOCK-prefixed, or XCHG with a memory
/// operand (implicitly locked). Its read and write must not be separated by a switch.
pub fn is_atomic(insn: &Instruction) -> bool {
    if insn.has_lock_prefix() {
        return true;
    }
    insn.mnemonic() == Mnemonic::Xchg
        && (0..insn.op_count()).any(|i| insn.op_kind(i) == OpKind::Memory)
}

/// Instructions that need a precise code hook because unicorn gives no other way to see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// PAUSE: a scheduling point and spin hint (unicorn runs it as a NOP).
    Pause,
    Mfence,
    Sfence,
    Lfence,
    /// XBEGIN: unicorn silently mis-decodes it (as `mov eax, imm32`).
    Xbegin,
    /// XABORT: likewise (as `mov al, imm8`).
    Xabort,
}

fn site_kind(insn: &Instruction) -> Option<SiteKind> {
    match insn.code() {
        Code::Pause => Some(SiteKind::Pause),
        Code::Mfence => Some(SiteKind::Mfence),
        Code::Sfence => Some(SiteKind::Sfence),
        Code::Lfence => Some(SiteKind::Lfence),
        Code::Xbegin_rel16 | Code::Xbegin_rel32 => Some(SiteKind::Xbegin),
        Code::Xabort_imm8 => Some(SiteKind::Xabort),
        _ => None,
    }
}

/// How many SYSCALL instructions a linear sweep of `code` decodes: a board guest has
/// none (the board has hypercalls), a program of a C library hundreds.
pub fn count_syscalls(code: &[u8]) -> usize {
    let mut d = Decoder::with_ip(64, code, 0, DecoderOptions::NONE);
    let mut n = 0;
    while d.can_decode() {
        if d.decode().mnemonic() == Mnemonic::Syscall {
            n += 1;
        }
    }
    n
}

/// Every address in `code` (loaded at `base`) where an instruction of a [`SiteKind`] starts,
/// whatever instruction boundary the program uses: each byte offset whose bytes decode to
/// such an instruction is a site, so a hook there fires exactly when it executes.
pub fn find_sites(code: &[u8], base: u64) -> Vec<(u64, SiteKind)> {
    // Cheap byte filter first: PAUSE is F3 90, fences 0F AE E8/F0/F8, XBEGIN C7 F8, XABORT
    // C6 F8; allow up to 4 prefix bytes before the opcode.
    let mut sites = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let b = code[i];
        let candidate = (b == 0x90 && i >= 1 && code[i - 1] == 0xF3)
            || (b == 0xAE
                && i >= 1
                && code[i - 1] == 0x0F
                && code
                    .get(i + 1)
                    .is_some_and(|m| matches!(m, 0xE8 | 0xF0 | 0xF8)))
            || (matches!(b, 0xC6 | 0xC7) && code.get(i + 1) == Some(&0xF8));
        if candidate {
            let opcode_at = if matches!(b, 0xC6 | 0xC7) { i } else { i - 1 };
            for start in opcode_at.saturating_sub(4)..=opcode_at {
                let end = (start + MAX_INSN_LEN).min(code.len());
                if let Some(insn) = decode(&code[start..end], base + start as u64) {
                    // The decoded instruction must cover the opcode we found.
                    if start + insn.len() > opcode_at {
                        if let Some(k) = site_kind(&insn) {
                            sites.push((base + start as u64, k));
                        }
                    }
                }
            }
        }
        i += 1;
    }
    sites.sort_by_key(|s| s.0);
    sites.dedup_by_key(|s| s.0);
    sites
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscalls_are_counted_along_instruction_boundaries() {
        // syscall; mov eax, 0x050f (the syscall bytes inside an immediate); syscall
        let code = [0x0F, 0x05, 0xB8, 0x0F, 0x05, 0x00, 0x00, 0x0F, 0x05];
        assert_eq!(count_syscalls(&code), 2);
        assert_eq!(count_syscalls(&[0x90, 0xC3]), 0);
    }

    #[test]
    fn formats_and_classifies() {
        // lock add dword [rax], 1
        let i = decode(&[0xF0, 0x83, 0x00, 0x01], 0x1000).unwrap();
        assert!(is_atomic(&i));
        assert_eq!(format(&i), "lock add dword ptr [rax],1");
        let m = decode(&[0x48, 0x8b, 0x05, 0x81, 0x1d, 0x00, 0x00], 0x401490).unwrap();
        assert_eq!(format(&m), "mov rax,[0x403218]");
        // xchg [rdi], eax
        assert!(is_atomic(&decode(&[0x87, 0x07], 0).unwrap()));
        // xchg eax, ebx (no memory)
        assert!(!is_atomic(&decode(&[0x87, 0xD8], 0).unwrap()));
        // add dword [rax], 1
        assert!(!is_atomic(&decode(&[0x83, 0x00, 0x01], 0).unwrap()));
        assert!(disassemble(&[0x0F, 0xFF], 0).starts_with("(invalid"));
    }

    #[test]
    fn finds_sites_at_every_offset() {
        // nop; pause; mfence; xbegin +0; mov al, 0xF3 ; nop(0x90) -> not a pause at 0x10
        let code = [
            0x90, 0xF3, 0x90, 0x0F, 0xAE, 0xF0, 0xC7, 0xF8, 0, 0, 0, 0, 0xB0, 0xF3, 0x90,
        ];
        let sites = find_sites(&code, 0x10);
        assert!(sites.contains(&(0x11, SiteKind::Pause)));
        assert!(sites.contains(&(0x13, SiteKind::Mfence)));
        assert!(sites.contains(&(0x16, SiteKind::Xbegin)));
        // The F3 90 inside "mov al, 0xF3; nop" is also a PAUSE if execution starts there,
        // so it is a site too; hooking it is harmless when it never runs as one.
        assert!(sites.contains(&(0x1d, SiteKind::Pause)));
    }
}
