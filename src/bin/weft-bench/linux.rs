//! `weft-bench linux`: guest instructions per second of a static glibc pthread program
//! (tests/guests/linux/bench_pthreads.c) under `weft record` and `weft run`, against the
//! same binary running natively on this machine.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use weft::machine::{DebugEvent, Machine, RunConfig};
use weft::session;
use weft_recorder::StrategySpec;
use weft_trace::{LinuxOptions, MachineOptions, NullSink};

const ELF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/guests/linux/bench_pthreads.elf"));

fn options() -> MachineOptions {
    MachineOptions {
        vcpus: 64,
        ram_bytes: weft::machine::linux::DEFAULT_RAM,
        linux: Some(LinuxOptions {
            argv: vec!["bench_pthreads".into()],
            env: weft::machine::linux::DEFAULT_ENV
                .iter()
                .map(|s| s.to_string())
                .collect(),
            stdin: Vec::new(),
            random_seed: 0,
            cpus: weft::machine::linux::DEFAULT_CPUS,
        }),
        ..MachineOptions::default()
    }
}

/// Instructions the guest executes under the round-robin schedule (a debug machine counts
/// every instruction begun).
fn instructions(opts: &MachineOptions) -> u64 {
    instructions_of(ELF, opts)
}

/// Instructions `elf` executes under the round-robin schedule, counted by a debug machine.
pub fn instructions_of(elf: &[u8], opts: &MachineOptions) -> u64 {
    let m = Machine::new_debug(elf, opts).expect("bench guest");
    let sink = Rc::new(RefCell::new(NullSink));
    let strategy = StrategySpec::RoundRobin { quantum: 1000 }.build();
    let mut run = m.debug_run(strategy, sink).expect("debug run");
    while let DebugEvent::Paused { .. } = run.resume() {}
    let n = run.ctl().g;
    n
}

/// The fastest of `n` timings of `f`, in seconds.
fn best(n: usize, mut f: impl FnMut()) -> f64 {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

pub fn bench() {
    let opts = options();
    let insns = instructions(&opts);
    let dir = std::env::temp_dir().join(format!("weft-bench-linux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = dir.join("bench_pthreads");
    std::fs::write(&exe, ELF).expect("write the guest");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let native = best(10, || {
        let out = std::process::Command::new(&exe)
            .output()
            .expect("run natively");
        assert!(out.status.success());
    });
    let rr = StrategySpec::RoundRobin { quantum: 1000 };
    let run = best(3, || {
        let o = session::run("bench_pthreads", ELF, &opts, &rr, RunConfig::default()).unwrap();
        assert!(o.verdict.is_some_and(|v| v.is_pass()));
    });
    let trace = dir.join("bench.weft");
    let mut bytes = 0;
    let record = best(3, || {
        let r = session::record(
            "bench_pthreads",
            ELF,
            &opts,
            &rr,
            &trace,
            RunConfig::default(),
        )
        .unwrap();
        assert!(r.outcome.verdict.is_some_and(|v| v.is_pass()));
        bytes = r.bytes;
    });
    let mips = |s: f64| insns as f64 / s / 1e6;
    println!(
        "weft-bench linux: bench_pthreads (glibc, 4 threads + main), {:.1} M instructions",
        insns as f64 / 1e6
    );
    println!(
        "{:<44} {:>9.3} s {:>9.1} MIPS",
        "native (this machine)",
        native,
        mips(native)
    );
    println!(
        "{:<44} {:>9.3} s {:>9.1} MIPS  {:.4}x native",
        "weft run --linux (round-robin)",
        run,
        mips(run),
        native / run
    );
    println!(
        "{:<44} {:>9.3} s {:>9.1} MIPS  {:.4}x native, {:.2}x run; trace {} KiB",
        "weft record --linux (round-robin)",
        record,
        mips(record),
        native / record,
        run / record,
        bytes / 1024
    );
    let _ = std::fs::remove_dir_all(&dir);
}
