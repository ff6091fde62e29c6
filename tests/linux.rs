//! The Linux user-mode platform end to end: static glibc pthread programs recorded,
//! replayed, analysed and explored through the `weft` binary (docs/linux.md).

mod common;

use std::path::{Path, PathBuf};

use common::{linux_guest, scratch, text, weft};
use weft_trace::{Event, TraceReader, Verdict};

/// `weft record GUEST -o OUT OPTIONS... ARGS...` -> (exit code, stdout, stderr); the
/// guest's arguments come last (after a `--`, everything is one).
fn record(name: &str, out: &Path, args: &[&str], options: &[&str]) -> (i32, String, String) {
    let g = linux_guest(name);
    let mut a = vec!["record".to_string(), g.display().to_string()];
    a.extend(["-o".into(), out.display().to_string()]);
    a.extend(options.iter().map(|s| s.to_string()));
    a.extend(args.iter().map(|s| s.to_string()));
    text(&weft(&a))
}

fn events(trace: &Path) -> Vec<Event> {
    TraceReader::open(trace)
        .unwrap()
        .into_events()
        .map(|e| e.unwrap())
        .collect()
}

fn verdict(trace: &Path) -> Verdict {
    events(trace)
        .into_iter()
        .find_map(|e| match e {
            Event::End { verdict, .. } => Some(verdict),
            _ => None,
        })
        .expect("a complete trace")
}

fn replays(trace: &Path) -> String {
    let (code, out, err) = text(&weft(["replay", trace.to_str().unwrap()]));
    assert!(code <= 1, "{out}{err}");
    assert!(err.contains("replay: reproduced"), "{out}{err}");
    out
}

#[test]
fn examples_record_byte_identical_traces_and_replay() {
    let dir = scratch();
    for name in [
        "bank_account",
        "bank_account_fixed",
        "lock_order",
        "lost_wakeup",
    ] {
        for strategy in ["round-robin", "random:seed=7", "pct:seed=3,steps=3000"] {
            let a = dir.path().join(format!("{name}-a.weft"));
            let b = dir.path().join(format!("{name}-b.weft"));
            let (c1, o1, e1) = record(name, &a, &[], &["--strategy", strategy, "-q"]);
            let (c2, _, _) = record(name, &b, &[], &["--strategy", strategy, "-q"]);
            assert!(c1 <= 1 && c1 == c2, "{name} {strategy}: {o1}{e1}");
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{name} under {strategy}: two recordings differ"
            );
            replays(&a);
        }
    }
}

#[test]
fn the_correct_program_prints_its_result_and_passes() {
    let dir = scratch();
    let t = dir.path().join("fixed.weft");
    let (code, out, err) = record("bank_account_fixed", &t, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "bank_account_fixed: final balance 10, withdrew 50\n");
    assert!(err.contains("verdict: pass"), "{err}");
    assert!(err.contains("on 4 threads"), "{err}");
    assert_eq!(replays(&t), out);
}

/// `weft explore NAME --schedules N --out DIR` -> (exit code, stderr).
fn explore(name: &str, dir: &Path, schedules: &str) -> (i32, String) {
    let g = linux_guest(name);
    let (code, out, err) = text(&weft([
        "explore",
        g.to_str().unwrap(),
        "--schedules",
        schedules,
        "--out",
        dir.to_str().unwrap(),
    ]));
    (code, format!("{out}{err}"))
}

#[test]
fn explore_finds_each_bug_and_its_failure_replays() {
    let dir = scratch();
    for (name, class) in [
        ("bank_account", "assertion"),
        ("lock_order", "deadlock"),
        ("lost_wakeup", "deadlock"),
    ] {
        let (code, out) = explore(name, dir.path(), "2000");
        assert_eq!(code, 1, "{name}: no failure found:\n{out}");
        assert!(out.contains(&format!("FAIL ({class})")), "{name}:\n{out}");
        let min: PathBuf = dir.path().join(format!("{name}-fail-min.weft"));
        assert_eq!(verdict(&min).class(), class, "{name}");
        replays(&min);
    }
}

#[test]
fn explore_passes_the_correct_program() {
    let dir = scratch();
    let (code, out) = explore("bank_account_fixed", dir.path(), "300");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no failure found"), "{out}");
}

#[test]
fn a_failed_assert_is_an_assertion_verdict_with_glibc_s_message() {
    let dir = scratch();
    let (_, out) = explore("bank_account", dir.path(), "2000");
    let min = dir.path().join("bank_account-fail-min.weft");
    match verdict(&min) {
        Verdict::Assertion { message, .. } => {
            assert!(
                message.contains("examples/linux/bank_account.c")
                    && message.contains("Assertion `got == expected' failed"),
                "{message}"
            )
        }
        v => panic!("{v:?}\n{out}"),
    }
    // The races behind it, at the update's source lines.
    let (code, out, err) = text(&weft(["races", min.to_str().unwrap()]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("bank_account.c:"), "{out}");
}

#[test]
fn argv_environment_and_exit_status_reach_the_program() {
    let dir = scratch();
    let t = dir.path().join("hello.weft");
    let (code, out, err) = record(
        "hello",
        &t,
        &["one", "--", "-two"],
        &["--env", "WEFT_TEST=yes"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("hello from a static glibc guest\nargc=3\n"),
        "{out}"
    );
    assert!(out.contains("argv[1]=one\nargv[2]=-two\n"), "{out}");
    assert!(out.contains("WEFT_TEST=yes"), "{out}");
    assert!(matches!(verdict(&t), Verdict::ExitStatus { status: 3, .. }));
    assert!(err.contains("exit status 3"), "{err}");
    assert_eq!(replays(&t), out);
}

#[test]
fn a_program_reading_a_file_replays_after_the_file_is_deleted() {
    let dir = scratch();
    let file = dir.path().join("input.txt");
    std::fs::write(&file, "line one\nline two\n").unwrap();
    let t = dir.path().join("read.weft");
    let (code, out, err) = record("read_file", &t, &[file.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "line one\nline two\n");
    std::fs::remove_file(&file).unwrap();
    assert_eq!(replays(&t), out);
    // A missing file is an error the program sees (and the replay sees it again).
    let t2 = dir.path().join("missing.weft");
    let (code, _, err) = record("read_file", &t2, &[file.to_str().unwrap()], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    replays(&t2);
}

#[test]
fn files_a_program_writes_stay_inside_the_run() {
    let dir = scratch();
    let t = dir.path().join("files.weft");
    let host = dir.path().join("host.txt");
    std::fs::write(&host, b"original\n").unwrap();
    // Left by a native run of the guest, it would be the start of the log.
    let _ = std::fs::remove_file("/tmp/weft-test-log.txt");
    let expected = "write_files: log has 40 lines\nwrite_files: renamed ok\n\
                    write_files: host file hidden, then gone\nwrite_files: ok\n";
    for strategy in ["round-robin", "random:seed=3", "pct:seed=1,steps=5000"] {
        let (code, out, err) = record(
            "write_files",
            &t,
            &[host.to_str().unwrap()],
            &["--strategy", strategy],
        );
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert_eq!(out, expected, "{strategy}");
        assert!(!err.contains("warning"), "{err}");
        // The host never saw any of it: its file is as it was, nothing was created.
        assert_eq!(std::fs::read(&host).unwrap(), b"original\n");
        assert!(!Path::new("/tmp/weft-test.out").exists());
        assert_eq!(replays(&t), expected);
    }
    // --keep-files hands them over: the log is all that is left at the end.
    let kept = dir.path().join("kept");
    let (code, _, err) = record(
        "write_files",
        &t,
        &[host.to_str().unwrap()],
        &["--keep-files", kept.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("files: 1 the program wrote"), "{err}");
    let log = std::fs::read_to_string(kept.join("tmp/weft-test-log.txt")).unwrap();
    assert_eq!(log.lines().count(), 40);
    assert!(log.contains("thread 3 line 9\n"), "{log}");
    // A replay leaves the same files.
    let again = dir.path().join("again");
    let (code, _, err) = text(&weft([
        "replay",
        t.to_str().unwrap(),
        "--keep-files",
        again.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(again.join("tmp/weft-test-log.txt")).unwrap(),
        log
    );
    let (code, _, err) = text(&weft([
        "run",
        common::guest("racy_counter").to_str().unwrap(),
        "--keep-files",
        kept.to_str().unwrap(),
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("--keep-files is for Linux programs"), "{err}");
}

#[test]
fn threads_talk_through_pipes_that_block_when_empty_or_full() {
    let dir = scratch();
    let t = dir.path().join("pipes.weft");
    let expected = "pipes: 100 records, 100000 bytes, in order\npipes: EPIPE, EAGAIN ok\n";
    for strategy in ["round-robin", "random:seed=1", "pct:seed=2,steps=5000"] {
        let (code, out, err) = record("pipes", &t, &[], &["--strategy", strategy]);
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert_eq!(out, expected, "{strategy}");
        assert_eq!(replays(&t), expected);
    }
    // Reading a pipe whose only writer is the reader itself: a deadlock, shown in read.
    let (code, out, err) = record("pipes", &t, &["stuck"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(verdict(&t).class(), "deadlock");
    assert!(
        err.contains(" read+") && err.contains("tests/guests/linux/pipes.c:"),
        "{err}"
    );
}

#[test]
fn an_unknown_syscall_returns_enosys_and_leaves_a_warning() {
    let dir = scratch();
    let t = dir.path().join("unknown.weft");
    let (code, out, err) = record("unknown_syscall", &t, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "ret=-1 errno=38\n");
    let warning = events(&t).into_iter().find_map(|e| match e {
        Event::Warning { message, .. } => Some(message),
        _ => None,
    });
    let w = warning.expect("a warning event");
    assert!(
        w.contains("io_uring_setup (425)") && w.contains("-ENOSYS"),
        "{w}"
    );
}

#[test]
fn threads_are_vcpus_and_atomics_stay_atomic() {
    let dir = scratch();
    let t = dir.path().join("many.weft");
    for strategy in ["round-robin:quantum=1", "random:seed=5"] {
        let (code, out, err) = record("threads_many", &t, &[], &["--strategy", strategy]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(out, "threads_many: counter=80\n", "{strategy}");
        assert!(err.contains("on 9 threads"), "{err}");
        let spawns = events(&t)
            .iter()
            .filter(|e| matches!(e, Event::Spawn { .. }))
            .count();
        assert_eq!(spawns, 8);
    }
    // Fewer threads allowed than the program makes: the creator waits until one exits.
    let (code, out, err) = record("threads_many", &t, &[], &["--max-threads", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "threads_many: counter=80\n");
    let waited = events(&t).iter().any(|e| {
        matches!(e, Event::Warning { message, .. } if message.contains("waits until one exits"))
    });
    assert!(waited, "no warning of the wait");
}

#[test]
fn scheduling_policy_system_information_directories_and_thread_reuse() {
    let dir = scratch();
    let listed = dir.path().join("listed");
    std::fs::create_dir(&listed).unwrap();
    std::fs::write(listed.join("b"), b"").unwrap();
    std::fs::write(listed.join("a"), b"x").unwrap();
    std::fs::create_dir(listed.join("sub")).unwrap();
    let t = dir.path().join("info.weft");
    let arg = listed.to_str().unwrap();
    let expected = "other 0..0 fifo 1..99\n\
                    rr: -1 Operation not permitted\n\
                    batch: 0, policy now 3\n\
                    param: 0 priority 0\n\
                    sysinfo: 0 procs 1 ram some\n\
                    times: ticking\n\
                    msync: 0\n\
                    chmod: 0\n\
                    entry ./\nentry ../\nentry a\nentry b\nentry sub/\n\
                    again: 5 entries\n\
                    threads: 170\n";
    for strategy in [
        "round-robin",
        "random:seed=3",
        "pct:seed=1,depth=2,steps=5000",
    ] {
        let (code, out, err) = record("system_info", &t, &[arg], &["--strategy", strategy]);
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert_eq!(out, expected, "{strategy}");
        let ev = events(&t);
        let spawns = ev
            .iter()
            .filter(|e| matches!(e, Event::Spawn { .. }))
            .count();
        assert_eq!(spawns, 170);
        // Thread ids are never given twice, though vCPUs are.
        let mut tids: Vec<u32> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Spawn { tid, .. } => Some(*tid),
                _ => None,
            })
            .collect();
        tids.sort_unstable();
        tids.dedup();
        assert_eq!(tids.len(), 170);
    }
    // The listing is in the trace: the replay needs no directory.
    std::fs::remove_dir_all(&listed).unwrap();
    replays(&t);
}

#[test]
fn a_thread_dying_with_a_robust_mutex_hands_it_on_as_owner_died() {
    let dir = scratch();
    let t = dir.path().join("robust.weft");
    for strategy in ["round-robin", "random:seed=9"] {
        let (code, out, err) = record("robust", &t, &[], &["--strategy", strategy]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(out, "robust: EOWNERDEAD, made consistent\n", "{strategy}");
        replays(&t);
    }
}

#[test]
fn timed_waits_and_sleeps_pass_in_virtual_time() {
    let dir = scratch();
    let t = dir.path().join("timeout.weft");
    let (code, out, err) = record("futex_timeout", &t, &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "timed out\n");
    replays(&t);
}

#[test]
fn clocks_and_random_bytes_are_deterministic_and_seeded() {
    let dir = scratch();
    let t = dir.path().join("clock.weft");
    let run = |seed: &str| {
        let (code, out, err) = record("clock", &t, &[], &["--random-seed", seed]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("monotonic ok\nrealtime ok\n"), "{out}");
        out
    };
    assert_eq!(run("1"), run("1"));
    assert_ne!(run("1"), run("2"));
}

#[test]
fn a_null_store_in_a_thread_is_a_crash_with_its_instruction() {
    let dir = scratch();
    let t = dir.path().join("crash.weft");
    let (code, out, err) = record("crash_null", &t, &[], &[]);
    assert_eq!(code, 1, "{out}{err}");
    match verdict(&t) {
        Verdict::Crash(c) => {
            assert_eq!(c.vcpu.0, 1);
            assert!(c.what.contains("unmapped address 0x0"), "{}", c.what);
            assert!(c.instruction.contains("mov"), "{}", c.instruction);
        }
        v => panic!("{v:?}"),
    }
    replays(&t);
}

#[test]
fn board_only_options_and_guest_arguments_are_refused_clearly() {
    let g = linux_guest("hello");
    let (code, _, err) = text(&weft(["run", g.to_str().unwrap(), "--vcpus", "3"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--vcpus is for board guests"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let board = common::guest("racy_counter");
    let (code, _, err) = text(&weft(["run", board.to_str().unwrap(), "x"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("arguments (x) are for Linux guests"), "{err}");
}

#[test]
fn gdb_shows_each_thread_where_the_lost_wakeup_left_it() {
    let dir = scratch();
    let (code, out) = explore("lost_wakeup", dir.path(), "2000");
    assert_eq!(code, 1, "{out}");
    let t = dir.path().join("lost_wakeup-fail-min.weft");
    let (code, out, err) = text(&weft([
        "replay",
        "--gdb",
        t.to_str().unwrap(),
        "--",
        "-batch",
        "-nx",
        "-ex",
        "info threads",
        "-ex",
        "continue",
        "-ex",
        "info threads",
        "-ex",
        "thread apply all bt",
    ]));
    let out = format!("{out}{err}");
    assert_eq!(code, 0, "{out}");
    // Before the threads exist, and at the end: the waiter and main both wait, forever.
    assert!(out.contains("(vcpu 1, not started)"), "{out}");
    assert!(out.contains("(vcpu 2, ended)"), "{out}");
    assert!(out.contains("in pthread_cond_wait"), "{out}");
    assert!(
        out.contains("in waiter (") && out.contains("examples/linux/lost_wakeup.c:"),
        "{out}"
    );
    assert!(
        out.contains("in main () at ./examples/linux/lost_wakeup.c:"),
        "{out}"
    );
}

#[test]
fn glibc_lock_elision_runs_on_weft_s_rtm() {
    // GLIBC_TUNABLES turns on glibc's elided mutexes: they start transactions, which
    // `weft tm` reports per XBEGIN site.
    let dir = scratch();
    let t = dir.path().join("elided.weft");
    let (code, out, err) = record(
        "bank_account_fixed",
        &t,
        &[],
        &[
            "--env",
            "GLIBC_TUNABLES=glibc.elision.enable=1",
            "--strategy",
            "random:seed=2",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "bank_account_fixed: final balance 10, withdrew 50\n");
    let begun = events(&t)
        .iter()
        .filter(|e| matches!(e, Event::TxBegin { .. }))
        .count();
    assert!(begun > 0, "no transaction: elision did not run");
    let (code, out, err) = text(&weft(["tm", t.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("__lll_lock_elision"), "{out}");
    replays(&t);
}

#[test]
fn a_musl_program_runs_with_linux_given() {
    // musl's static executables carry no Linux mark in their ELF: --linux says it.
    let dir = scratch();
    let exe = dir.path().join("lost_wakeup_musl");
    let built = std::process::Command::new("musl-gcc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&exe)
        .arg("examples/linux/lost_wakeup.c")
        .status()
        .expect("musl-gcc is missing: run scripts/setup.sh");
    assert!(built.success());
    let t = dir.path().join("musl.weft");
    let (code, out, err) = text(&weft([
        "record",
        "--linux",
        exe.to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "lost_wakeup: waiter got message 42\n");
    replays(&t);
    let (code, out) = {
        let (c, o, e) = text(&weft([
            "explore",
            "--linux",
            exe.to_str().unwrap(),
            "--out",
            dir.path().to_str().unwrap(),
        ]));
        (c, format!("{o}{e}"))
    };
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL (deadlock)"), "{out}");
}

#[test]
fn a_thread_waiting_with_sleep_zero_lets_the_others_run_under_pct() {
    // Under PCT the waiter often has the higher priority; unless sleep(0) counts as a
    // spin it polls forever and the run ends on the step budget.
    let dir = scratch();
    let g = linux_guest("yield_spin");
    let (code, out, err) = text(&weft([
        "explore",
        g.to_str().unwrap(),
        "--strategy",
        "pct:depth=1",
        "--schedules",
        "24",
        "--max-steps",
        "3000000",
        "--json",
        "--out",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"failures\": []"), "{out}");
}
