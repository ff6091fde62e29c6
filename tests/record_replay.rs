//! Recording and replaying end to end: determinism byte for byte, replay of every example,
//! failing runs that replay to the same failure, damaged traces, and divergence detection.

mod common;
use std::path::Path;

use common::{record, scratch, text, weft};
use weft_trace::{Event, TraceReader, TraceWriter};

/// The example guests (built from examples/*.c) and options that make them finish.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("racy_counter", &["--vcpus", "2"]),
    ("locked_counter", &["--vcpus", "3"]),
    ("message_passing", &["--vcpus", "2"]),
    ("deadlock", &["--vcpus", "2", "--deadlock-window", "20000"]),
    ("bench_workload", &["--vcpus", "2", "--max-steps", "2000"]),
    ("bench_shared", &["--vcpus", "2", "--max-steps", "200000"]),
    ("ticket_lock", &["--vcpus", "3"]),
    (
        "tm_elided_lock",
        &["--vcpus", "3", "--tm-abort-rate", "20%"],
    ),
    ("tm_elided_lock_buggy", &["--vcpus", "2"]),
    ("tm_capacity", &["--vcpus", "2"]),
    ("tm_xabort", &["--vcpus", "3"]),
];

#[test]
fn every_example_records_identically_twice_and_replays() {
    let dir = scratch();
    for (name, opts) in EXAMPLES {
        for strategy in [
            "round-robin:quantum=7",
            "random:seed=11",
            "pct:seed=5,depth=2,steps=5000",
        ] {
            let mut o: Vec<&str> = opts.to_vec();
            o.extend(["--strategy", strategy]);
            let a = dir.path().join(format!("{name}-a.weft"));
            let b = dir.path().join(format!("{name}-b.weft"));
            let (ca, _, ea) = record(name, &a, &o);
            let (cb, _, _) = record(name, &b, &o);
            assert!(ca == 0 || ca == 1, "{name} {strategy}: {ea}");
            assert_eq!(ca, cb);
            let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            assert!(ba == bb, "{name} with {strategy}: two recordings differ");
            let (rc, _, re) = text(&weft(["replay".as_ref(), a.as_os_str()]));
            assert_eq!(rc, ca, "{name} {strategy} replay: {re}");
            assert!(re.contains("reproduced"), "{name} {strategy}: {re}");
        }
    }
}

/// Search seeds of the random strategy for one that makes the racy counter fail when
/// every access is a point (`--sharing all`; with pages, one run alone rarely interleaves
/// the counter's first accesses: see the explore test below).
fn failing_seed(dir: &Path) -> u64 {
    for seed in 0..200 {
        let t = dir.join("probe.weft");
        let (code, _, _) = record(
            "racy_counter",
            &t,
            &[
                "--strategy",
                "random",
                "--seed",
                &seed.to_string(),
                "--sharing",
                "all",
            ],
        );
        if code == 1 {
            return seed;
        }
    }
    panic!("no failing seed for racy_counter in 200 tries");
}

#[test]
fn a_failing_racy_counter_replays_to_the_same_failure_and_console() {
    let dir = scratch();
    let seed = failing_seed(dir.path());
    let t = dir.path().join("racy.weft");
    let (code, rec_out, rec_err) = record(
        "racy_counter",
        &t,
        &[
            "--strategy",
            "random",
            "--seed",
            &seed.to_string(),
            "--sharing",
            "all",
        ],
    );
    assert_eq!(code, 1, "{rec_err}");
    let verdict = rec_err
        .lines()
        .find(|l| l.starts_with("verdict:"))
        .unwrap()
        .to_string();
    assert!(verdict.contains("assertion"), "{verdict}");
    let (rcode, rep_out, rep_err) = text(&weft(["replay".as_ref(), t.as_os_str()]));
    assert_eq!(rcode, 1, "{rep_err}");
    assert_eq!(rep_out, rec_out, "console output differs");
    assert!(
        rep_err.contains(&verdict),
        "replay verdict differs:\n{rep_err}"
    );
    assert!(rep_err.contains("reproduced"), "{rep_err}");
}

#[test]
fn same_seed_same_trace_different_seed_different_schedule() {
    let dir = scratch();
    let read_runs = |p: &Path| -> Vec<Event> {
        TraceReader::open(p)
            .unwrap()
            .into_events()
            .map(|e| e.unwrap())
            .filter(|e| matches!(e, Event::Run { .. }))
            .collect()
    };
    // PCT's change points must fall inside the run (~450 steps, every access a point) to
    // matter.
    for strategy in ["random", "pct:depth=3,steps=300"] {
        let a = dir.path().join("a.weft");
        let b = dir.path().join("b.weft");
        let c = dir.path().join("c.weft");
        record(
            "locked_counter",
            &a,
            &["--strategy", strategy, "--seed", "1", "--sharing", "all"],
        );
        record(
            "locked_counter",
            &b,
            &["--strategy", strategy, "--seed", "1", "--sharing", "all"],
        );
        record(
            "locked_counter",
            &c,
            &["--strategy", strategy, "--seed", "2", "--sharing", "all"],
        );
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{strategy}"
        );
        assert_ne!(
            read_runs(&a),
            read_runs(&c),
            "{strategy}: seeds 1 and 2 gave the same schedule"
        );
    }
}

#[test]
fn a_truncated_trace_opens_with_a_warning_and_replays_its_prefix() {
    let dir = scratch();
    let t = dir.path().join("long.weft");
    let (code, _, err) = record(
        "bench_shared",
        &t,
        &["--vcpus", "2", "--max-steps", "400000"],
    );
    assert_eq!(code, 1, "{err}");
    let bytes = std::fs::read(&t).unwrap();
    // Cut in the middle of the event chunks: after the file header (16 bytes), the trace
    // header (H bytes, u32 at offset 12, see docs/trace-format.md) and its CRC.
    let h = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let chunks = 16 + h + 4;
    assert!(bytes.len() > chunks + 64, "trace too small to cut");
    let cut = dir.path().join("cut.weft");
    std::fs::write(&cut, &bytes[..chunks + (bytes.len() - chunks) / 2]).unwrap();
    let (code, out, err) = text(&weft(["inspect".as_ref(), cut.as_os_str()]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("truncated"), "{out}");
    let (code, _, err) = text(&weft([
        "replay".as_ref(),
        cut.as_os_str(),
        "--quiet".as_ref(),
    ]));
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains("replayed exactly"), "{err}");
    assert_eq!(code, 2, "{err}");
}

#[test]
fn foreign_and_corrupt_files_are_clear_errors() {
    let dir = scratch();
    let foreign = dir.path().join("foreign.weft");
    std::fs::write(&foreign, b"this is not a trace at all, just some text\n").unwrap();
    let (code, _, err) = text(&weft(["inspect".as_ref(), foreign.as_os_str()]));
    assert_eq!(code, 2);
    assert!(
        err.contains("foreign.weft") && err.contains("not a weft trace"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let empty = dir.path().join("empty.weft");
    std::fs::write(&empty, b"").unwrap();
    let (code, _, err) = text(&weft(["replay".as_ref(), empty.as_os_str()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty.weft"), "{err}");

    let t = dir.path().join("good.weft");
    record("locked_counter", &t, &[]);
    let mut bytes = std::fs::read(&t).unwrap();
    // Flip a byte in the middle of the header (the embedded guest).
    let mid = 200;
    bytes[mid] ^= 0xFF;
    let bad = dir.path().join("bad.weft");
    std::fs::write(&bad, &bytes).unwrap();
    let (code, _, err) = text(&weft(["inspect".as_ref(), bad.as_os_str()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.weft"), "{err}");

    let missing = dir.path().join("missing.weft");
    let (code, _, err) = text(&weft(["replay".as_ref(), missing.as_os_str()]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.weft"), "{err}");
}

#[test]
fn an_edited_schedule_is_reported_as_a_divergence_at_its_step() {
    let dir = scratch();
    let t = dir.path().join("orig.weft");
    let (code, _, err) = record(
        "locked_counter",
        &t,
        &["--strategy", "round-robin:quantum=5", "--sharing", "all"],
    );
    assert_eq!(code, 0, "{err}");
    let reader = TraceReader::open(&t).unwrap();
    let header = reader.header().clone();
    let events: Vec<Event> = reader.into_events().map(|e| e.unwrap()).collect();
    // Swap the vCPU of the 10th schedule entry; remember the step at which that run starts.
    let mut seen = 0;
    let mut step = 0u64;
    let mut edited_at = None;
    let mut edited = events.clone();
    for e in edited.iter_mut() {
        if let Event::Run { vcpu, points } = e {
            seen += 1;
            if seen == 10 {
                vcpu.0 = 1 - vcpu.0;
                edited_at = Some(step);
                break;
            }
            step += *points;
        }
    }
    let edited_at = edited_at.expect("at least 10 schedule entries");
    let out = dir.path().join("edited.weft");
    let mut w = TraceWriter::create(&out, &header).unwrap();
    for e in &edited {
        weft_trace::EventSink::event(&mut w, e).unwrap();
    }
    w.finish().unwrap();
    let (code, _, err) = text(&weft([
        "replay".as_ref(),
        out.as_os_str(),
        "--quiet".as_ref(),
    ]));
    assert_eq!(code, 3, "a divergence has its own exit code: {err}");
    assert!(err.contains("diverged"), "{err}");
    assert!(
        err.contains(&format!("at step {edited_at}")),
        "expected step {edited_at}: {err}"
    );
}

#[test]
fn a_failure_found_with_shared_pages_learned_replays_exactly() {
    // With `--sharing pages` one run rarely interleaves the counter: explore carries the
    // page the first schedule found shared into the next ones, and the saved trace says
    // so in its header, so that it replays alone.
    let dir = scratch();
    let g = common::guest("racy_counter");
    let (code, _, err) = text(&weft([
        "explore".as_ref(),
        g.as_os_str(),
        "--out".as_ref(),
        dir.path().as_os_str(),
        "--no-minimize".as_ref(),
    ]));
    assert_eq!(code, 1, "{err}");
    let t = dir.path().join("racy_counter-fail.weft");
    let header = TraceReader::open(&t).unwrap().header().clone();
    match &header.options.sharing {
        weft_trace::Sharing::Pages { shared } => assert_eq!(shared.len(), 1, "{shared:?}"),
        other => panic!("{other:?}"),
    }
    let (code, _, err) = text(&weft(["replay".as_ref(), t.as_os_str()]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("reproduced"), "{err}");
    let (_, out, _) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
    assert!(
        out.contains("sharing:   pages (1 shared from the start)"),
        "{out}"
    );
}
