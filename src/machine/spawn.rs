//! A new Linux thread: a vCPU that starts as a copy of its parent at the parent's clone.
//!
//! Called from the parent's system call hook. The child's unicorn instance comes from the
//! pool (kept from an earlier run) or is created now; it gets the parent's registers, its
//! own stack and TLS, and a coroutine that the scheduler adopts before anyone can pick it.

use unicorn_engine::hook::uc_engine;
use unicorn_engine::RegisterX86;
use weft_trace::VcpuId;

use super::vcpu::{self, Start, VcpuData};
use super::{ffi, linux, regs};

/// Registers a thread inherits from its parent (everything a user-mode program can see:
/// general, flags, FS/GS bases; SSE and x87 state below).
const INHERITED: [RegisterX86; 21] = regs::gprs_and([
    RegisterX86::RFLAGS,
    RegisterX86::FS_BASE,
    RegisterX86::GS_BASE,
    RegisterX86::MXCSR,
    RegisterX86::FPCW,
]);

/// What clone asks for the child.
pub(crate) struct Child {
    /// Its stack pointer (0: the parent's).
    pub stack: u64,
    /// Its FS base (CLONE_SETTLS).
    pub tls: Option<u64>,
}

/// Why a thread could not be made: EAGAIN (no vCPU left) or ENOMEM (no instance).
pub(crate) enum SpawnError {
    NoVcpu,
    NoMemory,
}

/// Create a thread whose first instruction is the one after the parent's SYSCALL at `rip`.
pub(crate) fn spawn_thread(
    parent: &VcpuData,
    h: *mut uc_engine,
    rip: u64,
    child: &Child,
) -> Result<VcpuId, SpawnError> {
    let shared = &parent.shared;
    let capacity = shared.ctl.borrow().options().vcpus;
    let id = {
        let p = shared.linux.as_ref().ok_or(SpawnError::NoVcpu)?.borrow();
        let pool = shared.pool.borrow();
        p.free_vcpu()
            .filter(|v| v.0 < capacity)
            .or_else(|| p.reusable(|v| pool.get(v.0 as usize).is_some_and(Option::is_some)))
            .ok_or(SpawnError::NoVcpu)?
    };
    let pooled = shared
        .pool
        .borrow_mut()
        .get_mut(id.0 as usize)
        .and_then(Option::take);
    let (mut v, stack) = match pooled {
        Some(p) => p,
        None => {
            let start = Start {
                entry: rip + 2,
                rsp: 0,
                regs: Vec::new(),
                ret_slot: None,
                private: (0, 0),
                map_from: linux::NULL_GUARD,
            };
            let v = vcpu::create(id, shared, &start).map_err(|_| SpawnError::NoMemory)?;
            (v, vcpu::new_stack().map_err(|_| SpawnError::NoMemory)?)
        }
    };
    v.reset().map_err(|_| SpawnError::NoMemory)?;
    let ch = v.handle().0;
    for reg in INHERITED {
        ffi::reg_write(ch, reg, ffi::reg_read(h, reg));
    }
    let mut buf = [0u8; 16];
    for reg in regs::XMM {
        ffi::reg_read_bytes(h, reg, &mut buf);
        ffi::reg_write_bytes(ch, reg, &buf);
    }
    // The kernel's SYSCALL leaves the return address in RCX and RFLAGS in R11.
    ffi::reg_write(ch, RegisterX86::RCX, rip + 2);
    ffi::reg_write(ch, RegisterX86::R11, ffi::reg_read(h, RegisterX86::RFLAGS));
    ffi::reg_write(ch, RegisterX86::RAX, 0);
    let sp = if child.stack != 0 {
        child.stack
    } else {
        ffi::reg_read(h, RegisterX86::RSP)
    };
    ffi::reg_write(ch, RegisterX86::RSP, sp);
    if let Some(tls) = child.tls {
        ffi::reg_write(ch, RegisterX86::FS_BASE, tls);
    }
    // Its own stack: from the bottom of the mapping it lies in up to where it starts (glibc
    // keeps the thread's descriptor and TLS above, which other threads read).
    let mapping = shared
        .linux
        .as_ref()
        .and_then(|p| p.borrow().mm.mapping_of(sp.saturating_sub(1)));
    let own = mapping.map_or((0, 0), |(lo, _)| (lo, sp));
    v.data().set_private(own);
    // The whole mapping is the thread's: the parent wrote its descriptor and TLS there,
    // which from now on only the thread itself uses until someone joins it.
    let rest = mapping.map_or((0, 0), |(_, hi)| (sp, hi));
    shared.own_stack(id, own, rest);
    v.set_entry(rip + 2);
    {
        let mut handles = shared.handles.borrow_mut();
        let i = id.0 as usize;
        if handles.len() <= i {
            handles.resize(i + 1, vcpu::Handle(std::ptr::null_mut()));
        }
        handles[i] = v.handle();
    }
    shared
        .spawned
        .borrow_mut()
        .push((id, v.into_coroutine(stack)));
    shared.ctl.borrow_mut().spawn(id);
    Ok(id)
}
