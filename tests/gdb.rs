//! The gdb stub driven by the real gdb in batch mode (`weft replay --gdb TRACE -- -batch
//! ...` and `weft gdbserver`): breakpoints on the right vCPU and line, watchpoints at each
//! write, reverse execution, threads, monitor commands. Run from the package root, so gdb
//! finds the example sources under ./examples.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{guest, linux_guest, record, record_elf, scratch, text, weft};
use weft_trace::{Event, TraceReader};

/// Whether gdb is installed (scripts/setup.sh installs it; without it these tests fail).
fn gdb_present() -> bool {
    Command::new("gdb").arg("--version").output().is_ok()
}

/// Run gdb in batch mode with `commands` on the trace at `trace`: (exit code, output).
fn gdb(trace: &Path, commands: &[&str]) -> (i32, String) {
    assert!(gdb_present(), "gdb is missing: run scripts/setup.sh");
    let mut args = vec![
        "replay".to_string(),
        "--gdb".into(),
        trace.display().to_string(),
        "--".into(),
        "-batch".into(),
        "-nx".into(),
        "-ex".into(),
        "set pagination off".into(),
    ];
    for c in commands {
        args.push("-ex".into());
        args.push(c.to_string());
    }
    let (code, out, err) = text(&weft(&args));
    (code, format!("{out}{err}"))
}

/// A line of a built-in example's source containing `needle`.
fn line_of(example: &str, needle: &str) -> usize {
    let src = std::fs::read_to_string(format!("examples/{example}.c")).expect("example source");
    src.lines().position(|l| l.contains(needle)).expect("line") + 1
}

/// The racy counter with every access a scheduling point (`--sharing all`): under strict
/// alternation it loses updates; vCPU 1 fails the check.
fn racy_trace(dir: &Path, strategy: &str) -> std::path::PathBuf {
    racy_trace_sharing(dir, strategy, "all")
}

fn racy_trace_sharing(dir: &Path, strategy: &str, sharing: &str) -> std::path::PathBuf {
    let t = dir.join(format!("racy-{sharing}.weft"));
    let args = ["--strategy", strategy, "--sharing", sharing];
    let (code, out, err) = record("racy_counter", &t, &args);
    assert!(code == 0 || code == 1, "{out}{err}");
    t
}

/// `$1 = (volatile unsigned long *) 0x403238 <counter>` -> 0x403238.
fn address_in(out: &str, symbol: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.contains(&format!("<{symbol}>")))
        .unwrap_or_else(|| panic!("no address of {symbol} in:\n{out}"));
    let hex = line
        .split("0x")
        .nth(1)
        .expect("hex")
        .split(' ')
        .next()
        .unwrap();
    u64::from_str_radix(hex, 16).unwrap()
}

/// (old, new) for every write to `addr` that changed it, in trace order.
/// Every event of the run, with the accesses a recording of `--sharing pages` leaves out
/// (`weft inspect --events` derives them by replaying).
fn all_events(trace: &Path) -> Vec<Event> {
    let (code, out, err) = text(&weft([
        "inspect",
        "--events",
        "--json",
        trace.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["event"].clone()).unwrap()
        })
        .collect()
}

fn value_changes(trace: &Path, addr: u64) -> Vec<(u64, u64)> {
    let mut last = 0;
    let mut out = Vec::new();
    for e in all_events(trace) {
        if let Event::Access {
            addr: a,
            kind,
            value,
            ..
        } = e
        {
            if a.0 == addr && kind.is_write() && value != last {
                out.push((last, value));
                last = value;
            }
        }
    }
    out
}

/// `Old value = 1` / `New value = 2` pairs gdb printed.
fn watch_reports(out: &str) -> Vec<(u64, u64)> {
    let mut olds = out.lines().filter_map(|l| l.strip_prefix("Old value = "));
    let news = out.lines().filter_map(|l| l.strip_prefix("New value = "));
    news.map(|n| {
        let o = olds.next().expect("an old value");
        (o.trim().parse().unwrap(), n.trim().parse().unwrap())
    })
    .collect()
}

/// `step 17 is next; instruction 32 of the run; vcpu 1` lines -> (step, instruction, vcpu).
fn whens(out: &str) -> Vec<(u64, u64, u32)> {
    out.lines()
        .filter(|l| l.starts_with("step ") && l.contains(" is next; instruction "))
        .map(|l| {
            let n: Vec<u64> = l
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            (n[0], n[1], n[2] as u32)
        })
        .collect()
}

#[test]
fn a_breakpoint_stops_the_vcpu_that_reaches_it_at_its_line() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    // Only the last vCPU to finish checks the counter; the recording says which one.
    let (_, summary, _) = text(&weft(["inspect", t.to_str().unwrap()]));
    let last = if summary.contains("on vcpu1") { 1 } else { 0 };
    let line = line_of("racy_counter", "if (got != expected)");
    let (code, out) = gdb(
        &t,
        &[
            &format!("break racy_counter.c:{line}"),
            "continue",
            "info threads",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let tid = last + 1;
    assert!(
        out.contains(&format!("Thread {tid} hit Breakpoint 1")),
        "{out}"
    );
    assert!(out.contains(&format!("racy_counter.c:{line}")), "{out}");
    assert!(
        out.contains(&format!("* {tid}    Thread 1.{tid} (vcpu {last})")),
        "{out}"
    );
}

#[test]
fn every_vcpu_is_a_named_thread() {
    let dir = scratch();
    let t = dir.path().join("four.weft");
    let (code, out, err) = record("racy_counter", &t, &["--vcpus", "4"]);
    assert!(code <= 1, "{out}{err}");
    let (code, out) = gdb(&t, &["info threads"]);
    assert_eq!(code, 0, "{out}");
    for v in 0..4 {
        assert!(
            out.contains(&format!("Thread 1.{} (vcpu {v})", v + 1)),
            "vcpu {v} missing:\n{out}"
        );
    }
    assert!(!out.contains("(vcpu 4)"), "{out}");
}

#[test]
fn a_watchpoint_stops_at_each_write_that_changes_the_racy_counter() {
    let dir = scratch();
    // With `--sharing pages` the recording leaves out the first vCPU's writes (the page is
    // its own until the other comes): the debugger replays them all the same.
    for (strategy, sharing) in [
        ("round-robin", "all"),
        ("round-robin:quantum=1", "all"),
        ("round-robin", "pages"),
        ("random:seed=3", "pages"),
    ] {
        let t = racy_trace_sharing(dir.path(), strategy, sharing);
        if sharing == "pages" {
            let recorded = TraceReader::open(&t).unwrap().into_events().count();
            assert!(
                recorded < all_events(&t).len(),
                "{strategy}: nothing was left out"
            );
        }
        let (_, out) = gdb(&t, &["print &counter"]);
        let counter = address_in(&out, "counter");
        let expected = value_changes(&t, counter);
        assert!(expected.len() >= 3, "{strategy}: {expected:?}");
        let mut cmds = vec!["watch counter"];
        cmds.extend(std::iter::repeat_n("continue", expected.len() + 1));
        let (code, out) = gdb(&t, &cmds);
        assert_eq!(code, 0, "{out}");
        assert_eq!(watch_reports(&out), expected, "{strategy}:\n{out}");
        assert!(out.contains("No more reverse-execution history"), "{out}");
    }
}

/// (step, vcpu) of every access to `addr`, in trace order.
fn accesses_to(trace: &Path, addr: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    for e in TraceReader::open(trace).unwrap().into_events() {
        if let Event::Access {
            step,
            vcpu,
            addr: a,
            ..
        } = e.unwrap()
        {
            if a.0 == addr {
                out.push((step.0, vcpu.0));
            }
        }
    }
    out
}

#[test]
fn a_watchpoint_set_after_goto_catches_the_next_access_whoever_makes_it() {
    // After `goto S` every vCPU but one waits at its next scheduling point, some at an
    // access they have not made yet: a watchpoint set there must see those accesses too.
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let (_, out) = gdb(&t, &["print &counter"]);
    let counter = address_in(&out, "counter");
    let accesses = accesses_to(&t, counter);
    assert!(accesses.len() >= 8, "{accesses:?}");
    for &(step, _) in accesses.iter().step_by(3).take(4) {
        let (code, out) = gdb(
            &t,
            &[
                &format!("goto {step}"),
                "awatch counter",
                "continue",
                "when",
            ],
        );
        assert_eq!(code, 0, "{out}");
        let (_, first) = accesses
            .iter()
            .find(|(s, _)| *s >= step)
            .copied()
            .expect("an access at or after the step");
        let tid = first + 1;
        assert!(
            out.contains(&format!(
                "Thread {tid} hit Hardware access (read/write) watchpoint"
            )),
            "goto {step}: the next access to counter is vcpu {first}'s:\n{out}"
        );
    }
}

#[test]
fn reverse_continue_returns_to_the_previous_watchpoint_hit() {
    let dir = scratch();
    // A passing schedule: every write changes the counter, so every write is a gdb stop.
    let t = racy_trace(dir.path(), "round-robin");
    let (code, out) = gdb(
        &t,
        &[
            "watch counter",
            "continue",
            "monitor when",
            "continue",
            "monitor when",
            "continue",
            "monitor when",
            "reverse-continue",
            "monitor when",
            "print counter",
            "reverse-continue",
            "monitor when",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let w = whens(&out);
    assert_eq!(w.len(), 5, "{out}");
    // Going back, a write watchpoint stops just before the write (the third, then the
    // second), between the hits forwards stopped at just after them.
    let g = |i: usize| w[i].1;
    assert!(g(1) < g(3) && g(3) < g(2), "before the third write:\n{out}");
    assert!(
        g(0) < g(4) && g(4) < g(1),
        "before the second write:\n{out}"
    );
    assert!(out.contains("$1 = 2"), "{out}");
    assert_eq!(
        watch_reports(&out),
        [(0, 1), (1, 2), (2, 3), (3, 2), (2, 1)],
        "{out}"
    );
}

/// `watch` + `reverse-continue` from where the value has not changed since its last write
/// (here: the end of the run) stops before that write, on the store; gdb reports a write
/// watchpoint only when the value differs from the one it saw last, so a stop after the
/// write, where the value is still today's, would be passed over and the last write
/// skipped (with one write, all the way back to the start).
#[test]
fn watch_and_reverse_continue_stop_at_the_last_write_before_it_happens() {
    let dir = scratch();
    for sharing in ["all", "pages"] {
        let t = racy_trace_sharing(dir.path(), "round-robin", sharing);
        let (_, out) = gdb(&t, &["print &counter"]);
        let changes = value_changes(&t, address_in(&out, "counter"));
        let n = changes.len();
        assert!(n >= 2, "{changes:?}");
        let (last, before) = (changes[n - 1], changes[n - 2]);
        let (code, out) = gdb(
            &t,
            &[
                "continue",
                "watch counter",
                "reverse-continue",
                "echo ==\\n",
                "x/i $pc",
                "print counter",
                "reverse-continue",
                "echo ==\\n",
                "x/i $pc",
                "continue",
            ],
        );
        assert_eq!(code, 0, "{out}");
        assert_eq!(
            watch_reports(&out),
            [(last.1, last.0), (before.1, before.0), (before.0, before.1)],
            "{sharing}: back over the last two writes, then forward over one:\n{out}"
        );
        for stop in out.split("==\n").skip(1) {
            let pc = stop.lines().find(|l| l.starts_with("=> ")).expect("x/i");
            assert!(
                pc.contains("mov") && pc.contains(",0x") && pc.contains("<counter>"),
                "{sharing}: not at the store to counter: {pc}\n{out}"
            );
        }
        assert!(out.contains(&format!("$1 = {}", last.0)), "{out}");
    }
}

#[test]
fn reverse_stepi_undoes_exactly_one_instruction() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let line = line_of("racy_counter", "counter++");
    let regs = "info registers rax rbx rcx rdx rsi rdi rbp rsp r8 r9 r10 r11 rip eflags";
    let mut cmds = vec![format!("break racy_counter.c:{line}"), "continue".into()];
    // On both threads: the other vCPU may run in between, as recorded.
    for thread in ["1", "2"] {
        cmds.push(format!("thread {thread}"));
        for _ in 0..3 {
            cmds.extend([
                "echo ==before\\n".into(),
                regs.into(),
                "stepi".into(),
                "echo ==after\\n".into(),
                regs.into(),
                "reverse-stepi".into(),
                "echo ==back\\n".into(),
                regs.into(),
                "stepi".into(),
            ]);
        }
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let (code, out) = gdb(&t, &cmds);
    assert_eq!(code, 0, "{out}");
    // Register dumps in order: before, after, back, before, ...
    let mut dumps: Vec<(String, String)> = Vec::new();
    for part in out.split("==").skip(1) {
        let (label, rest) = part.split_once('\n').unwrap_or((part, ""));
        let regs: Vec<&str> = rest
            .lines()
            .take_while(|l| l.split_whitespace().count() >= 2 && !l.starts_with("0x"))
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .take(14)
            .collect();
        dumps.push((label.to_string(), regs.join("\n")));
    }
    assert_eq!(dumps.len(), 18, "{out}");
    for trio in dumps.chunks(3) {
        assert_eq!(trio[0].1.lines().count(), 14, "{out}");
        assert_eq!(trio[0].1, trio[2].1, "reverse-stepi went elsewhere:\n{out}");
        let rip = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("rip"))
                .unwrap()
                .to_string()
        };
        assert_ne!(
            rip(&trio[0].1),
            rip(&trio[1].1),
            "stepi did not move:\n{out}"
        );
    }
}

#[test]
fn monitor_when_and_goto_round_trip() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let (code, out) = gdb(
        &t,
        &[
            "monitor goto 40",
            "monitor when",
            "monitor goto 7",
            "monitor when",
            "monitor goto 63",
            "monitor when",
            "monitor goto 999999",
            "monitor schedule 2",
            "monitor checkpoints",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let steps: Vec<u64> = whens(&out).iter().map(|w| w.0).collect();
    // goto prints where it landed, then `when` says the same.
    assert_eq!(steps[..6], [40, 40, 7, 7, 63, 63], "{out}");
    assert!(
        out.contains("step 999999 is past the end of the trace"),
        "{out}"
    );
    assert!(
        out.contains("no steps left") || out.contains("steps "),
        "{out}"
    );
}

#[test]
fn the_end_of_the_trace_is_the_end_of_history_and_reverse_reaches_the_start() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let (code, out) = gdb(
        &t,
        &[
            "continue",
            "monitor when",
            "reverse-continue",
            "monitor when",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out.matches("No more reverse-execution history").count(),
        2,
        "{out}"
    );
    assert!(
        out.contains("the end of the recorded history: assertion"),
        "{out}"
    );
    let w = whens(&out);
    assert_eq!(
        w.last().map(|w| w.1),
        Some(0),
        "back at instruction 0:\n{out}"
    );
}

#[test]
fn gdbserver_listens_on_loopback_and_refuses_other_addresses_unless_asked() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin");
    let (code, _, err) = text(&weft([
        "gdbserver",
        t.to_str().unwrap(),
        "--address",
        "0.0.0.0",
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--allow-remote"), "{err}");

    // Port 0: the server says which port it took; a gdb connects there.
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["gdbserver", t.to_str().unwrap(), "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("no address in {first}"))
        .to_string();
    let out = Command::new("gdb")
        .args(["-batch", "-nx", "-ex"])
        .arg(format!("file {}", guest("racy_counter").display()))
        .args([
            "-ex",
            &format!("target remote {addr}"),
            "-ex",
            "info threads",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.contains("(vcpu 1)"), "{out}");
    assert!(server.wait().unwrap().success());
}

#[test]
fn a_missing_gdb_is_a_clear_error() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin");
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["replay", "--gdb", t.to_str().unwrap()])
        .env("WEFT_GDB", "/nonexistent/gdb")
        .output()
        .unwrap();
    let (code, _, err) = text(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/gdb: not found"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_sources_of_a_built_in_guest_are_shown_wherever_gdb_runs() {
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin");
    // Not the repository: gdb cannot find ./examples/racy_counter.c here by itself.
    let out = Command::new(env!("CARGO_BIN_EXE_weft"))
        .current_dir(dir.path())
        .args(["replay", "--gdb", t.to_str().unwrap(), "--"])
        .args(["-batch", "-nx", "-ex", "list _start", "-ex", "info source"])
        .output()
        .unwrap();
    let (code, out, err) = text(&out);
    assert_eq!(code, 0, "{out}{err}");
    let line = line_of("racy_counter", "counter++;");
    let src = std::fs::read_to_string("examples/racy_counter.c").unwrap();
    let text_of_line = src.lines().nth(line - 1).unwrap();
    assert!(
        out.contains(&format!("{line}\t{text_of_line}")),
        "source line {line} not shown:\n{out}{err}"
    );
    assert!(!err.contains("No such file"), "{err}");
}

#[test]
fn reverse_stepi_over_a_read_shows_the_memory_it_read() {
    // Under strict alternation every load waits at its scheduling point while the other
    // vCPU runs: going back over it must land where the load is about to happen, with
    // memory as the load saw it, not where the vCPU began the instruction.
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let mut cmds = vec!["rwatch counter".to_string()];
    for _ in 0..6 {
        cmds.extend([
            "continue".into(),
            "reverse-stepi".into(),
            "echo ==\\n".into(),
            "print counter".into(),
            "stepi".into(),
        ]);
    }
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let (code, out) = gdb(&t, &cmds);
    assert_eq!(code, 0, "{out}");
    let read: Vec<u64> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Value = "))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    let before: Vec<u64> = out
        .split("==\n")
        .skip(1)
        .map(|p| {
            let l = p.lines().find(|l| l.starts_with('$')).expect("a print");
            l.split(" = ").nth(1).unwrap().trim().parse().unwrap()
        })
        .collect();
    assert_eq!(read.len(), 6, "{out}");
    assert_eq!(
        before, read,
        "memory before each load is what it read:\n{out}"
    );
}

#[test]
fn reverse_stepping_moves_the_thread_gdb_has_selected() {
    // gdb reverse-steps "any thread" meaning its selected one: thread 2 here, not 1.
    let dir = scratch();
    let t = racy_trace(dir.path(), "round-robin:quantum=1");
    let line = line_of("racy_counter", "counter++");
    let (code, out) = gdb(
        &t,
        &[
            &format!("break racy_counter.c:{line}"),
            "continue",
            "delete",
            "thread 2",
            "stepi",
            "stepi",
            "reverse-stepi",
            "reverse-next",
            "info threads",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("received signal"), "{out}");
    assert!(out.contains("* 2    Thread 1.2 (vcpu 1)"), "{out}");
}

#[test]
fn a_static_pie_program_has_its_symbols_where_it_is_loaded() {
    let dir = scratch();
    let t = dir.path().join("pie.weft");
    let g = linux_guest("threads_pie");
    let (code, out, err) = record_elf(&g, &t, &[]);
    assert_eq!(
        (code, out.as_str()),
        (1, "threads_pie: counter=20\n"),
        "{err}"
    );
    let stack = &err[err.find("call stack of").expect(&err)..];
    for (frame, name) in ["store_through", "worker+"].iter().enumerate() {
        let line = stack.lines().nth(frame + 1).unwrap_or_default();
        assert!(
            line.contains(name) && line.contains("tests/guests/linux/threads_pie.c:"),
            "{stack}"
        );
    }
    let (code, out, err) = text(&weft(["replay", t.to_str().unwrap()]));
    assert!(
        code == 1 && err.contains("replay: reproduced"),
        "{out}{err}"
    );
    // gdb moves the ELF's symbols to the load address (qOffsets).
    let (_, out) = gdb(&t, &["continue", "thread apply all bt"]);
    assert!(out.contains("#0  store_through (p=0x0)"), "{out}");
    assert!(out.contains("threads_pie.c:16"), "{out}");
}
