//! `weft report` end to end: the page for example traces is well-formed HTML whose embedded
//! model agrees with `weft races`, `weft tm` and `weft inspect` (a lane per vCPU, an arc per
//! race, a span per transaction, the failure); then a real headless Chromium renders it and
//! the rendered DOM is checked (no script errors, the same counts drawn, links that select
//! and show the replay command), with a screenshot saved. Chromium comes from Debian
//! (scripts/setup.sh installs it); without it these tests fail, they do not skip.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{scratch, text, weft};
use serde_json::Value;
use weft_trace::{
    AccessKind, Event, GuestAddr, GuestImage, MachineOptions, Step, TraceHeader, TraceReader,
    TraceWriter, VcpuId, Verdict,
};

/// Record with every access a point (`--sharing all`): these tests pin down pictures of
/// fine interleavings; the demo's report below is one of a `--sharing pages` recording.
fn record(name: &str, out: &Path, args: &[&str]) {
    let mut args = args.to_vec();
    args.extend(["--sharing", "all"]);
    let (code, out_text, err) = common::record(name, out, &args);
    assert!(code <= 1, "{name}: {out_text}{err}");
}

/// `weft report TRACE -o PAGE ARGS...` -> the page's text.
fn report(trace: &Path, page: &Path, args: &[&str]) -> String {
    let mut a = vec![
        "report".to_string(),
        trace.display().to_string(),
        "-o".into(),
        page.display().to_string(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    let (code, out, err) = text(&weft(&a));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("report: {} (", page.display())),
        "{out}"
    );
    std::fs::read_to_string(page).expect("the page")
}

/// `weft SUB TRACE --json` as a value.
fn json_of(sub: &str, trace: &Path) -> Value {
    let (code, out, err) = text(&weft([sub.as_ref(), trace.as_os_str(), "--json".as_ref()]));
    assert!(code <= 1, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{sub} --json: {e}: {out}"))
}

const VOID: &[&str] = &["meta", "input", "br", "link", "img", "hr", "wbr"];

/// A small HTML checker for the page weft writes: every element closes in order, raw text
/// (script, style) ends at its own end tag. Returns the raw text of each script element.
fn check_html(html: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut scripts = Vec::new();
    let mut rest = html.strip_prefix("<!DOCTYPE html>").expect("doctype first");
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->").expect("comment ends") + 3..];
            continue;
        }
        let end = rest.find('>').expect("tag ends");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        assert!(!name.is_empty(), "a `<` that starts no tag: <{tag}>");
        if tag.starts_with('/') {
            let open = stack.pop().unwrap_or_default();
            assert_eq!(open, name, "</{name}> closes <{open}>");
        } else if name == "script" || name == "style" {
            let close = format!("</{name}>");
            let j = rest.find(&close).expect("raw text ends");
            if name == "script" {
                scripts.push(rest[..j].to_string());
            }
            rest = &rest[j + close.len()..];
        } else if !VOID.contains(&name.as_str()) && !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    scripts
}

/// The model embedded in the page (the `weft-data` script element), parsed.
fn model(html: &str) -> Value {
    let open = "<script id=\"weft-data\" type=\"application/json\">";
    let start = html.find(open).expect("data element") + open.len();
    let len = html[start..].find("</script>").expect("data ends");
    serde_json::from_str(&html[start..start + len]).expect("the embedded JSON parses")
}

fn chromium() -> &'static str {
    let ok = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "chromium is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    "chromium"
}

/// Open `page` (plus `#hash`) in headless Chromium: the DOM after its scripts ran, and a
/// screenshot when `shot` is given.
fn browse(page: &Path, hash: &str, shot: Option<&Path>) -> String {
    let profile = scratch();
    let url = format!(
        "file://{}{hash}",
        std::path::absolute(page).unwrap().display()
    );
    let run = |what: &[String]| {
        let out = Command::new("timeout")
            .arg("300")
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--virtual-time-budget=5000",
                "--window-size=1400,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(what)
            .arg(&url)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if let Some(png) = shot {
        run(&[format!("--screenshot={}", png.display())]);
        let bytes = std::fs::read(png).expect("a screenshot");
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        assert!(bytes.len() > 10_000, "an empty-looking screenshot");
    }
    rendered(&run(&["--dump-dom".to_string()]))
}

/// The dumped DOM without the text of its script elements (the page's own source names
/// the classes it draws, which must not count as drawn).
fn rendered(dom: &str) -> String {
    let mut out = String::with_capacity(dom.len());
    let mut rest = dom;
    while let Some(i) = rest.find("<script") {
        let open_end = i + rest[i..].find('>').expect("script tag ends") + 1;
        out.push_str(&rest[..open_end]);
        let close = rest[open_end..].find("</script>").expect("script ends");
        rest = &rest[open_end + close..];
    }
    out.push_str(rest);
    out
}

/// The attributes of the page's status element, which its script fills in after drawing.
fn status(dom: &str) -> BTreeMap<String, String> {
    let start = dom.find("<div id=\"weft-status\"").expect("status element");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    let mut out = BTreeMap::new();
    for part in tag.split("\" ") {
        if let Some((k, v)) = part.trim_start_matches("<div ").split_once("=\"") {
            out.insert(k.trim().to_string(), v.trim_end_matches('"').to_string());
        }
    }
    assert_eq!(out["data-state"], "ready", "the page did not finish: {tag}");
    assert_eq!(out["data-errors"], "0", "script errors: {}", errors(dom));
    out
}

fn errors(dom: &str) -> String {
    let start = dom.find("<ul id=\"weft-errors\">").unwrap_or(0);
    dom[start..].chars().take(2000).collect()
}

fn n(s: &BTreeMap<String, String>, key: &str) -> u64 {
    s[key].parse().unwrap()
}

/// A screenshot path under the build's scratch directory, reported for people to look at.
fn screenshot(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}.png"));
    eprintln!("screenshot: {}", p.display());
    p
}

fn races_in(r: &Value) -> usize {
    r["races"].as_array().unwrap().len()
}

#[test]
fn racy_counter_has_a_lane_per_vcpu_an_arc_per_race_and_the_failure_where_it_happened() {
    let dir = scratch();
    for (vcpus, seed) in [("2", "3"), ("3", "5")] {
        let t = dir.path().join(format!("racy{vcpus}.weft"));
        record(
            "racy_counter",
            &t,
            &["--vcpus", vcpus, "--strategy", "random", "--seed", seed],
        );
        let page = dir.path().join(format!("racy{vcpus}.html"));
        let html = report(&t, &page, &[]);
        check_html(&html);
        let m = model(&html);
        let races = json_of("races", &t);
        let n_races = races_in(&races);
        assert!(n_races > 0, "this schedule must race");
        assert_eq!(
            m["meta"]["vcpus"].as_u64().unwrap(),
            vcpus.parse::<u64>().unwrap()
        );
        let arcs: Vec<&Value> = m["races"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["race"] == true)
            .collect();
        assert_eq!(arcs.len(), n_races);
        for (a, r) in arcs.iter().zip(races["races"].as_array().unwrap()) {
            assert_eq!(a["id"], r["id"]);
            assert_eq!(a["b"]["step"], r["second"]["step"]);
            assert_eq!(a["a"]["vcpu"], r["first"]["vcpu"]);
        }
        assert_eq!(m["lod"]["full"], true);
        // The failure sits at the ASSERT_FAIL hypercall's step, on its vCPU.
        let (step, vcpu) = TraceReader::open(&t)
            .unwrap()
            .into_events()
            .filter_map(|e| match e.unwrap() {
                Event::Hypercall {
                    step, vcpu, nr: 2, ..
                } => Some((step.0, vcpu.0)),
                _ => None,
            })
            .last()
            .expect("the run failed its assertion");
        let f = &m["failure"];
        assert_eq!(f["class"], "assertion");
        assert_eq!(
            (f["step"].as_u64(), f["vcpu"].as_u64()),
            (Some(step), Some(vcpu as u64))
        );
        let summary = json_of("inspect", &t);
        assert_eq!(m["meta"]["steps"], summary["steps"]);
        assert_eq!(
            m["meta"]["accesses"].as_u64().unwrap(),
            summary["accesses"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>()
        );
        let console = m["console"].as_array().unwrap();
        assert!(console
            .iter()
            .any(|c| c[2].as_str().unwrap().contains("update(s) lost")));

        let shot = screenshot(&format!("racy-counter-{vcpus}"));
        let dom = browse(&page, "", Some(&shot));
        let s = status(&dom);
        assert_eq!(n(&s, "data-lanes"), vcpus.parse::<u64>().unwrap());
        assert_eq!(
            dom.matches("<g class=\"lane\"").count(),
            n(&s, "data-lanes") as usize
        );
        assert_eq!(n(&s, "data-arcs") as usize, n_races);
        assert_eq!(dom.matches("class=\"arc race").count(), n_races);
        assert_eq!(n(&s, "data-failure"), 1);
        assert_eq!(dom.matches("id=\"failure-marker\"").count(), 1);
        assert_eq!(n(&s, "data-summarised"), 0);
        // Every race is in the list that jumps to it.
        assert_eq!(dom.matches("<li data-t=\"c\"").count(), n_races);
        assert!(dom.contains("update(s) lost"), "console output drawn");
    }
}

#[test]
fn tm_report_has_a_span_per_transaction_and_lists_every_abort() {
    let dir = scratch();
    let t = dir.path().join("tm.weft");
    record(
        "tm_elided_lock_buggy",
        &t,
        &["--strategy", "random", "--seed", "2"],
    );
    let page = dir.path().join("tm.html");
    let html = report(&t, &page, &[]);
    check_html(&html);
    let m = model(&html);
    let tm = json_of("tm", &t);
    let total = tm["transactions"].as_u64().unwrap();
    let aborted = tm["aborted"].as_u64().unwrap();
    assert!(total > 0 && aborted > 0, "{tm}");
    let txs = m["txs"].as_array().unwrap();
    assert_eq!(txs.len() as u64, total);
    let count = |what: &str| txs.iter().filter(|x| x["outcome"] == what).count() as u64;
    assert_eq!(count("abort"), aborted);
    assert_eq!(count("commit"), tm["committed"].as_u64().unwrap());
    for x in txs {
        assert!(x["begin"].as_u64() <= x["end"].as_u64(), "{x}");
        if x["outcome"] == "abort" {
            assert!(!x["cause"].as_str().unwrap().is_empty(), "{x}");
        }
    }
    assert_eq!(m["tm"]["sites"], tm["sites"]);
    let n_races = races_in(&json_of("races", &t));

    let dom = browse(&page, "", Some(&screenshot("tm-elided-lock-buggy")));
    let s = status(&dom);
    assert_eq!(n(&s, "data-spans"), total);
    assert_eq!(dom.matches("class=\"tx-span ").count() as u64, total);
    assert_eq!(dom.matches("class=\"tx-span abort").count() as u64, aborted);
    assert_eq!(n(&s, "data-arcs") as usize, n_races);
    assert_eq!(dom.matches("<li data-t=\"x\"").count() as u64, aborted);
    assert_eq!(n(&s, "data-failure"), 1);
    // The marks of the audited transfers are drawn with their labels.
    assert!(dom.contains("class=\"mark-label\""), "mark labels");
}

#[test]
fn deadlocks_and_crashes_are_pinned_where_they_happened() {
    let dir = scratch();
    let t = dir.path().join("dl.weft");
    record(
        "deadlock",
        &t,
        &[
            "--strategy",
            "round-robin:quantum=1",
            "--deadlock-window",
            "2000",
        ],
    );
    let page = dir.path().join("dl.html");
    let m = model(&report(&t, &page, &[]));
    let f = &m["failure"];
    assert_eq!(f["class"], "deadlock");
    assert_eq!(f["step"], m["meta"]["steps"]);
    assert_eq!(f["spinning"].as_array().unwrap().len(), 2);
    let dom = browse(&page, "", None);
    let s = status(&dom);
    assert_eq!(n(&s, "data-failure"), 1);
    let marker = &dom[dom.find("id=\"failure-marker\"").unwrap()..];
    let marker = &marker[..marker.find("</g>").unwrap()];
    assert_eq!(
        marker.matches("<circle").count(),
        2,
        "a pin on each spinning vCPU"
    );

    let t = dir.path().join("crash.weft");
    record("crash_ud", &t, &[]);
    let page = dir.path().join("crash.html");
    let m = model(&report(&t, &page, &[]));
    let f = &m["failure"];
    assert_eq!(f["class"], "crash");
    assert_eq!(f["regs"].as_array().unwrap().len(), 17);
    let loc = &m["locs"][f["loc"].as_u64().unwrap() as usize];
    assert!(loc[1].as_str().unwrap().contains("ud2"), "{loc}");
    let s = status(&browse(&page, "#failure", None));
    assert_eq!(n(&s, "data-failure"), 1);
    assert_eq!(s["data-selected"], "f:0");
}

#[test]
fn links_select_a_race_or_an_abort_and_give_the_replay_command_that_works() {
    let dir = scratch();
    let t = dir.path().join("racy.weft");
    record("racy_counter", &t, &["--strategy", "random", "--seed", "3"]);
    let page = dir.path().join("racy.html");
    let m = model(&report(&t, &page, &[]));
    let races = json_of("races", &t);
    let r = races["races"].as_array().unwrap().last().unwrap();
    let (id, step) = (
        r["id"].as_u64().unwrap(),
        r["second"]["step"].as_u64().unwrap(),
    );
    let dom = browse(&page, &format!("#race={id}"), None);
    let s = status(&dom);
    let index = m["races"]
        .as_array()
        .unwrap()
        .iter()
        .position(|g| g["id"].as_u64() == Some(id))
        .unwrap();
    assert_eq!(s["data-selected"], format!("c:{index}"));
    let (v0, v1) = s["data-view"]
        .rsplit_once('-')
        .map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()))
        .unwrap();
    let first = r["first"]["step"].as_i64().unwrap();
    assert!(
        v0 <= first && v1 > step as i64,
        "the view shows both accesses: {v0}..{v1}"
    );
    assert!(
        v1 - v0 < m["meta"]["steps"].as_i64().unwrap(),
        "zoomed in: {v0}..{v1}"
    );
    let trace = t.display().to_string();
    assert!(
        dom.contains(&format!("weft replay {trace} --goto {step}")),
        "replay command"
    );
    assert!(
        dom.contains(&format!("weft replay --gdb {trace}")),
        "gdb command"
    );
    assert!(
        dom.contains(&format!("monitor goto {step}")),
        "gdb monitor command"
    );
    assert!(
        dom.contains(&format!("weft inspect {trace} --race {id}")),
        "inspect command"
    );
    // The command does what the page says, for both accesses of every race (inside a
    // vCPU's run as well as where the token moves).
    for r in races["races"].as_array().unwrap() {
        for side in ["first", "second"] {
            let step = r[side]["step"].as_u64().unwrap();
            let (code, out, err) = text(&weft([
                "replay",
                &trace,
                "--quiet",
                "--goto",
                &step.to_string(),
            ]));
            assert_eq!(code, 0, "--goto {step}: {out}{err}");
            assert!(
                out.starts_with(&format!("paused before step {step} ")),
                "{out}"
            );
            let vcpu = format!("vcpu{}", r[side]["vcpu"]);
            let next = out
                .lines()
                .find(|l| l.contains("<- next"))
                .expect("a next vCPU");
            assert!(next.trim_start().starts_with(&vcpu), "--goto {step}: {out}");
        }
    }

    let t = dir.path().join("tm.weft");
    record(
        "tm_elided_lock_buggy",
        &t,
        &["--strategy", "random", "--seed", "2"],
    );
    let page = dir.path().join("tm.html");
    let m = model(&report(&t, &page, &[]));
    let aborts: Vec<usize> = m["txs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, x)| x["outcome"] == "abort")
        .map(|(i, _)| i)
        .collect();
    let s = status(&browse(&page, "#abort=2", None));
    assert_eq!(s["data-selected"], format!("x:{}", aborts[1]));
    let s = status(&browse(&page, "#step=40", None));
    let (v0, v1) = s["data-view"]
        .rsplit_once('-')
        .map(|(a, b)| (a.parse::<i64>().unwrap(), b.parse::<i64>().unwrap()))
        .unwrap();
    assert!(v0 <= 40 && v1 > 40 && v1 - v0 < 100, "{v0}..{v1}");
}

#[test]
fn summarised_reports_say_so_and_keep_races_aborts_and_the_failure() {
    let dir = scratch();
    let t = dir.path().join("tm.weft");
    record(
        "tm_elided_lock_buggy",
        &t,
        &["--strategy", "random", "--seed", "2"],
    );
    let page = dir.path().join("tm-small.html");
    let m = model(&report(&t, &page, &["--detail-events", "100"]));
    let lod = &m["lod"];
    assert_eq!(lod["full"], false);
    assert!(
        lod["note"].as_str().unwrap().starts_with("Summarised:"),
        "{lod}"
    );
    assert!(!lod["windows"].as_array().unwrap().is_empty());
    let shown = lod["shown"]["accesses"].as_u64().unwrap();
    assert!(shown < lod["total"]["accesses"].as_u64().unwrap(), "{lod}");
    // Windows are inclusive, sorted and disjoint; every access kept lies in one.
    let w: Vec<(u64, u64)> = lod["windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["from"].as_u64().unwrap(), w["to"].as_u64().unwrap()))
        .collect();
    assert!(w.windows(2).all(|p| p[0].1 < p[1].0), "{w:?}");
    for a in m["accesses"].as_array().unwrap() {
        let s = a[0].as_u64().unwrap();
        assert!(
            w.iter().any(|&(f, t)| f <= s && s <= t),
            "access at {s} outside {w:?}"
        );
    }
    let fs = m["failure"]["step"].as_u64().unwrap();
    assert!(
        w.iter().any(|&(f, t)| f <= fs && fs <= t),
        "the failure has detail"
    );
    let n_races = races_in(&json_of("races", &t));
    let aborted = json_of("tm", &t)["aborted"].as_u64().unwrap();
    let dom = browse(&page, "", Some(&screenshot("summarised")));
    let s = status(&dom);
    assert_eq!(n(&s, "data-summarised"), 1);
    assert_eq!(n(&s, "data-arcs") as usize, n_races);
    assert_eq!(n(&s, "data-failure"), 1);
    assert_eq!(dom.matches("<li data-t=\"x\"").count() as u64, aborted);
    assert!(dom.contains("class=\"lod-window\""), "windows shaded");
    assert!(
        dom.contains("Summarised: the trace has"),
        "the page says so"
    );

    // A long real trace: a million spinning steps. The per-bucket counts add up to the
    // trace's own figures.
    let t = dir.path().join("spin.weft");
    record("deadlock", &t, &["--strategy", "round-robin:quantum=1"]);
    let page = dir.path().join("spin.html");
    let m = model(&report(&t, &page, &[]));
    assert_eq!(m["lod"]["full"], false);
    let sum = |key: &str| -> u64 {
        m["buckets"][key]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
            .sum()
    };
    let summary = json_of("inspect", &t);
    assert_eq!(sum("run"), summary["steps"].as_u64().unwrap());
    let acc = &summary["accesses"];
    let get = |k: &str| acc.get(k).and_then(Value::as_u64).unwrap_or(0);
    assert_eq!(sum("r"), get("R"));
    assert_eq!(sum("w"), get("W"));
    assert_eq!(sum("rmw"), get("aR"));
    let s = status(&browse(&page, "", None));
    assert_eq!(n(&s, "data-failure"), 1);
    assert_eq!(n(&s, "data-summarised"), 1);
}

#[test]
fn guest_text_cannot_break_the_page() {
    let dir = scratch();
    let t = dir.path().join("evil.weft");
    let header = TraceHeader {
        weft_version: "0".into(),
        guest: GuestImage::new("evil</script><b>", Vec::new()),
        options: MachineOptions {
            vcpus: 2,
            // A made-up trace that lists every access: nothing to derive by replaying.
            sharing: weft_trace::Sharing::All,
            ..MachineOptions::default()
        },
        strategy: "x</script>".into(),
    };
    let evil = "</script><script>document.title='pwned'</script><!-- <img src=x onerror=alert(1)>";
    let mut w = TraceWriter::create(&t, &header).unwrap();
    let events = vec![
        Event::Access {
            step: Step(0),
            vcpu: VcpuId(0),
            rip: 0x401000,
            addr: GuestAddr(0x1000),
            size: 8,
            kind: AccessKind::Write,
            value: u64::MAX,
        },
        Event::Run {
            vcpu: VcpuId(0),
            points: 1,
        },
        Event::Console {
            step: Step(1),
            vcpu: VcpuId(1),
            fd: 1,
            bytes: evil.as_bytes().to_vec(),
        },
        Event::Mark {
            step: Step(1),
            vcpu: VcpuId(1),
            label: evil.into(),
        },
        Event::Access {
            step: Step(1),
            vcpu: VcpuId(1),
            rip: 0x401008,
            addr: GuestAddr(0x1000),
            size: 8,
            kind: AccessKind::Read,
            value: u64::MAX,
        },
        Event::Run {
            vcpu: VcpuId(1),
            points: 1,
        },
        Event::End {
            step: Step(2),
            verdict: Verdict::Assertion {
                vcpu: VcpuId(1),
                rip: 0x401008,
                message: evil.into(),
            },
        },
    ];
    for e in &events {
        w.write(e).unwrap();
    }
    w.finish().unwrap();
    let page = dir.path().join("evil.html");
    let html = report(&t, &page, &[]);
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none';"),
        "the page may fetch nothing"
    );
    let scripts = check_html(&html);
    assert_eq!(
        scripts.len(),
        3,
        "the error handler, the data, the page's script"
    );
    let m = model(&html);
    assert_eq!(m["console"][0][2], evil);
    assert_eq!(m["accesses"][0][5], "0xffffffffffffffff");
    assert_eq!(
        m["races"].as_array().unwrap().len(),
        1,
        "the unordered W then R races"
    );
    let dom = browse(&page, "", None);
    let s = status(&dom);
    assert_eq!(n(&s, "data-arcs"), 1);
    let title = &dom[dom.find("<title>").unwrap()..];
    assert!(
        title.starts_with("<title>weft report: evil&lt;/script&gt;"),
        "no guest script ran: {}",
        &title[..80]
    );
    assert!(!dom.contains("<img"), "no guest markup became an element");
    assert!(
        dom.contains("&lt;/script&gt;"),
        "the guest's text is shown as text"
    );
    assert!(
        dom.contains("0xffffffffffffffff"),
        "64-bit values stay exact"
    );
}

#[test]
fn the_demo_writes_the_report_of_its_bug_and_says_where() {
    let dir = scratch();
    let out = dir.path().join("demo");
    let (code, stdout, err) = text(&weft(["demo".as_ref(), "--out".as_ref(), out.as_os_str()]));
    assert_eq!(code, 0, "{stdout}{err}");
    let page = out.join("racy_counter.html");
    assert!(
        stdout.contains(&format!("report: {} (", page.display())),
        "{stdout}"
    );
    let html = std::fs::read_to_string(&page).expect("the demo's report");
    check_html(&html);
    let m = model(&html);
    assert_eq!(m["failure"]["class"], "assertion");
    assert_eq!(
        m["races"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["race"] == true)
            .count(),
        races_in(&json_of("races", &out.join("racy_counter.weft")))
    );
}

#[test]
fn bad_input_is_one_line_naming_the_file() {
    let dir = scratch();
    let garbage = dir.path().join("garbage.weft");
    std::fs::write(&garbage, b"hello, not a trace\n").unwrap();
    let missing = dir.path().join("missing.weft");
    for f in [&garbage, &missing, &dir.path().to_path_buf()] {
        let (code, _, err) = text(&weft(["report".as_ref(), f.as_os_str()]));
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("weft: error: "), "{err}");
        assert!(err.contains(&f.display().to_string()), "{err}");
    }
    let t = dir.path().join("ok.weft");
    record("racy_counter", &t, &[]);
    for out in [
        dir.path().to_path_buf(),
        dir.path().join("no/such/dir/x.html"),
    ] {
        let (code, _, err) = text(&weft([
            "report".as_ref(),
            t.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]));
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&out.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // The default name: the trace's, with .html.
    let (code, out, err) = text(&weft(["report".as_ref(), t.as_os_str()]));
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("ok.html").exists(), "{out}");
}

/// Drives the page like a person: filters, the vCPU checkbox, the conflicts toggle, the
/// wheel, a drag, a key and a hover, one after another; after each it records the page's
/// status, hint and tooltip as `data-probe-NAME` on the body.
const PROBE: &str = r#"<script>
window.addEventListener('load', function () {
  var svg = document.getElementById('tl');
  function st() {
    var s = document.getElementById('weft-status');
    return ['accesses', 'arcs', 'conflict-arcs', 'spans', 'lanes', 'view', 'errors'].map(function (k) {
      return k + '=' + s.getAttribute('data-' + k); }).join(' ');
  }
  function input(id, v) { var e = document.getElementById(id); e.value = v; e.dispatchEvent(new Event('input')); }
  function check(sel, on) { var c = document.querySelector(sel); c.checked = on; c.dispatchEvent(new Event('change')); }
  function box() { return svg.getBoundingClientRect(); }
  var steps = [
    ['start', function () {}],
    ['addr', function () { input('f-addr', 'ADDR'); }],
    ['badaddr', function () { input('f-addr', 'zzz'); }],
    ['code', function () { input('f-addr', ''); input('f-code', 'CODE'); }],
    ['hide0', function () { input('f-code', ''); check('#f-vcpus input', false); }],
    ['conflicts', function () { check('#f-vcpus input', true); check('#f-conf', true); }],
    ['wheel', function () { check('#f-conf', false); var b = box();
      svg.dispatchEvent(new WheelEvent('wheel', { deltaY: -200, clientX: b.left + b.width / 2, clientY: b.top + 60, bubbles: true, cancelable: true })); }],
    ['drag', function () { var b = box();
      svg.dispatchEvent(new MouseEvent('mousedown', { button: 0, clientX: b.left + 600, clientY: b.top + 60, bubbles: true }));
      window.dispatchEvent(new MouseEvent('mousemove', { clientX: b.left + 300, clientY: b.top + 60 }));
      window.dispatchEvent(new MouseEvent('mouseup', {})); }],
    ['key', function () { document.dispatchEvent(new KeyboardEvent('keydown', { key: '+' })); }],
    ['hover', function () { var t = svg.querySelector('rect.acc'), r = t.getBoundingClientRect();
      t.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + 1, clientY: r.top + 1, bubbles: true })); }]
  ];
  var i = 0;
  function next() {
    if (i > 0) {
      var tip = document.getElementById('tip');
      document.body.setAttribute('data-probe-' + steps[i - 1][0], st() +
        ' hint=' + document.getElementById('v-hint').textContent.replace(/\W+/g, '_') +
        ' tip=' + (tip.hidden ? '' : tip.textContent.replace(/\s+/g, '_')));
    }
    if (i === steps.length) return;
    steps[i++][1]();
    setTimeout(next, 100);
  }
  next();
});
</script>
</body>"#;

/// `data-probe-NAME="k=v k=v ..."` of the dumped DOM.
fn probed(dom: &str, name: &str) -> BTreeMap<String, String> {
    let key = format!("data-probe-{name}=\"");
    let start = dom.find(&key).unwrap_or_else(|| panic!("no probe {name}")) + key.len();
    let value = &dom[start..start + dom[start..].find('"').unwrap()];
    value
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn view(p: &BTreeMap<String, String>) -> (i64, i64) {
    let v = &p["view"];
    let (a, b) = v.rsplit_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn filters_zoom_pan_and_hover_work_in_the_browser() {
    let dir = scratch();
    let t = dir.path().join("tm.weft");
    record(
        "tm_elided_lock_buggy",
        &t,
        &["--strategy", "random", "--seed", "2"],
    );
    let page = dir.path().join("tm.html");
    let html = report(&t, &page, &[]);
    let m = model(&html);
    let races: Vec<&Value> = m["races"].as_array().unwrap().iter().collect();
    let first = races.iter().find(|g| g["race"] == true).expect("a race");
    let addr = first["a"]["addr"].as_u64().unwrap();
    let locs = m["locs"].as_array().unwrap();
    let loc_text = |i: &Value| -> String {
        i.as_u64().map_or(String::new(), |i| {
            let l = &locs[i as usize];
            format!(
                "{} {} {:#x}",
                l[2].as_str().unwrap(),
                l[1].as_str().unwrap(),
                l[0].as_u64().unwrap()
            )
            .to_lowercase()
        })
    };
    // "tm_elided_lock_buggy.c:68" out of "_start+0xb9 (examples/tm_elided_lock_buggy.c:68)".
    let src = loc_text(&first["a"]["loc"]);
    let code: String = src
        .rsplit('/')
        .next()
        .unwrap()
        .chars()
        .take_while(|c| *c != ')' && *c != ',')
        .collect();
    assert!(code.contains(".c:"), "{code}");
    let page_text = html.replacen(
        "</body>",
        &PROBE
            .replace("ADDR", &format!("{addr:#x}"))
            .replace("CODE", &code),
        1,
    );
    std::fs::write(&page, page_text).unwrap();
    let dom = browse(&page, "", None);
    status(&dom);

    let accesses = m["accesses"].as_array().unwrap();
    let touches = |a: u64, size: u64| a <= addr && a + size.max(1) > addr;
    let side_addr = |s: &Value| touches(s["addr"].as_u64().unwrap(), s["size"].as_u64().unwrap());
    let race_groups: Vec<&&Value> = races.iter().filter(|g| g["race"] == true).collect();
    let count = |p: &BTreeMap<String, String>, k: &str| p[k].parse::<usize>().unwrap();

    let start = probed(&dom, "start");
    assert_eq!(count(&start, "accesses"), accesses.len());

    let p = probed(&dom, "addr");
    let want = accesses
        .iter()
        .filter(|a| touches(a[3].as_u64().unwrap(), a[4].as_u64().unwrap()))
        .count();
    assert!(
        want > 0 && want < accesses.len(),
        "a selective filter: {want}"
    );
    assert_eq!(count(&p, "accesses"), want);
    let want_arcs = race_groups
        .iter()
        .filter(|g| side_addr(&g["a"]) || side_addr(&g["b"]))
        .count();
    assert_eq!(count(&p, "arcs"), want_arcs);

    assert!(probed(&dom, "badaddr")["hint"].contains("not_a_hex_address"));

    let p = probed(&dom, "code");
    let matches = |l: &Value| loc_text(l).contains(&code.to_lowercase());
    assert_eq!(
        count(&p, "accesses"),
        accesses.iter().filter(|a| matches(&a[6])).count()
    );
    assert_eq!(
        count(&p, "arcs"),
        race_groups
            .iter()
            .filter(|g| matches(&g["a"]["loc"]) || matches(&g["b"]["loc"]))
            .count()
    );
    let txs = m["txs"].as_array().unwrap();
    let want_spans = txs
        .iter()
        .filter(|x| matches(&x["site"]) || matches(&x["at"]) || matches(&x["by_loc"]))
        .count();
    assert_eq!(count(&p, "spans"), want_spans);

    let p = probed(&dom, "hide0");
    assert_eq!(count(&p, "lanes"), 1);
    assert_eq!(
        count(&p, "accesses"),
        accesses.iter().filter(|a| a[1] == 1).count()
    );
    assert_eq!(
        count(&p, "spans"),
        txs.iter().filter(|x| x["vcpu"] == 1).count()
    );
    assert_eq!(count(&p, "arcs"), 0, "every arc touches vcpu0");

    let p = probed(&dom, "conflicts");
    assert_eq!(count(&p, "conflict-arcs"), races.len() - race_groups.len());
    assert!(
        races.len() > race_groups.len(),
        "the trace has ordered conflicts"
    );

    let (f0, f1) = view(&start);
    let (w0, w1) = view(&probed(&dom, "wheel"));
    assert!(
        w1 - w0 < f1 - f0,
        "wheel zooms in: {w0}..{w1} of {f0}..{f1}"
    );
    let (d0, d1) = view(&probed(&dom, "drag"));
    assert!(
        d0 > w0 && ((d1 - d0) - (w1 - w0)).abs() <= 1,
        "dragging left shows later steps: {d0}..{d1}"
    );
    let (k0, k1) = view(&probed(&dom, "key"));
    assert!(k1 - k0 < d1 - d0, "+ zooms in: {k0}..{k1}");
    let p = probed(&dom, "hover");
    assert!(p["tip"].contains("RIP_0x"), "{p:?}");
    for name in [
        "addr",
        "code",
        "hide0",
        "conflicts",
        "wheel",
        "drag",
        "key",
        "hover",
    ] {
        assert_eq!(probed(&dom, name)["errors"], "0", "{name}");
    }
}
