//! Verdicts users can trust on real programs (issue 20): no false deadlock while a thread
//! sleeps, bounded memory for device files, failures that are not concurrency bugs told
//! apart, and exit codes scripts can rely on.

mod common;

use common::{linux_guest, record_elf, scratch, text, weft};

/// A thread spinning (PAUSE or sched_yield) on a flag that a sleeping thread will set is
/// waiting for time to pass, not deadlocked: virtual time jumps to the sleeper's deadline
/// once everyone else only spins. The sleep is 2 s (two million steps of virtual time),
/// longer than the deadlock window, so without the jump this is a false deadlock.
#[test]
fn spinning_on_a_sleeper_is_no_deadlock() {
    let dir = scratch();
    let g = linux_guest("spin_on_sleeper");
    for mode in ["pause", "yield"] {
        for strategy in ["round-robin", "random:seed=5", "pct:seed=2"] {
            let t = dir.path().join(format!("{mode}.weft"));
            let (code, out, err) = record_elf(&g, &t, &["--strategy", strategy, mode]);
            assert_eq!(code, 0, "{mode} {strategy}: {out}{err}");
            assert_eq!(out, "woke after at least 2 s\n", "{mode} {strategy}");
            let (code, _, err) = text(&weft(["replay", t.to_str().unwrap()]));
            assert_eq!(code, 0, "{mode} {strategy}: {err}");
        }
    }
}

/// A real deadlock next to a sleeper is still found, once the sleeper has woken and ended:
/// the verdict waits for every deadline, then comes.
#[test]
fn spinning_after_every_sleeper_woke_is_still_a_deadlock() {
    let dir = scratch();
    let g = linux_guest("spin_on_sleeper");
    let t = dir.path().join("never.weft");
    let (code, out, err) = record_elf(&g, &t, &["--deadlock-window", "20000", "-q", "never"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("FAIL (deadlock)"), "{err}");
    // The sleeper had woken and ended: only main is left, spinning.
    assert!(
        err.contains("vcpu0 waits at") && !err.contains("vcpu1 waits"),
        "{err}"
    );
}

/// `weft record ELF -o OUT ARGS...` with the address space limited to about 2.9 GiB (the
/// guest's 2 GiB of RAM fit; a host copy of an endless device does not).
fn record_bounded(
    g: &std::path::Path,
    out: &std::path::Path,
    args: &[&str],
) -> (i32, String, String) {
    let o = std::process::Command::new("sh")
        .args(["-c", "ulimit -v 3000000 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_weft"))
        .arg("record")
        .arg(g)
        .arg("-o")
        .arg(out)
        .args(args)
        .output()
        .expect("sh runs");
    text(&o)
}

/// Device files are emulated, their bytes made as they are read: 128 MiB read from
/// /dev/urandom and /dev/zero cost the host no more memory than a small program (they are
/// not read from the host, where they never end), the random bytes follow
/// `--random-seed`, and the trace holds none of it yet replays.
#[test]
fn device_files_are_bounded_deterministic_and_replay() {
    let dir = scratch();
    let g = linux_guest("devices");
    let run = |seed: &str, name: &str| {
        let t = dir.path().join(name);
        let (code, out, err) = record_bounded(&g, &t, &["--random-seed", seed]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.ends_with("\ndevices ok\nvia /dev/stdout\n"), "{out}");
        let size = std::fs::metadata(&t).unwrap().len();
        assert!(size < 2 << 20, "the trace holds device data: {size} bytes");
        let (code, _, err) = text(&weft(["replay", t.to_str().unwrap()]));
        assert_eq!(code, 0, "{err}");
        (out, std::fs::read(&t).unwrap())
    };
    let (a, ta) = run("1", "a.weft");
    let (b, tb) = run("1", "b.weft");
    let (c, _) = run("2", "c.weft");
    assert_eq!(a, b);
    assert!(ta == tb, "two recordings with one seed differ");
    assert_ne!(a, c, "the random device ignores --random-seed");
}

/// `weft record`, then `weft replay` and `weft inspect` of the trace: the stderr of each
/// (the inspect summary's stdout for the last).
fn record_replay_inspect(name: &str, args: &[&str]) -> [String; 3] {
    let dir = scratch();
    let t = dir.path().join("t.weft");
    let (code, _, recorded) = record_elf(&linux_guest(name), &t, args);
    assert_eq!(code, 1, "{recorded}");
    let (code, _, replayed) = text(&weft(["replay", "-q", t.to_str().unwrap()]));
    assert_eq!(code, 1, "{replayed}");
    let (_, inspected, _) = text(&weft(["inspect", t.to_str().unwrap()]));
    [recorded, replayed, inspected]
}

/// A Rust panic is reported as one, with its message and where it happened, in the order
/// the threads panicked; not as "exit status 101" with the stack of `_exit`.
#[test]
fn a_rust_panic_is_reported_with_its_message_and_location() {
    for out in record_replay_inspect("rust_threads", &["-q", "panic"]) {
        let first = out
            .lines()
            .find(|l| l.contains("Rust panic on vcpu"))
            .unwrap_or_else(|| panic!("no panic line:\n{out}"));
        assert!(
            first.contains("(thread '<unnamed>') at tests/guests/linux/rust_threads.rs:57:")
                && first.ends_with(": a worker gives up"),
            "{out}"
        );
        assert!(
            out.contains("then Rust panic on vcpu0 (thread 'main') at tests/guests/linux/rust_threads.rs:58:"),
            "{out}"
        );
        assert!(
            !out.contains("_exit"),
            "the stack of _exit is noise:\n{out}"
        );
    }
    let dir = scratch();
    let t = dir.path().join("p.weft");
    record_elf(&linux_guest("rust_threads"), &t, &["-q", "panic"]);
    let (_, json, _) = text(&weft(["inspect", "--json", t.to_str().unwrap()]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["panics"][0]["message"], "a worker gives up", "{json}");
    assert_eq!(v["panics"][0]["kind"], "rust", "{json}");
}

/// An uncaught C++ exception names its type and what(), and the stack marks the user's
/// function that threw, past the runtime's terminate and abort.
#[test]
fn an_uncaught_cxx_exception_names_its_type_and_the_frame_that_threw() {
    for out in record_replay_inspect("cxx_throw", &["-q"]) {
        assert!(
            out.contains(
                "uncaught C++ exception std::runtime_error on vcpu1: config line 3 is malformed"
            ),
            "{out}"
        );
        let threw = out
            .lines()
            .find(|l| l.contains("threw at "))
            .unwrap_or_else(|| panic!("no frame that threw:\n{out}"));
        let frame = threw
            .split("(in frame #")
            .nth(1)
            .and_then(|f| f.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{threw}"));
        assert!(threw.contains("cxx_throw.cpp:10"), "{threw}");
        // The frame it names is parse_config's.
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(&format!("#{frame} "))
                    && l.contains("parse_config")),
            "{out}"
        );
    }
}

/// A program that fails right after a call weft does not emulate returned ENOSYS is told
/// so next to the verdict; one that failed long after such a call is not.
#[test]
fn a_failure_right_after_an_unemulated_call_says_so() {
    for out in record_replay_inspect("gives_up", &["-q", "enosys"]) {
        assert!(
            out.contains(
                "note: vcpu0 failed 2 system calls after io_uring_setup (425) returned ENOSYS"
            ) && out.contains("weft does not emulate"),
            "{out}"
        );
    }
    for out in record_replay_inspect("gives_up", &["-q", "late"]) {
        assert!(!out.contains("weft does not emulate"), "{out}");
    }
}

/// `weft explore` prints the failure it found and the minimized run each with its own
/// call stacks: the minimized schedule may fail on another vCPU (seed 0 of racy_counter
/// does: vcpu0 first, vcpu1 minimized), and a stack under a verdict naming another vCPU
/// would send the reader to the wrong thread.
#[test]
fn explore_prints_each_verdict_with_its_own_stacks() {
    let dir = scratch();
    let (code, _, err) = text(&weft([
        "explore",
        common::guest("racy_counter").to_str().unwrap(),
        "--seed",
        "0",
        "--out",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 1, "{err}");
    let mut verdict = None;
    let mut vcpus_seen = Vec::new();
    for line in err.lines() {
        if line.contains("verdict: FAIL") {
            verdict = Some(line);
        }
        if let Some(v) = line.strip_prefix("call stack of ") {
            let v = v.trim_end_matches(':');
            let under = verdict.expect("a verdict before the stacks");
            assert!(
                under.contains(&format!("on {v} ")),
                "{v} under `{under}`:\n{err}"
            );
            vcpus_seen.push(v.to_string());
        }
    }
    assert!(
        vcpus_seen.contains(&"vcpu0".to_string()) && vcpus_seen.contains(&"vcpu1".to_string()),
        "seed 0 no longer fails on two vCPUs; pick another:\n{err}"
    );
}

/// `weft replay` tells its outcomes apart: 0 a passing run reproduced, 1 a failing run
/// reproduced, 2 bad input, 3 a divergence (which used to be 1, like a reproduced failure,
/// so a script could not tell "the bug is still there" from "the replay broke").
#[test]
fn replay_exit_codes_tell_reproduced_failures_from_divergences() {
    use weft_trace::{Event, EventSink, TraceReader, TraceWriter};
    let dir = scratch();
    let replay = |t: &std::path::Path| text(&weft(["replay", "-q", t.to_str().unwrap()]));
    let pass = dir.path().join("pass.weft");
    let args = ["--strategy", "round-robin:quantum=5", "--sharing", "all"];
    let (code, _, err) = common::record("locked_counter", &pass, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(replay(&pass).0, 0);
    let fail = dir.path().join("fail.weft");
    let args = ["--strategy", "random:seed=3", "--sharing", "all"];
    let (code, _, err) = common::record("racy_counter", &fail, &args);
    assert_eq!(code, 1, "{err}");
    assert_eq!(replay(&fail).0, 1);
    assert_eq!(replay(&dir.path().join("missing.weft")).0, 2);

    // Edit the passing run's schedule: its replay diverges.
    let reader = TraceReader::open(&pass).unwrap();
    let header = reader.header().clone();
    let edited = dir.path().join("edited.weft");
    let mut w = TraceWriter::create(&edited, &header).unwrap();
    let mut runs = 0;
    for e in reader.into_events() {
        let mut e = e.unwrap();
        if let Event::Run { vcpu, .. } = &mut e {
            runs += 1;
            if runs == 10 {
                vcpu.0 = 1 - vcpu.0;
            }
        }
        w.event(&e).unwrap();
    }
    w.finish().unwrap();
    let (code, _, err) = replay(&edited);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("DIVERGED"), "{err}");

    let (_, help, _) = text(&weft(["replay", "--help"]));
    assert!(
        help.contains("3 the replay diverged") && help.contains("1 the recorded run failed"),
        "{help}"
    );
}

/// fcntl record locks (SQLite takes POSIX locks): emulated for the one process weft runs,
/// POSIX locks never conflicting with each other, OFD locks conflicting per open file
/// description, and F_OFD_SETLKW waiting for the holder, under several schedules.
#[test]
fn record_locks_work_as_on_linux_for_one_process() {
    let dir = scratch();
    let g = linux_guest("record_locks");
    for strategy in ["round-robin", "random:seed=4", "pct:seed=1"] {
        let t = dir.path().join("locks.weft");
        let (code, out, err) = record_elf(&g, &t, &["--strategy", strategy]);
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert_eq!(
            out,
            "posix: set 0, getlk unlocked, again 0\n\
             ofd: blocked by posix EAGAIN (pid 1000), after unlock 0, other EAGAIN, dup 0\n\
             ofd wait: got the lock after the holder closed\n",
            "{strategy}"
        );
        let (_, summary, _) = text(&weft(["inspect", t.to_str().unwrap()]));
        assert!(!summary.contains("warning:"), "{summary}");
        let (code, _, err) = text(&weft(["replay", "-q", t.to_str().unwrap()]));
        assert_eq!(code, 0, "{strategy}: {err}");
    }
}

/// An unstripped guest of tens of MiB records (the trace embeds the ELF: its header used
/// to be held to bincode's 16 MiB and failed with "the size limit has been reached").
#[test]
fn a_guest_of_thirty_mib_records_and_replays() {
    let dir = scratch();
    let junk = dir.path().join("debug.bin");
    std::fs::write(&junk, vec![0u8; 30 << 20]).unwrap();
    let big = dir.path().join("big.elf");
    let status = std::process::Command::new("objcopy")
        .arg(format!("--add-section=.weft_padding={}", junk.display()))
        .arg(linux_guest("hello"))
        .arg(&big)
        .status()
        .expect("objcopy runs");
    assert!(status.success());
    assert!(std::fs::metadata(&big).unwrap().len() > 30 << 20);
    let t = dir.path().join("big.weft");
    let (code, out, err) = record_elf(&big, &t, &["-q"]);
    assert!(code <= 1, "{out}{err}");
    assert!(err.contains("trace: "), "{err}");
    let (code2, _, err2) = text(&weft(["replay", "-q", t.to_str().unwrap()]));
    assert_eq!(code2, code, "{err2}");
    assert!(err2.contains("replay: reproduced"), "{err2}");
}

/// A static musl executable has no Linux mark in its ELF, so it runs on the board unless
/// `--linux` is given, and crashes there: the crash says what to do (also when stripped of
/// its symbols); a board guest's own crash gets no such hint.
#[test]
fn a_linux_program_crashing_on_the_board_gets_a_hint() {
    let dir = scratch();
    let exe = dir.path().join("lost_wakeup_musl");
    let built = std::process::Command::new("musl-gcc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&exe)
        .arg("examples/linux/lost_wakeup.c")
        .status()
        .expect("musl-gcc is missing: run scripts/setup.sh");
    assert!(built.success());
    let stripped = dir.path().join("lost_wakeup_musl_stripped");
    let s = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
        .expect("strip runs");
    assert!(s.success());
    for g in [&exe, &stripped] {
        let t = dir.path().join("musl.weft");
        let (code, _, err) = record_elf(g, &t, &[]);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("FAIL (crash)"), "{err}");
        assert!(
            err.contains("hint: this guest ran on the weft board")
                && err.contains("record it with --linux"),
            "{}: {err}",
            g.display()
        );
        let (_, summary, _) = text(&weft(["inspect", t.to_str().unwrap()]));
        assert!(summary.contains("record it with --linux"), "{summary}");
    }
    let t = dir.path().join("ud.weft");
    let (code, _, err) = record_elf(&common::guest("crash_ud"), &t, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("hint:"), "{err}");
}

/// `weft inspect` of a Linux program lists the threads it had, not the 64 it could have.
#[test]
fn inspect_shows_the_threads_a_linux_program_had() {
    let dir = scratch();
    for (name, threads) in [("hello", 1usize), ("threads_many", 9)] {
        let t = dir.path().join(format!("{name}.weft"));
        let (code, out, err) = record_elf(&linux_guest(name), &t, &["-q"]);
        assert!(code <= 1, "{out}{err}");
        let (_, summary, _) = text(&weft(["inspect", t.to_str().unwrap()]));
        let plural = if threads == 1 { "" } else { "s" };
        assert!(
            summary.contains(&format!(
                "machine:   Linux program, {threads} thread{plural} (at most 64)"
            )),
            "{summary}"
        );
        let line = summary
            .lines()
            .find(|l| l.starts_with("threads:"))
            .expect("a threads line");
        assert_eq!(line.matches("vcpu").count(), threads, "{line}");
        let (_, json, _) = text(&weft(["inspect", "--json", t.to_str().unwrap()]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["threads"], threads as u64);
        assert_eq!(v["points_per_vcpu"].as_array().unwrap().len(), threads);
    }
}

/// The README's tour does what it says: its `weft record` of racy_counter fails with an
/// assertion, and its `weft inspect --events` line lists events of that trace. A range
/// past the end of a trace lists nothing and says why.
#[test]
fn the_readme_tour_records_a_failure_and_lists_its_events() {
    let readme = std::fs::read_to_string("README.md").unwrap();
    let dir = scratch();
    let trace = dir.path().join("racy.weft");
    let guest = common::guest("racy_counter");
    // The command's words before its comment, with the tour's files replaced by ours.
    let command = |prefix: &str| -> Vec<String> {
        let line = readme
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("README has no `{prefix}` line"));
        line.split('#')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                "ex/racy_counter.elf" => guest.display().to_string(),
                "racy.weft" | "all.weft" => trace.display().to_string(),
                w => w.to_string(),
            })
            .collect()
    };
    let (code, _, err) = text(&weft(command(
        "weft record ex/racy_counter.elf --sharing all",
    )));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("verdict: FAIL (assertion)"), "{err}");
    let (code, out, err) = text(&weft(command("weft inspect --events")));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines().count() >= 3,
        "the tour's listing is (nearly) empty:\n{out}{err}"
    );

    let t = trace.to_str().unwrap();
    let (code, out, err) = text(&weft(["inspect", "--events", "--from", "100000", t]));
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(
        err.contains("no events listed: steps 100000.. are past the end of the trace"),
        "{err}"
    );
}

/// A Rust panic that aborts (`panic = "abort"`) ends in SIGABRT; the report names the
/// panic and the line of the program it came from, found in the inlined frames of std's
/// thread start (the user's closure and `check` were inlined there).
#[test]
fn an_aborting_rust_panic_names_the_line_it_came_from() {
    for out in record_replay_inspect("rust_panic_abort", &["-q"]) {
        assert!(
            out.contains("FAIL (signal)") || out.contains("SIGABRT"),
            "{out}"
        );
        assert!(
            out.contains("Rust panic on vcpu1 (thread '<unnamed>') at tests/guests/linux/rust_panic_abort.rs:7:")
                && out.contains(": the tenth value is missing"),
            "{out}"
        );
        assert!(
            out.contains("panicked at tests/guests/linux/rust_panic_abort.rs:7 (in frame #"),
            "{out}"
        );
    }
}
