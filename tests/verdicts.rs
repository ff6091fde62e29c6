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
