//! unicorn's names for the x86-64 registers weft reads and copies, in architectural order:
//! one list each, shared by crash reports, the debugger, thread creation and the spin
//! detector.

use unicorn_engine::RegisterX86;

/// rax rbx rcx rdx rsi rdi rbp rsp r8..r15 (the order of gdb and of `CrashInfo::regs`).
pub(crate) const GPRS: [RegisterX86; 16] = [
    RegisterX86::RAX,
    RegisterX86::RBX,
    RegisterX86::RCX,
    RegisterX86::RDX,
    RegisterX86::RSI,
    RegisterX86::RDI,
    RegisterX86::RBP,
    RegisterX86::RSP,
    RegisterX86::R8,
    RegisterX86::R9,
    RegisterX86::R10,
    RegisterX86::R11,
    RegisterX86::R12,
    RegisterX86::R13,
    RegisterX86::R14,
    RegisterX86::R15,
];

/// The general registers followed by `extra` (e.g. RFLAGS), as one array.
pub(crate) const fn gprs_and<const N: usize, const M: usize>(
    extra: [RegisterX86; M],
) -> [RegisterX86; N] {
    assert!(N == 16 + M);
    let mut out = [RegisterX86::RAX; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < 16 { GPRS[i] } else { extra[i - 16] };
        i += 1;
    }
    out
}

/// cs ss ds es fs gs.
pub(crate) const SEGMENTS: [RegisterX86; 6] = [
    RegisterX86::CS,
    RegisterX86::SS,
    RegisterX86::DS,
    RegisterX86::ES,
    RegisterX86::FS,
    RegisterX86::GS,
];

/// The x87 stack registers st0..st7.
pub(crate) const ST: [RegisterX86; 8] = [
    RegisterX86::ST0,
    RegisterX86::ST1,
    RegisterX86::ST2,
    RegisterX86::ST3,
    RegisterX86::ST4,
    RegisterX86::ST5,
    RegisterX86::ST6,
    RegisterX86::ST7,
];

/// xmm0..xmm15.
pub(crate) const XMM: [RegisterX86; 16] = [
    RegisterX86::XMM0,
    RegisterX86::XMM1,
    RegisterX86::XMM2,
    RegisterX86::XMM3,
    RegisterX86::XMM4,
    RegisterX86::XMM5,
    RegisterX86::XMM6,
    RegisterX86::XMM7,
    RegisterX86::XMM8,
    RegisterX86::XMM9,
    RegisterX86::XMM10,
    RegisterX86::XMM11,
    RegisterX86::XMM12,
    RegisterX86::XMM13,
    RegisterX86::XMM14,
    RegisterX86::XMM15,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gprs_and_appends_in_order() {
        let all: [RegisterX86; 18] = gprs_and([RegisterX86::RIP, RegisterX86::RFLAGS]);
        assert_eq!(all[..16], GPRS);
        assert_eq!(all[16], RegisterX86::RIP);
        assert_eq!(all[17], RegisterX86::RFLAGS);
    }
}
