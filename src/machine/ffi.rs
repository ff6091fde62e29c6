//! The few raw unicorn calls the safe crate API does not offer (or offers wrongly):
//! instruction hooks whose callbacks must return "skip", TCG buffer sizing, and register
//! access from those raw callbacks. Every `unsafe` block of the machine that talks to
//! unicorn directly lives here.

use std::ffi::{c_int, c_void};

use unicorn_engine::hook::sys as uc_sys;
use unicorn_engine::hook::uc_engine;
use unicorn_engine::{ControlType, HookType, MemType, RegisterX86, Unicorn, X86Insn};

/// A raw x86 instruction hook callback: returns 1 to skip the instruction.
pub type InsnCallback = extern "C" fn(*mut uc_engine, *mut c_void) -> c_int;

/// Hook `insn` (CPUID, RDTSC, RDTSCP) with a raw callback that may skip it.
///
/// The crate's `add_insn_sys_hook` gives callbacks returning `()` where unicorn reads an int
/// for these instructions, so CPUID would be skipped with garbage results.
pub fn add_insn_hook<D>(
    uc: &mut Unicorn<'_, D>,
    insn: X86Insn,
    callback: InsnCallback,
    user_data: *mut c_void,
) -> Result<(), unicorn_engine::uc_error> {
    let mut hook: uc_sys::uc_hook = 0;
    // SAFETY: the handle is a live unicorn instance; `callback` has the C signature unicorn
    // calls for UC_HOOK_INSN with these instructions; `user_data` points at data owned by the
    // same instance (its `D`), which lives as long as the instance and so as the hook.
    let err = unsafe {
        uc_sys::uc_hook_add(
            uc.get_handle(),
            &mut hook,
            unicorn_engine::HookType::INSN.0 as c_int,
            callback as *mut c_void,
            user_data,
            1,
            0,
            insn as c_int,
        )
    };
    if err == unicorn_engine::uc_error::OK {
        Ok(())
    } else {
        Err(err)
    }
}

/// A raw memory hook callback (uc_cb_hookmem_t).
pub type MemCallback = extern "C" fn(*mut uc_engine, MemType, u64, c_int, i64, *mut c_void);

/// Hook memory accesses of `kind` in `[begin, end]` with a raw callback.
pub fn add_mem_hook<D>(
    uc: &mut Unicorn<'_, D>,
    kind: HookType,
    begin: u64,
    end: u64,
    callback: MemCallback,
    user_data: *mut c_void,
) -> Result<(), unicorn_engine::uc_error> {
    // SAFETY: `callback` has the C signature unicorn calls for memory hooks.
    unsafe { hook_add(uc, kind, callback as *mut c_void, user_data, begin, end) }
}

/// `uc_hook_add` for hooks that take no extra argument.
///
/// # Safety
/// `callback` must have the C signature unicorn calls for `kind`, and `user_data` must stay
/// valid as long as the instance (weft passes data the instance owns).
unsafe fn hook_add<D>(
    uc: &mut Unicorn<'_, D>,
    kind: HookType,
    callback: *mut c_void,
    user_data: *mut c_void,
    begin: u64,
    end: u64,
) -> Result<(), unicorn_engine::uc_error> {
    let mut hook: uc_sys::uc_hook = 0;
    // SAFETY: a live handle; the callback and data are as the caller promises.
    let err = unsafe {
        uc_sys::uc_hook_add(
            uc.get_handle(),
            &mut hook,
            kind.0 as c_int,
            callback,
            user_data,
            begin,
            end,
        )
    };
    if err == unicorn_engine::uc_error::OK {
        Ok(())
    } else {
        Err(err)
    }
}

/// Size unicorn's translation buffer (it reserves 1 GiB per instance otherwise, which adds
/// up at 64 vCPUs). Must be called right after the instance is created.
pub fn set_tcg_buffer_size<D>(
    uc: &mut Unicorn<'_, D>,
    bytes: u32,
) -> Result<(), unicorn_engine::uc_error> {
    // UC_CTL_WRITE(UC_CTL_TCG_BUFFER_SIZE, 1): type | nr_args << 26 | IO_WRITE << 30.
    let control = ControlType(ControlType::TCG_BUFFER_SIZE.0 | (1 << 26) | (1 << 30));
    // SAFETY: a live handle; this control takes exactly one uint32_t argument.
    let err = unsafe { uc_sys::uc_ctl(uc.get_handle(), control, bytes) };
    if err == unicorn_engine::uc_error::OK {
        Ok(())
    } else {
        Err(err)
    }
}

/// Read a register through a raw handle (inside a raw hook).
pub fn reg_read(uc: *mut uc_engine, reg: RegisterX86) -> u64 {
    let mut v: u64 = 0;
    // SAFETY: `uc` is the live instance that called the hook; x86 GPRs are 8 bytes.
    unsafe { uc_sys::uc_reg_read(uc, reg as c_int, (&mut v as *mut u64).cast()) };
    v
}

/// Write a register through a raw handle (inside a raw hook).
pub fn reg_write(uc: *mut uc_engine, reg: RegisterX86, value: u64) {
    // SAFETY: as in `reg_read`.
    unsafe { uc_sys::uc_reg_write(uc, reg as c_int, (&value as *const u64).cast()) };
}

/// Ask the instance to stop after the current instruction.
pub fn emu_stop(uc: *mut uc_engine) {
    // SAFETY: a live handle; uc_emu_stop may be called from inside hooks.
    unsafe { uc_sys::uc_emu_stop(uc) };
}

/// A raw basic-block or code hook callback (uc_cb_hookcode_t).
pub type BlockCallback = extern "C" fn(*mut uc_engine, u64, u32, *mut c_void);

/// Read a register of up to 16 bytes (XMM, x87 ST) through a raw handle.
pub fn reg_read_bytes(uc: *mut uc_engine, reg: RegisterX86, out: &mut [u8; 16]) {
    // SAFETY: `uc` is a live instance not running on another thread; unicorn writes at most
    // 16 bytes for the XMM and ST registers, 8 for the others.
    unsafe { uc_sys::uc_reg_read(uc, reg as c_int, out.as_mut_ptr().cast()) };
}

/// Write a register of up to 16 bytes (XMM) through a raw handle.
pub fn reg_write_bytes(uc: *mut uc_engine, reg: RegisterX86, value: &[u8; 16]) {
    // SAFETY: as in `reg_read_bytes`; unicorn reads at most 16 bytes.
    unsafe { uc_sys::uc_reg_write(uc, reg as c_int, value.as_ptr().cast()) };
}

/// Hook every instruction with a raw callback (the debugger's instruction counter).
pub fn add_code_hook<D>(
    uc: &mut Unicorn<'_, D>,
    callback: BlockCallback,
    user_data: *mut c_void,
) -> Result<(), unicorn_engine::uc_error> {
    // SAFETY: `callback` has the C signature unicorn calls for code hooks. begin > end means
    // every address.
    unsafe { hook_add(uc, HookType::CODE, callback as *mut c_void, user_data, 1, 0) }
}

/// Hook the start of every translated block with a raw callback.
pub fn add_block_hook<D>(
    uc: &mut Unicorn<'_, D>,
    callback: BlockCallback,
    user_data: *mut c_void,
) -> Result<(), unicorn_engine::uc_error> {
    // SAFETY: `callback` has the C signature unicorn calls for block hooks. begin > end
    // means every address.
    unsafe {
        hook_add(
            uc,
            HookType::BLOCK,
            callback as *mut c_void,
            user_data,
            1,
            0,
        )
    }
}

/// Drop the instance's translations of guest code in `[begin, end)` (another vCPU wrote
/// there). Safe to call while the instance is suspended inside one of its hooks: the block
/// it is in finishes as translated, later ones are translated afresh.
pub fn remove_cache(uc: *mut uc_engine, begin: u64, end: u64) {
    // UC_CTL_WRITE(UC_CTL_TB_REMOVE_CACHE, 2): type | nr_args << 26 | IO_WRITE << 30.
    let control = ControlType(ControlType::TB_REMOVE_CACHE.0 | (2 << 26) | (1 << 30));
    // SAFETY: a live handle of this machine (no instance runs on another thread); this
    // control takes exactly two uint64_t arguments, begin < end.
    unsafe { uc_sys::uc_ctl(uc, control, begin, end) };
}

/// A raw TLB-fill callback (uc_cb_tlbevent_t): fills `result` and returns whether the page
/// is mapped.
pub type TlbFillCallback =
    extern "C" fn(*mut uc_engine, u64, MemType, *mut unicorn_engine::TlbEntry, *mut c_void) -> bool;

/// Put the instance in unicorn's virtual-TLB mode, where every TLB miss asks `callback`
/// which physical page a virtual page maps to and with which permissions.
pub fn set_tlb_fill<D>(
    uc: &mut Unicorn<'_, D>,
    callback: TlbFillCallback,
    user_data: *mut c_void,
) -> Result<(), unicorn_engine::uc_error> {
    uc.ctl_set_tlb_type(unicorn_engine::TlbType::VIRTUAL)?;
    // SAFETY: `callback` has the C signature unicorn calls for UC_HOOK_TLB_FILL; begin > end
    // means every address.
    unsafe {
        hook_add(
            uc,
            HookType::TLB_FILL,
            callback as *mut c_void,
            user_data,
            1,
            0,
        )
    }
}

/// Drop every entry of the instance's TLB (a page it could reach unseen is no longer its
/// own). Safe while the instance is suspended inside one of its hooks: every access after
/// the hook returns looks the TLB up again.
pub fn flush_tlb(uc: *mut uc_engine) {
    // UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 0): type | IO_WRITE << 30.
    let control = ControlType(ControlType::TLB_FLUSH.0 | (1 << 30));
    // SAFETY: a live handle of this machine (no instance runs on another thread); this
    // control takes no argument.
    unsafe { uc_sys::uc_ctl(uc, control) };
}
