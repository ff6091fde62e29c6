//! `weft explore` end to end: finds the bug in every buggy example and none in the fixed
//! ones within a fixed budget, minimized traces replay to the same failure with no more
//! preemptions, results do not depend on --jobs, and shards partition the search.

mod common;
use std::path::Path;

use common::{guest, linux_guest, scratch, text, weft};
use serde_json::Value;

/// `weft explore GUEST --json --out DIR ARGS...` -> (exit code, summary).
fn explore(name: &str, dir: &Path, args: &[&str]) -> (i32, Value) {
    explore_elf(&guest(name), dir, args)
}

fn explore_elf(g: &Path, dir: &Path, args: &[&str]) -> (i32, Value) {
    let name = g.display();
    let mut a = vec![
        "explore".to_string(),
        g.display().to_string(),
        "--json".into(),
        "--out".into(),
        dir.display().to_string(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    let (code, out, err) = text(&weft(&a));
    assert!(code <= 1 || code == 3, "{name}: {err}");
    (
        code,
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}")),
    )
}

fn failures(v: &Value) -> &Vec<Value> {
    v["failures"].as_array().unwrap()
}

#[test]
fn finds_the_bug_in_buggy_examples_and_none_in_fixed_ones() {
    let dir = scratch();
    for (name, extra) in [
        ("racy_counter", &[][..]),
        ("message_passing", &[][..]),
        ("tm_elided_lock_buggy", &[][..]),
        ("deadlock", &["--deadlock-window", "20000"][..]),
    ] {
        let mut args = vec!["--schedules", "200"];
        args.extend_from_slice(extra);
        let (code, r) = explore(name, dir.path(), &args);
        assert_eq!(code, 1, "{name}: {r}");
        assert_eq!(failures(&r).len(), 1, "{name}: {r}");
    }
    for (name, vcpus) in [
        ("locked_counter", "3"),
        ("ticket_lock", "3"),
        ("tm_elided_lock", "2"),
    ] {
        let (code, r) = explore(
            name,
            dir.path(),
            &["--schedules", "30", "--vcpus", vcpus, "--no-minimize"],
        );
        assert_eq!(code, 0, "{name}: {r}");
        assert_eq!(r["tried"], 30, "{name}: {r}");
        let distinct = r["distinct"].as_u64().unwrap();
        assert!((1..=30).contains(&distinct), "{name}: {r}");
        assert!(failures(&r).is_empty(), "{name}: {r}");
    }
}

#[test]
fn the_minimized_trace_replays_to_the_same_failure_with_fewer_preemptions() {
    let dir = scratch();
    for (name, strategy) in [
        ("racy_counter", "random"),
        ("message_passing", "pct:depth=3"),
    ] {
        let (code, r) = explore(
            name,
            dir.path(),
            &["--schedules", "100", "--strategy", strategy],
        );
        assert_eq!(code, 1, "{r}");
        let f = &failures(&r)[0];
        let (min, orig) = (
            f["preemptions"].as_u64().unwrap(),
            f["original_preemptions"].as_u64().unwrap(),
        );
        assert!(min <= orig, "{f}");
        for key in ["trace", "minimized_trace"] {
            let t = f[key].as_str().unwrap();
            let (code, _, err) = text(&weft(["replay", t, "--quiet"]));
            assert_eq!(code, 1, "{key} {t}: {err}");
            assert!(err.contains("reproduced"), "{err}");
            // Same verdict class at the same place as the failure found.
            let rip = f["key"].as_str().unwrap().rsplit(' ').next().unwrap();
            assert!(err.contains(rip), "{key}: {err} vs {f}");
        }
    }
    // The racy counter's lost update needs exactly one preemption.
    let (_, r) = explore(
        "racy_counter",
        dir.path(),
        &["--schedules", "50", "--seed", "7"],
    );
    assert_eq!(failures(&r)[0]["preemptions"], 1, "{r}");
}

/// The JSON of a search without timings.
fn result(v: &Value) -> Vec<(u64, String, String, u64)> {
    failures(v)
        .iter()
        .map(|f| {
            (
                f["index"].as_u64().unwrap(),
                f["strategy"].as_str().unwrap().to_string(),
                f["key"].as_str().unwrap().to_string(),
                f["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn results_do_not_depend_on_jobs_and_shards_partition_the_search() {
    let dir = scratch();
    let base = ["--schedules", "32", "--no-minimize", "--seed", "100"];
    let run = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        explore("racy_counter", dir.path(), &a).1
    };
    let one = run(&["--jobs", "1"]);
    let two = run(&["--jobs", "2"]);
    assert_eq!(result(&one), result(&two));
    assert_eq!(one["tried"], two["tried"]);

    let all = run(&["--all-failures"]);
    let s1 = run(&["--all-failures", "--shard", "1/2"]);
    let s2 = run(&["--all-failures", "--shard", "2/2"]);
    assert_eq!(all["tried"], 32);
    assert_eq!(
        s1["tried"].as_u64().unwrap() + s2["tried"].as_u64().unwrap(),
        32
    );
    // Each shard runs its own indices (a shard carries the pages its own schedules found
    // shared, so its schedules may differ from the same indices of the whole search).
    assert!(!result(&all).is_empty(), "{all}");
    for (r, parity) in [(&s1, 0), (&s2, 1)] {
        assert!(result(r).iter().all(|f| f.0 % 2 == parity), "{r}");
    }
    // With sharing learned from nobody (`--sharing all`), shards are the whole search cut
    // in two: per kind of failure, counts add up and the first index is the smaller one.
    let all = run(&["--all-failures", "--sharing", "all"]);
    let s1 = run(&["--all-failures", "--shard", "1/2", "--sharing", "all"]);
    let s2 = run(&["--all-failures", "--shard", "2/2", "--sharing", "all"]);
    for (index, _, key, count) in result(&all) {
        let part = |v: &Value| result(v).into_iter().find(|f| f.2 == key);
        let (a, b) = (part(&s1), part(&s2));
        let c = a.as_ref().map_or(0, |f| f.3) + b.as_ref().map_or(0, |f| f.3);
        assert_eq!(c, count, "{key}");
        let first = a.iter().chain(b.iter()).map(|f| f.0).min().unwrap();
        assert_eq!(first, index, "{key}");
        assert!(a.iter().all(|f| f.0 % 2 == 0) && b.iter().all(|f| f.0 % 2 == 1));
    }
}

#[test]
fn bad_explore_options_are_usage_errors() {
    let g = guest("racy_counter");
    for bad in [
        &["--shard", "0/2"][..],
        &["--shard", "3/2"],
        &["--shard", "x"],
        &["--jobs", "0"],
    ] {
        let mut a = vec!["explore", g.to_str().unwrap()];
        a.extend_from_slice(bad);
        let (code, _, err) = text(&weft(&a));
        assert_eq!(code, 2, "{bad:?}: {err}");
        assert!(err.lines().count() <= 3, "{err}");
    }
}

#[test]
fn injected_aborts_vary_per_schedule_and_failures_still_replay() {
    let dir = scratch();
    let (code, r) = explore(
        "tm_elided_lock",
        dir.path(),
        &[
            "--schedules",
            "24",
            "--tm-abort-rate",
            "30%",
            "--no-minimize",
        ],
    );
    assert_eq!(code, 0, "{r}");
    let (code, r) = explore(
        "tm_elided_lock_buggy",
        dir.path(),
        &[
            "--schedules",
            "100",
            "--tm-abort-rate",
            "30%",
            "--seed",
            "40",
        ],
    );
    assert_eq!(code, 1, "{r}");
    let f = &failures(&r)[0];
    for key in ["trace", "minimized_trace"] {
        let (code, _, err) = text(&weft(["replay", f[key].as_str().unwrap(), "--quiet"]));
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("reproduced"), "{err}");
    }
}

#[test]
fn bounded_dfs_covers_exactly_the_expected_schedules() {
    let dir = scratch();
    // dfs_small.c: two vCPUs with three scheduling points each (see the guest).
    for (bound, expected) in [(0, 2), (1, 8), (2, 26)] {
        let s = format!("dfs:bound={bound}");
        let (code, r) = explore(
            "dfs_small",
            dir.path(),
            &["--strategy", &s, "--schedules", "1000"],
        );
        assert_eq!(code, 0, "{r}");
        // The page of `mine` is found shared before the search (or by its first run, which
        // then starts over): every store is a point.
        let restarted = r["restarted"].as_u64().unwrap();
        assert_eq!(r["shared_pages"], 1, "bound {bound}: {r}");
        assert_eq!(r["tried"], expected + restarted, "bound {bound}: {r}");
        assert_eq!(r["distinct"], expected, "bound {bound}: {r}");
        assert_eq!(r["complete"], true, "{r}");
    }
    // A budget below the count stops the search early, and says so.
    let (_, r) = explore(
        "dfs_small",
        dir.path(),
        &["--strategy", "dfs:bound=2", "--schedules", "5"],
    );
    assert_eq!(
        (r["tried"].as_u64(), r["complete"].as_bool()),
        (Some(5), Some(false)),
        "{r}"
    );
    // DFS finds the lost update with one preemption, and the trace replays.
    let (code, r) = explore("racy_counter", dir.path(), &["--strategy", "dfs:bound=1"]);
    assert_eq!(code, 1, "{r}");
    let f = &failures(&r)[0];
    assert!(
        f["strategy"]
            .as_str()
            .unwrap()
            .starts_with("dfs:bound=1 schedule #"),
        "{f}"
    );
    assert_eq!(f["preemptions"], 1, "{f}");
    let (code, _, err) = text(&weft(["replay", f["trace"].as_str().unwrap(), "--quiet"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reproduced"), "{err}");
}

#[test]
fn race_directed_search_reverses_conflicts_to_find_bugs() {
    let dir = scratch();
    for name in ["racy_counter", "message_passing", "tm_elided_lock_buggy"] {
        let (code, r) = explore(
            name,
            dir.path(),
            &["--strategy", "race-directed", "--schedules", "50"],
        );
        assert_eq!(code, 1, "{name}: {r}");
        let f = &failures(&r)[0];
        assert!(f["index"].as_u64().unwrap() < 10, "{name}: {f}");
        let (code, _, err) = text(&weft([
            "replay",
            f["minimized_trace"].as_str().unwrap(),
            "--quiet",
        ]));
        assert_eq!(code, 1, "{err}");
        // Deterministic: the same search finds the same schedule.
        let (_, again) = explore(
            name,
            dir.path(),
            &["--strategy", "race-directed", "--schedules", "50"],
        );
        assert_eq!(result(&r), result(&again), "{name}");
    }
    for name in ["locked_counter", "ticket_lock"] {
        let (code, r) = explore(
            name,
            dir.path(),
            &[
                "--strategy",
                "race-directed",
                "--schedules",
                "80",
                "--no-minimize",
            ],
        );
        assert_eq!(code, 0, "{name}: {r}");
    }
}

#[test]
fn the_portfolio_is_the_default_and_names_the_member_that_found_it() {
    let dir = scratch();
    let (code, r) = explore("message_passing", dir.path(), &["--schedules", "200"]);
    assert_eq!(code, 1, "{r}");
    assert!(
        r["strategy"].as_str().unwrap().starts_with("portfolio"),
        "{r}"
    );
    let f = &failures(&r)[0];
    let by = f["strategy"].as_str().unwrap();
    // Schedule i is member i % 6: random, pct depth 3, idb, focused pct depth 2, pct
    // depth 2, focused pct depth 3.
    let i = f["index"].as_u64().unwrap() as usize % 6;
    let member = ["random:", "pct:", "idb:", "pct:", "pct:", "pct:"][i];
    assert!(by.starts_with(member), "{f}");
    assert_eq!(by.ends_with(",focus=1"), i == 3 || i == 5, "{f}");
    assert_eq!(f["found"], true, "{f}");
    // The summary file says the same, finished.
    let file = dir.path().join("message_passing-summary.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(saved["finished"], true);
    assert_eq!(result(&saved), result(&r));
}

#[test]
fn delay_bounding_finds_a_lost_update_and_replays() {
    let dir = scratch();
    let (code, r) = explore(
        "racy_counter",
        dir.path(),
        &["--strategy", "idb", "--schedules", "300"],
    );
    assert_eq!(code, 1, "{r}");
    let f = &failures(&r)[0];
    assert!(
        f["strategy"].as_str().unwrap().starts_with("idb:seed="),
        "{f}"
    );
    // Index 0 is the plain round-robin run, which passes: a delay was needed.
    assert!(f["index"].as_u64().unwrap() >= 1, "{f}");
    let (code, _, err) = text(&weft(["replay", f["trace"].as_str().unwrap(), "--quiet"]));
    assert_eq!(code, 1, "{err}");
}

#[test]
fn failures_on_weft_s_limits_are_kept_but_not_counted_as_bugs() {
    let dir = scratch();
    // An unemulated system call (socket: ENOSYS) makes the program give up.
    let (code, r) = explore_elf(
        &linux_guest("needs_socket"),
        dir.path(),
        &["--schedules", "5"],
    );
    assert_eq!(code, 3, "{r}");
    let f = &failures(&r)[0];
    assert_eq!(f["found"], false, "{f}");
    assert!(f["not_a_bug"].as_str().unwrap().contains("socket"), "{f}");
    assert_eq!(
        f["count"], 5,
        "every schedule failed so: the search went on, {f}"
    );
    assert!(f["minimized_trace"].is_null(), "{f}");
    // Running out of --max-steps is not a bug either; a real bug still is.
    let (code, r) = explore(
        "racy_counter",
        dir.path(),
        &["--schedules", "5", "--max-steps", "5"],
    );
    assert_eq!(code, 3, "{r}");
    assert!(failures(&r)[0]["not_a_bug"]
        .as_str()
        .unwrap()
        .contains("max-steps"));
    let (code, r) = explore("racy_counter", dir.path(), &["--schedules", "50"]);
    assert_eq!(
        (code, &failures(&r)[0]["found"]),
        (1, &Value::Bool(true)),
        "{r}"
    );
}

#[test]
fn the_time_limit_stops_a_schedule_that_never_ends() {
    let dir = scratch();
    // endless.c runs forever: only the deadline, checked inside the run, can stop it.
    let (code, r) = explore(
        "endless",
        dir.path(),
        &["--time", "0.5", "--schedules", "3", "--strategy", "random"],
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["timed_out"], true, "{r}");
    assert_eq!(r["tried"], 0, "{r}");
    assert!(failures(&r).is_empty(), "{r}");
    // The portfolio measures the guest's runs first: the deadline bounds those too.
    let (code, r) = explore(
        "endless",
        dir.path(),
        &["--time", "0.5", "--schedules", "3"],
    );
    assert_eq!((code, &r["tried"]), (0, &Value::from(0)), "{r}");
}

#[test]
fn minimization_brings_a_random_failure_down_to_the_preemptions_that_matter() {
    let dir = scratch();
    let mut seen = 0;
    for seed in ["0", "1000", "2000"] {
        let (code, r) = explore(
            "racy_counter",
            dir.path(),
            &["--strategy", "random", "--seed", seed, "--schedules", "100"],
        );
        assert_eq!(code, 1, "{r}");
        let f = &failures(&r)[0];
        let (min, orig) = (
            f["preemptions"].as_u64().unwrap(),
            f["original_preemptions"].as_u64().unwrap(),
        );
        assert!(min <= 2, "{f}");
        if orig > min {
            seen += 1;
        }
    }
    assert!(seen >= 1, "no search needed minimizing");
}

#[test]
fn focused_pct_finds_the_bug_and_its_spec_alone_replays_it() {
    let dir = scratch();
    let (code, r) = explore(
        "message_passing",
        dir.path(),
        &["--strategy", "pct:depth=2,focus=1", "--schedules", "300"],
    );
    assert_eq!(code, 1, "{r}");
    let f = &failures(&r)[0];
    let spec = f["strategy"].as_str().unwrap();
    assert!(spec.ends_with(",focus=1"), "{f}");
    // Its trace (the spec and the pages the schedule started with shared) replays to the
    // same failure, and says which strategy made it.
    let t = f["trace"].as_str().unwrap();
    let header = weft_trace::TraceReader::open(std::path::Path::new(t))
        .unwrap()
        .header()
        .clone();
    assert_eq!(header.strategy, spec);
    let (code, _, err) = text(&weft(["replay", t]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reproduced"), "{err}");
    let rip = f["key"].as_str().unwrap().rsplit(' ').next().unwrap();
    assert!(err.contains(rip), "{err} vs {f}");
}

#[test]
fn focused_pct_on_a_guest_without_debug_information_counts_every_point() {
    let dir = scratch();
    let stripped = dir.path().join("racy_counter_stripped.elf");
    let ok = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(guest("racy_counter"))
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("no `strip` on this machine: skipped");
        return;
    }
    let (code, r) = explore_elf(
        &stripped,
        dir.path(),
        &["--strategy", "pct:depth=2,focus=1", "--schedules", "200"],
    );
    assert_eq!(code, 1, "{r}");
    // k is every contended point (not the 1 a search counting only code with source
    // lines would measure here, which would put every change point at the start).
    let spec = failures(&r)[0]["strategy"].as_str().unwrap().to_string();
    let steps: u64 = spec
        .split("steps=")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!(steps > 10, "{spec}");
}
