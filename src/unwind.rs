//! Call stacks of a stopped vCPU, from the guest ELF's call frame information (.eh_frame,
//! which gcc emits for every x86-64 function by default, glibc's and musl's included), so
//! that a deadlock or a crash says who called the function it stopped in:
//! `__lll_lock_wait <- pthread_mutex_lock <- transfer (lock_order.c:31) <- start_thread`.
//!
//! Unwinding reads only the guest's memory and registers; it never fails loudly: where the
//! information ends (no FDE for an address, an expression rule, an unreadable stack slot),
//! the stack just ends there.

use gimli::{
    BaseAddresses, CfaRule, DebugFrame, EhFrame, EndianSlice, LittleEndian, Register, RegisterRule,
    UnwindContext, UnwindSection,
};

use crate::debuginfo::sections;

/// Most frames one backtrace lists (a runaway recursion stops here).
pub const MAX_FRAMES: usize = 32;

/// DWARF register numbers of x86-64 for weft's GPR order (rax rbx rcx rdx rsi rdi rbp rsp
/// r8..r15).
const DWARF_OF_GPR: [u16; 16] = [0, 3, 2, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// The return address column.
const RA: Register = Register(16);
/// The stack pointer's DWARF number.
const RSP: usize = 7;

type Slice<'a> = EndianSlice<'a, LittleEndian>;

/// Which section the frame information comes from.
#[derive(Clone, Copy)]
enum Kind {
    /// .eh_frame: what gcc emits by default (and what glibc and musl have).
    Eh,
    /// .debug_frame: what `-g` emits when unwind tables are off (the board guests).
    Debug,
}

/// The call frame information of one guest image.
pub struct Unwinder {
    kind: Kind,
    data: Vec<u8>,
    bases: BaseAddresses,
    /// (first address, end, FDE offset) of every function, sorted (load addresses).
    fdes: Vec<(u64, u64, usize)>,
    /// Load address minus link address (a static-pie's load address; else 0).
    bias: u64,
    /// From the first function with frame information to the end of the last.
    code: (u64, u64),
}

/// One row of the unwind table: the CFA rule and each register's rule, as far as weft
/// follows them.
struct Row {
    cfa: Option<(u16, i64)>,
    rules: [Option<RegisterRule<usize>>; 17],
}

impl Unwinder {
    /// Read `elf`'s .eh_frame (or else its .debug_frame); `None` if it has neither, or no
    /// function in them parses.
    pub fn new(elf: &[u8]) -> Option<Unwinder> {
        let secs = sections(elf);
        let text = secs
            .iter()
            .find(|s| s.name == ".text")
            .map_or(0, |s| s.addr);
        let find = |name: &str| secs.iter().find(|s| s.name == name && !s.data.is_empty());
        let (kind, sec) = match (find(".eh_frame"), find(".debug_frame")) {
            (Some(eh), _) => (Kind::Eh, eh),
            (None, Some(debug)) => (Kind::Debug, debug),
            (None, None) => return None,
        };
        let bases = BaseAddresses::default()
            .set_eh_frame(sec.addr)
            .set_text(text);
        let mut u = Unwinder {
            kind,
            data: sec.data.to_vec(),
            bases,
            fdes: Vec::new(),
            code: (0, 0),
            bias: crate::machine::load_bias(elf),
        };
        u.fdes = match kind {
            Kind::Eh => u.index(u.eh_frame()),
            Kind::Debug => u.index(u.debug_frame()),
        };
        if u.fdes.is_empty() {
            return None;
        }
        u.fdes.sort_unstable();
        u.code = (u.fdes[0].0, u.fdes.iter().map(|f| f.1).max().unwrap_or(0));
        Some(u)
    }

    /// Whether `pc` lies between the first and the last function with frame information
    /// (a return address outside is not one: e.g. the board's end-of-`_start` slot).
    fn in_code(&self, pc: u64) -> bool {
        self.code.0 < pc && pc <= self.code.1
    }

    fn eh_frame(&self) -> EhFrame<Slice<'_>> {
        EhFrame::new(&self.data, LittleEndian)
    }

    fn debug_frame(&self) -> DebugFrame<Slice<'_>> {
        let mut d = DebugFrame::new(&self.data, LittleEndian);
        d.set_address_size(8);
        d
    }

    /// Every function's range and FDE offset. A malformed entry ends the table: what came
    /// before it is still good.
    fn index<'a, S: UnwindSection<Slice<'a>>>(&self, section: S) -> Vec<(u64, u64, usize)> {
        let mut fdes = Vec::new();
        let mut entries = section.entries(&self.bases);
        while let Ok(Some(entry)) = entries.next() {
            if let gimli::CieOrFde::Fde(partial) = entry {
                if let Ok(fde) = partial.parse(S::cie_from_offset) {
                    let start = fde.initial_address().wrapping_add(self.bias);
                    fdes.push((start, start.saturating_add(fde.len()), fde.offset()));
                }
            }
        }
        fdes
    }

    /// The unwind rules at `pc`, if some function's information covers it.
    fn row(&self, pc: u64, ctx: &mut UnwindContext<usize>) -> Option<Row> {
        let i = self.fdes.partition_point(|f| f.0 <= pc);
        let (start, end, off) = *self.fdes.get(i.checked_sub(1)?)?;
        if !(start <= pc && pc < end) {
            return None;
        }
        let linked = pc.wrapping_sub(self.bias);
        match self.kind {
            Kind::Eh => self.row_in(self.eh_frame(), off, linked, ctx),
            Kind::Debug => self.row_in(self.debug_frame(), off, linked, ctx),
        }
    }

    fn row_in<'a, S: UnwindSection<Slice<'a>>>(
        &self,
        section: S,
        off: usize,
        pc: u64,
        ctx: &mut UnwindContext<usize>,
    ) -> Option<Row> {
        let fde = section
            .fde_from_offset(&self.bases, S::Offset::from(off), S::cie_from_offset)
            .ok()?;
        let row = fde
            .unwind_info_for_address(&section, &self.bases, ctx, pc)
            .ok()?;
        let cfa = match row.cfa() {
            CfaRule::RegisterAndOffset { register, offset } => Some((register.0, *offset)),
            CfaRule::Expression(_) => None,
        };
        let mut rules: [Option<RegisterRule<usize>>; 17] = Default::default();
        for (i, r) in rules.iter_mut().enumerate() {
            *r = row.register(Register(i as u16));
        }
        Some(Row { cfa, rules })
    }

    /// The call stack of a vCPU stopped at `rip` with general registers `gprs` (weft's
    /// order): `rip`, then each return address, innermost first, at most [`MAX_FRAMES`].
    /// `read` gives the 8 bytes of guest memory at an address, `None` where unmapped.
    pub fn backtrace(
        &self,
        rip: u64,
        gprs: &[u64; 16],
        read: &dyn Fn(u64) -> Option<u64>,
    ) -> Vec<u64> {
        let mut regs: [Option<u64>; 17] = [None; 17];
        for (g, &d) in gprs.iter().zip(&DWARF_OF_GPR) {
            regs[d as usize] = Some(*g);
        }
        let mut ctx = UnwindContext::new();
        let mut out = vec![rip];
        while out.len() < MAX_FRAMES {
            let pc = *out.last().expect("never empty");
            // A return address points after its call: look up the call itself (it may be the
            // last instruction of a function that never returns).
            let lookup = if out.len() == 1 { pc } else { pc - 1 };
            let Some(row) = self.row(lookup, &mut ctx) else {
                break;
            };
            let Some(cfa) = row.cfa.and_then(|(r, off)| {
                Some(regs.get(r as usize).copied()??.wrapping_add(off as u64))
            }) else {
                break;
            };
            let at = |o: i64| read(cfa.wrapping_add(o as u64));
            let mut next = regs;
            for (i, slot) in next.iter_mut().enumerate() {
                *slot = match &row.rules[i] {
                    // Callee-saved registers keep their value unless a rule says otherwise;
                    // the others are unknown in the caller but harmless to keep.
                    None | Some(RegisterRule::SameValue) => regs[i],
                    Some(RegisterRule::Undefined) => None,
                    Some(RegisterRule::Offset(o)) => at(*o),
                    Some(RegisterRule::ValOffset(o)) => Some(cfa.wrapping_add(*o as u64)),
                    Some(RegisterRule::Register(r)) => regs.get(r.0 as usize).copied().flatten(),
                    Some(RegisterRule::Constant(c)) => Some(*c),
                    Some(_) => None,
                };
            }
            // The return address: its rule, or by the ABI the word just below the CFA.
            let ret = match &row.rules[RA.0 as usize] {
                None => at(-8),
                Some(RegisterRule::Offset(o)) => at(*o),
                Some(_) => None,
            };
            next[RSP] = Some(cfa);
            match ret {
                // The outermost frame (_start, a thread's start) marks its return address
                // undefined, or holds 0 there; a CFA that does not move up is garbage.
                Some(r) if self.in_code(r) && regs[RSP].is_some_and(|sp| cfa > sp) => {
                    out.push(r);
                    regs = next;
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_without_call_frame_information_have_no_unwinder() {
        for bytes in [&b""[..], b"\x7fELF", &[0u8; 200][..]] {
            assert!(Unwinder::new(bytes).is_none());
        }
    }

    #[test]
    fn a_pc_outside_every_function_is_a_one_frame_stack() {
        let (_, _, elf) = crate::examples::EXAMPLES[0];
        let Some(u) = Unwinder::new(elf) else {
            panic!("the examples are built with call frame information");
        };
        assert_eq!(u.backtrace(0x10, &[0; 16], &|_| None), vec![0x10]);
    }
}
