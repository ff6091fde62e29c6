//! Clues to a failure that its verdict does not carry, gathered from the run's events as
//! they go by: the panics a Rust program (or the uncaught exceptions a C++ program)
//! reported on standard error, and the system calls weft does not emulate. They tell
//! failures that are not concurrency bugs apart: "exit status 101" is a Rust panic, whose
//! message and source location matter more than the stack of `_exit`; a program that
//! gives up right after a call returned ENOSYS hit a limit of weft, not a race.
//!
//! Memory is bounded whatever the program writes: the last [`TAIL`] bytes of standard
//! error per thread, and one call per thread.

use std::collections::BTreeMap;

use serde::Serialize;
use weft_trace::{Event, Step, VcpuId, Verdict};

/// Bytes of standard error kept per thread.
const TAIL: usize = 16 << 10;
/// A failure this many of the thread's own system calls after an unemulated one (the call
/// itself not counted) is said to follow it: enough for an error message and the exit.
const CALLS_AFTER: u32 = 8;
/// Panics reported under a verdict at most.
pub const MAX_PANICS: usize = 4;

/// What the events of a run say about its failure (see the module doc).
#[derive(Clone, Debug, Default)]
pub struct Clues {
    stderr: BTreeMap<VcpuId, Tail>,
    unemulated: BTreeMap<VcpuId, Unemulated>,
}

/// A thread's latest standard error bytes.
#[derive(Clone, Debug, Default)]
struct Tail {
    bytes: Vec<u8>,
    /// The step of the write where a panic's first line appeared.
    panic_step: Option<Step>,
}

/// A thread's latest call that weft does not emulate (it returned ENOSYS).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unemulated {
    pub vcpu: VcpuId,
    pub step: Step,
    /// weft's warning: `epoll_create1 (291): not emulated by weft; returned -ENOSYS`.
    pub warning: String,
    /// System calls the thread made after it.
    pub calls_after: u32,
}

/// What kind of program failure a [`Panic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PanicKind {
    /// `thread 'main' panicked at src/main.rs:4:5:`
    Rust,
    /// `terminate called after throwing an instance of 'std::runtime_error'`
    CxxException,
}

/// A panic (or uncaught exception) a thread reported on standard error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Panic {
    pub kind: PanicKind,
    pub vcpu: VcpuId,
    /// The step of the write that reported it.
    pub step: Step,
    /// Rust: the thread's name (`main`, `<unnamed>`); C++: the exception's type.
    pub what: Option<String>,
    /// Rust: where it panicked, `src/main.rs:4:5`: the user's frame (std's
    /// `#[track_caller]` puts an `unwrap` or `expect` there, not in std).
    pub location: Option<String>,
    pub message: String,
}

impl Clues {
    /// Take one event into account.
    pub fn observe(&mut self, e: &Event) {
        match e {
            Event::Console {
                step,
                vcpu,
                fd: 2,
                bytes,
            } => {
                let t = self.stderr.entry(*vcpu).or_default();
                let old = t.bytes.len();
                t.bytes.extend_from_slice(bytes);
                if t.panic_step.is_none() {
                    // Look at the new bytes and enough before them for a marker split
                    // between two writes.
                    let from = old.saturating_sub(64);
                    let text = String::from_utf8_lossy(&t.bytes[from..]);
                    if text.contains(" panicked at ") || text.contains("terminate called ") {
                        t.panic_step = Some(*step);
                    }
                }
                let over = t.bytes.len().saturating_sub(TAIL);
                t.bytes.drain(..over);
            }
            Event::Warning {
                step,
                vcpu,
                message,
                ..
            } if message.ends_with("returned -ENOSYS") => {
                self.unemulated.insert(
                    *vcpu,
                    Unemulated {
                        vcpu: *vcpu,
                        step: *step,
                        warning: message.clone(),
                        calls_after: 0,
                    },
                );
            }
            Event::Syscall { step, vcpu, .. } => {
                if let Some(u) = self.unemulated.get_mut(vcpu) {
                    // The unemulated call's own event comes at its step, after the warning.
                    if *step != u.step {
                        u.calls_after = u.calls_after.saturating_add(1);
                    }
                }
            }
            _ => {}
        }
    }

    /// Every panic reported, in the order they happened.
    pub fn panics(&self) -> Vec<Panic> {
        let mut out: Vec<Panic> = self
            .stderr
            .iter()
            .filter_map(|(&vcpu, t)| {
                let step = t.panic_step?;
                let text = String::from_utf8_lossy(&t.bytes);
                Some(
                    parse(&text)
                        .into_iter()
                        .map(move |(kind, what, location, message)| Panic {
                            kind,
                            vcpu,
                            step,
                            what,
                            location,
                            message,
                        }),
                )
            })
            .flatten()
            .collect();
        out.sort_by_key(|p| p.step);
        out
    }

    /// The unemulated call the thread that failed made just before it failed, if any.
    pub fn unemulated_before(&self, v: &Verdict) -> Option<&Unemulated> {
        let vcpu = match v {
            Verdict::ExitStatus { vcpu, .. }
            | Verdict::Assertion { vcpu, .. }
            | Verdict::Signal { vcpu, .. } => *vcpu,
            Verdict::Crash(c) => c.vcpu,
            Verdict::Pass | Verdict::Deadlock { .. } | Verdict::Budget { .. } => return None,
        };
        self.unemulated
            .get(&vcpu)
            .filter(|u| u.calls_after <= CALLS_AFTER)
    }
}

/// The panics and uncaught exceptions in one thread's standard error:
/// (kind, thread name or exception type, location, message).
fn parse(text: &str) -> Vec<(PanicKind, Option<String>, Option<String>, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(at) = line.find(" panicked at ") {
            let Some(head) = line[..at].strip_prefix("thread '") else {
                continue;
            };
            // `thread 'name' (1006)` in newer Rust: the thread id is the vCPU's anyway.
            let name = match head.rfind("' (") {
                Some(q) if head.ends_with(')') => &head[..q],
                _ => head.strip_suffix('\'').unwrap_or(head),
            };
            let rest = &line[at + " panicked at ".len()..];
            let (location, message) = match rest.strip_prefix('\'') {
                // Before Rust 1.73: `panicked at 'message', src/main.rs:4:5`.
                Some(r) => match r.rfind("', ") {
                    Some(q) => (Some(r[q + 3..].to_string()), r[..q].to_string()),
                    None => (None, r.to_string()),
                },
                None => (
                    Some(rest.trim_end_matches(':').to_string()),
                    message_after(&lines[i + 1..]),
                ),
            };
            out.push((PanicKind::Rust, Some(name.to_string()), location, message));
        } else if let Some(r) =
            line.strip_prefix("terminate called after throwing an instance of '")
        {
            let ty = r.trim_end_matches('\'').to_string();
            let message = lines
                .get(i + 1)
                .and_then(|l| l.trim_start().strip_prefix("what():"))
                .map(|m| m.trim().to_string())
                .unwrap_or_default();
            out.push((PanicKind::CxxException, Some(ty), None, message));
        } else if line.starts_with("terminate called without an active exception") {
            out.push((
                PanicKind::CxxException,
                None,
                None,
                "terminate called without an active exception".into(),
            ));
        }
    }
    out
}

/// A Rust panic's message: the lines after its first, up to Rust's note, a backtrace or
/// the next panic (at most 8 lines).
fn message_after(lines: &[&str]) -> String {
    let msg: Vec<&str> = lines
        .iter()
        .take_while(|l| {
            !l.starts_with("note: ")
                && !l.starts_with("stack backtrace:")
                && !l.starts_with("thread '")
        })
        .take(8)
        .copied()
        .collect();
    msg.join("\n").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr(step: u64, vcpu: u32, s: &str) -> Event {
        Event::Console {
            step: Step(step),
            vcpu: VcpuId(vcpu),
            fd: 2,
            bytes: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn rust_panics_are_found_in_order_with_thread_location_and_message() {
        let mut c = Clues::default();
        c.observe(&stderr(5, 0, "starting\n"));
        c.observe(&stderr(
            9,
            6,
            "thread '<unnamed>' (1006) panicked at src/a.rs:57:38:\n",
        ));
        c.observe(&stderr(
            9,
            6,
            "a worker gives up\nnote: run with `RUST_BACKTRACE=1`\n",
        ));
        c.observe(&stderr(
            12,
            0,
            "\nthread 'main' panicked at src/a.rs:58:22:\nthe worker panicked: Any { .. }\n",
        ));
        let p = c.panics();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].vcpu, p[0].step, p[0].kind),
            (VcpuId(6), Step(9), PanicKind::Rust)
        );
        assert_eq!(p[0].what.as_deref(), Some("<unnamed>"));
        assert_eq!(p[0].location.as_deref(), Some("src/a.rs:57:38"));
        assert_eq!(p[0].message, "a worker gives up");
        assert_eq!(p[1].what.as_deref(), Some("main"));
        assert_eq!(p[1].message, "the worker panicked: Any { .. }");
    }

    #[test]
    fn old_rust_and_cxx_formats_are_understood() {
        let old = parse("thread 'main' panicked at 'boom, really', src/main.rs:2:5\n");
        assert_eq!(old[0].2.as_deref(), Some("src/main.rs:2:5"));
        assert_eq!(old[0].3, "boom, really");
        let cxx = parse(
            "terminate called after throwing an instance of 'std::runtime_error'\n  what():  bad\n",
        );
        assert_eq!(cxx[0].0, PanicKind::CxxException);
        assert_eq!(cxx[0].1.as_deref(), Some("std::runtime_error"));
        assert_eq!(cxx[0].3, "bad");
        assert!(parse("thread 'x' is fine\nno panic here\n").is_empty());
    }

    #[test]
    fn an_exit_soon_after_an_unemulated_call_is_tied_to_it_and_a_late_one_is_not() {
        let warn = |step| Event::Warning {
            step: Step(step),
            vcpu: VcpuId(0),
            rip: 0x401000,
            message: "epoll_create1 (291): not emulated by weft; returned -ENOSYS".into(),
        };
        let call = |step| Event::Syscall {
            step: Step(step),
            vcpu: VcpuId(0),
            rip: 0x401000,
            nr: 1,
            args: Box::new([0; 6]),
            ret: 0,
        };
        let exit = Verdict::ExitStatus {
            vcpu: VcpuId(0),
            status: 1,
        };
        let mut c = Clues::default();
        c.observe(&warn(3));
        c.observe(&call(3));
        for s in 4..6 {
            c.observe(&call(s));
        }
        let u = c.unemulated_before(&exit).expect("tied to the exit");
        assert_eq!((u.step, u.calls_after), (Step(3), 2));
        for s in 6..20 {
            c.observe(&call(s));
        }
        assert_eq!(c.unemulated_before(&exit), None);
        // Another thread's exit is not tied to vcpu0's call.
        let mut c = Clues::default();
        c.observe(&warn(3));
        let other = Verdict::ExitStatus {
            vcpu: VcpuId(1),
            status: 1,
        };
        assert_eq!(c.unemulated_before(&other), None);
    }

    #[test]
    fn standard_error_kept_per_thread_is_bounded() {
        let mut c = Clues::default();
        let line = "x".repeat(1000) + "\n";
        for s in 0..100 {
            c.observe(&stderr(s, 1, &line));
        }
        assert!(c.stderr[&VcpuId(1)].bytes.len() <= TAIL);
    }
}
