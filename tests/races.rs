//! `weft races` end to end on purpose-written guests: the racy counter's pairs at the right
//! source line, no races under real locks (inferred or annotated) but conflicts with --all,
//! the message-passing bug, TM (aborted accesses dropped, elision bug found), JSON and DOT.

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
        assert!(!rs.is_empty(), "seed {seed}: no race");
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
            classes.insert(g["class"].as_str().unwrap().to_string());
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
        for g in groups(&r, "races") {
            let (a, b) = (
                g["first"]["source"].as_str().unwrap(),
                g["second"]["source"].as_str().unwrap(),
            );
            let class = g["class"].as_str().unwrap();
            if class == "RaW" && a.contains(&publish) {
                seen.insert("RaW on ready");
            }
            if class == "WaR" && a.contains(&data_r) && b.contains(&data_w) {
                seen.insert("WaR on data");
            }
            if class == "RaW" && a.contains(&data_w) && b.contains(&data_r) {
                seen.insert("RaW on data");
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
        "sync_cells",
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
