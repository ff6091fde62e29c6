//! What weft says of a failed run beyond its verdict: the call stack of each vCPU the
//! failure concerns (recorded as `Backtrace` events), what a blocked thread waits for and
//! who holds it, and the cycle of a lock-order deadlock; the same from `weft replay`
//! and `weft inspect`; traces of format 3 (before call stacks) still replay.

mod common;

use std::path::{Path, PathBuf};

use common::{guest, linux_guest, record_elf, scratch, text, weft};
use weft_trace::{Event, TraceReader, TraceWriter};

/// `weft explore NAME` into `dir`; the minimized failing trace.
fn failing_trace(name: &str, dir: &Path) -> PathBuf {
    failing_trace_with(name, dir, &[])
}

/// As `failing_trace`, with more options for explore.
fn failing_trace_with(name: &str, dir: &Path, more: &[&str]) -> PathBuf {
    let g = linux_guest(name);
    let mut args = vec![
        "explore",
        g.to_str().unwrap(),
        "--schedules",
        "2000",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    let (code, out, err) = text(&weft(args));
    assert_eq!(code, 1, "{name}: no failure found\n{out}{err}");
    dir.join(format!("{name}-fail-min.weft"))
}

/// `weft record GUEST -o TRACE`, which must fail -> stderr.
fn record_failing(guest: &Path, trace: &Path) -> String {
    let (code, _, err) = record_elf(guest, trace, &[]);
    assert_eq!(code, 1, "{err}");
    err
}

/// `weft replay TRACE` -> stderr, which must say it reproduced.
fn replay_report(trace: &Path) -> String {
    let (_, out, err) = text(&weft(["replay", trace.to_str().unwrap()]));
    assert!(err.contains("replay: reproduced"), "{out}{err}");
    err
}

fn backtraces(trace: &Path) -> Vec<weft_trace::Backtrace> {
    TraceReader::open(trace)
        .unwrap()
        .into_events()
        .filter_map(|e| match e.unwrap() {
            Event::Backtrace { stack, .. } => Some(stack),
            _ => None,
        })
        .collect()
}

/// The line of `report` that contains `what`.
fn line_with<'a>(report: &'a str, what: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?} in:\n{report}"))
}

#[test]
fn a_lock_order_deadlock_names_each_holder_and_the_cycle() {
    let dir = scratch();
    let t = failing_trace("lock_order", dir.path());
    let err = replay_report(&t);
    // Both workers wait in pthread_mutex_lock, called from transfer's second lock.
    assert!(
        err.contains("a mutex held by vcpu2") && err.contains("a mutex held by vcpu1"),
        "{err}"
    );
    assert!(err.contains("lock cycle: vcpu1 -> vcpu2 -> vcpu1"), "{err}");
    assert!(
        line_with(&err, "transfer+").contains("examples/linux/lock_order.c:"),
        "{err}"
    );
    assert!(err.contains("pthread_mutex_lock"), "{err}");
    assert!(err.contains("start_thread"), "{err}");
    // main waits in pthread_join for the first worker.
    assert!(
        err.contains("waits for vcpu1 to exit (pthread_join)"),
        "{err}"
    );
    assert!(line_with(&err, " main+").contains("lock_order.c:"), "{err}");

    // The trace holds the same, for inspect and scripts.
    let stacks = backtraces(&t);
    assert_eq!(stacks.len(), 3, "{stacks:?}");
    let owner = |v: u32| stacks.iter().find(|b| b.vcpu.0 == v).unwrap().owner;
    assert_eq!(owner(1).map(|o| o.0), Some(2));
    assert_eq!(owner(2).map(|o| o.0), Some(1));
    let (_, out, _) = text(&weft(["inspect", t.to_str().unwrap()]));
    assert!(out.contains("lock cycle: vcpu1 -> vcpu2 -> vcpu1"), "{out}");
    let (_, json, _) = text(&weft(["inspect", "--json", t.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let b = v["backtraces"]
        .as_array()
        .expect("backtraces in the JSON summary");
    assert_eq!(b.len(), 3);
    assert!(b.iter().any(|s| s["waits"]
        .as_str()
        .is_some_and(|w| w.contains("a mutex held by"))));
    assert!(b[0]["described"][0].as_str().unwrap().starts_with("#0 0x"));
    // And the HTML report's failure panel.
    let html = dir.path().join("lo.html");
    let (code, _, err) = text(&weft([
        "report",
        t.to_str().unwrap(),
        "-o",
        html.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("lock cycle: vcpu1 -> vcpu2"),
        "no lock cycle in the report"
    );
}

#[test]
fn a_lost_wakeup_shows_the_thread_waiting_on_its_condition_variable() {
    let dir = scratch();
    let t = failing_trace("lost_wakeup", dir.path());
    let err = replay_report(&t);
    assert!(err.contains("waits on a condition variable"), "{err}");
    assert!(err.contains("pthread_cond_wait"), "{err}");
    assert!(
        line_with(&err, "waiter+").contains("examples/linux/lost_wakeup.c:"),
        "{err}"
    );
    assert!(!err.contains("lock cycle"), "{err}");
}

#[test]
fn an_assertion_s_stack_runs_from_abort_to_the_assert_in_main() {
    let dir = scratch();
    let t = failing_trace("bank_account", dir.path());
    let err = replay_report(&t);
    let stack = &err[err.find("call stack of vcpu0:").expect(&err)..];
    let abort = stack.find(" abort").expect(stack);
    let assert = stack.find("__assert_fail").expect(stack);
    let main = stack.find(" main+").expect(stack);
    assert!(abort < assert && assert < main, "{stack}");
    assert!(
        line_with(stack, " main+").contains("examples/linux/bank_account.c:"),
        "{stack}"
    );
}

#[test]
fn a_crash_in_a_thread_shows_the_faulting_function_and_its_thread_start() {
    let dir = scratch();
    let t = dir.path().join("crash.weft");
    let err = record_failing(&linux_guest("crash_null"), &t);
    let stack = &err[err.find("call stack of vcpu1:").expect(&err)..];
    assert!(line_with(stack, "#0 0x").contains("crasher"), "{stack}");
    assert!(
        line_with(stack, "#0 0x").contains("tests/guests/linux/crash_null.c:"),
        "{stack}"
    );
    assert!(stack.contains("start_thread"), "{stack}");
}

#[test]
fn a_board_guest_s_stack_comes_from_its_debug_frame() {
    let dir = scratch();
    let t = dir.path().join("nested.weft");
    let err = record_failing(&guest("nested_crash"), &t);
    let stack = &err[err.find("call stack of vcpu0:").expect(&err)..];
    let frames: Vec<&str> = stack
        .lines()
        .filter(|l| l.trim_start().starts_with('#'))
        .collect();
    let names = ["inner", "middle", "outer", "_start"];
    assert_eq!(frames.len(), names.len(), "{stack}");
    for (f, name) in frames.iter().zip(names) {
        assert!(f.contains(&format!(" {name}")), "{f}");
        assert!(f.contains("tests/guests/nested_crash.c:"), "{f}");
    }
    replay_report(&t);
}

#[test]
fn a_cxx_program_s_stack_has_demangled_names() {
    let dir = scratch();
    let t = dir.path().join("cxx.weft");
    let g = linux_guest("cxx_threads");
    let record = |args: &[&str]| {
        let mut a = vec!["record", g.to_str().unwrap(), "-o", t.to_str().unwrap()];
        a.extend(args);
        text(&weft(a))
    };
    let (code, out, err) = record(&[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "cxx_threads: sum=330 twice=660\n"),
        "{err}"
    );
    assert!(backtraces(&t).is_empty(), "a pass has no stacks");

    let (code, _, err) = record(&["throw"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("killed by signal SIGABRT"), "{err}");
    assert!(err.contains("std::terminate"), "{err}");
    assert!(!err.contains("_ZSt9terminatev"), "{err}");
    assert!(
        line_with(&err, "_M_run").contains("tests/guests/linux/cxx_threads.cpp:"),
        "{err}"
    );
    replay_report(&t);
}

#[test]
fn a_rust_program_runs_and_its_deadlock_has_demangled_stacks() {
    let dir = scratch();
    let t = dir.path().join("rust.weft");
    let g = linux_guest("rust_threads");
    let (code, out, err) = record_elf(&g, &t, &[]);
    assert_eq!(
        (code, out.as_str()),
        (0, "rust_threads: total=305 received=10\n"),
        "{err}"
    );
    let (code, _, err) = text(&weft([
        "record",
        g.to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
        "panic",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("a worker gives up") && err.contains("exit status 101"),
        "{err}"
    );

    let (code, out, err) = text(&weft([
        "explore",
        g.to_str().unwrap(),
        "--strategy",
        "random",
        "--schedules",
        "1000",
        "--no-minimize",
        "--out",
        dir.path().to_str().unwrap(),
        "deadlock",
    ]));
    assert_eq!(code, 1, "no deadlock found\n{out}{err}");
    assert!(err.contains("FAIL (deadlock)"), "{err}");
    assert!(
        line_with(&err, "rust_threads::transfer").contains("rust_threads.rs:"),
        "{err}"
    );
    assert!(err.contains("waits for a mutex"), "{err}");
    assert!(!err.contains("_RNv"), "{err}");
    replay_report(&dir.path().join("rust_threads-fail.weft"));
}

#[test]
fn a_format_3_trace_without_stacks_still_replays() {
    let dir = scratch();
    // Format 3 shared every access: record so, then write it as weft of format 3 did (its
    // header layout, no Backtrace events).
    let t = failing_trace_with("lock_order", dir.path(), &["--sharing", "all"]);
    let old = dir.path().join("v3.weft");
    let r = TraceReader::open(&t).unwrap();
    let mut w = TraceWriter::create_as_version(&old, r.header(), 3).unwrap();
    for e in r.into_events() {
        let e = e.unwrap();
        if !matches!(e, Event::Backtrace { .. }) {
            w.write(&e).unwrap();
        }
    }
    w.finish().unwrap();

    assert_eq!(TraceReader::open(&old).unwrap().format_version(), 3);
    let err = replay_report(&old);
    assert!(err.contains("FAIL (deadlock)"), "{err}");
    let (_, out, _) = text(&weft(["inspect", old.to_str().unwrap()]));
    assert!(out.contains("deadlock"), "{out}");
}
