//! Intel RTM on a vCPU: XBEGIN, XABORT and XEND as unicorn cannot run them (see
//! docs/tm.md), and carrying out an abort once emulation has stopped. The TM engine
//! (`tm`) keeps the transactions; this is the part that touches registers.

use std::rc::Rc;
use unicorn_engine::hook::uc_engine;

use unicorn_engine::{RegisterX86, Unicorn};
use weft_trace::{AbortCause, Event};

use super::super::isa;
use super::super::tm::{self, Begin, End};
use super::{Instance, VcpuData};

/// XBEGIN at `rip` (a code hook exactly there: unicorn would run it as `mov eax, imm32`).
pub(super) fn xbegin(
    d: &VcpuData,
    uc: &mut Unicorn<'_, Rc<VcpuData>>,
    h: *mut uc_engine,
    rip: u64,
) {
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return;
    }
    let bytes = d.shared.mem.read_up_to(rip, isa::MAX_INSN_LEN);
    let Some(i) = isa::decode(&bytes, rip) else {
        d.crash(h, "#UD invalid opcode".into());
        return;
    };
    let next = rip + i.len() as u64;
    if !d.in_tx() {
        // The registers an abort restores: those before the outermost XBEGIN.
        let mut regs = d.tx_regs.borrow_mut();
        if regs.is_none() {
            *regs = uc.context_alloc().ok();
        }
        if let Some(ctx) = regs.as_mut() {
            let _ = uc.context_save(ctx);
        }
    }
    let begin = d
        .shared
        .tm
        .borrow_mut()
        .begin(d.id, rip, i.near_branch_target(), &d.shared.mem);
    match begin {
        Begin::Started { depth } => {
            d.ctl().emit_at_step(|step| Event::TxBegin {
                step,
                vcpu: d.id,
                rip,
                depth,
            });
            d.resume_at(next);
            d.stop_run_keep_cause(h);
        }
        Begin::Aborted(a) => {
            d.report_abort(d.id, &a);
            d.begin_abort(h, a);
        }
    }
}

/// XABORT at `rip` (a code hook, like XBEGIN): abort with the immediate in EAX[31:24];
/// outside a transaction it does nothing.
pub(super) fn xabort(d: &VcpuData, h: *mut uc_engine, rip: u64) {
    let bytes = d.shared.mem.read_up_to(rip, isa::MAX_INSN_LEN);
    let Some(i) = isa::decode(&bytes, rip) else {
        return;
    };
    if !d.in_tx() {
        d.resume_at(rip + i.len() as u64);
        d.stop_run_keep_cause(h);
        return;
    }
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return;
    }
    let code = i.immediate8();
    let base = tm::status::EXPLICIT | (code as u32) << 24;
    d.abort_own(h, rip, base, AbortCause::Explicit { code });
}

/// XEND at `rip`: commit at the outermost level; outside a transaction, #GP.
pub(super) fn xend(d: &VcpuData, h: *mut uc_engine, rip: u64, i: &iced_x86::Instruction) -> bool {
    if d.shared.ctl.borrow().stopping || !d.point(h, rip, false) {
        return false;
    }
    let end = d.shared.tm.borrow_mut().end(d.id);
    match end {
        End::NotInTransaction => d.crash(
            h,
            "#GP general protection fault: XEND outside a transaction".into(),
        ),
        End::Inner { .. } => d.resume_at(rip + i.len() as u64),
        End::Committed {
            begin_rip,
            read_lines,
            write_lines,
        } => {
            let mut c = d.ctl();
            c.emit_at_step(|step| Event::TxCommit {
                step,
                vcpu: d.id,
                rip,
                begin_rip,
                read_lines,
                write_lines,
            });
            c.progress(d.id);
            drop(c);
            d.resume_at(rip + i.len() as u64)
        }
    }
}

/// Carry out the abort noted in `VcpuData::abort`: undo the aborting instruction's late
/// stores, restore the registers of the outermost XBEGIN, put the status in EAX. Returns
/// the fallback address to resume at.
pub(super) fn finish_abort(uc: &mut Instance) -> u64 {
    let d = uc.get_data();
    let a = d.abort.borrow_mut().take().expect("an abort to finish");
    d.aborting.set(false);
    d.atomic_rip.set(0);
    for u in d.scrub.borrow_mut().drain(..).rev() {
        u.restore(&d.shared.mem);
    }
    let regs = d.tx_regs.borrow_mut().take();
    if let Some(ctx) = &regs {
        let _ = uc.context_restore(ctx);
    }
    *uc.get_data().tx_regs.borrow_mut() = regs;
    // A 32-bit write: the upper half of RAX is cleared.
    let _ = uc.reg_write(RegisterX86::RAX, a.status as u64);
    a.fallback
}
