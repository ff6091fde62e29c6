//! The command line as a user meets it: help, bad guests, bad options, exit codes, the demo.

mod common;
use common::{guest, scratch, text, weft};

#[test]
fn help_lists_the_subcommands() {
    let (code, out, _) = text(&weft(["--help"]));
    assert_eq!(code, 0);
    for sub in ["record", "replay", "inspect", "run", "demo", "examples"] {
        assert!(out.contains(sub), "{sub} missing from help:\n{out}");
    }
}

#[test]
fn a_wrong_option_is_a_usage_error() {
    let (code, _, err) = text(&weft(["record", "--no-such-flag"]));
    assert_eq!(code, 2, "{err}");
    let g = guest("locked_counter");
    let (code, _, err) = text(&weft([
        "run".as_ref(),
        g.as_os_str(),
        "--strategy".as_ref(),
        "fastest".as_ref(),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fastest"), "{err}");
    let (code, _, err) = text(&weft([
        "run".as_ref(),
        g.as_os_str(),
        "--ram".as_ref(),
        "12Q".as_ref(),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown unit"), "{err}");
}

#[test]
fn guests_that_are_not_elf64_x86_64_executables_are_refused() {
    let dir = scratch();
    let not_elf = dir.path().join("notes.txt");
    std::fs::write(&not_elf, "just text\n").unwrap();
    let (code, _, err) = text(&weft(["run".as_ref(), not_elf.as_os_str()]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("notes.txt") && err.contains("not an ELF file"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A 32-bit ELF: the same bytes as a real guest, with EI_CLASS set to ELFCLASS32.
    let mut elf = std::fs::read(guest("locked_counter")).unwrap();
    elf[4] = 1;
    let elf32 = dir.path().join("guest32.elf");
    std::fs::write(&elf32, &elf).unwrap();
    let (code, _, err) = text(&weft([
        "record".as_ref(),
        elf32.as_os_str(),
        "-o".as_ref(),
        dir.path().join("x.weft").as_os_str(),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("guest32.elf") && err.contains("32-bit"),
        "{err}"
    );
    assert!(
        !dir.path().join("x.weft").exists(),
        "no trace for a guest that never ran"
    );

    let missing = dir.path().join("nope.elf");
    let (code, _, err) = text(&weft(["run".as_ref(), missing.as_os_str()]));
    assert_eq!(code, 2);
    assert!(err.contains("nope.elf"), "{err}");
}

#[test]
fn a_guest_too_big_for_ram_is_refused() {
    let g = guest("locked_counter");
    // 64 vCPUs x 64 KiB stacks leave 1 MiB below them; the image loads at 4 MiB.
    let (code, _, err) = text(&weft([
        "run".as_ref(),
        g.as_os_str(),
        "--ram".as_ref(),
        "5M".as_ref(),
        "--vcpus".as_ref(),
        "64".as_ref(),
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn record_never_overwrites_an_earlier_trace_by_default() {
    let dir = scratch();
    let g = guest("locked_counter");
    for _ in 0..2 {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
            .current_dir(dir.path())
            .args(["record".as_ref(), g.as_os_str(), "--quiet".as_ref()])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(dir.path().join("locked_counter.weft").exists());
    assert!(dir.path().join("locked_counter-1.weft").exists());
}

#[test]
fn inspect_summarises_and_lists_events() {
    let dir = scratch();
    let t = dir.path().join("t.weft");
    let g = guest("racy_counter");
    let (code, _, err) = text(&weft([
        "record".as_ref(),
        g.as_os_str(),
        "-o".as_ref(),
        t.as_os_str(),
        "--strategy".as_ref(),
        "round-robin:quantum=3".as_ref(),
    ]));
    assert!(code == 0 || code == 1, "{err}");
    let (code, out, _) = text(&weft(["inspect".as_ref(), t.as_os_str()]));
    assert_eq!(code, 0);
    for field in [
        "guest:",
        "steps:",
        "per vCPU:",
        "accesses:",
        "verdict:",
        "context switches",
    ] {
        assert!(out.contains(field), "{field}:\n{out}");
    }
    let (_, json, _) = text(&weft([
        "inspect".as_ref(),
        t.as_os_str(),
        "--json".as_ref(),
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).expect("inspect --json is JSON");
    assert_eq!(v["vcpus"], 2);
    assert!(v["steps"].as_u64().unwrap() > 0);
    let (_, ev, _) = text(&weft([
        "inspect".as_ref(),
        t.as_os_str(),
        "--events".as_ref(),
        "--vcpu".as_ref(),
        "1".as_ref(),
        "--from".as_ref(),
        "5".as_ref(),
        "--to".as_ref(),
        "40".as_ref(),
    ]));
    let lines: Vec<&str> = ev.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.contains("vcpu1"), "filtered by vCPU: {l}");
        let step: u64 = l.split_whitespace().next().unwrap().parse().unwrap_or(5);
        assert!((5..=40).contains(&step), "filtered by step: {l}");
    }
    assert!(
        ev.contains("mov") || ev.contains("add"),
        "accesses are disassembled:\n{ev}"
    );
}

#[test]
fn the_demo_finds_records_and_replays_the_bug() {
    let dir = scratch();
    let out_dir = dir.path().join("demo");
    let (code, out, err) = text(&weft([
        "demo".as_ref(),
        "--out".as_ref(),
        out_dir.as_os_str(),
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("reproduced"), "{out}");
    assert!(out_dir.join("racy_counter.weft").exists());
    assert!(out.contains("weft inspect"), "next steps: {out}");
}

#[test]
fn a_missing_trace_is_one_line_naming_it_once() {
    let dir = scratch();
    let t = dir.path().join("nowhere.weft");
    for sub in ["inspect", "replay"] {
        let (code, _, err) = text(&weft([sub.as_ref(), t.as_os_str()]));
        assert_eq!(code, 2, "{sub}: {err}");
        assert_eq!(err.lines().count(), 1, "{sub}: {err}");
        assert!(err.contains("nowhere.weft"), "{sub}: {err}");
        assert_eq!(err.matches("os error 2").count(), 1, "{sub}: {err}");
    }
}
