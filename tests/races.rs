//! `weft races` end to end on purpose-written guests: the racy counter's pairs at the right
//! source line, one entry per location pair, no races under real locks (inferred or
//! annotated) but conflicts with --all, the message-passing bug, TM (aborted accesses
//! dropped, elision bug found), JSON and DOT; and no race at all in the correct Linux
//! programs (tests/guests/linux/norace_*: barriers, rwlocks, condition variables, stdio
//! from threads, malloc, TLS, C11/C++/Rust atomics, Rust std sync and channels).

mod common;
use std::path::Path;

use common::{scratch, text, weft};
use serde_json::Value;

fn record(name: &str, out: &Path, args: &[&str]) -> i32 {
    let (code, _, err) = common::record(name, out, args);
    assert!(code <= 1, "{name}: {err}");
    code
}

/// `weft races --json --all TRACE` -> (exit code, report).
fn races(trace: &Path) -> (i32, Value) {
    let (code, out, err) = text(&weft([
        "races".as_ref(),
        trace.as_os_str(),
        "--json".as_ref(),
        "--all".as_ref(),
    ]));
    assert!(code <= 1, "{err}");
    (code, serde_json::from_str(&out).expect("weft races --json"))
}

/// 1-based line of the first line of `src` containing `needle`.
fn line_of(src: &str, needle: &str) -> usize {
    src.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

fn groups<'a>(r: &'a Value, key: &str) -> &'a Vec<Value> {
    r[key].as_array().unwrap()
}

/// The source position in a side's `source` (`f+0x12 (file.c:42, inlined at g.c:7)` ->
/// `file.c:42, inlined at g.c:7`), or its RIP without one.
fn location(side: &Value) -> String {
    let s = side["source"].as_str().unwrap();
    match (s.find('('), s.rfind(')')) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].to_string(),
        _ => format!("{:#x}", side["rip"].as_u64().unwrap()),
    }
}

/// No two race entries share a code location pair and a variable: each racy location
/// pair is reported once, with a count.
fn assert_once_per_location_pair(r: &Value) {
    let mut seen = std::collections::BTreeSet::new();
    for g in groups(r, "races") {
        let (a, b) = (location(&g["first"]), location(&g["second"]));
        let pair = if a <= b { (a, b) } else { (b, a) };
        let object = g["object"].as_str().unwrap().to_string();
        assert!(
            object.is_empty() || seen.insert((pair.clone(), object.clone())),
            "{pair:?} on {object} reported twice: {r}"
        );
        assert!(g["count"].as_u64().unwrap() >= 1, "{g}");
        assert!(
            g["addr_end"].as_u64().unwrap() > g["addr_start"].as_u64().unwrap(),
            "{g}"
        );
    }
}

#[test]
fn racy_counter_reports_its_raw_and_waw_pairs_at_the_increment() {
    let dir = scratch();
    let src = include_str!("../examples/racy_counter.c");
    let inc = format!("examples/racy_counter.c:{}", line_of(src, "counter++;"));
    let check = format!(
        "examples/racy_counter.c:{}",
        line_of(src, "unsigned long got = counter;")
    );
    let mut classes = std::collections::BTreeSet::new();
    for seed in 1..=4 {
        let t = dir.path().join(format!("racy{seed}.weft"));
        let s = format!("random:seed={seed}");
        record("racy_counter", &t, &["--strategy", &s]);
        let (code, r) = races(&t);
        let rs = groups(&r, "races");
        // One racy `counter++`, one source line: one race, whatever its instructions.
        assert_eq!(rs.len(), 1, "seed {seed}: {r}");
        assert_eq!(rs[0]["object"], "counter", "{r}");
        assert_eq!(code, 1, "races found: exit code 1");
        for g in rs {
            for side in ["first", "second"] {
                let s = g[side]["source"].as_str().unwrap();
                assert!(
                    s.contains(&inc),
                    "seed {seed}: race away from the increment: {g}"
                );
            }
            assert_ne!(g["first"]["vcpu"], g["second"]["vcpu"], "{g}");
            for c in g["classes"].as_array().unwrap() {
                classes.insert(c.as_str().unwrap().to_string());
            }
        }
        // The final check reads `counter` after a LOCK XADD on `finished`: ordered, no race.
        for g in groups(&r, "conflicts") {
            let s = g["second"]["source"].as_str().unwrap();
            if s.contains(&check) {
                assert_eq!(g["race"], false, "{g}");
            }
        }
    }
    assert!(
        classes.contains("RaW") && classes.contains("WaW"),
        "{classes:?}"
    );
}

#[test]
fn accesses_of_one_vcpu_never_pair() {
    let dir = scratch();
    let t = dir.path().join("one.weft");
    record("racy_counter", &t, &["--vcpus", "1"]);
    let (code, r) = races(&t);
    assert_eq!(code, 0);
    assert!(
        groups(&r, "races").is_empty() && groups(&r, "conflicts").is_empty(),
        "{r}"
    );
    assert!(r["accesses"].as_u64().unwrap() > 0);
}

#[test]
fn real_locks_give_no_race_but_conflicts_with_all() {
    let dir = scratch();
    for (name, vcpus) in [
        ("locked_counter", "3"),
        ("ticket_lock", "3"),
        ("annotated_lock", "2"),
        ("tm_elided_lock", "2"),
    ] {
        for seed in 1..=3 {
            let t = dir.path().join(format!("{name}{seed}.weft"));
            let s = format!("random:seed={seed}");
            assert_eq!(record(name, &t, &["--vcpus", vcpus, "--strategy", &s]), 0);
            let (code, r) = races(&t);
            assert_eq!(code, 0, "{name} seed {seed}: {r}");
            assert!(groups(&r, "races").is_empty(), "{name} seed {seed}: {r}");
            assert!(
                !groups(&r, "conflicts").is_empty(),
                "{name}: no conflicts at all"
            );
        }
    }
    // Without the annotations the same program's hand-over is invisible: races.
    let t = dir.path().join("unannotated.weft");
    record("unannotated_lock", &t, &[]);
    let (code, r) = races(&t);
    assert_eq!(code, 1);
    assert!(!groups(&r, "races").is_empty(), "{r}");
}

#[test]
fn message_passing_reports_the_flag_and_data_pairs() {
    let dir = scratch();
    let src = include_str!("../examples/message_passing.c");
    let publish = format!("examples/message_passing.c:{}", line_of(src, "ready = 1;"));
    let data_w = format!(
        "examples/message_passing.c:{}",
        line_of(src, "data = input * 2;")
    );
    let data_r = format!(
        "examples/message_passing.c:{}",
        line_of(src, "unsigned long got = data;")
    );
    let mut seen = std::collections::BTreeSet::new();
    for seed in 1..=6 {
        let t = dir.path().join(format!("mp{seed}.weft"));
        let s = format!("random:seed={seed}");
        record("message_passing", &t, &["--strategy", &s]);
        let (_, r) = races(&t);
        assert_once_per_location_pair(&r);
        for g in groups(&r, "races") {
            let (a, b) = (
                g["first"]["source"].as_str().unwrap(),
                g["second"]["source"].as_str().unwrap(),
            );
            let classes: Vec<&str> = g["classes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let on = |l: &str| a.contains(l) || b.contains(l);
            if classes.contains(&"RaW") && on(&publish) {
                seen.insert("RaW on ready");
            }
            if on(&data_r) && on(&data_w) {
                assert_eq!(g["object"], "data", "{g}");
                for c in classes {
                    seen.insert(if c == "WaR" {
                        "WaR on data"
                    } else {
                        "RaW on data"
                    });
                }
            }
        }
    }
    for want in ["RaW on ready", "WaR on data", "RaW on data"] {
        assert!(seen.contains(want), "{want} not reported: {seen:?}");
    }
}

#[test]
fn transactions_are_ordered_and_the_elision_bug_is_a_race() {
    let dir = scratch();
    let t = dir.path().join("buggy.weft");
    record("tm_elided_lock_buggy", &t, &["--strategy", "random:seed=2"]);
    let (code, r) = races(&t);
    assert_eq!(code, 1);
    assert!(r["aborted_accesses"].as_u64().unwrap() > 0, "{r}");
    // A transaction that commits while the audited path holds the real lock: their accesses
    // to the accounts are not ordered (the transaction never read the lock word).
    let src = include_str!("../examples/tm_elided_lock_buggy.c");
    let audit = format!(
        "examples/tm_elided_lock_buggy.c:{}",
        line_of(src, "WEFT_MARK(") + 1
    );
    let rs = groups(&r, "races");
    assert!(
        rs.iter()
            .any(|g| g["first"]["source"].as_str().unwrap().contains(&audit)
                || g["second"]["source"].as_str().unwrap().contains(&audit)),
        "no race with the audited update ({audit}): {r}"
    );
}

#[test]
fn json_schema_and_dot_graph() {
    let dir = scratch();
    let t = dir.path().join("racy.weft");
    record("racy_counter", &t, &["--strategy", "random:seed=3"]);
    let (_, r) = races(&t);
    for key in [
        "accesses",
        "aborted_accesses",
        "sync_bytes",
        "runtime_accesses",
        "races",
        "conflicts",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {r}");
    }
    let g = &groups(&r, "races")[0];
    for key in [
        "id",
        "race",
        "class",
        "classes",
        "addr_start",
        "addr_end",
        "object",
        "count",
        "first_step",
        "last_step",
        "first",
        "second",
    ] {
        assert!(g.get(key).is_some(), "missing {key}: {g}");
    }
    for key in [
        "step", "vcpu", "rip", "kind", "addr", "size", "value", "insn", "source",
    ] {
        assert!(g["first"].get(key).is_some(), "missing {key}: {g}");
    }
    let dot = dir.path().join("racy.dot");
    let (code, _, err) = text(&weft([
        "races".as_ref(),
        t.as_os_str(),
        "--dot".as_ref(),
        dot.as_os_str(),
    ]));
    assert_eq!(code, 1, "{err}");
    let d = std::fs::read_to_string(&dot).unwrap();
    assert!(d.starts_with("digraph {"), "{d}");
    assert!(d.contains("color=red"), "{d}");
    assert!(d.contains("racy_counter.c:"), "{d}");
}

#[test]
fn a_report_entry_leads_to_its_moment_in_inspect_and_replay() {
    let dir = scratch();
    let t = dir.path().join("racy.weft");
    record("racy_counter", &t, &["--strategy", "random:seed=3"]);
    let (_, r) = races(&t);
    let g = &groups(&r, "races")[0];
    let (id, second) = (g["id"].as_u64().unwrap(), &g["second"]);
    let step = second["step"].as_u64().unwrap();

    let (code, out, err) = text(&weft([
        "inspect".as_ref(),
        t.as_os_str(),
        "--race".as_ref(),
        id.to_string().as_ref(),
    ]));
    assert_eq!(code, 0, "{err}");
    let marked: Vec<&str> = out.lines().filter(|l| l.starts_with('>')).collect();
    assert!(
        marked
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some(&step.to_string())),
        "{out}"
    );

    let (code, out, err) = text(&weft([
        "replay".as_ref(),
        t.as_os_str(),
        "--quiet".as_ref(),
        "--goto".as_ref(),
        step.to_string().as_ref(),
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("paused before step {step} ")),
        "{out}"
    );
    let vcpu = format!("vcpu{}", second["vcpu"]);
    let next = out
        .lines()
        .find(|l| l.contains("<- next"))
        .expect("a next vCPU");
    assert!(next.trim_start().starts_with(&vcpu), "{out}");
    assert!(
        next.contains(&format!("{:#x}", second["rip"].as_u64().unwrap())),
        "{out}"
    );
    assert!(next.contains("examples/racy_counter.c:"), "{out}");
    assert!(
        out.contains(&format!("the recording at step {step}:")),
        "{out}"
    );

    let (code, _, err) = text(&weft([
        "inspect".as_ref(),
        t.as_os_str(),
        "--race".as_ref(),
        "999".as_ref(),
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("no report entry #999"), "{err}");
}

/// Every correct program in tests/guests/linux/norace_* (at least 25: C, C++ and Rust;
/// barriers, rwlocks, condition variables, semaphores, once, stdio from threads, malloc,
/// TLS, adjacent per-thread elements, C11/C++/Rust atomics compiled to plain MOVs, Rust std
/// sync, channels and scoped threads) passes and has no race, under several schedules.
#[test]
fn correct_programs_have_no_races() {
    let dir = scratch();
    let linux = Path::new(env!("OUT_DIR")).join("guests/linux");
    let mut names: Vec<String> = std::fs::read_dir(&linux)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().to_string();
            n.strip_prefix("norace_")?.strip_suffix(".elf")?;
            Some(n.trim_end_matches(".elf").to_string())
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 25,
        "only {} correct programs: {names:?}",
        names.len()
    );
    for name in &names {
        for strategy in ["round-robin", "random:seed=1", "pct:seed=2"] {
            let t = dir.path().join(format!("{name}.weft"));
            let (code, _, err) = common::record_elf(
                &linux.join(format!("{name}.elf")),
                &t,
                &["--strategy", strategy],
            );
            assert_eq!(code, 0, "{name} under {strategy} failed: {err}");
            let (code, r) = races(&t);
            assert!(
                groups(&r, "races").is_empty() && code == 0,
                "{name} under {strategy}: {:#}",
                r["races"]
            );
            assert!(
                !groups(&r, "conflicts").is_empty(),
                "{name}: no threads met"
            );
        }
    }
}

/// The racy programs still report their races, each location pair once: the Linux bank
/// account's lost update is a read-write and a write-write pair on `balance`, nothing else.
#[test]
fn racy_programs_report_each_location_pair_once() {
    let dir = scratch();
    let src = include_str!("../examples/linux/bank_account.c");
    let load = format!("bank_account.c:{}", line_of(src, "long seen = balance;"));
    let store = format!(
        "bank_account.c:{}",
        line_of(src, "balance = seen + amount;")
    );
    let t = dir.path().join("bank.weft");
    let g = common::linux_guest("bank_account");
    let (code, _, err) = common::record_elf(&g, &t, &["--strategy", "pct:seed=1"]);
    assert!(code <= 1, "{err}");
    let (code, r) = races(&t);
    assert_eq!(code, 1);
    assert_once_per_location_pair(&r);
    let rs = groups(&r, "races");
    let mut found: Vec<(bool, bool)> = rs
        .iter()
        .map(|g| {
            assert_eq!(g["object"], "balance", "{g}");
            let locs = [location(&g["first"]), location(&g["second"])];
            (
                locs.iter().any(|l| l.contains(&load)),
                locs.iter().all(|l| l.contains(&store)),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, vec![(false, true), (true, false)], "{r}");
    // The board's unsynchronised lock: every race is its own location pair.
    let t = dir.path().join("unannotated.weft");
    record("unannotated_lock", &t, &["--strategy", "random:seed=3"]);
    let (_, r) = races(&t);
    assert!(!groups(&r, "races").is_empty(), "{r}");
    assert_once_per_location_pair(&r);
}

/// The DWARF types of globals say which are atomic: C11 `_Atomic`, C++ `std::atomic<T>`,
/// Rust `AtomicBool` (their release stores and acquire loads are plain MOVs); a plain
/// global next to them is not.
#[test]
fn atomic_globals_come_from_the_dwarf_types() {
    let linux = Path::new(env!("OUT_DIR")).join("guests/linux");
    for (guest, atomic, plain) in [
        ("norace_c11_atomics", "ready", "sum"),
        ("norace_c11_atomics", "shared_buf", "sum"),
        ("norace_cxx_atomic", "ready", "data"),
        ("norace_rust_atomics", "norace_rust_atomics::READY", ""),
    ] {
        let elf = std::fs::read(linux.join(format!("{guest}.elf"))).unwrap();
        let map = weft::debuginfo::SourceMap::new(&elf);
        let ranges = weft::races::atomic_globals(&elf, map.bias());
        let covered = |addr: u64| ranges.iter().any(|&(a, l)| a <= addr && addr < a + l);
        // rustc may add a `.0` to a static's symbol.
        let addr = map
            .address_of(atomic)
            .or_else(|| map.address_of(&format!("{atomic}.0")))
            .unwrap_or_else(|| panic!("{guest}: no symbol {atomic}"));
        assert!(
            covered(addr),
            "{guest}: {atomic} at {addr:#x} not atomic: {ranges:x?}"
        );
        if let Some(p) = map.address_of(plain) {
            assert!(!covered(p), "{guest}: {plain} at {p:#x} is not atomic");
        }
    }
}

/// `--confirm` re-runs each race in the other order: message_passing's stale read of `data`
/// fails the assertion that way (harmful) and is listed first; the entries keep their ids,
/// so `weft inspect --race N` still finds them.
#[test]
fn confirmation_by_replay_finds_the_harmful_race_and_lists_it_first() {
    let dir = scratch();
    let t = dir.path().join("mp.weft");
    record("message_passing", &t, &["--strategy", "random:seed=3"]);
    let (_, plain) = races(&t);
    let (code, out, err) = text(&weft([
        "races".as_ref(),
        t.as_os_str(),
        "--json".as_ref(),
        "--confirm".as_ref(),
    ]));
    assert_eq!(code, 1, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let rs = groups(&r, "races");
    assert_eq!(rs.len(), groups(&plain, "races").len());
    let effects: Vec<&str> = rs
        .iter()
        .map(|g| g["confirmation"]["effect"].as_str().unwrap())
        .collect();
    assert_eq!(effects[0], "harmful", "{r}");
    assert_eq!(rs[0]["object"], "data", "{r}");
    assert!(
        rs[0]["confirmation"]["verdict"]
            .as_str()
            .unwrap()
            .contains("assertion"),
        "{r}"
    );
    // Same entries, same ids, whatever the order.
    for g in rs {
        let same = groups(&plain, "races")
            .iter()
            .find(|p| p["id"] == g["id"])
            .expect("an entry of the plain report");
        assert_eq!(same["object"], g["object"]);
        assert_eq!(same["first"], g["first"]);
    }
    let (_, text_out, _) = text(&weft([
        "races".as_ref(),
        t.as_os_str(),
        "--confirm".as_ref(),
    ]));
    assert!(
        text_out.contains("harmful: in the other order the run ends with assertion"),
        "{text_out}"
    );
}
