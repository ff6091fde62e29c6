//! The hooks of a vCPU's instances other than its memory accesses (`access`): system
//! calls, invalid instructions (VMCALL and the TSX instructions unicorn lacks), port I/O,
//! CPUID and RDTSC, exceptions, the sites found in the code (PAUSE, XBEGIN, fences), block
//! starts (ticks, and moving between instances), and the debugger's instruction hook.

use std::ffi::{c_int, c_void};
use std::rc::Rc;

use unicorn_engine::hook::uc_engine;
use unicorn_engine::{HookType, MemType, RegisterX86, Unicorn, X86Insn};
use weft_trace::{AbortCause, Event, FenceKind, Verdict};

use super::super::hypercall;
use super::super::isa::{self, SiteKind};
use super::super::memory::PAGE;
use super::{access, ffi, rtm, Instance, Resume, Side, StopCause, VcpuData, Yield, RETURN_ADDR};

/// Install the hooks of a `side` instance: the same on both, but for memory (see `access`).
pub(super) fn install_hooks(
    uc: &mut Instance,
    side: Side,
    from: u64,
    ram: u64,
    sites: &[(u64, SiteKind)],
    linux: bool,
) -> Result<(), unicorn_engine::uc_error> {
    if linux {
        uc.add_insn_sys_hook(X86Insn::SYSCALL, 1, 0, |uc| {
            let h = uc.get_handle();
            let d: *const VcpuData = &**uc.get_data();
            // SAFETY: as in the memory hook.
            let d = unsafe { &*d };
            let rip = uc.pc_read().unwrap_or(0);
            super::super::linux::syscall::syscall(d, h, rip);
        })?;
    }
    // The hottest hooks: registered raw, so each call skips the safe wrapper's bookkeeping.
    let user: *mut c_void = Rc::as_ptr(uc.get_data()).cast_mut().cast();
    let shared = uc.get_data().shared.clone();
    if shared.debug.is_some() {
        // First, so that it sees every instruction before a site hook (XBEGIN) may stop.
        ffi::add_code_hook(uc, on_insn, user)?;
    }
    let rw = HookType::MEM_READ | HookType::MEM_WRITE;
    match side {
        Side::Hooked => ffi::add_mem_hook(uc, rw, 0, ram - 1, access::on_mem, user)?,
        Side::Fast => {
            ffi::set_tlb_fill(uc, access::on_tlb_fill, user)?;
            // Only a machine that derives the full access log, or debugs, sees the fast
            // instance's accesses (any memory hook costs every access its fast path).
            if shared.derive || shared.debug.is_some() {
                ffi::add_mem_hook(uc, rw, 0, ram - 1, access::on_mem_fast, user)?;
            }
        }
    }
    // Only where nothing is mapped: a memory hook of any kind over RAM would keep unicorn
    // from marking written pages dirty, and every store would take its slow path.
    if from > 0 {
        uc.add_mem_hook(HookType::MEM_UNMAPPED, 0, from - 1, on_unmapped)?;
    }
    uc.add_mem_hook(HookType::MEM_UNMAPPED, ram, u64::MAX, on_unmapped)?;
    uc.add_intr_hook(|uc, intno| {
        let what = match intno {
            0 => "#DE divide error".to_string(),
            1 => "#DB debug exception".to_string(),
            3 => "#BP breakpoint (int3)".to_string(),
            4 => "#OF overflow".to_string(),
            5 => "#BR bound range exceeded".to_string(),
            6 => "#UD invalid opcode".to_string(),
            7 => "#NM device not available".to_string(),
            8 => "#DF double fault".to_string(),
            10 => "#TS invalid TSS".to_string(),
            11 => "#NP segment not present".to_string(),
            12 => "#SS stack-segment fault".to_string(),
            13 => "#GP general protection fault".to_string(),
            14 => "#PF page fault".to_string(),
            16 => "#MF x87 floating-point error".to_string(),
            17 => "#AC alignment check".to_string(),
            19 => "#XM SIMD floating-point exception".to_string(),
            n => format!("interrupt or exception vector {n} (no handlers on the weft board)"),
        };
        let h = uc.get_handle();
        uc.get_data().crash(h, what);
    })?;
    uc.add_insn_invalid_hook(|uc| {
        let h = uc.get_handle();
        let rip = uc.pc_read().unwrap_or(0);
        let d: *const VcpuData = &**uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let mut bytes = [0u8; isa::MAX_INSN_LEN];
        let n = d.shared.mem.read_up_to(rip, bytes.len());
        bytes[..n.len()].copy_from_slice(&n);
        match isa::decode(&bytes[..n.len()], rip) {
            Some(i) if i.code() == iced_x86::Code::Vmcall => {
                if d.abort_own(
                    h,
                    rip,
                    0,
                    AbortCause::Instruction {
                        name: "vmcall".into(),
                    },
                ) {
                    return false;
                }
                hypercall::vmcall(d, h, rip)
            }
            Some(i) if i.mnemonic() == iced_x86::Mnemonic::Xend => rtm::xend(d, h, rip, &i),
            Some(i) if i.mnemonic() == iced_x86::Mnemonic::Xtest => {
                // ZF = not in a transaction; CF, OF, SF, PF, AF cleared.
                let flags = uc.reg_read(RegisterX86::RFLAGS).unwrap_or(2);
                let cleared = flags & !(1 | 1 << 2 | 1 << 4 | 1 << 6 | 1 << 7 | 1 << 11);
                let zf = if d.in_tx() { 0 } else { 1 << 6 };
                let _ = uc.reg_write(RegisterX86::RFLAGS, cleared | zf);
                d.resume_at(rip + i.len() as u64)
            }
            _ => d.crash(h, "#UD invalid opcode".to_string()),
        }
    })?;
    uc.add_insn_out_hook(|uc, port, size, value| {
        let h = uc.get_handle();
        let d: *const VcpuData = &**uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let rip = uc.pc_read().unwrap_or(0);
        if d.abort_own(h, rip, 0, AbortCause::Instruction { name: "out".into() })
            || d.shared.ctl.borrow().stopping
            || !d.point(h, rip, false)
        {
            return;
        }
        match port {
            0xE9 => d.ctl().console(d.id, 1, &[value as u8]),
            0xF4 => {
                let status = (value & 0xFF) as u64;
                let verdict = if status == 0 {
                    Verdict::Pass
                } else {
                    Verdict::ExitStatus { vcpu: d.id, status }
                };
                d.ctl().finish(verdict);
                d.stop(h, StopCause::Stop);
            }
            _ => {
                let msg = format!(
                    "OUT of {size} byte(s) {value:#x} to port {port:#x}: no device there; ignored"
                );
                d.ctl().warn(d.id, rip, msg);
            }
        }
    })?;
    uc.add_insn_in_hook(|uc, port, size| {
        let h = uc.get_handle();
        let d: *const VcpuData = &**uc.get_data();
        // SAFETY: as in the memory hook.
        let d = unsafe { &*d };
        let rip = uc.pc_read().unwrap_or(0);
        if d.abort_own(h, rip, 0, AbortCause::Instruction { name: "in".into() })
            || d.shared.ctl.borrow().stopping
            || !d.point(h, rip, false)
        {
            return 0;
        }
        let msg =
            format!("IN of {size} byte(s) from port {port:#x}: no device there; reads all ones");
        d.ctl().warn(d.id, rip, msg);
        u32::MAX
    })?;
    ffi::add_insn_hook(uc, X86Insn::CPUID, on_cpuid, user)?;
    ffi::add_block_hook(uc, on_block, user)?;
    ffi::add_insn_hook(uc, X86Insn::RDTSC, on_rdtsc, user)?;
    ffi::add_insn_hook(uc, X86Insn::RDTSCP, on_rdtsc, user)?;
    for &(addr, kind) in sites {
        uc.add_code_hook(addr, addr, move |uc, _addr, _size| {
            let h = uc.get_handle();
            let d: *const VcpuData = &**uc.get_data();
            // SAFETY: as in the memory hook.
            let d = unsafe { &*d };
            if d.shared.ctl.borrow().stopping {
                return;
            }
            let fence = match kind {
                SiteKind::Pause => {
                    let pause = AbortCause::Instruction {
                        name: "pause".into(),
                    };
                    if !d.abort_own(h, addr, 0, pause) {
                        d.point(h, addr, true);
                    }
                    return;
                }
                SiteKind::Xbegin => {
                    rtm::xbegin(d, uc, h, addr);
                    return;
                }
                SiteKind::Xabort => {
                    rtm::xabort(d, h, addr);
                    return;
                }
                SiteKind::Mfence => FenceKind::Mfence,
                SiteKind::Sfence => FenceKind::Sfence,
                SiteKind::Lfence => FenceKind::Lfence,
            };
            let mut c = d.ctl();
            if c.log_accesses {
                let step = c.step();
                c.emit(&Event::Fence {
                    step,
                    vcpu: d.id,
                    rip: addr,
                    kind: fence,
                });
            }
        })?;
    }
    Ok(())
}

/// An access where nothing is mapped: the vCPU ended (it returned from `_start` to the
/// board's return address) or crashed.
fn on_unmapped(
    uc: &mut Unicorn<'_, Rc<VcpuData>>,
    ty: MemType,
    addr: u64,
    size: usize,
    _value: i64,
) -> bool {
    let d = uc.get_data();
    if ty == MemType::FETCH_UNMAPPED && addr == RETURN_ADDR {
        *d.cause.borrow_mut() = Some(StopCause::Returned);
        return false;
    }
    let what = match ty {
        MemType::READ_UNMAPPED => "read of",
        MemType::WRITE_UNMAPPED => "write to",
        MemType::FETCH_UNMAPPED => "instruction fetch from",
        _ => "forbidden access to",
    };
    let ram = d.shared.mem.size();
    let msg = format!("{what} unmapped address {addr:#x} ({size} bytes; RAM ends at {ram:#x})");
    d.cause.borrow_mut().get_or_insert(StopCause::Fault(msg));
    false
}

/// Every instruction of a debug machine: count it and pause there if the debugger says so.
pub(super) extern "C" fn on_insn(uc: *mut uc_engine, addr: u64, _size: u32, user: *mut c_void) {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    // Instructions after an abort or after the end of the run are not really executed.
    if d.aborting.get() || d.shared.ctl.borrow().stopping {
        return;
    }
    let Some(dbg) = &d.shared.debug else { return };
    let next_step = d.shared.ctl.borrow().next_step();
    let pause = dbg.borrow_mut().on_insn(d.id.0, addr, next_step);
    if let Some(reason) = pause {
        let y = d.yielder.get();
        // SAFETY: as in `VcpuData::point`: hooks run inside this vCPU's coroutine.
        if unsafe { &*y }.suspend(Yield::Debug(reason)) == Resume::Stop {
            d.stop(uc, StopCause::Stop);
        }
    }
}

/// Blocks a vCPU may run without a scheduling point before one is forced.
const TICK_BLOCKS: u32 = 1024;

/// Start of every translated block. A vCPU that runs `TICK_BLOCKS` blocks without a
/// scheduling point (a loop over its own stack and registers) gets one here, as a spin:
/// so the strategy can run others, `--max-steps` applies, and a vCPU that never touches
/// shared memory again ends in a livelock verdict instead of hanging weft. Deterministic:
/// the same code from the same state runs the same blocks.
extern "C" fn on_block(uc: *mut uc_engine, addr: u64, size: u32, user: *mut c_void) {
    // SAFETY: as in `on_mem`.
    let d = unsafe { &*(user as *const VcpuData) };
    // Pages stay noted as code for the machine's life: a block on the page of this vCPU's
    // previous one needs no look (the hottest case of this hot hook).
    let page = addr / PAGE;
    if page != d.code_page.get() || (addr + size.max(1) as u64 - 1) / PAGE != page {
        d.note_code(addr, size);
    }
    let n = d.blocks.get() + 1;
    if n < TICK_BLOCKS {
        d.blocks.set(n);
        if d.side.get() == Side::Hooked {
            d.maybe_back_to_fast(uc, addr);
        }
        return;
    }
    d.tick(uc, addr);
}

impl VcpuData {
    /// A block runs from a page this vCPU did not just run: note its pages as code.
    #[inline(never)]
    fn note_code(&self, addr: u64, size: u32) {
        for page in self
            .shared
            .code
            .note_block(addr, size)
            .into_iter()
            .flatten()
        {
            // Code now: its owner may no longer store to it unseen.
            self.shared.revoke_page(page);
        }
        self.code_page.set(addr / PAGE);
    }

    /// `TICK_BLOCKS` blocks without a scheduling point: one now (see `on_block`).
    #[inline(never)]
    fn tick(&self, uc: *mut uc_engine, addr: u64) {
        let d = self;
        if d.aborting.get() || d.shared.ctl.borrow().stopping {
            return;
        }
        let row = d.ticks_in_row.get().saturating_add(1);
        if d.loops_forever(uc, row) {
            d.ctl().stuck(d.id, addr);
        }
        if !d.point(uc, addr, true) {
            return;
        }
        d.ticks_in_row.set(row);
        d.watching.set(true);
        if d.side.get() == Side::Fast {
            // Watched until its next point: on the hooked instance, which sees every store.
            d.move_to(uc, Side::Hooked, addr);
        }
    }
}

/// Blocks a vCPU runs on its hooked instance without touching shared memory (or being
/// watched) before it goes back to its fast one: a move costs about as much as a few
/// blocks' hooked accesses, and code that touches shared memory now usually does again
/// soon (weft-bench: 2 doubles lock_heavy's time, 4 to 8 are about equal on the others).
/// At least 2: the block a vCPU moved to its hooked instance for must run there.
const BACK_TO_FAST: u32 = 8;

/// Blocks a vCPU is watched for after one of its first ticks in a row (`watching`).
const WATCH_BLOCKS: u32 = 32;

impl VcpuData {
    /// At the start of a block on the hooked instance: move back to the fast one when the
    /// vCPU has run `BACK_TO_FAST` blocks with nothing but its own memory.
    #[inline(never)]
    fn maybe_back_to_fast(&self, uc: *mut uc_engine, addr: u64) {
        if self.watching.get() {
            // A watch after one of the first ticks in a row lasts `WATCH_BLOCKS` (enough to
            // see a computing vCPU write); from `WARMUP` ticks in a row on, until the next
            // point, so that the loop proof sees every store (see `watching`).
            if self.ticks_in_row.get() >= super::super::cycle::WARMUP
                || self.blocks.get() < WATCH_BLOCKS
            {
                return;
            }
            self.watching.set(false);
        }
        if !self.shared.fast || self.aborting.get() || self.in_tx() {
            return;
        }
        let n = self.since_shared.get() + 1;
        self.since_shared.set(n);
        if n >= BACK_TO_FAST {
            self.move_to(uc, Side::Fast, addr);
        }
    }

    /// Stop before the block at `at` and go on there on the `to` instance.
    fn move_to(&self, uc: *mut uc_engine, to: Side, at: u64) {
        self.cause
            .borrow_mut()
            .get_or_insert(StopCause::Move { to, at: Some(at) });
        ffi::emu_stop(uc);
    }

    /// At the `row`-th tick in a row: whether this vCPU provably loops forever (`cycle`).
    fn loops_forever(&self, uc: *mut uc_engine, row: u32) -> bool {
        let (stack_bytes, vcpus, progress) = {
            let c = self.shared.ctl.borrow();
            (
                c.options().stack_bytes,
                c.options().vcpus,
                c.progress_stamp(),
            )
        };
        let ram = self.shared.mem.size();
        let stacks = ram - stack_bytes * vcpus as u64;
        if row >= super::super::cycle::WARMUP && self.shared.code.any_in(stacks, ram) {
            return false; // code on a stack: a store to it would not count as progress
        }
        self.loops
            .borrow_mut()
            .tick(uc, row, &self.shared.mem, self.private.get(), progress)
    }
}

/// RDTSC / RDTSCP: deterministic virtual time; each read is a scheduling point.
extern "C" fn on_rdtsc(uc: *mut uc_engine, user: *mut c_void) -> c_int {
    // SAFETY: `user` is this instance's `VcpuData` (see `install_hooks`), alive while it runs.
    let d = unsafe { &*(user as *const VcpuData) };
    let rip = ffi::reg_read(uc, RegisterX86::RIP);
    if d.shared.ctl.borrow().stopping || !d.point(uc, rip, false) {
        return 1;
    }
    let tsc = d.shared.ctl.borrow().tsc();
    ffi::reg_write(uc, RegisterX86::RAX, tsc & 0xFFFF_FFFF);
    ffi::reg_write(uc, RegisterX86::RDX, tsc >> 32);
    // RDTSCP also loads IA32_TSC_AUX, which the board sets to the vCPU id. Both instructions
    // share this hook; RDTSCP is 0F 01 F9, RDTSC 0F 31.
    if d.shared.mem.read_uint(rip, 3) == Some(0xF9010F) {
        ffi::reg_write(uc, RegisterX86::RCX, d.id.0 as u64);
    }
    1
}

/// CPUID: the board's deterministic identity (GenuineIntel, RTM and HLE, vCPU topology).
extern "C" fn on_cpuid(uc: *mut uc_engine, user: *mut c_void) -> c_int {
    // SAFETY: as in `on_rdtsc`.
    let d = unsafe { &*(user as *const VcpuData) };
    let rip = ffi::reg_read(uc, RegisterX86::RIP);
    if d.abort_own(
        uc,
        rip,
        0,
        AbortCause::Instruction {
            name: "cpuid".into(),
        },
    ) {
        return 1;
    }
    let leaf = ffi::reg_read(uc, RegisterX86::RAX) as u32;
    let sub = ffi::reg_read(uc, RegisterX86::RCX) as u32;
    let n = d.shared.ctl.borrow().options().vcpus;
    let [a, b, c, dx] = super::super::cpuid::leaf(leaf, sub, d.id.0, n);
    ffi::reg_write(uc, RegisterX86::RAX, a as u64);
    ffi::reg_write(uc, RegisterX86::RBX, b as u64);
    ffi::reg_write(uc, RegisterX86::RCX, c as u64);
    ffi::reg_write(uc, RegisterX86::RDX, dx as u64);
    1
}
