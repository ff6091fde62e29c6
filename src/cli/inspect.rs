//! `weft inspect`: what a trace holds, as a summary or as a list of events.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use weft::codemap::CodeMap;
use weft_trace::{Backtrace, Event, TraceReader, VcpuId, Verdict};

use super::{human_bytes, EXIT_PASS};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The trace to inspect
    trace: PathBuf,
    /// List events (with disassembly) instead of the summary
    #[arg(long)]
    events: bool,
    /// With --events: only this vCPU's events
    #[arg(long)]
    vcpu: Option<u32>,
    /// With --events: only events at or after this step
    #[arg(long)]
    from: Option<u64>,
    /// With --events: only events at or before this step
    #[arg(long)]
    to: Option<u64>,
    /// List the events around this step (8 steps either side), marking it
    #[arg(long, value_name = "STEP", conflicts_with_all = ["from", "to", "race"])]
    goto: Option<u64>,
    /// List the events around both accesses of this `weft races` report entry (its #id)
    #[arg(long, value_name = "ID", conflicts_with_all = ["from", "to"])]
    race: Option<usize>,
    /// Machine-readable output: a JSON object (summary) or JSON lines (events)
    #[arg(long)]
    json: bool,
}

/// What `weft inspect` reports about a trace.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub trace: String,
    pub trace_bytes: u64,
    pub guest: String,
    pub guest_sha256: String,
    pub guest_bytes: u64,
    pub weft_version: String,
    /// The board's vCPUs; for a Linux program the most threads it could make.
    pub vcpus: u32,
    /// A Linux program (its vCPUs are its threads).
    pub linux: bool,
    /// vCPUs the run had: the board's, or the Linux program's main thread and each one it
    /// created (`points_per_vcpu` has one entry each).
    pub threads: u32,
    pub ram_bytes: u64,
    pub stack_bytes: u64,
    pub max_steps: u64,
    pub strategy: String,
    /// `pages` (only pages more than one vCPU touched are recorded) or `all`.
    pub sharing: String,
    /// Pages that became shared during the run (`Share` events).
    pub pages_shared: u64,
    pub steps: u64,
    pub points_per_vcpu: Vec<u64>,
    pub context_switches: u64,
    pub events: u64,
    pub accesses: BTreeMap<&'static str, u64>,
    pub hypercalls: u64,
    pub console_bytes: u64,
    pub marks: u64,
    /// Outermost transactions begun, committed and aborted.
    pub tx_begun: u64,
    pub tx_committed: u64,
    pub tx_aborted: u64,
    pub warnings: Vec<String>,
    pub verdict: Option<Verdict>,
    pub verdict_text: String,
    /// Call stacks of the vCPUs the failure concerns: raw frames (innermost first) and
    /// each frame described (`#1 0x401a2e transfer+0x3e (lock_order.c:31)`).
    pub backtraces: Vec<StackSummary>,
    /// The lines `weft record` prints under the verdict (stacks, waits, lock cycle).
    #[serde(skip)]
    pub details: Option<String>,
    /// Rust panics and uncaught C++ exceptions the program reported, in order.
    pub panics: Vec<weft::failure::Panic>,
    /// The call weft does not emulate that the failing thread made just before it failed.
    pub unemulated: Option<weft::failure::Unemulated>,
    pub complete: bool,
    pub reader_warning: Option<String>,
}

/// One vCPU's call stack at the end of a failed run.
#[derive(Debug, Serialize)]
pub struct StackSummary {
    #[serde(flatten)]
    pub stack: Backtrace,
    /// Each frame described: `#1 0x401a2e transfer+0x3e (lock_order.c:31)`.
    pub described: Vec<String>,
    /// What it is blocked on, and who holds it.
    pub waits: Option<String>,
}

pub fn summarize(path: &std::path::Path) -> Result<Summary> {
    let reader = TraceReader::open(path)?;
    let h = reader.header().clone();
    let mut s = Summary {
        trace: path.display().to_string(),
        trace_bytes: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        guest: h.guest.name.clone(),
        guest_sha256: h.guest.sha256_hex(),
        guest_bytes: h.guest.elf.len() as u64,
        weft_version: h.weft_version.clone(),
        vcpus: h.options.vcpus,
        ram_bytes: h.options.ram_bytes,
        stack_bytes: h.options.stack_bytes,
        max_steps: h.options.max_steps,
        strategy: h.strategy.clone(),
        sharing: match &h.options.sharing {
            weft_trace::Sharing::All => "all".into(),
            weft_trace::Sharing::Pages { shared } if shared.is_empty() => "pages".into(),
            weft_trace::Sharing::Pages { shared } => {
                format!("pages ({} shared from the start)", shared.len())
            }
        },
        points_per_vcpu: vec![0; h.options.vcpus as usize],
        reader_warning: reader.warning().map(str::to_string),
        ..Summary::default()
    };
    let mut runs = 0u64;
    let mut spawned = 0u32;
    let mut stacks = Vec::new();
    let mut clues = weft::failure::Clues::default();
    for e in reader.into_events() {
        let e = e?;
        s.events += 1;
        clues.observe(&e);
        match &e {
            Event::Run { vcpu, points } => {
                runs += 1;
                s.steps = s.steps.saturating_add(*points);
                if let Some(p) = s.points_per_vcpu.get_mut(vcpu.0 as usize) {
                    *p = p.saturating_add(*points);
                }
            }
            Event::Access { kind, .. } => *s.accesses.entry(kind.short()).or_default() += 1,
            Event::Hypercall { .. } | Event::Syscall { .. } => s.hypercalls += 1,
            Event::Console { bytes, .. } => s.console_bytes += bytes.len() as u64,
            Event::Mark { .. } => s.marks += 1,
            Event::Warning {
                step,
                vcpu,
                message,
                ..
            } => s.warnings.push(format!("step {step} {vcpu}: {message}")),
            Event::End { verdict, .. } => {
                s.complete = true;
                s.verdict = Some(verdict.clone());
            }
            Event::TxBegin { depth: 1, .. } => s.tx_begun += 1,
            Event::TxCommit { .. } => s.tx_committed += 1,
            Event::TxAbort { .. } => s.tx_aborted += 1,
            Event::Backtrace { stack, .. } => stacks.push(stack.clone()),
            Event::Share { .. } => s.pages_shared += 1,
            Event::Spawn { .. } => spawned += 1,
            Event::Fence { .. }
            | Event::VcpuEnd { .. }
            | Event::TxBegin { .. }
            | Event::FileData { .. } => {}
        }
    }
    s.linux = h.options.linux.is_some();
    s.threads = if s.linux {
        (1 + spawned).min(h.options.vcpus)
    } else {
        h.options.vcpus
    };
    s.points_per_vcpu.truncate(s.threads as usize);
    s.context_switches = runs.saturating_sub(1);
    if let Some(v) = s.verdict.as_ref().filter(|v| !v.is_pass()) {
        let map = weft::debuginfo::SourceMap::new(&h.guest.elf);
        s.details = weft::failure::details(v, &stacks, &clues, &map);
        if h.options.linux.is_none() {
            if let Some(hint) = weft::failure::board_hint(v, &h.guest.elf) {
                s.details = Some(match s.details.take() {
                    Some(d) => format!("{d}\n{hint}"),
                    None => hint,
                });
            }
        }
        s.panics = clues.panics();
        s.unemulated = clues.unemulated_before(v).cloned();
        s.backtraces = stacks
            .into_iter()
            .map(|b| StackSummary {
                described: map.describe_stack(&b.frames),
                waits: weft::failure::wait(&map, &b),
                stack: b,
            })
            .collect();
    }
    s.verdict_text = match &s.verdict {
        Some(v) => v.to_string(),
        None => "unknown: the trace ends before the run did".to_string(),
    };
    Ok(s)
}

fn print_summary(s: &Summary) {
    println!("trace:     {} ({})", s.trace, human_bytes(s.trace_bytes));
    println!(
        "guest:     {} ({}, sha256 {})",
        s.guest,
        human_bytes(s.guest_bytes),
        s.guest_sha256
    );
    println!(
        "recorded:  weft {}, strategy {}",
        s.weft_version, s.strategy
    );
    let max_steps = if s.max_steps > 0 {
        format!(", max {} steps", s.max_steps)
    } else {
        String::new()
    };
    if s.linux {
        println!(
            "machine:   Linux program, {} thread{} (at most {}), {} RAM{max_steps}",
            s.threads,
            if s.threads == 1 { "" } else { "s" },
            s.vcpus,
            human_bytes(s.ram_bytes),
        );
    } else {
        println!(
            "machine:   {} vCPUs, {} RAM, {} stack each{max_steps}",
            s.vcpus,
            human_bytes(s.ram_bytes),
            human_bytes(s.stack_bytes),
        );
    }
    println!(
        "steps:     {} ({} context switches)",
        s.steps, s.context_switches
    );
    let per: Vec<String> = s
        .points_per_vcpu
        .iter()
        .enumerate()
        .map(|(i, p)| format!("vcpu{i}={p}"))
        .collect();
    let label = if s.linux { "threads:  " } else { "per vCPU: " };
    println!("{label} {}", per.join(" "));
    let acc: Vec<String> = s.accesses.iter().map(|(k, n)| format!("{k}={n}")).collect();
    let total: u64 = s.accesses.values().sum();
    println!(
        "accesses:  {total} shared ({})",
        if acc.is_empty() {
            "none".into()
        } else {
            acc.join(" ")
        }
    );
    println!(
        "sharing:   {}{}",
        s.sharing,
        if s.sharing.starts_with("pages") {
            format!("; {} pages became shared", s.pages_shared)
        } else {
            String::new()
        }
    );
    println!(
        "events:    {} ({} hypercalls, {} console bytes, {} marks)",
        s.events, s.hypercalls, s.console_bytes, s.marks
    );
    if s.tx_begun > 0 {
        println!(
            "tm:        {} transactions: {} committed, {} aborted (weft tm for details)",
            s.tx_begun, s.tx_committed, s.tx_aborted
        );
    }
    for w in &s.warnings {
        println!("warning:   {w}");
    }
    println!("verdict:   {}", s.verdict_text);
    if let Some(d) = &s.details {
        for l in d.lines() {
            println!("           {l}");
        }
    }
    if let Some(w) = &s.reader_warning {
        println!("note:      {w}");
    }
}

/// One event as a listing line.
/// `run_start` is the step at which a `Run` event's run began.
pub(super) fn event_line(e: &Event, run_start: u64, code: &mut CodeMap) -> String {
    let step = e.step().map(|s| s.0.to_string()).unwrap_or_default();
    let vcpu = e.vcpu().map(|v| v.to_string()).unwrap_or_default();
    let what = match e {
        Event::Run { vcpu, points } => {
            format!(
                "run     {vcpu} ran steps {run_start}..={}",
                run_start.saturating_add(*points).saturating_sub(1)
            )
        }
        Event::Access {
            rip,
            addr,
            size,
            kind,
            value,
            ..
        } => {
            let arrow = if kind.is_write() { "<-" } else { "->" };
            format!(
                "{:<7} [{addr}]:{size} {arrow} {value:#x}   {rip:#x}  {}",
                kind.short(),
                code.disasm(*rip)
            )
        }
        Event::Console { bytes, .. } => format!("console {:?}", String::from_utf8_lossy(bytes)),
        Event::Hypercall {
            rip, nr, args, ret, ..
        } => {
            format!(
                "vmcall  nr={nr} args=[{:#x}, {:#x}, {:#x}] -> {ret:#x}   {rip:#x}",
                args[0], args[1], args[2]
            )
        }
        Event::Syscall {
            rip, nr, args, ret, ..
        } => {
            let name = weft::machine::linux::syscall_name(*nr)
                .map_or_else(|| format!("syscall_{nr}"), str::to_string);
            let shown = weft::machine::linux::syscall_arity(*nr);
            let args: Vec<String> = args[..shown].iter().map(|a| format!("{a:#x}")).collect();
            format!(
                "syscall {name}({}) -> {}   {rip:#x}",
                args.join(", "),
                weft::machine::linux::describe_result(*ret)
            )
        }
        Event::FileData { path, data, .. } => match data {
            Ok(bytes) => format!("file    {path:?}: {} bytes recorded", bytes.len()),
            Err(e) => format!("file    {path:?}: {}", weft::machine::linux::errno_name(*e)),
        },
        Event::Spawn { child, tid, .. } => format!("spawn   {child} (thread id {tid})"),
        Event::Fence { rip, kind, .. } => {
            format!("fence   {kind:?}   {rip:#x}  {}", code.disasm(*rip))
        }
        Event::Mark { label, .. } => format!("mark    {label:?}"),
        Event::Warning { rip, message, .. } => format!("warning {message}   {rip:#x}"),
        Event::VcpuEnd { reason, .. } => format!("end     {reason:?}"),
        Event::End { verdict, .. } => format!("END     {verdict}"),
        Event::TxBegin { rip, depth, .. } => {
            format!("xbegin  depth {depth}   {rip:#x}  {}", code.disasm(*rip))
        }
        Event::TxCommit {
            rip,
            begin_rip,
            read_lines,
            write_lines,
            ..
        } => format!(
            "commit  of {begin_rip:#x}: {read_lines} lines read, {write_lines} written   {rip:#x}"
        ),
        Event::TxAbort {
            rip,
            begin_rip,
            status,
            cause,
            ..
        } => format!("abort   of {begin_rip:#x}: {cause}, status {status:#x}   {rip:#x}"),
        Event::Backtrace { stack, .. } => {
            let f: Vec<String> = stack.frames.iter().map(|f| format!("{f:#x}")).collect();
            format!("stack   {}", f.join(" <- "))
        }
        Event::Share {
            addr,
            len,
            owner,
            read_only,
            ..
        } => {
            let was = owner.map_or("read-shared".to_string(), |o| format!("{o}'s alone"));
            let now = if *read_only { "read-shared" } else { "shared" };
            let what = if *len == 4096 { "page" } else { "line" };
            format!("share   {what} {addr} now {now} (was {was})")
        }
    };
    format!("{step:>10} {vcpu:<7} {what}")
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    event: &'a Event,
    #[serde(skip_serializing_if = "Option::is_none")]
    insn: Option<String>,
}

/// Inclusive step ranges to list, and the steps to mark.
type Windows = (Vec<(u64, u64)>, Vec<u64>);

/// What to list, from --from/--to, --goto or --race.
fn windows(a: &InspectArgs) -> Result<Windows> {
    const AROUND: u64 = 8;
    if let Some(s) = a.goto {
        return Ok((
            vec![(s.saturating_sub(AROUND), s.saturating_add(AROUND))],
            vec![s],
        ));
    }
    if let Some(id) = a.race {
        let r = super::races::report(&a.trace)?;
        let Some(g) = r.races.iter().chain(&r.conflicts).find(|g| g.id == id) else {
            anyhow::bail!(
                "{}: no report entry #{id} (weft races --all lists {})",
                a.trace.display(),
                r.races.len() + r.conflicts.len()
            );
        };
        let (x, y) = (
            g.first.step.min(g.second.step),
            g.first.step.max(g.second.step),
        );
        let around = |s: u64| (s.saturating_sub(3), s.saturating_add(3));
        let ranges = if y - x <= 2 * AROUND {
            vec![(around(x).0, around(y).1)]
        } else {
            vec![around(x), around(y)]
        };
        return Ok((ranges, vec![x, y]));
    }
    Ok((
        vec![(a.from.unwrap_or(0), a.to.unwrap_or(u64::MAX))],
        Vec::new(),
    ))
}

pub fn inspect(a: InspectArgs) -> Result<ExitCode> {
    if !a.events && a.goto.is_none() && a.race.is_none() {
        let s = summarize(&a.trace)?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&s)?);
        } else {
            print_summary(&s);
        }
        return Ok(ExitCode::from(EXIT_PASS));
    }
    let reader = TraceReader::open(&a.trace)?;
    if let Some(w) = reader.warning() {
        eprintln!("weft: warning: {}: {w}", a.trace.display());
    }
    // Every access, also those the recording left out (pages one vCPU alone had touched),
    // derived by a replay: they are listed at the step of their vCPU's last point.
    let log = super::full_log(&a.trace)?;
    let reader = TraceReader::open(log.path())?;
    let mut code = CodeMap::new(&reader.header().guest.elf);
    let (ranges, marks) = windows(&a)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    // `Run` events carry no step: track where each run starts to filter them too.
    let mut run_start = 0u64;
    let (mut listed, mut last_step) = (0u64, 0u64);
    for e in reader.into_events() {
        let e = e?;
        let step = match &e {
            Event::Run { points, .. } => {
                let s = run_start;
                run_start = run_start.saturating_add(*points);
                s
            }
            other => other.step().map(|s| s.0).unwrap_or(0),
        };
        last_step = last_step.max(step);
        if !ranges.iter().any(|&(from, to)| step >= from && step <= to) {
            continue;
        }
        if a.vcpu.is_some_and(|v| e.vcpu() != Some(VcpuId(v))) {
            continue;
        }
        let line = if a.json {
            let insn = match &e {
                Event::Access { rip, .. } | Event::Fence { rip, .. } => {
                    Some(code.disasm(*rip).to_string())
                }
                _ => None,
            };
            serde_json::to_string(&JsonEvent { event: &e, insn })?
        } else if marks.is_empty() {
            event_line(&e, step, &mut code)
        } else {
            let at = !matches!(e, Event::Run { .. }) && marks.contains(&step);
            format!(
                "{} {}",
                if at { ">" } else { " " },
                event_line(&e, step, &mut code)
            )
        };
        listed += 1;
        if writeln!(out, "{line}").is_err() {
            break; // e.g. piped into `head`
        }
    }
    drop(out);
    if listed == 0 {
        eprintln!("{}", nothing_listed(&a, &ranges, last_step));
    }
    Ok(ExitCode::from(EXIT_PASS))
}

/// Why a listing is empty: the steps asked for are past the end of the trace, or the
/// vCPU asked for has no events there.
fn nothing_listed(a: &InspectArgs, ranges: &[(u64, u64)], last_step: u64) -> String {
    let asked = ranges
        .iter()
        .map(|&(f, t)| {
            if t == u64::MAX {
                format!("{f}..")
            } else {
                format!("{f}..={t}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let first = ranges.iter().map(|r| r.0).min().unwrap_or(0);
    if first > last_step {
        format!(
            "weft: note: no events listed: steps {asked} are past the end of the trace \
             (its steps are 0..={last_step})"
        )
    } else if let Some(v) = a.vcpu {
        format!(
            "weft: note: no events of vcpu{v} in steps {asked} (the trace's steps are \
             0..={last_step})"
        )
    } else {
        format!("weft: note: no events in steps {asked}")
    }
}
