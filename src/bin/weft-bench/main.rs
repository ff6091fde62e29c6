//! weft-bench: speed and trace-size figures for docs/performance.md.
//!
//! Runs the built-in `bench_workload` guest and prints millions of guest instructions per
//! second for free-running unicorn (no hooks, one vCPU, same code), `weft run`,
//! `weft record` (round-robin and random), `weft replay`, plus trace bytes per million
//! instructions, and the ratios that matter, all measured in one run on one machine.
//! Then `weft races`' analysis speed and memory on a synthetic trace of ten million accesses.
//! Then `weft explore`: schedules per second, and schedules needed to find each buggy
//! example's bug per strategy.
//! Then `weft report` on a synthetic trace of ten million events: generation time, page size,
//! what was summarised, and (with chromium installed) how long the page takes to open.
//! Then `weft-bench linux`: a static glibc pthread program recorded, run, and natively.
//! Usage: weft-bench [VCPUS (default 4)] | weft-bench machine | weft-bench races |
//! weft-bench explore | weft-bench report | weft-bench gdb | weft-bench linux

mod linux;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use unicorn_engine::{Arch, Mode, Prot, RegisterX86, Unicorn};
use weft::machine::{ElfImage, RunConfig};
use weft::session;
use weft_recorder::StrategySpec;
use weft_trace::MachineOptions;

const GUEST: &str = "bench_workload";
const RAM: u64 = 64 << 20;

/// How bare unicorn sees memory in `free_run`: the candidate ways of catching shared
/// accesses, measured on the same code.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Catch {
    /// No hook: the floor.
    Nothing,
    /// An empty memory hook on every access (the PC is synced before each call).
    EveryAccess,
    /// A memory hook on a range nothing touches: every access takes unicorn's slow path,
    /// none calls back (a hook only on shared ranges).
    SlowPath,
    /// Unicorn's virtual-TLB mode with a fill hook that maps every page, data pages not
    /// executable: weft's fast instance without its ownership checks. Faster than the
    /// default: unicorn sends every store through an entry that is also executable down
    /// its slow path (code-page tracking), and by default every entry is.
    TlbFill,
}

/// Run the guest's vCPU 0 alone (as if `vcpu_count` were 1) on bare unicorn, optionally
/// counting instructions with a code hook. Returns (seconds, instructions counted).
fn free_run(elf: &[u8], count: bool) -> (f64, u64) {
    free_run_with(elf, count, Catch::Nothing)
}

/// As `free_run`, with memory seen as `catch` says.
fn free_run_with(elf: &[u8], count: bool, catch: Catch) -> (f64, u64) {
    let img = ElfImage::parse(elf, RAM - (64 << 10)).expect("bench guest parses");
    let mut uc = Unicorn::new(Arch::X86, Mode::MODE_64).expect("unicorn");
    uc.mem_map(0, RAM, Prot::ALL).expect("map");
    for s in &img.segments {
        uc.mem_write(s.addr, &s.data).expect("load");
    }
    let rsp = RAM - 8;
    uc.mem_write(rsp, &0x7fff_ffff_f000u64.to_le_bytes())
        .unwrap();
    uc.reg_write(RegisterX86::RSP, rsp).unwrap();
    uc.reg_write(RegisterX86::RDI, 0).unwrap();
    uc.reg_write(RegisterX86::RSI, 1).unwrap();
    let cr4 = uc.reg_read(RegisterX86::CR4).unwrap();
    uc.reg_write(RegisterX86::CR4, cr4 | (1 << 9) | (1 << 10))
        .unwrap();
    let n = Rc::new(RefCell::new(0u64));
    if count {
        let n2 = n.clone();
        uc.add_code_hook(1, 0, move |_, _, _| *n2.borrow_mut() += 1)
            .unwrap();
    }
    let rw = unicorn_engine::HookType::MEM_READ | unicorn_engine::HookType::MEM_WRITE;
    match catch {
        Catch::Nothing => {}
        Catch::EveryAccess => {
            uc.add_mem_hook(rw, 0, RAM - 1, |_, _, _, _, _| true)
                .unwrap();
        }
        Catch::SlowPath => {
            uc.add_mem_hook(rw, RAM * 2, RAM * 2 + 4095, |_, _, _, _, _| true)
                .unwrap();
        }
        Catch::TlbFill => {
            uc.ctl_set_tlb_type(unicorn_engine::TlbType::VIRTUAL)
                .unwrap();
            uc.add_tlb_hook(1, 0, |_, vaddr, ty| {
                let perms = match ty {
                    unicorn_engine::MemType::FETCH => Prot::READ | Prot::EXEC,
                    unicorn_engine::MemType::WRITE => Prot::READ | Prot::WRITE,
                    _ => Prot::READ,
                };
                Some(unicorn_engine::TlbEntry {
                    paddr: vaddr & !0xFFF,
                    perms,
                })
            })
            .unwrap();
        }
    }
    let t = Instant::now();
    // Ends at the guest's first VMCALL or port write (no hooks: an error) or its return.
    let _ = uc.emu_start(img.entry, 0x7fff_ffff_f000, 0, 0);
    let secs = t.elapsed().as_secs_f64();
    let c = *n.borrow();
    (secs, c)
}

fn mips(instructions: u64, secs: f64) -> f64 {
    instructions as f64 / secs / 1e6
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("races") => return race_analysis(),
        Some("explore") => return exploration(),
        Some("gdb") => return time_travel(),
        Some("report") => return report_page(),
        Some("linux") => return linux::bench(),
        Some("machine") => {
            machine_figures(GUEST, 4, true);
            println!();
            return machine_figures("bench_shared", 4, false);
        }
        _ => {}
    }
    let vcpus: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_name()
    );
    machine_figures(GUEST, vcpus, true);
    println!();
    machine_figures("bench_shared", vcpus, false);
    println!();
    race_analysis();
    exploration();
    report_page();

    let (threads, coroutines) = switch_costs(200_000);
    println!();
    println!(
        "token hand-over: OS threads + condvar {threads:.0} ns, coroutines {coroutines:.0} ns ({:.0}x)",
        threads / coroutines
    );
}

/// Speed and trace size of `guest` (bench_workload or bench_shared) on `vcpus` vCPUs:
/// bare unicorn (with the ways of catching accesses when `candidates`), then weft run,
/// record and replay, all against free-running unicorn on the same code.
fn machine_figures(guest: &str, vcpus: u32, candidates: bool) {
    let (_, _, elf) = weft::examples::find(guest).expect("the bench guests are built in");
    let (_, per_vcpu) = free_run(elf, true);
    // The reference is the faster of bare unicorn's two configurations.
    let (default_secs, _) = free_run(elf, false);
    let (tlb_secs, _) = free_run_with(elf, false, Catch::TlbFill);
    let free_secs = default_secs.min(tlb_secs);
    let total = per_vcpu * vcpus as u64;
    println!("weft-bench: guest {guest}, {vcpus} vCPUs, ~{per_vcpu} instructions per vCPU ({total} total)");
    let opts = MachineOptions {
        vcpus,
        ..MachineOptions::default()
    };
    println!(
        "instructions weft's debug machine counts for the whole run: {}",
        linux::instructions_of(elf, &opts)
    );
    let free = mips(per_vcpu, free_secs);
    println!(
        "{:<36} {:>8.1} MIPS  (default TLB {:.1}, virtual TLB {:.1}; 1 vCPU, no hooks)",
        "free-running unicorn, the faster",
        free,
        mips(per_vcpu, default_secs),
        mips(per_vcpu, tlb_secs)
    );
    if candidates {
        for (name, catch) in [
            ("unicorn + empty memory hook", Catch::EveryAccess),
            ("unicorn, slow path, no callback", Catch::SlowPath),
        ] {
            let (secs, _) = free_run_with(elf, false, catch);
            line(name, per_vcpu, secs, free);
        }
    }

    let rr = StrategySpec::RoundRobin { quantum: 1000 };
    let random = StrategySpec::Random { seed: 1 };
    let dir = std::env::temp_dir().join(format!("weft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let t = Instant::now();
    let out = session::run(guest, elf, &opts, &rr, RunConfig::default()).expect("run");
    let run_secs = t.elapsed().as_secs_f64();
    assert!(
        out.verdict.as_ref().is_some_and(|v| v.is_pass()),
        "bench guest failed: {:?}",
        out.verdict
    );
    let steps = out.stats.steps;
    line("weft run (round-robin)", total, run_secs, free);

    let trace = dir.join("rr.weft");
    let t = Instant::now();
    let rec =
        session::record(guest, elf, &opts, &rr, &trace, RunConfig::default()).expect("record");
    let rec_secs = t.elapsed().as_secs_f64();
    line("weft record (round-robin:1000)", total, rec_secs, free);

    let trace_r = dir.join("random.weft");
    let t = Instant::now();
    let rec_r = session::record(guest, elf, &opts, &random, &trace_r, RunConfig::default())
        .expect("record");
    let rnd_secs = t.elapsed().as_secs_f64();
    line("weft record (random)", total, rnd_secs, free);

    let t = Instant::now();
    let rep = session::replay(&trace, RunConfig::default()).expect("replay");
    let rep_secs = t.elapsed().as_secs_f64();
    assert!(
        rep.reproduced(),
        "bench replay diverged: {:?}",
        rep.divergence
    );
    line("weft replay (of round-robin trace)", total, rep_secs, free);

    println!(
        "scheduling points: {steps} ({:.4} per instruction)",
        steps as f64 / total as f64
    );
    println!(
        "context switches: round-robin {}, random {}",
        rec.outcome.stats.switches, rec_r.outcome.stats.switches
    );
    for (name, r) in [("round-robin", &rec), ("random", &rec_r)] {
        println!(
            "trace ({name}): {} bytes, {} events, {:.3} bytes/instruction, {:.0} bytes per million instructions, {:.2} bytes/event",
            r.bytes,
            r.events,
            r.bytes as f64 / total as f64,
            r.bytes as f64 * 1e6 / total as f64,
            r.bytes as f64 / r.events as f64,
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn line(name: &str, instructions: u64, secs: f64, free: f64) {
    let m = mips(instructions, secs);
    println!(
        "{name:<36} {m:>8.1} MIPS  {:>5.2}x free-running  ({secs:.2}s)",
        m / free
    );
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The choice behind the machine's design: cost of handing the token between two logical
/// vCPUs, as OS threads with a Mutex+Condvar token vs stackful coroutines on one thread.
/// Returns nanoseconds per hand-over for each.
fn switch_costs(handovers: u64) -> (f64, f64) {
    use std::sync::{Arc, Condvar, Mutex};
    // Threads: the token is the id of the thread allowed to run.
    let token = Arc::new((Mutex::new(0u8), Condvar::new()));
    let t = Instant::now();
    let peer = {
        let token = token.clone();
        std::thread::spawn(move || {
            for _ in 0..handovers / 2 {
                let (m, c) = &*token;
                let mut g = c.wait_while(m.lock().unwrap(), |v| *v != 1).unwrap();
                *g = 0;
                c.notify_one();
            }
        })
    };
    for _ in 0..handovers / 2 {
        let (m, c) = &*token;
        let mut g = m.lock().unwrap();
        *g = 1;
        c.notify_one();
        let _g = c.wait_while(g, |v| *v != 0).unwrap();
    }
    peer.join().unwrap();
    let threads = t.elapsed().as_nanos() as f64 / handovers as f64;

    let mut co = corosensei::Coroutine::new(|y: &corosensei::Yielder<(), ()>, ()| loop {
        y.suspend(());
    });
    let t = Instant::now();
    for _ in 0..handovers / 2 {
        let _ = co.resume(());
    }
    let coroutines = t.elapsed().as_nanos() as f64 / handovers as f64;
    (threads, coroutines)
}

/// Peak resident memory of this process so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// `weft races` on a synthetic trace: 4 vCPUs, 10 million accesses (each vCPU walking its
/// own 64 K cells, a locked counter every 256 accesses, a racy shared word every 1000),
/// analysed the way the CLI does it (two passes over the file).
fn race_analysis() {
    use weft_trace::{
        AccessKind, Event, GuestAddr, GuestImage, Step, TraceHeader, TraceReader, TraceWriter,
        VcpuId,
    };
    const ACCESSES: u64 = 10_000_000;
    let dir = std::env::temp_dir().join(format!("weft-bench-races-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("synthetic.weft");
    let header = TraceHeader {
        weft_version: env!("CARGO_PKG_VERSION").into(),
        guest: GuestImage::new("synthetic", Vec::new()),
        options: MachineOptions {
            vcpus: 4,
            // Made up, every access listed: nothing to derive by replaying.
            sharing: weft_trace::Sharing::All,
            ..MachineOptions::default()
        },
        strategy: "round-robin:quantum=1000".into(),
    };
    let mut w = TraceWriter::create(&path, &header).expect("trace");
    let mut step = 0u64;
    let mut n = 0u64;
    while n < ACCESSES {
        for v in 0..4u32 {
            let mut acc = |step: u64, kind, addr: u64, value| {
                let e = Event::Access {
                    step: Step(step),
                    vcpu: VcpuId(v),
                    rip: 0x401000 + (addr & 0xff),
                    addr: GuestAddr(addr),
                    size: 8,
                    kind,
                    value,
                };
                w.write(&e).expect("write");
            };
            for i in 0..1000u64 {
                let cell = 0x100000 + (v as u64) * 0x80000 + ((n + i) % 65536) * 8;
                if i % 256 == 255 {
                    acc(step, AccessKind::AtomicRead, 0x8000, n);
                    acc(step, AccessKind::AtomicWrite, 0x8000, n + 1);
                } else if i == 999 {
                    acc(step, AccessKind::Write, 0x9000, n);
                } else if i % 2 == 0 {
                    acc(step, AccessKind::Read, cell, i);
                } else {
                    acc(step, AccessKind::Write, cell, i);
                }
                step += 1;
            }
            w.write(&Event::Run {
                vcpu: VcpuId(v),
                points: 1000,
            })
            .expect("write");
            n += 1000;
        }
    }
    w.finish().expect("finish");

    let t = Instant::now();
    let decoded = TraceReader::open(&path)
        .expect("open")
        .into_events()
        .count();
    let decode_secs = t.elapsed().as_secs_f64();
    // Reset the peak (Linux: "5" to clear_refs), so earlier benchmarks do not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let rss_before = peak_rss_kib();
    let t = Instant::now();
    let first = TraceReader::open(&path)
        .expect("open")
        .into_events()
        .map(|e| e.expect("event"));
    let sync = weft::races::sync_cells(&header, first);
    let events = TraceReader::open(&path)
        .expect("open")
        .into_events()
        .map(|e| e.expect("event"));
    let report = weft::races::analyze(&header, sync, events);
    let secs = t.elapsed().as_secs_f64();
    let rss_after = peak_rss_kib();
    println!();
    println!(
        "weft races, synthetic trace: {} accesses in {:.2} s = {:.1} M accesses/s (two passes); {} race groups, {} conflict groups",
        report.accesses,
        secs,
        report.accesses as f64 / secs / 1e6,
        report.races.len(),
        report.conflicts.len()
    );
    println!(
        "  of which reading the trace: {:.2} s per pass ({:.1} M events/s)",
        decode_secs,
        decoded as f64 / decode_secs / 1e6
    );
    println!(
        "  peak resident memory: {:.1} MiB before the analysis, {:.1} MiB during it (262144 cells shadowed)",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `weft explore` speed on the racy counter (1 job and all cores), and bug-finding power:
/// schedules each strategy needs to find each buggy example's bug (median of 9 searches
/// with disjoint seed ranges).
fn exploration() {
    use weft::explore::{explore, ExploreConfig};
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = MachineOptions::default();
    let cfg = |strategy: StrategySpec, schedules, seed_start, jobs| ExploreConfig {
        strategy,
        schedules,
        seed_start,
        jobs,
        shard: (0, 1),
        all_failures: true,
        deadline: None,
        exit_ok: Vec::new(),
        focus: None,
        learned: Default::default(),
    };
    for (name, schedules) in [("racy_counter", 20_000), ("tm_elided_lock", 4_000)] {
        let (_, _, elf) = weft::examples::find(name).expect("built in");
        let rr = StrategySpec::RoundRobin { quantum: 1000 };
        let probe = session::run(name, elf, &opts, &rr, RunConfig::default()).expect("run");
        println!();
        println!(
            "weft explore, {name} (2 vCPUs, {} scheduling points per schedule under round-robin):",
            probe.stats.steps
        );
        for jobs in [1, cores] {
            let c = cfg(StrategySpec::Random { seed: 0 }, schedules, 0, jobs);
            let r = explore(name, elf, &opts, &c, |_| {}).expect("explore");
            let rate = r.ran as f64 / r.elapsed.as_secs_f64();
            println!(
                "  {jobs} job(s): {} schedules in {:.2} s = {rate:.0} schedules/s ({:.0} per core)",
                r.ran,
                r.elapsed.as_secs_f64(),
                rate / jobs as f64
            );
        }
    }
    println!(
        "schedules to the first failure (random, portfolio, pct: median of 9 searches with \
         disjoint seeds; dfs, race-directed, idb: one search; - = none in 300):"
    );
    let strategies = [
        ("random", StrategySpec::Random { seed: 0 }),
        (
            "portfolio",
            StrategySpec::Portfolio {
                steps: 0,
                focus_steps: 0,
            },
        ),
        (
            "pct2 focus",
            StrategySpec::Pct {
                seed: 0,
                depth: 2,
                steps: 0,
                focus: true,
            },
        ),
        (
            "pct d=2",
            StrategySpec::Pct {
                seed: 0,
                depth: 2,
                steps: 0,
                focus: false,
            },
        ),
        (
            "pct d=3",
            StrategySpec::Pct {
                seed: 0,
                depth: 3,
                steps: 0,
                focus: false,
            },
        ),
    ];
    let systematic = [
        ("dfs c=2", StrategySpec::Dfs { bound: 2 }),
        ("race-dir", StrategySpec::RaceDirected),
        ("idb", StrategySpec::Delay { index: 0, steps: 0 }),
    ];
    print!("  {:<22}", "example");
    for (n, _) in strategies.iter().chain(&systematic) {
        print!(" {n:>9}");
    }
    println!();
    for name in [
        "racy_counter",
        "message_passing",
        "deadlock",
        "tm_elided_lock_buggy",
    ] {
        let (_, _, elf) = weft::examples::find(name).expect("built in");
        let mut o = opts.clone();
        if name == "deadlock" {
            o.deadlock_window = 20_000;
        }
        // What the guest's vCPUs share, learned once as `weft explore` does; PCT's change
        // points are spread over the points with a choice, counted once with it (as
        // `weft explore` counts them).
        let learned = weft::explore::discover(name, elf, &o, None).expect("discover");
        let len = session::run(
            name,
            elf,
            &learned.apply(&o),
            &StrategySpec::RoundRobin { quantum: 1 },
            RunConfig::default(),
        )
        .expect("run")
        .stats
        .contended
        .max(1);
        // The portfolio, focused PCT and IDB are fitted as `weft explore` fits them.
        let focus = weft::debuginfo::program_code(elf);
        let (all, own) =
            weft::explore::contended_points(name, elf, &learned.apply(&o), focus.as_ref(), None)
                .expect("run");
        let own = if focus.is_some() { own } else { all };
        print!("  {name:<22}");
        for (_, base) in &strategies {
            let base = match base.clone() {
                StrategySpec::Pct {
                    seed, depth, focus, ..
                } => StrategySpec::Pct {
                    seed,
                    depth,
                    steps: if focus { own } else { len },
                    focus,
                },
                StrategySpec::Portfolio { .. } => StrategySpec::Portfolio {
                    steps: all,
                    focus_steps: own,
                },
                s => s,
            };
            let mut needed: Vec<u64> = (0..9u64)
                .map(|k| {
                    let mut c = cfg(base.clone(), 300, k * 10_000, cores);
                    c.all_failures = false;
                    c.learned = learned.clone();
                    c.focus = focus.clone();
                    let r = explore(name, elf, &o, &c, |_| {}).expect("explore");
                    r.failures.first().map_or(u64::MAX, |f| f.index + 1)
                })
                .collect();
            needed.sort_unstable();
            match needed[4] {
                u64::MAX => print!(" {:>9}", "-"),
                n => print!(" {n:>9}"),
            }
        }
        for (_, spec) in &systematic {
            let spec = match spec {
                StrategySpec::Delay { index, .. } => StrategySpec::Delay {
                    index: *index,
                    steps: all,
                },
                s => s.clone(),
            };
            let mut c = cfg(spec.clone(), 300, 0, 1);
            c.all_failures = false;
            c.learned = learned.clone();
            let found = match spec {
                StrategySpec::Dfs { bound } => {
                    weft::explore::explore_dfs(name, elf, &o, bound, &c, |_| {})
                        .expect("explore")
                        .0
                }
                StrategySpec::Delay { .. } => explore(name, elf, &o, &c, |_| {}).expect("explore"),
                _ => {
                    weft::explore::explore_race_directed(name, elf, &o, &c, |_| {})
                        .expect("explore")
                        .0
                }
            };
            match found.failures.first() {
                Some(f) => print!(" {:>9}", f.index + 1),
                None => print!(" {:>9}", "-"),
            }
        }
        println!();
    }
}

/// `weft-bench gdb`: reverse-continue over a trace of ~100 M steps (48 vCPUs of the bench
/// workload), against the time a plain forward replay of the same trace takes.
fn time_travel() {
    use weft::debugger::{TimeTravel, DEFAULT_CHECKPOINT_EVERY};
    use weft_gdb::{Debuggee, Motion, Stops, Watch, WatchKind};

    let vcpus: u32 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    let (_, _, elf) = weft::examples::find(GUEST).expect("bench_workload is built in");
    let dir = std::env::temp_dir().join(format!("weft-bench-gdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = dir.join("long.weft");
    let opts = MachineOptions {
        vcpus,
        ..MachineOptions::default()
    };
    let t = Instant::now();
    let rec = weft::session::record(
        GUEST,
        elf,
        &opts,
        &StrategySpec::RoundRobin { quantum: 1000 },
        &trace,
        RunConfig::default(),
    )
    .expect("record");
    let steps = rec.outcome.stats.steps;
    println!(
        "weft-bench gdb: {GUEST}, {vcpus} vCPUs: {steps} steps, recorded in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let r = weft::session::replay(&trace, RunConfig::default()).expect("replay");
    assert!(r.reproduced());
    let replay = t.elapsed().as_secs_f64();
    println!(
        "{:<52} {:>8.2} s  ({:.1} M steps/s)",
        "forward replay (weft replay, checked)",
        replay,
        steps as f64 / replay / 1e6
    );
    let map = weft::debuginfo::SourceMap::new(elf);
    let total = map.address_of("total").expect("symbol total");
    let start = map.address_of("_start").expect("symbol _start");
    let t = Instant::now();
    let mut tt = TimeTravel::open(&trace, DEFAULT_CHECKPOINT_EVERY).expect("session");
    let none = Stops::default();
    let stop = tt.resume(Motion::Continue, &none).expect("continue");
    let forward = t.elapsed().as_secs_f64();
    println!(
        "{:<52} {:>8.2} s  ({:.2}x replay; {} checkpoints, every {} steps) -> {:?}",
        "gdb: continue from the start to the end of history",
        forward,
        forward / replay,
        tt.monitor("checkpoints")
            .map(|s| s.lines().count())
            .unwrap_or(0),
        DEFAULT_CHECKPOINT_EVERY,
        stop.kind
    );
    let watch = Stops {
        breakpoints: Vec::new(),
        watches: vec![Watch {
            addr: total,
            len: 8,
            kind: WatchKind::Write,
        }],
    };
    for what in [
        "previous write of `total` (near the end)",
        "write before that",
    ] {
        let t = Instant::now();
        let stop = tt
            .resume(Motion::ReverseContinue, &watch)
            .expect("reverse-continue");
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:<52} {:>8.2} s  ({:.3}x replay) -> {:?} on vcpu {}",
            format!("gdb: reverse-continue to the {what}"),
            secs,
            secs / replay,
            stop.kind,
            stop.vcpu
        );
    }
    let t = Instant::now();
    let stop = tt
        .resume(Motion::ReverseStep(0), &none)
        .expect("reverse-stepi");
    println!(
        "{:<52} {:>8.2} s  -> {:?}",
        "gdb: reverse-stepi of vcpu 0",
        t.elapsed().as_secs_f64(),
        stop.kind
    );
    let far = Stops {
        breakpoints: vec![start],
        watches: Vec::new(),
    };
    let t = Instant::now();
    let stop = tt
        .resume(Motion::ReverseContinue, &far)
        .expect("reverse-continue");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{:<52} {:>8.2} s  ({:.2}x replay) -> {:?} on vcpu {}",
        "gdb: reverse-continue to _start (worst case: whole trace)",
        secs,
        secs / replay,
        stop.kind,
        stop.vcpu
    );
    drop(tt);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `weft report` on a synthetic trace of ~10 M events (4 vCPUs switching every 1-8 steps,
/// an access per step with a racy shared word, a locked counter, transactions of which
/// one in eight aborts, marks, console lines, an assertion at the end): time to build and
/// write the page, its size, what it shows individually; then the time headless Chromium
/// takes to open it and run its script, against an empty page.
fn report_page() {
    use weft::report::{self, ReportOptions};
    use weft_trace::{
        AbortCause, AccessKind, ConflictClass, Event, GuestAddr, GuestImage, Step, TraceHeader,
        TraceWriter, VcpuId, Verdict,
    };
    const EVENTS: u64 = 10_000_000;
    let dir = std::env::temp_dir().join(format!("weft-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("synthetic.weft");
    let header = TraceHeader {
        weft_version: env!("CARGO_PKG_VERSION").into(),
        guest: GuestImage::new("synthetic", Vec::new()),
        options: MachineOptions {
            vcpus: 4,
            // Made up, every access listed: nothing to derive by replaying.
            sharing: weft_trace::Sharing::All,
            ..MachineOptions::default()
        },
        strategy: "random:seed=1".into(),
    };
    let mut w = TraceWriter::create(&path, &header).expect("trace");
    let (mut events, mut step, mut rng) = (0u64, 0u64, 0x2545_f491_4f6c_dd1du64);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut put = |e: Event, events: &mut u64| {
        w.write(&e).expect("write");
        *events += 1;
    };
    let mut in_tx = [None::<u64>; 4];
    while events < EVENTS {
        let v = (next() % 4) as u32;
        let len = 1 + next() % 8;
        for _ in 0..len {
            let (vc, s) = (VcpuId(v), Step(step));
            let r = next();
            let acc = |kind, addr: u64, value| Event::Access {
                step: s,
                vcpu: vc,
                rip: 0x401000 + (r % 64) * 4,
                addr: GuestAddr(addr),
                size: 8,
                kind,
                value,
            };
            if r % 1000 == 0 {
                put(acc(AccessKind::Write, 0x9000, step), &mut events);
            } else if r % 97 == 0 {
                put(acc(AccessKind::AtomicRead, 0x8000, step), &mut events);
                put(acc(AccessKind::AtomicWrite, 0x8000, step + 1), &mut events);
            } else {
                let kind = if r % 3 == 0 {
                    AccessKind::Write
                } else {
                    AccessKind::Read
                };
                let cell = 0x10_0000 + v as u64 * 0x8_0000 + (r >> 20) % 4096 * 8;
                put(acc(kind, cell, r >> 40), &mut events);
            }
            let t = &mut in_tx[v as usize];
            match *t {
                None if r % 200 == 1 => {
                    *t = Some(step);
                    put(
                        Event::TxBegin {
                            step: s,
                            vcpu: vc,
                            rip: 0x402000,
                            depth: 1,
                        },
                        &mut events,
                    );
                }
                Some(begin) if step - begin > 20 => {
                    *t = None;
                    let e = if r % 8 == 0 {
                        Event::TxAbort {
                            step: s,
                            vcpu: vc,
                            rip: 0x402010,
                            begin_rip: 0x402000,
                            status: 6,
                            cause: AbortCause::Conflict {
                                by: VcpuId((v + 1) % 4),
                                by_rip: 0x401000,
                                line: 0x9000,
                                class: ConflictClass::WaR,
                            },
                        }
                    } else {
                        Event::TxCommit {
                            step: s,
                            vcpu: vc,
                            rip: 0x402020,
                            begin_rip: 0x402000,
                            read_lines: 2,
                            write_lines: 1,
                        }
                    };
                    put(e, &mut events);
                }
                _ => {}
            }
            if step % 100_000 == 50_000 {
                let label = format!("phase {}", step / 100_000);
                put(
                    Event::Mark {
                        step: s,
                        vcpu: vc,
                        label,
                    },
                    &mut events,
                );
            }
            if step % 250_000 == 0 {
                let bytes = format!("vcpu{v}: step {step}\n").into_bytes();
                put(
                    Event::Console {
                        step: s,
                        vcpu: vc,
                        fd: 1,
                        bytes,
                    },
                    &mut events,
                );
            }
            step += 1;
        }
        put(
            Event::Run {
                vcpu: VcpuId(v),
                points: len,
            },
            &mut events,
        );
    }
    put(
        Event::End {
            step: Step(step),
            verdict: Verdict::Assertion {
                vcpu: VcpuId(0),
                rip: 0x401000,
                message: "synthetic".into(),
            },
        },
        &mut events,
    );
    w.finish().expect("finish");
    let trace_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let page = dir.join("synthetic.html");
    let t = Instant::now();
    let r = report::build(&path, "synthetic.weft", &ReportOptions::default()).expect("report");
    let built = t.elapsed().as_secs_f64();
    let bytes = report::write(&r, &page).expect("write");
    let secs = t.elapsed().as_secs_f64();
    let l = &r.lod;
    println!();
    println!(
        "weft report, synthetic trace: {events} events ({} steps, {} accesses, {} runs, {} transactions, {} aborts; {:.1} MB trace)",
        r.meta.steps,
        l.total.accesses,
        l.total.runs,
        l.total.txs,
        l.total.aborts,
        trace_bytes as f64 / 1e6
    );
    println!(
        "  page: {:.1} MB in {secs:.2} s ({built:.2} s reading and analysing: 4 passes; peak memory {:.0} MiB)",
        bytes as f64 / 1e6,
        peak_rss_kib() as f64 / 1024.0
    );
    let summarised = l.total.accesses + l.total.runs + l.total.txs
        - (l.shown.accesses + l.shown.runs + l.shown.txs);
    println!(
        "  summarised: {summarised} events into {} buckets of {} steps per vCPU; shown individually: {} accesses, {} runs, {} transactions in {} detail windows; {} race arcs, {} ordered-conflict groups embedded (of {})",
        r.buckets.n,
        l.bucket_steps,
        l.shown.accesses,
        l.shown.runs,
        l.shown.txs,
        l.windows.len(),
        r.meta.races,
        r.races.len() as u64 - r.meta.races,
        r.meta.conflicts
    );
    match open_in_chromium(&page, &dir) {
        Some((page_secs, blank_secs)) => println!(
            "  headless chromium: opened and drawn in {page_secs:.2} s (an empty page: {blank_secs:.2} s)"
        ),
        None => println!("  headless chromium: not installed, opening time not measured"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Wall time for headless Chromium to load `page` and dump its DOM after the scripts ran,
/// and the same for an empty page (the browser's own start-up).
fn open_in_chromium(page: &std::path::Path, dir: &std::path::Path) -> Option<(f64, f64)> {
    let blank = dir.join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><title>x</title>").ok()?;
    let time = |p: &std::path::Path| -> Option<f64> {
        let profile = dir.join("chromium-profile");
        let t = Instant::now();
        let out = std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--window-size=1400,900",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("file://{}", p.display()))
            .output()
            .ok()?;
        let secs = t.elapsed().as_secs_f64();
        let dom = String::from_utf8_lossy(&out.stdout);
        (out.status.success() && (p == blank || dom.contains("data-state=\"ready\"")))
            .then_some(secs)
    };
    // The first start creates the profile and font caches: not the page's cost.
    time(&blank)?;
    let blank_secs = time(&blank)?;
    Some((time(page)?, blank_secs))
}
