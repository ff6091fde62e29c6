//! The board's hypercalls (VMCALL, ABI v1): RAX = number, RDI/RSI/RDX = arguments, result in
//! RAX, no other register changes. Each hypercall is a scheduling point.

use unicorn_engine::hook::uc_engine;
use unicorn_engine::RegisterX86;
use weft_trace::{Event, Verdict};

use super::ffi;
use super::vcpu::VcpuData;

pub const EXIT: u64 = 0;
pub const WRITE: u64 = 1;
pub const ASSERT_FAIL: u64 = 2;
pub const YIELD: u64 = 3;
pub const VCPU_ID: u64 = 4;
pub const VCPU_COUNT: u64 = 5;
pub const ANNOTATE_ACQUIRE: u64 = 6;
pub const ANNOTATE_RELEASE: u64 = 7;
pub const ANNOTATE_ATOMIC: u64 = 8;
pub const MARK: u64 = 9;
pub const HALT: u64 = 10;

/// Longest assertion message or mark label kept (the rest is cut, with "...").
const MAX_TEXT: u64 = 4096;

/// Largest console event a WRITE makes; longer output comes as several events of one step.
const CONSOLE_PIECE: u64 = 64 << 10;

/// VMCALL length: 0F 01 C1.
const VMCALL_LEN: u64 = 3;

/// Execute the hypercall at `rip`. Returns what unicorn's invalid-instruction hook must
/// return (always `false`: emulation stops and restarts after the VMCALL, or ends).
pub(crate) fn vmcall(d: &VcpuData, h: *mut uc_engine, rip: u64) -> bool {
    if d.shared.ctl.borrow().stopping {
        return false;
    }
    let nr = ffi::reg_read(h, RegisterX86::RAX);
    let args = [
        ffi::reg_read(h, RegisterX86::RDI),
        ffi::reg_read(h, RegisterX86::RSI),
        ffi::reg_read(h, RegisterX86::RDX),
    ];
    if !d.hypercall_point(h, rip, nr == YIELD) {
        return false;
    }
    let mem = &d.shared.mem;
    // A (ptr, len) argument must lie wholly inside RAM; otherwise the guest crashes.
    let range = |what: &str, ptr: u64, len: u64| -> Result<(), String> {
        if mem.contains(ptr, len) {
            Ok(())
        } else {
            Err(format!(
                "{what} hypercall: buffer {ptr:#x}+{len:#x} is not inside RAM (0..{:#x})",
                mem.size()
            ))
        }
    };
    let text = |ptr: u64, len: u64| -> String {
        let mut s =
            String::from_utf8_lossy(&mem.read_up_to(ptr, len.min(MAX_TEXT) as usize)).into_owned();
        if len > MAX_TEXT {
            s.push_str("...");
        }
        s
    };
    let log = |ret: u64| {
        d.shared
            .ctl
            .borrow_mut()
            .emit_at_step(|step| Event::Hypercall {
                step,
                vcpu: d.id,
                rip,
                nr,
                args,
                ret,
            });
    };
    let ret: u64 = match nr {
        EXIT => {
            log(0);
            let status = args[0];
            let verdict = if status == 0 {
                Verdict::Pass
            } else {
                Verdict::ExitStatus { vcpu: d.id, status }
            };
            d.shared.ctl.borrow_mut().finish(verdict);
            d.stop_run(h);
            return false;
        }
        WRITE => {
            if let Err(e) = range("WRITE", args[0], args[1]) {
                return d.crash(h, e);
            }
            log(args[1]);
            // In pieces: a WRITE may cover all of RAM, which would make one huge event (and
            // a trace chunk no reader accepts). An empty WRITE is one empty piece.
            let (mut at, end) = (args[0], args[0] + args[1]);
            loop {
                let n = (end - at).min(CONSOLE_PIECE);
                let bytes = mem.read_up_to(at, n as usize);
                d.shared.ctl.borrow_mut().console(d.id, 1, &bytes);
                at += n;
                if at == end {
                    break;
                }
            }
            args[1]
        }
        ASSERT_FAIL => {
            if let Err(e) = range("ASSERT_FAIL", args[0], args[1]) {
                return d.crash(h, e);
            }
            log(0);
            let message = text(args[0], args[1]);
            d.shared.ctl.borrow_mut().finish(Verdict::Assertion {
                vcpu: d.id,
                rip,
                message,
            });
            d.stop_run(h);
            return false;
        }
        YIELD => 0,
        VCPU_ID => d.id.0 as u64,
        VCPU_COUNT => d.shared.ctl.borrow().options().vcpus as u64,
        ANNOTATE_ACQUIRE | ANNOTATE_RELEASE => 0,
        ANNOTATE_ATOMIC => {
            if let Err(e) = range("ANNOTATE_ATOMIC", args[0], args[1]) {
                return d.crash(h, e);
            }
            0
        }
        MARK => {
            if let Err(e) = range("MARK", args[0], args[1]) {
                return d.crash(h, e);
            }
            let label = text(args[0], args[1]);
            d.shared.ctl.borrow_mut().emit_at_step(|step| Event::Mark {
                step,
                vcpu: d.id,
                label,
            });
            0
        }
        HALT => {
            log(0);
            return d.halt_call(h);
        }
        _ => {
            let msg = format!("unknown hypercall {nr} (ABI v1 has 0..=10); returned -1");
            d.shared.ctl.borrow_mut().warn(d.id, rip, msg);
            u64::MAX
        }
    };
    if !matches!(nr, WRITE) {
        log(ret);
    }
    ffi::reg_write(h, RegisterX86::RAX, ret);
    d.resume_at(rip + VMCALL_LEN)
}
