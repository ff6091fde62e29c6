//! `weft demo`: the whole story on a built-in racy guest in under a minute: search schedules
//! until the lost update shows, record that schedule, replay it to prove it reproduces.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use weft::machine::RunConfig;
use weft::session;
use weft_recorder::StrategySpec;
use weft_trace::MachineOptions;

use super::{verdict_line, EXIT_FAILURE, EXIT_PASS};

/// The built-in guest the demo hunts in.
const DEMO_GUEST: &str = "racy_counter";

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo's files (the failing trace and the guest)
    #[arg(long, default_value = "weft-demo")]
    out: PathBuf,
    /// vCPUs to run the guest on
    #[arg(long, default_value_t = 2)]
    vcpus: u32,
    /// Most schedules to try before giving up
    #[arg(long, default_value_t = 1000)]
    schedules: u64,
}

pub fn demo(a: DemoArgs) -> Result<ExitCode> {
    let start = Instant::now();
    let Some((name, _src, elf)) = weft::examples::find(DEMO_GUEST) else {
        bail!("the built-in guest {DEMO_GUEST} is missing from this build");
    };
    let opts = MachineOptions {
        vcpus: a.vcpus,
        ..MachineOptions::default()
    };
    weft::machine::validate_options(&opts)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create directory", a.out.display()))?;
    let guest_path = a.out.join(format!("{name}.elf"));
    std::fs::write(&guest_path, elf)
        .with_context(|| format!("{}: cannot write", guest_path.display()))?;

    println!(
        "weft demo: {name}, {} vCPUs each incrementing a shared counter without a lock.",
        a.vcpus
    );
    println!("Searching schedules (seeded random) for one that loses an update...");
    // As `weft explore` does: pages a schedule found shared are shared from the start in
    // the next ones, so that every access to them can be interleaved.
    let mut learned = weft::explore::Learned::default();
    let mut found = None;
    for seed in 0..a.schedules {
        let spec = StrategySpec::Random { seed };
        let o = learned.apply(&opts);
        let out = session::run(name, elf, &o, &spec, RunConfig::default())?;
        let news = learned.add(&out.shared_pages);
        match out.verdict {
            Some(v) if !v.is_pass() => {
                println!("  schedule {:>4} ({spec}): {}", seed + 1, verdict_line(&v));
                found = Some((spec, o));
                break;
            }
            v => {
                if seed < 3 {
                    let text = v.map(|v| v.to_string()).unwrap_or_default();
                    let note = if news {
                        " (the counter's page was found shared: the next schedules \
                         interleave every access to it)"
                    } else {
                        ""
                    };
                    println!("  schedule {:>4} ({spec}): {text}{note}", seed + 1);
                } else if seed == 3 {
                    println!("  ...");
                }
            }
        }
    }
    let Some((spec, opts)) = found else {
        println!(
            "No failing schedule in {} tries; try --schedules with a larger number.",
            a.schedules
        );
        return Ok(ExitCode::from(EXIT_FAILURE));
    };

    let trace = a.out.join(format!("{name}.weft"));
    println!(
        "\nRecording that schedule to {} (guest console below):",
        trace.display()
    );
    let rec = session::record(
        name,
        elf,
        &opts,
        &spec,
        &trace,
        RunConfig {
            echo_console: true,
            ..RunConfig::default()
        },
    )?;
    let verdict = rec.outcome.verdict.clone();
    println!(
        "  {} ({} steps, {} context switches, {} events, {} bytes)",
        verdict.as_ref().map(verdict_line).unwrap_or_default(),
        rec.outcome.stats.steps,
        rec.outcome.stats.switches,
        rec.events,
        rec.bytes
    );

    println!("\nReplaying the trace to check that it reproduces, event for event:");
    let rep = session::replay(&trace, RunConfig::default())?;
    if !rep.reproduced() {
        let why = rep
            .divergence
            .map(|d| d.to_string())
            .unwrap_or_else(|| "verdicts differ".into());
        println!("  NOT reproduced: {why}");
        return Ok(ExitCode::from(EXIT_FAILURE));
    }
    println!(
        "  reproduced: {} steps, {} events identical, {}",
        rep.steps,
        rep.matched,
        rep.verdict.as_ref().map(verdict_line).unwrap_or_default()
    );

    println!("\nAsking which accesses raced (happens-before analysis of the trace):");
    let r = super::races::report(&trace)?;
    match r.races.first() {
        Some(g) => {
            println!(
                "  {} data race(s) between code locations; the first, {} at step {}:",
                r.races.len(),
                g.class,
                g.second.step
            );
            for (label, side) in [("first", &g.first), ("then", &g.second)] {
                println!(
                    "    {label:<5} vcpu{} {} {:#x} `{}`  {}",
                    side.vcpu, side.kind, side.addr, side.insn, side.source
                );
            }
        }
        None => println!("  no data race found"),
    }

    let page = a.out.join(format!("{name}.html"));
    let (bytes, _) = super::report::write_report(&trace, &page, &Default::default())?;
    println!(
        "\nThe interleaving as a picture (lanes per vCPU, the race arcs, the failure):\n  report: {} ({}); open it in a browser",
        page.display(),
        super::human_bytes(bytes)
    );

    let t = trace.display();
    let w = invoked_as();
    let ex = a.out.join("examples");
    println!(
        "\nDone in {:.1}s. Next, try:",
        start.elapsed().as_secs_f64()
    );
    println!("  {w} inspect {t}                    # what the trace holds");
    println!("  {w} inspect --events --vcpu 1 {t}  # the accesses, with disassembly");
    println!("  {w} replay {t}                     # re-run it, as often as you like");
    println!("  {w} races {t}                      # every race, with source lines");
    println!("  {w} report {t}                     # the HTML timeline, again");
    println!(
        "  {w} replay {t} --goto {}  # stop before the first race's second access",
        r.races.first().map_or(0, |g| g.second.step)
    );
    println!(
        "  {w} explore {}   # search, save and minimize a failing schedule",
        guest_path.display()
    );
    println!(
        "  {w} record --sharing all --strategy round-robin:quantum=1 --vcpus {} {}   # every access a point",
        a.vcpus,
        guest_path.display()
    );
    println!(
        "  {w} examples --out {}   # every example guest, source and ELF",
        ex.display()
    );
    Ok(ExitCode::from(EXIT_PASS))
}

/// How the user ran weft: its path when given with one (`target/release/weft`), else `weft`.
fn invoked_as() -> String {
    match std::env::args().next() {
        Some(a) if a.contains('/') => a,
        _ => "weft".to_string(),
    }
}
