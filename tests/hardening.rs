//! Hardening: garbage in never crashes weft (exit 2, one line naming the file), a recording
//! killed with SIGKILL keeps what it wrote, and short runs of the fuzzers (weft-fuzz) pass.

mod common;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, scratch, text, weft};

/// Start a long recording into `t` (stderr piped) and return once it has written
/// `min_bytes`, still running.
fn long_recording(t: &Path, min_bytes: u64) -> Child {
    let g = guest("bench_shared");
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["record", g.to_str().unwrap(), "-o", t.to_str().unwrap()])
        .args(["--vcpus", "4", "--strategy", "random:seed=3", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::metadata(t).map_or(0, |m| m.len()) < min_bytes
        && start.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// A trace cut short opens, says so, and replays exactly up to its end (exit code 2).
fn assert_prefix_replays(t: &Path) {
    let (code, out, err) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("the trace ends before the run did"), "{out}");
    let (code, _, err) = text(&weft([
        "replay".as_ref(),
        t.as_os_str(),
        "--quiet".as_ref(),
    ]));
    assert!(err.contains("replayed exactly"), "{err}");
    assert_eq!(code, 2, "{err}");
}

/// Exit code 2 and exactly one line, `weft: error: ...`, that says nothing twice (a cause
/// printed again by an error chain) and is no panic.
fn assert_one_line_error(args: &[&str], code: i32, err: &str) {
    assert_eq!(code, 2, "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.starts_with("weft: error: "), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            p.len() < 12 || !parts[i + 1..].contains(p),
            "{args:?}: `{p}` repeated: {err}"
        );
    }
}

/// `weft ARGS...` (with gdb replaced by a program that is not there) -> (code, out, err).
fn weft_no_gdb(args: &[&str]) -> (i32, String, String) {
    text(
        &Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(args)
            .env("WEFT_GDB", "/nonexistent/gdb")
            .output()
            .unwrap(),
    )
}

#[test]
fn every_subcommand_answers_garbage_with_exit_2_and_one_line() {
    let dir = scratch();
    let mut files = Vec::new();
    for (name, bytes) in [
        ("empty", Vec::new()),
        ("text", b"hello, this is not a program\n".to_vec()),
        (
            "elf-head",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec(),
        ),
        (
            "trace-head",
            b"WEFTTRC\0\x02\0\0\0\xff\xff\xff\x7f".to_vec(),
        ),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    files.push(dir.path().to_path_buf()); // a directory
    files.push(dir.path().join("missing"));
    let out = dir.path().join("out.weft");
    for f in &files {
        let f = f.to_str().unwrap();
        let cases: Vec<Vec<&str>> = vec![
            vec!["run", f],
            vec!["record", f, "-o", out.to_str().unwrap()],
            vec!["explore", f, "--schedules", "2"],
            vec!["replay", f],
            vec!["replay", f, "--goto", "3"],
            vec!["inspect", f],
            vec!["inspect", f, "--events"],
            vec!["races", f],
            vec!["tm", f],
            vec!["gdbserver", f, "--port", "0"],
            vec!["replay", f, "--gdb"],
        ];
        for args in cases {
            let (code, _, err) = weft_no_gdb(&args);
            assert_one_line_error(&args, code, &err);
        }
    }
}

#[test]
fn bad_option_combinations_are_usage_errors_not_panics() {
    let g = guest("racy_counter");
    let g = g.to_str().unwrap();
    for args in [
        vec!["run", g, "--vcpus", "0"],
        vec!["run", g, "--vcpus", "65"],
        vec!["run", g, "--ram", "12345"],
        vec!["run", g, "--stack", "1K"],
        vec!["run", g, "--vcpus", "64", "--ram", "1M"],
        vec!["run", g, "--strategy", "pct:depth=0"],
        vec!["run", g, "--strategy", "dfs:bound=99"],
        vec!["run", g, "--tm-write-lines", "0"],
        vec!["run", g, "--tm-abort-rate", "-1"],
        vec!["explore", g, "--jobs", "0"],
        vec!["replay", "--regs", "x.weft"],
        vec!["inspect", "x.weft", "--goto", "1", "--from", "2"],
        vec!["run", g, "--max-steps", "0"],
        vec!["run", g, "--deadlock-window", "0"],
        vec!["run", g, "--vcpus", "-1"],
        vec!["run", g, "--ram", "99999999999999999999"],
        vec!["run"],
        vec!["frobnicate"],
        vec!["record", g, "--no-such-flag"],
        vec!["explore", g, "--shard", "3/2"],
        vec!["explore", g, "--schedules", "x"],
        vec!["gdbserver", "x.weft", "--port", "70000"],
        vec!["gdbserver", "x.weft", "--port", "-1"],
        vec!["gdbserver", "x.weft", "--address", "localhost:1"],
        vec!["gdbserver", "x.weft", "--checkpoint-every", "0"],
        vec!["replay", "x.weft", "--gdb", "--goto", "3"],
        vec!["replay", "x.weft", "--", "-batch"],
        vec!["demo", "--vcpus", "0"],
        vec!["demo", "--out", "/dev/null/demo"],
        vec!["demo", "--schedules", "-3"],
        vec!["examples", "--out", "/dev/null/x"],
        vec!["explore", g, "--time", "NaN"],
        vec!["explore", g, "--jobs", "100000"],
    ] {
        let (code, _, err) = weft_no_gdb(&args);
        assert_one_line_error(&args, code, &err);
    }
}

#[test]
fn a_recording_killed_with_sigkill_keeps_what_it_wrote() {
    let dir = scratch();
    for (i, min_bytes) in [40_000u64, 120_000, 400_000].into_iter().enumerate() {
        let t = dir.path().join(format!("killed{i}.weft"));
        // Kill it once it has written this much (at a different place each time).
        let mut child = long_recording(&t, min_bytes);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_prefix_replays(&t);
    }
}

/// A few seconds of each fuzz target, fixed seeds (weft-fuzz runs for hours the same way).
#[test]
fn short_fuzz_runs_find_no_panic() {
    let dir = scratch();
    let weft_bin = env!("CARGO_BIN_EXE_weft");
    for (target, n, every) in [
        ("trace", "400", "50"),
        ("elf", "3000", "50"),
        ("cli", "500", "2"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_weft-fuzz"))
            .args([
                target,
                "--iterations",
                n,
                "--seed",
                "11",
                "--run-every",
                every,
            ])
            .args([
                "--crashes",
                dir.path().to_str().unwrap(),
                "--weft",
                weft_bin,
            ])
            .output()
            .unwrap();
        let (code, out, err) = text(&o);
        assert_eq!(code, 0, "{target}: {out}{err}");
        assert!(out.contains(", 0 panic(s)"), "{out}");
        if target == "cli" {
            // Enough command lines get past the parser to run real work.
            let ran: u64 = out
                .split(" run as processes")
                .next()
                .and_then(|s| s.rsplit(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            assert!(ran >= 50, "{out}");
        }
    }
}

/// Every input the fuzzers once crashed weft with still runs cleanly.
#[test]
fn fuzz_regressions_stay_fixed() {
    let saved = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/cli");
    let o = Command::new(env!("CARGO_BIN_EXE_weft-fuzz"))
        .arg("cli")
        .arg("--replay")
        .arg(&saved)
        .args(["--weft", env!("CARGO_BIN_EXE_weft")])
        .output()
        .unwrap();
    let (code, out, err) = text(&o);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("saved inputs, 0 panic(s)"), "{out}");
    assert!(
        out.lines().filter(|l| l.starts_with("ok ")).count() >= 3,
        "{out}"
    );
}

#[test]
fn a_size_limit_or_a_full_disk_ends_recording_with_a_clear_error() {
    let dir = scratch();
    let t = dir.path().join("limited.weft");
    let g = guest("bench_shared");
    let (code, _, err) = text(&weft([
        "record",
        g.to_str().unwrap(),
        "-o",
        t.to_str().unwrap(),
        "--strategy",
        "random:seed=1",
        "--max-trace-bytes",
        "200K",
        "--quiet",
    ]));
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("size limit of 204800 bytes"), "{err}");
    let len = std::fs::metadata(&t).unwrap().len();
    assert!(len <= 204_800 && len > 50_000, "{len}");
    // What was written is a trace that opens and replays.
    assert_prefix_replays(&t);

    // A device with no space left: the first write fails, one line naming it.
    if std::path::Path::new("/dev/full").exists() {
        let g = guest("racy_counter");
        let (code, _, err) = text(&weft([
            "record",
            g.to_str().unwrap(),
            "-o",
            "/dev/full",
            "-q",
        ]));
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("/dev/full") && err.contains("No space left"),
            "{err}"
        );
    }
}

#[test]
fn sixty_four_vcpus_all_spinning_end_in_a_deadlock_verdict() {
    let (code, _, err) = text(&weft([
        "run",
        guest("spin_forever").to_str().unwrap(),
        "--vcpus",
        "64",
        "--deadlock-window",
        "20000",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FAIL (deadlock)"), "{err}");
    assert!(err.contains("vcpu63"), "{err}");
}

#[test]
fn ctrl_c_during_record_finishes_the_trace_cleanly() {
    let dir = scratch();
    let t = dir.path().join("interrupted.weft");
    let child = long_recording(&t, 100_000);
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let (code, _, err) = text(&out);
    assert_eq!(code, 130, "{err}");
    assert!(err.contains("interrupted (Ctrl-C) at step"), "{err}");
    // Finished cleanly: the index is there (no "no index" note), and it replays.
    let (_, out, _) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
    assert!(!out.contains("no index"), "{out}");
    assert_prefix_replays(&t);
}

/// `weft record GUEST -o TRACE ARGS...` with the file size limited to `limit` bytes
/// (RLIMIT_FSIZE, SIGXFSZ ignored): writes past it fail with EFBIG, as on a full disk.
fn record_with_file_size_limit(
    guest_name: &str,
    t: &Path,
    limit: u64,
    args: &[&str],
) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weft"));
    cmd.arg("record")
        .arg(guest(guest_name))
        .arg("-o")
        .arg(t)
        .args(args);
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    text(&cmd.output().unwrap())
}

#[test]
fn a_full_disk_mid_recording_ends_with_a_clear_error_and_a_readable_trace() {
    let dir = scratch();
    // Two limits: the write fails in a different chunk each time.
    for limit in [150_000u64, 420_000] {
        let t = dir.path().join(format!("full{limit}.weft"));
        let (code, out, err) = record_with_file_size_limit(
            "bench_shared",
            &t,
            limit,
            &["--strategy", "random:seed=1", "--quiet"],
        );
        assert_eq!(code, 2, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("weft: error: "), "{err}");
        assert!(
            err.contains(t.to_str().unwrap())
                && err.contains("writing the trace failed")
                && err.contains("File too large")
                && err.contains("complete chunk(s)"),
            "{err}"
        );
        let len = std::fs::metadata(&t).unwrap().len();
        assert!(len <= limit && len > limit / 4, "{len}");
        // No partial chunk left behind: the file is cut back to its last complete chunk
        // and indexed (when the index fits), so it opens without a warning and replays.
        let (_, out, _) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
        assert!(!out.contains("note:"), "{out}");
        assert_prefix_replays(&t);
    }
    // The header alone does not fit: the first write fails, one line, nothing kept.
    let t = dir.path().join("tiny.weft");
    let (code, _, err) = record_with_file_size_limit("racy_counter", &t, 100, &["-q"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("File too large"), "{err}");
}

/// A small complete trace of racy_counter.
fn small_trace(dir: &Path) -> std::path::PathBuf {
    let t = dir.join("small.weft");
    let (code, _, err) = common::record("racy_counter", &t, &["--strategy", "random:seed=3", "-q"]);
    assert!(code == 0 || code == 1, "{err}");
    t
}

#[test]
fn the_gdb_front_end_answers_bad_input_with_one_line_and_exit_2() {
    let dir = scratch();
    let t = small_trace(dir.path());
    let ts = t.to_str().unwrap();
    let bytes = std::fs::read(&t).unwrap();
    let cut = dir.path().join("cut-in-header.weft");
    std::fs::write(&cut, &bytes[..40]).unwrap();
    let cut = cut.to_str().unwrap();
    // A port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    for args in [
        vec!["gdbserver", ts, "--address", "0.0.0.0"],
        vec!["gdbserver", ts, "--address", "192.0.2.1"],
        vec!["gdbserver", ts, "--address", "::"],
        vec!["gdbserver", ts, "--port", &port],
        vec!["gdbserver", cut, "--port", "0"],
        vec!["replay", cut, "--gdb"],
    ] {
        let (code, _, err) = weft_no_gdb(&args);
        assert_one_line_error(&args, code, &err);
    }
    let (_, _, err) = weft_no_gdb(&["gdbserver", ts, "--address", "::"]);
    assert!(err.contains("--allow-remote"), "{err}");
    let (_, _, err) = weft_no_gdb(&["gdbserver", ts, "--port", &port]);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(taken);

    // A trace cut after some chunks is still debuggable up to its end: the server starts.
    let len = bytes.len();
    let mid = dir.path().join("cut-mid.weft");
    std::fs::write(&mid, &bytes[..len - 100]).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(["gdbserver", mid.to_str().unwrap(), "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(server.stderr.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(first.contains("gdbserver on 127.0.0.1:"), "{first}");
}

#[test]
fn a_trace_of_another_format_version_names_both_versions() {
    use weft_trace::{FORMAT_VERSION, OLDEST_READABLE_VERSION};
    let dir = scratch();
    let t = small_trace(dir.path());
    let bytes = std::fs::read(&t).unwrap();
    for (found, word, reads) in [
        (
            OLDEST_READABLE_VERSION - 1,
            "older",
            format!("(versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"),
        ),
        (
            FORMAT_VERSION + 1,
            "newer",
            format!("(version {FORMAT_VERSION})"),
        ),
    ] {
        let p = dir.path().join(format!("v{found}.weft"));
        let mut b = bytes.clone();
        b[8..12].copy_from_slice(&found.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        let p = p.to_str().unwrap();
        for args in [
            vec!["inspect", p],
            vec!["inspect", p, "--events"],
            vec!["replay", p],
            vec!["races", p],
            vec!["tm", p],
            vec!["gdbserver", p, "--port", "0"],
            vec!["replay", p, "--gdb"],
        ] {
            let (code, _, err) = weft_no_gdb(&args);
            assert_one_line_error(&args, code, &err);
            let both = format!(
                "trace format version {found} is {word} than the version this weft reads {reads}"
            );
            assert!(err.contains(&both), "{args:?}: {err}");
        }
    }
}

#[test]
fn resource_limits_are_clear_errors_naming_the_option() {
    let dir = scratch();
    let g = guest("racy_counter");
    let g = g.to_str().unwrap();
    let t = dir.path().join("t.weft");
    let ts = t.to_str().unwrap();
    for (args, option) in [
        (vec!["run", g, "--ram", "4K"], "--ram"),
        (vec!["run", g, "--ram", "1M", "--vcpus", "1"], "--ram"),
        (vec!["run", g, "--ram", "2T"], "--ram"),
        (vec!["run", g, "--ram", "5000"], "--ram"),
        (vec!["run", g, "--vcpus", "0"], "--vcpus"),
        (vec!["run", g, "--vcpus", "65"], "--vcpus"),
        (vec!["run", g, "--vcpus", "64", "--stack", "1M"], "--stack"),
        (vec!["run", g, "--stack", "1000"], "--stack"),
        (vec!["run", g, "--max-steps", "0"], "--max-steps"),
        (
            vec!["record", g, "-o", ts, "--max-trace-bytes", "1K"],
            "--max-trace-bytes",
        ),
        (
            vec!["record", g, "-o", ts, "--max-trace-bytes", "0"],
            "--max-trace-bytes",
        ),
    ] {
        let (code, _, err) = text(&weft(&args));
        assert_one_line_error(&args, code, &err);
        assert!(err.contains(option), "{args:?}: {err}");
        assert!(!t.exists(), "{args:?} left {ts}");
    }
    // More RAM than the host will give: refused with a line naming --ram, or (on a host
    // that overcommits without limit) run; never a crash, and no trace left behind then.
    let (code, _, err) = text(&weft(["record", g, "-o", ts, "--ram", "1T", "-q"]));
    assert!([0, 1, 2].contains(&code), "{err}");
    if code == 2 {
        assert_one_line_error(&["--ram", "1T"], code, &err);
        assert!(err.contains("--ram"), "{err}");
        assert!(!t.exists());
    }
    // A step budget is a verdict (exit 1), at exactly that many steps.
    let (code, _, err) = text(&weft([
        "run",
        guest("spin_forever").to_str().unwrap(),
        "--max-steps",
        "4321",
    ]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("FAIL (budget)") && err.contains("steps: 4321 "),
        "{err}"
    );
}

/// `weft run GUEST ARGS...` for a built guest -> (exit code, stdout, stderr).
fn run_guest(name: &str, args: &[&str]) -> (i32, String, String) {
    let g = guest(name);
    let mut a = vec!["run".to_string(), g.display().to_string()];
    a.extend(args.iter().map(|s| s.to_string()));
    text(&weft(&a))
}

#[test]
fn hypercall_buffers_on_stacks_and_at_the_end_of_ram_are_allowed() {
    for strategy in ["round-robin", "random:seed=1", "random:seed=2"] {
        let (code, out, err) = run_guest("hypercall_ranges", &["--strategy", strategy]);
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert_eq!(
            out, "own stack ok\nfrom vcpu1's stack\ntail ok\n",
            "{strategy}"
        );
    }
}

#[test]
fn hypercall_buffers_outside_ram_crash_the_guest_never_weft() {
    for (vcpus, call, range) in [
        (1, "MARK", "0x1000+0xfffffffffffff001"),
        (2, "ASSERT_FAIL", "0x1000+0x10000000000"),
        (3, "ANNOTATE_ATOMIC", "0x3fffffc+0x8"),
        (4, "WRITE", "0xffffffffffffffff+0x1"),
        (5, "WRITE", "0x4000000+0x1"),
    ] {
        let n = vcpus.to_string();
        let (code, out, err) = run_guest("hypercall_bad_range", &["--vcpus", &n]);
        assert_eq!(code, 1, "case {n}: {err}");
        assert_eq!(out, format!("hypercall_bad_range: case {n}\n"));
        assert!(
            err.contains("FAIL (crash): guest crash on vcpu0 at rip 0x"),
            "case {n}: {err}"
        );
        let msg = format!("{call} hypercall: buffer {range} is not inside RAM (0..0x4000000)");
        assert!(err.contains(&msg), "case {n}: {err}");
    }
}

#[test]
fn a_write_of_all_of_ram_is_recorded_and_replayed() {
    let dir = scratch();
    let t = dir.path().join("flood.weft");
    let (code, _, err) = common::record("console_flood", &t, &["-q"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" 67108864 console bytes"), "{out}");
    assert!(out.contains("verdict:   pass"), "{out}");
    let (code, _, err) = text(&weft(["replay".as_ref(), t.as_os_str(), "-q".as_ref()]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("events match the recording"), "{err}");
}

#[test]
fn code_rewritten_by_its_own_or_another_vcpu_runs_as_rewritten() {
    for strategy in [
        "round-robin",
        "random:seed=1",
        "random:seed=5",
        "pct:seed=3",
    ] {
        let (code, out, err) = run_guest(
            "self_modifying",
            &["--strategy", strategy, "--deadlock-window", "20000"],
        );
        assert_eq!(code, 0, "{strategy}: {out}{err}");
        assert!(out.contains("self_modifying: own code ok\n"), "{out}");
        assert!(
            out.contains("self_modifying: other vcpu's rewrite seen\n"),
            "{out}"
        );
    }
    // Recorded, it replays exactly (the rewrites are ordinary shared writes).
    let dir = scratch();
    let t = dir.path().join("smc.weft");
    let (code, _, err) = common::record("self_modifying", &t, &["--strategy", "random:seed=5"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = text(&weft(["replay".as_ref(), t.as_os_str(), "-q".as_ref()]));
    assert_eq!(code, 0, "{err}");
}

/// Run `weft ARGS...` and return its exit code and peak resident memory in KiB (the
/// child's own rusage, from wait4: other tests' children do not count).
// The child is waited for with wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn peak_rss_kib(args: &[&str]) -> (i32, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value; `pid` is our child, not yet waited for
    // (std's Child is never waited on after this).
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status), "weft did not exit: {status}");
    (libc::WEXITSTATUS(status), ru.ru_maxrss)
}

#[test]
fn recording_memory_does_not_grow_with_the_length_of_the_run() {
    let dir = scratch();
    let g = guest("endless");
    let g = g.to_str().unwrap();
    let mut peaks = Vec::new();
    let mut sizes = Vec::new();
    for steps in ["300000", "3000000"] {
        let t = dir.path().join(format!("long{steps}.weft"));
        let ts = t.to_str().unwrap();
        let args = [
            "record",
            g,
            "-o",
            ts,
            "--vcpus",
            "4",
            "--strategy",
            "random:seed=1",
            "--max-steps",
            steps,
        ];
        let (code, kib) = peak_rss_kib(&args);
        assert_eq!(code, 1, "{steps}: budget verdict expected");
        peaks.push(kib);
        sizes.push(std::fs::metadata(&t).unwrap().len());
    }
    // Ten times the steps: about ten times the trace, but no more memory than a few MiB
    // of noise (a writer that kept the trace, or anything per step, would add ~10 MiB).
    assert!(sizes[1] > 8 * sizes[0], "{sizes:?}");
    assert!(
        peaks[1] <= peaks[0] + 4 * 1024,
        "peak RSS {} KiB for 300k steps, {} KiB for 3M steps (traces {sizes:?} bytes)",
        peaks[0],
        peaks[1]
    );
}

#[test]
fn a_vcpu_provably_looping_forever_ends_the_run_at_once() {
    let dir = scratch();
    for strategy in ["round-robin", "random:seed=1"] {
        let t = dir.path().join("stuck.weft");
        let _ = std::fs::remove_file(&t);
        // The default --deadlock-window: without the proof this takes a million ticks.
        let (code, out, err) = common::record("stuck_flag", &t, &["--strategy", strategy]);
        assert_eq!(code, 1, "{strategy}: {err}");
        assert_eq!(out, "stuck_flag: vcpu0 done\n", "{strategy}");
        assert!(
            err.contains("FAIL (deadlock)") && err.contains("vcpu1 at 0x"),
            "{err}"
        );
        let steps: u64 = err
            .split("steps: ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no step count: {err}"));
        assert!(steps < 10_000, "{strategy}: decided after {steps} steps");
        // The trace says why, and replays to the same verdict.
        let (_, out, _) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
        assert!(
            out.contains("loops forever without touching shared memory"),
            "{out}"
        );
        let (code, _, err) = text(&weft(["replay".as_ref(), t.as_os_str(), "-q".as_ref()]));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("events match the recording"), "{err}");
    }
    // A loop whose state changes (a counter on its stack) is never taken for one that
    // repeats: it still runs until the budget.
    let (code, _, err) = run_guest("private_loop", &["--vcpus", "1", "--max-steps", "3000"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("FAIL (budget)"), "{err}");
}

#[test]
fn a_closed_stdout_ends_weft_quietly() {
    use std::os::fd::FromRawFd;
    let dir = scratch();
    let t = small_trace(dir.path());
    let ts = t.to_str().unwrap();
    for args in [
        vec!["inspect", ts, "--events"],
        vec!["inspect", ts],
        vec!["races", ts, "--all"],
        vec!["tm", ts],
        vec!["examples"],
        vec!["replay", ts, "--goto", "5"],
    ] {
        // A pipe nobody reads: its read end is closed before weft writes.
        let mut fds = [0; 2];
        // SAFETY: fds is a valid array of two ints.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fds[0] is ours and open; closing it leaves the write end broken.
        unsafe { libc::close(fds[0]) };
        // SAFETY: fds[1] is an open descriptor that nothing else owns.
        let stdout = unsafe { Stdio::from_raw_fd(fds[1]) };
        let o = Command::new(env!("CARGO_BIN_EXE_weft"))
            .args(&args)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let (code, _, err) = text(&o);
        assert!(
            code == 0 || code == 1 || code == 141,
            "{args:?}: {code} {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
