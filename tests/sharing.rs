//! Paying only for what threads share (`--sharing pages`, the default): a recording keeps
//! exactly the accesses to pages more than one vCPU touched, a replay derives the others,
//! the fast instances never reach a page that stopped being their vCPU's own, and runs are
//! as deterministic as ever.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{guest, linux_guest, record_elf, scratch, text, weft};
use weft_trace::{Event, TraceReader};

/// An access as both logs list it: (step, vCPU, RIP, address, size, kind, value).
type Access = (u64, u32, u64, u64, u8, String, u64);

fn access(e: &Event) -> Option<Access> {
    match e {
        Event::Access {
            step,
            vcpu,
            rip,
            addr,
            size,
            kind,
            value,
        } => Some((
            step.0,
            vcpu.0,
            *rip,
            addr.0,
            *size,
            kind.short().to_string(),
            *value,
        )),
        _ => None,
    }
}

/// The recording's events.
fn recorded(t: &Path) -> Vec<Event> {
    TraceReader::open(t)
        .unwrap()
        .into_events()
        .map(|e| e.unwrap())
        .collect()
}

/// Every event with the accesses the recording left out, derived by `weft inspect`.
fn derived(t: &Path) -> Vec<Event> {
    let (code, out, err) = text(&weft([
        "inspect",
        "--events",
        "--json",
        t.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            serde_json::from_value(v["event"].clone()).unwrap()
        })
        .collect()
}

/// Record `elf` with `args` and check the two logs against each other: the derived one
/// holds every recorded event; an access to a page is recorded exactly when the page was
/// shared at that step (from the start, or since its `Share` event). Returns the number of
/// recorded and derived accesses.
fn check_logs(elf: &Path, dir: &Path, args: &[&str]) -> (usize, usize) {
    let t = dir.join("t.weft");
    let (code, out, err) = record_elf(elf, &t, args);
    assert!(code <= 1, "{out}{err}");
    let rec = recorded(&t);
    let all = derived(&t);
    let shared_from_start: BTreeSet<u64> =
        match &TraceReader::open(&t).unwrap().header().options.sharing {
            weft_trace::Sharing::Pages { shared } => shared.iter().copied().collect(),
            weft_trace::Sharing::All => panic!("recorded with --sharing all"),
        };
    // Walk the derived log, keeping each page's and line's state as its `Share` events
    // change it: an access is recorded when its page is shared whole (from the start) or
    // its line is, and so is the access that changed a page's or line's state (it follows
    // its `Share` event).
    let whole: BTreeSet<u64> = shared_from_start;
    let mut lines: BTreeSet<u64> = BTreeSet::new();
    let mut changed_by: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut expected = Vec::new();
    for e in &all {
        if let Event::Share {
            vcpu,
            addr,
            len,
            read_only,
            ..
        } = e
        {
            changed_by.insert((addr.0 / *len as u64, vcpu.0 + 1000 * *len));
            if !read_only {
                assert_eq!(*len, 64, "a page becomes shared a line at a time");
                lines.insert(addr.0 / 64);
            }
            continue;
        }
        let Some(a) = access(e) else { continue };
        let bytes = [a.3, a.3 + a.4 as u64 - 1];
        let changer = bytes.iter().any(|&b| {
            changed_by.remove(&(b / 4096, a.1 + 1000 * 4096))
                | changed_by.remove(&(b / 64, a.1 + 1000 * 64))
        });
        let shared = |b: u64| whole.contains(&(b / 4096)) || lines.contains(&(b / 64));
        if changer || bytes.iter().any(|&b| shared(b)) {
            expected.push(a);
        }
    }
    let got: Vec<Access> = rec.iter().filter_map(access).collect();
    // The kernel's accesses (futex words, thread ids) are recorded whatever the page: they
    // carry the RIP of their system call (whose event comes when it returns, later when it
    // blocked).
    let syscalls: BTreeSet<(u32, u64)> = rec
        .iter()
        .filter_map(|e| match e {
            Event::Syscall { vcpu, rip, .. } => Some((vcpu.0, *rip)),
            _ => None,
        })
        .collect();
    let kernel = |a: &Access| syscalls.contains(&(a.1, a.2));
    for a in &expected {
        assert!(
            got.contains(a),
            "{args:?}: shared access not recorded: {a:?}"
        );
    }
    for a in got.iter().filter(|a| !kernel(a)) {
        assert!(
            expected.contains(a),
            "{args:?}: recorded, not shared: {a:?}"
        );
    }
    // Every recorded event is in the derived log, in the same order.
    let mut it = all.iter();
    for e in &rec {
        assert!(
            it.any(|d| d == e),
            "{args:?}: {e:?} missing from the derived log"
        );
    }
    (got.len(), all.iter().filter_map(access).count())
}

#[test]
fn a_recording_keeps_exactly_the_accesses_to_shared_pages() {
    let dir = scratch();
    for (g, args) in [
        (guest("racy_counter"), vec!["--strategy", "random:seed=3"]),
        (
            guest("message_passing"),
            vec!["--strategy", "random:seed=5"],
        ),
        (guest("tm_elided_lock"), vec!["--strategy", "random:seed=7"]),
        (
            guest("bench_workload"),
            vec!["--vcpus", "3", "--max-steps", "3000"],
        ),
        (
            linux_guest("lock_heavy"),
            vec!["--strategy", "random:seed=2", "--max-steps", "20000"],
        ),
        (
            linux_guest("bank_account"),
            vec!["--strategy", "pct:seed=4"],
        ),
    ] {
        let (rec, all) = check_logs(&g, dir.path(), &args);
        assert!(
            rec < all,
            "{g:?} {args:?}: nothing was left out ({rec} of {all})"
        );
    }
}

#[test]
fn private_work_is_neither_recorded_nor_scheduled() {
    let dir = scratch();
    let g = linux_guest("private_sort");
    let pages = dir.path().join("pages.weft");
    let (code, out, err) = record_elf(&g, &pages, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("private_sort: checksum "), "{out}");
    let all = dir.path().join("all.weft");
    let (code, out_all, err) = record_elf(&g, &all, &["--sharing", "all"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, out_all, "the same program, the same output");
    let (small, big) = (
        std::fs::metadata(&pages).unwrap().len(),
        std::fs::metadata(&all).unwrap().len(),
    );
    // Four threads sorting their own arrays share a mutex and a counter.
    assert!(small * 20 < big, "pages {small} bytes, all {big} bytes");
    assert!(small < 1 << 20, "{small}");
    let (code, _, err) = text(&weft(["replay", pages.to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("reproduced"), "{err}");
}

#[test]
fn recordings_with_shared_pages_are_identical_byte_for_byte() {
    let dir = scratch();
    for (g, args) in [
        (
            linux_guest("private_sort"),
            vec!["--strategy", "random:seed=1"],
        ),
        (
            linux_guest("threads_many"),
            vec!["--strategy", "pct:seed=3"],
        ),
        (
            guest("bench_workload"),
            vec!["--vcpus", "4", "--strategy", "random:seed=9"],
        ),
        (
            guest("tm_elided_lock"),
            vec!["--vcpus", "3", "--tm-abort-rate", "20%"],
        ),
    ] {
        let a = dir.path().join("a.weft");
        let b = dir.path().join("b.weft");
        let (ca, _, ea) = record_elf(&g, &a, &args);
        let (cb, _, _) = record_elf(&g, &b, &args);
        assert!(ca <= 1 && ca == cb, "{g:?}: {ea}");
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{g:?} {args:?}: two recordings differ"
        );
        let (code, _, err) = text(&weft(["replay", a.to_str().unwrap()]));
        assert_eq!(code, ca, "{err}");
        assert!(err.contains("reproduced"), "{g:?}: {err}");
    }
}

#[test]
fn a_page_that_changes_hands_through_munmap_and_mmap_is_seen_by_its_new_owner() {
    let dir = scratch();
    let g = linux_guest("remap");
    for strategy in ["round-robin", "random:seed=1", "pct:seed=2"] {
        let t = dir.path().join("remap.weft");
        let (code, out, err) = record_elf(&g, &t, &["--strategy", strategy]);
        assert_eq!(
            (code, out.as_str()),
            (0, "remap: ok\n"),
            "{strategy}: {err}"
        );
        check_logs(&g, dir.path(), &["--strategy", strategy]);
    }
}
