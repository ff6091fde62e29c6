//! weft-fuzz: mutation fuzzing of what weft reads from outside, without nightly Rust.
//!
//! Targets:
//! - `trace`: recorded example traces, mutated (bytes flipped, cut short, bytes inserted,
//!   chunks spliced), then opened and read to the end as `weft inspect` and `weft races` do;
//! - `elf`: the example guests' ELF files, mutated, then parsed by the loader; every
//!   `--run-every`-th one that loads also runs on the machine for a few thousand steps (the
//!   guest is random code then: crashes and odd hypercalls are the guest's, never weft's);
//! - `cli`: command lines of every subcommand, mutated token by token, parsed in-process
//!   by weft's own clap definition; every `--run-every`-th one also runs as a `weft`
//!   process (`--weft PATH`, default: next to weft-fuzz), which must not panic (exit code
//!   101), die of a signal or hang (`--timeout` seconds).
//!
//! Any panic is a bug: the input is saved under `--crashes DIR` and the run exits with 1.
//! Deterministic for a seed. Usage:
//!     weft-fuzz trace|elf|cli [--iterations N] [--seed S] [--crashes DIR] [--run-every K]
//!                             [--weft PATH] [--timeout SECONDS]
//!     weft-fuzz cli --replay DIR [--weft PATH]   (run saved inputs: regression tests)

mod cli_target;
#[allow(dead_code)]
#[path = "../../cli/mod.rs"]
mod weft_cli;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use weft::machine::{Machine, RunConfig};
use weft_recorder::{Rng, StrategySpec};
use weft_trace::{MachineOptions, NullSink, TraceReader};

struct Args {
    target: String,
    iterations: u64,
    seed: u64,
    crashes: PathBuf,
    run_every: u64,
    weft: Option<PathBuf>,
    timeout: f64,
    replay: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let target = it.next().ok_or(
        "usage: weft-fuzz trace|elf|cli [--iterations N] [--seed S] [--crashes DIR] \
         [--run-every K] [--weft PATH] [--timeout SECONDS]",
    )?;
    if !["trace", "elf", "cli"].contains(&target.as_str()) {
        return Err(format!("unknown target `{target}` (trace, elf, cli)"));
    }
    let is_cli = target == "cli";
    let mut a = Args {
        target,
        iterations: 100_000,
        seed: 1,
        crashes: PathBuf::from("fuzz-crashes"),
        run_every: if is_cli { 1 } else { 100 },
        weft: None,
        timeout: 30.0,
        replay: None,
    };
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--iterations" => a.iterations = num()?,
            "--seed" => a.seed = num()?,
            "--run-every" => a.run_every = num()?.max(1),
            "--crashes" => a.crashes = PathBuf::from(&v),
            "--weft" => a.weft = Some(PathBuf::from(&v)),
            "--replay" => a.replay = Some(PathBuf::from(&v)),
            "--timeout" => {
                a.timeout = v
                    .parse::<f64>()
                    .ok()
                    .filter(|t| *t > 0.0 && *t < 1e9)
                    .ok_or(format!("--timeout: `{v}` is not a number of seconds"))?
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    Ok(a)
}

/// One mutation of `seed` input.
pub(crate) fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if b.is_empty() {
            b.push(rng.below(256) as u8);
            continue;
        }
        let at = rng.below(b.len() as u64) as usize;
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = rng.below(256) as u8,
            2 => b.truncate(at),
            3 => {
                let n = 1 + rng.below(16) as usize;
                let bytes: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
                b.splice(at..at, bytes);
            }
            4 => {
                // Copy a run of the input over another place (splices structure).
                let from = rng.below(b.len() as u64) as usize;
                let n = (1 + rng.below(64) as usize)
                    .min(b.len() - from)
                    .min(b.len() - at);
                let run = b[from..from + n].to_vec();
                b[at..at + n].copy_from_slice(&run);
            }
            _ => {
                // An interesting integer at a random place.
                let v: u64 = [0, 1, 0x7f, 0xff, 0xffff, u32::MAX as u64, u64::MAX, 1 << 40]
                    [rng.below(8) as usize];
                for (i, byte) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = b.get_mut(at + i) {
                        *x = *byte;
                    }
                }
            }
        }
    }
    b
}

/// Read a trace the way the front ends do; errors are fine, panics are not.
fn read_trace(path: &Path) {
    let Ok(r) = TraceReader::open(path) else {
        return;
    };
    let header = r.header().clone();
    let mut events = Vec::new();
    for e in r.into_events() {
        match e {
            Ok(e) => events.push(e),
            Err(_) => break,
        }
    }
    let sync = weft::races::sync_cells(&header, events.clone());
    let _ = weft::races::analyze(&header, sync, events.clone());
    let _ = weft::tmreport::analyze(&header, events);
}

/// Load (and sometimes run) a guest; errors and guest failures are fine, panics are not.
/// Returns whether it loaded.
fn load_elf(bytes: &[u8], run: bool) -> bool {
    let opts = MachineOptions {
        vcpus: 2,
        max_steps: 5_000,
        deadlock_window: 2_000,
        ..MachineOptions::default()
    };
    let Ok(m) = Machine::new(bytes, &opts) else {
        return false;
    };
    if run {
        let sink = std::rc::Rc::new(std::cell::RefCell::new(NullSink));
        let _ = m.run(
            StrategySpec::Random { seed: 1 }.build(),
            sink,
            RunConfig::default(),
        );
    }
    true
}

fn seeds(target: &str, dir: &Path) -> Vec<Vec<u8>> {
    let guests = ["racy_counter", "tm_elided_lock_buggy", "message_passing"];
    guests
        .iter()
        .map(|name| {
            let (_, _, elf) = weft::examples::find(name).expect("built-in example");
            if target == "elf" {
                return elf.to_vec();
            }
            let path = dir.join(format!("{name}.weft"));
            let opts = MachineOptions::default();
            let spec = StrategySpec::Random { seed: 2 };
            weft::session::record(name, elf, &opts, &spec, &path, RunConfig::default())
                .expect("record a seed trace");
            std::fs::read(&path).expect("seed trace")
        })
        .collect()
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("weft-fuzz: {e}");
            std::process::exit(2);
        }
    };
    // Panics are what we look for: keep their messages off the terminal, count them.
    std::panic::set_hook(Box::new(|_| {}));
    let dir = std::env::temp_dir().join(format!("weft-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    if a.target == "cli" {
        let weft = a.weft.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .expect("own path")
                .with_file_name("weft")
        });
        // The processes run in a scratch directory: the path must not be relative.
        let weft = std::fs::canonicalize(&weft).unwrap_or(weft);
        let cfg = cli_target::Config {
            iterations: a.iterations,
            seed: a.seed,
            crashes: a.crashes.clone(),
            run_every: a.run_every,
            weft,
            timeout: std::time::Duration::from_secs_f64(a.timeout),
            replay: a.replay.clone(),
        };
        let found = cli_target::fuzz(&cfg, &dir);
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(if found == 0 { 0 } else { 1 });
    }
    let inputs = seeds(&a.target, &dir);
    let mut rng = Rng::new(a.seed);
    let start = Instant::now();
    let mut crashes = 0u64;
    let mut loaded = 0u64;
    let case = dir.join("case.weft");
    for i in 0..a.iterations {
        let seed = &inputs[rng.below(inputs.len() as u64) as usize];
        let input = mutate(&mut rng, seed);
        let result = if a.target == "trace" {
            std::fs::write(&case, &input).expect("write case");
            catch_unwind(AssertUnwindSafe(|| read_trace(&case)))
        } else {
            let run = i % a.run_every == 0;
            catch_unwind(AssertUnwindSafe(|| loaded += load_elf(&input, run) as u64))
        };
        if result.is_err() {
            crashes += 1;
            let _ = std::fs::create_dir_all(&a.crashes);
            let out = a.crashes.join(format!("{}-{}-{i}.bin", a.target, a.seed));
            let _ = std::fs::write(&out, &input);
            eprintln!("weft-fuzz: PANIC on input {i}, saved to {}", out.display());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let secs = start.elapsed().as_secs_f64();
    let accepted = if a.target == "elf" {
        format!(", {loaded} loaded")
    } else {
        String::new()
    };
    println!(
        "weft-fuzz {}: {} inputs (seed {}) in {secs:.1} s ({:.0}/s){accepted}, {crashes} panic(s)",
        a.target,
        a.iterations,
        a.seed,
        a.iterations as f64 / secs.max(1e-9)
    );
    std::process::exit(if crashes == 0 { 0 } else { 1 });
}
