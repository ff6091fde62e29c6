//! The `cli` target: command lines of every subcommand, mutated token by token.
//!
//! Every input is parsed in-process by weft's own clap definition (the `weft_cli` module
//! is `src/cli`, compiled into this binary too), which must not panic; every
//! `run_every`-th input also runs as a real `weft` process in a scratch directory, which
//! must not exit with 101 (a panic), die of a signal or hang. Files in the command lines
//! are placeholders (a guest, a trace, a cut trace, garbage, a directory, ...) that are
//! written afresh before each process, so that a command line writing over one of them
//! does not change the next.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use weft::machine::RunConfig;
use weft_recorder::{Rng, StrategySpec};
use weft_trace::MachineOptions;

use super::weft_cli;

pub struct Config {
    pub iterations: u64,
    pub seed: u64,
    pub crashes: PathBuf,
    pub run_every: u64,
    pub weft: PathBuf,
    pub timeout: Duration,
    /// Instead of fuzzing, run the saved inputs in this directory (one token per line).
    pub replay: Option<PathBuf>,
}

/// Valid command lines, one per use of each subcommand; upper-case words are placeholders.
const CORPUS: &[&str] = &[
    "run GUEST --vcpus 2 -q",
    "run GUEST --strategy random:seed=3 --max-steps 5000 --ram 16M --stack 32K",
    "run TMGUEST --tm-abort-rate 10% --tm-abort-nth 2 --tm-read-lines 8 --tm-write-lines 4",
    "run GUEST --strategy round-robin:quantum=7 --deadlock-window 5000 --trace-stack",
    "record GUEST -o OUT --strategy pct:seed=1,depth=2,steps=500 -q",
    "record GUEST -o OUT --max-trace-bytes 100K --seed 4 --vcpus 3",
    "record TMGUEST -o OUT --tm-abort-rate 0.5 -q",
    "replay TRACE -q",
    "replay TRACE --goto 30 --regs",
    "replay CUT",
    "replay TRACE --gdb --checkpoint-every 100 -- -batch",
    "inspect TRACE --events --vcpu 1 --from 3 --to 40",
    "inspect TRACE --json",
    "inspect TRACE --goto 12",
    "inspect TRACE --race 1",
    "inspect TMTRACE --events --json",
    "races TRACE --all --json",
    "races TRACE --dot OUT",
    "tm TMTRACE --json",
    "tm TRACE",
    "explore GUEST --schedules 5 --jobs 1 --out OUTDIR",
    "explore GUEST --strategy dfs:bound=1 --schedules 5 --no-minimize --json --out OUTDIR",
    "explore GUEST --shard 1/2 --schedules 4 --time 2 --out OUTDIR --all-failures",
    "explore TMGUEST --strategy race-directed --schedules 3 --out OUTDIR",
    "gdbserver TRACE --port 0",
    "gdbserver TRACE --port 0 --address ::1 --checkpoint-every 7",
    "examples",
    "examples --out OUTDIR",
    "demo --out OUTDIR --schedules 3 --vcpus 2",
    "help record",
    "--version",
];

/// Values that tend to break parsers and the code behind them.
const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "-1",
    "2",
    "3",
    "7",
    "64",
    "65",
    "4096",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "1e308",
    "-1e308",
    "NaN",
    "inf",
    "0.5",
    "1.0000001",
    "100%",
    "150%",
    "-5%",
    "%",
    "1/0",
    "0/0",
    "2/1",
    "9/9",
    "1/18446744073709551615",
    "64K",
    "1K",
    "0K",
    "4095",
    "1M",
    "16E",
    "99999999999999G",
    "1T",
    "2T",
    "17179869184G",
    "x",
    "--",
    "-",
    "=",
    "-q",
    "--help",
    "random",
    "random:seed=",
    "random:seed=18446744073709551615",
    "pct:depth=0",
    "pct:seed=1,depth=99999,steps=0",
    "pct:seed=1,depth=1,steps=18446744073709551615",
    "dfs:bound=0",
    "dfs:bound=4294967295",
    "race-directed",
    "round-robin:quantum=0",
    "round-robin:quantum=18446744073709551615",
    "round-robin:bogus=1",
    "127.0.0.1",
    "0.0.0.0",
    "::1",
    "::",
    "256.1.1.1",
    "é",
    "\u{202e}",
    "GUEST",
    "TMGUEST",
    "TRACE",
    "TMTRACE",
    "CUT",
    "GARBAGE",
    "EMPTY",
    "ELFHEAD",
    "DIR",
    "MISSING",
    "OUT",
    "OUTDIR",
];

/// Placeholder files: name, contents (written before each process).
struct Files {
    root: PathBuf,
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Files {
    fn new(root: &Path) -> Files {
        let example = |name| weft::examples::find(name).expect("built-in example").2;
        let record = |name: &str, elf: &[u8]| {
            let p = root.join(format!("{name}.seed.weft"));
            let spec = StrategySpec::Random { seed: 2 };
            let opts = MachineOptions::default();
            weft::session::record(name, elf, &opts, &spec, &p, RunConfig::default())
                .expect("record a seed trace");
            std::fs::read(&p).expect("seed trace")
        };
        let guest = example("racy_counter").to_vec();
        let tm_guest = example("tm_elided_lock_buggy").to_vec();
        let trace = record("racy_counter", &guest);
        let tm_trace = record("tm_elided_lock_buggy", &tm_guest);
        let cut = trace[..trace.len() * 2 / 3].to_vec();
        let mut rng = Rng::new(99);
        let garbage = (0..3000).map(|_| rng.below(256) as u8).collect();
        let elf_head = guest[..64].to_vec();
        let files = vec![
            ("GUEST", guest),
            ("TMGUEST", tm_guest),
            ("TRACE", trace),
            ("TMTRACE", tm_trace),
            ("CUT", cut),
            ("GARBAGE", garbage),
            ("EMPTY", Vec::new()),
            ("ELFHEAD", elf_head),
        ];
        Files {
            root: root.to_path_buf(),
            files,
        }
    }

    fn path(&self, placeholder: &str) -> Option<PathBuf> {
        let name = match placeholder {
            "DIR" => "dir",
            "MISSING" => "missing",
            "OUT" => "out.weft",
            "OUTDIR" => "outdir",
            p if self.files.iter().any(|(n, _)| *n == p) => p,
            _ => return None,
        };
        Some(self.root.join("files").join(name))
    }

    /// Put every placeholder back as it was (a command may have written over one).
    fn restore(&self) {
        let dir = self.root.join("files");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(self.root.join("cwd"));
        std::fs::create_dir_all(dir.join("dir")).expect("scratch");
        std::fs::create_dir_all(dir.join("outdir")).expect("scratch");
        std::fs::create_dir_all(self.root.join("cwd")).expect("scratch");
        for (name, bytes) in &self.files {
            std::fs::write(dir.join(name), bytes).expect("write a placeholder");
        }
    }

    /// The arguments of a token list, placeholders replaced by paths.
    fn resolve(&self, tokens: &[String]) -> Vec<String> {
        tokens
            .iter()
            .map(|t| match self.path(t) {
                Some(p) => p.display().to_string(),
                None => t.clone(),
            })
            .collect()
    }
}

/// A flag of a subcommand, and whether it takes a value.
type Flag = (String, bool);

/// Every subcommand's flags, from weft's clap definition.
struct Grammar {
    subs: Vec<(String, Vec<Flag>)>,
}

impl Grammar {
    fn new() -> Grammar {
        let cmd = weft_cli::Cli::command();
        let subs = cmd
            .get_subcommands()
            .map(|sub| {
                let mut flags = Vec::new();
                for arg in sub.get_arguments() {
                    let takes = arg.get_action().takes_values();
                    if let Some(l) = arg.get_long() {
                        flags.push((format!("--{l}"), takes));
                    }
                    if let Some(c) = arg.get_short() {
                        flags.push((format!("-{c}"), takes));
                    }
                }
                (sub.get_name().to_string(), flags)
            })
            .collect();
        Grammar { subs }
    }

    /// The flags of the subcommand a command line starts with (any subcommand's if none).
    fn flags(&self, t: &[String]) -> &[Flag] {
        let sub = t.first().map(String::as_str).unwrap_or("");
        self.subs
            .iter()
            .find(|(n, _)| n == sub)
            .or(self.subs.first())
            .map_or(&[], |(_, f)| f.as_slice())
    }

    /// Whether token `i` of `t` is a value: a positional, or the value of a flag.
    fn is_value(&self, t: &[String], i: usize) -> bool {
        if i == 0 || t[i].starts_with('-') {
            return false;
        }
        let prev = &t[i - 1];
        !prev.starts_with('-') || self.flags(t).iter().any(|(f, takes)| *takes && f == prev)
    }
}

fn pick<'a, T>(rng: &mut Rng, v: &'a [T]) -> &'a T {
    &v[rng.below(v.len() as u64) as usize]
}

/// One to three token mutations of a corpus line (mostly one, and mostly ones that keep
/// the line's shape: a value replaced, a flag of the same subcommand added; lines mangled
/// further are refused by the parser before anything runs).
fn mutate(rng: &mut Rng, line: &str, g: &Grammar) -> Vec<String> {
    let mut t: Vec<String> = line.split(' ').map(str::to_string).collect();
    let rounds = [1, 1, 1, 2, 2, 3][rng.below(6) as usize];
    for _ in 0..rounds {
        let at = rng.below(t.len() as u64 + 1) as usize;
        match rng.below(16) {
            0..=5 => {
                // A value replaced.
                let values: Vec<usize> = (0..t.len()).filter(|&i| g.is_value(&t, i)).collect();
                if !values.is_empty() {
                    let i = *pick(rng, &values);
                    t[i] = pick(rng, VALUES).to_string();
                }
            }
            6..=9 => {
                // A flag of this subcommand, with a value if it takes one.
                let flags = g.flags(&t).to_vec();
                if !flags.is_empty() {
                    let (f, takes) = pick(rng, &flags).clone();
                    let at = at.max(1).min(t.len());
                    if takes {
                        t.insert(at, pick(rng, VALUES).to_string());
                    }
                    t.insert(at, f);
                }
            }
            10 if at < t.len() => {
                t.remove(at);
            }
            11 if at < t.len() => {
                let x = t[at].clone();
                t.insert(at, x);
            }
            12 if t.len() >= 2 => {
                let b = rng.below(t.len() as u64) as usize;
                let a = at.min(t.len() - 1);
                t.swap(a, b);
            }
            13 if !t.is_empty() => t[0] = pick(rng, &g.subs).0.clone(),
            14 if at < t.len() => {
                // `--flag=value` forms, and bytes changed inside a token.
                let mut b = t[at].clone().into_bytes();
                if !b.is_empty() && rng.below(2) == 0 {
                    let i = rng.below(b.len() as u64) as usize;
                    b[i] = b"=,:/%.-0x9Z"[rng.below(11) as usize];
                    t[at] = String::from_utf8_lossy(&b).into_owned();
                } else {
                    t[at] = format!("{}={}", t[at], pick(rng, VALUES));
                }
            }
            _ => {
                // Tokens of another command line spliced in.
                let other = *pick(rng, CORPUS);
                let extra: Vec<String> = other.split(' ').skip(1).map(str::to_string).collect();
                let n = extra.len().min(1 + rng.below(3) as usize);
                let from = rng.below((extra.len() - n + 1) as u64) as usize;
                t.splice(at..at, extra[from..from + n].iter().cloned());
            }
        }
    }
    t
}

/// How a run of an input ended.
enum Outcome {
    Fine,
    /// A panic, a signal, or a hang of a command that should answer quickly.
    Finding(String),
    /// Killed at the timeout while doing work its arguments asked for (a search of 2^32
    /// schedules, a run with no step budget): saved for review, not a finding by itself.
    Slow(String),
}

/// Subcommands whose running time is set by their arguments (schedules, steps), so that a
/// timeout may be a long job rather than a hang.
const LONG_JOBS: &[&str] = &["explore", "demo", "run", "record"];

/// How a `weft` process ended.
fn run_process(cfg: &Config, files: &Files, args: &[String]) -> Outcome {
    files.restore();
    let mut cmd = Command::new(&cfg.weft);
    cmd.args(args)
        .current_dir(files.root.join("cwd"))
        .env("WEFT_GDB", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only setpgid, async-signal-safe, between fork and exec: its own process group
    // so that a timeout kills what it started too (the gdbserver's replay process).
    unsafe {
        cmd.pre_exec(|| {
            libc::setpgid(0, 0);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Finding(format!("cannot start {}: {e}", cfg.weft.display())),
    };
    let pid = child.id() as i32;
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let kill = || {
        // SAFETY: signals our own child's process group.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    };
    let mut served = false;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        // A gdbserver waiting for gdb has done its job: stop it.
        if args.iter().any(|a| a == "gdbserver") && start.elapsed() > Duration::from_millis(300) {
            served = true;
            kill();
        }
        if start.elapsed() > cfg.timeout {
            kill();
            let _ = child.wait();
            let _ = reader.join();
            let why = format!("no answer after {:?} (killed)", cfg.timeout);
            return match args.first() {
                Some(sub) if LONG_JOBS.contains(&sub.as_str()) => Outcome::Slow(why),
                _ => Outcome::Finding(why),
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    kill(); // anything it left behind in its group
    let err = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    if err.contains("panicked at") || status.code() == Some(101) {
        let line = err.lines().find(|l| l.contains("panicked")).unwrap_or("");
        return Outcome::Finding(format!("panic (exit {:?}): {line}", status.code()));
    }
    match status.signal() {
        Some(libc::SIGKILL) if served => Outcome::Fine,
        Some(sig) => Outcome::Finding(format!("killed by signal {sig}: {}", err.trim())),
        None => Outcome::Fine,
    }
}

/// Parse `tokens` in-process and run them as a process.
fn check(cfg: &Config, files: &Files, tokens: &[String]) -> Outcome {
    let args = files.resolve(tokens);
    let parse = catch_unwind(AssertUnwindSafe(|| {
        weft_cli::Cli::try_parse_from(std::iter::once("weft".to_string()).chain(args.clone()))
            .is_ok()
    }));
    if parse.is_err() {
        return Outcome::Finding("panic while parsing (in-process)".to_string());
    }
    run_process(cfg, files, &args)
}

/// Run every saved input of `dir` (regression tests); returns the number still failing.
fn replay(cfg: &Config, files: &Files, dir: &Path) -> u64 {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    inputs.sort();
    let mut failing = 0;
    for p in &inputs {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let tokens: Vec<String> = text.lines().map(str::to_string).collect();
        match check(cfg, files, &tokens) {
            Outcome::Finding(why) | Outcome::Slow(why) => {
                failing += 1;
                eprintln!(
                    "weft-fuzz: {}: weft {}: {why}",
                    p.display(),
                    tokens.join(" ")
                );
            }
            Outcome::Fine => println!("ok   {}", p.display()),
        }
    }
    println!(
        "weft-fuzz cli: replayed {} saved inputs, {failing} panic(s) or hang(s)",
        inputs.len()
    );
    failing
}

/// Run the target; returns the number of findings.
pub fn fuzz(cfg: &Config, dir: &Path) -> u64 {
    let files = Files::new(dir);
    if let Some(saved) = &cfg.replay {
        return replay(cfg, &files, saved);
    }
    let grammar = Grammar::new();
    let mut rng = Rng::new(cfg.seed);
    let start = Instant::now();
    let (mut parsed, mut ran, mut findings, mut slow) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..cfg.iterations {
        let line = *pick(&mut rng, CORPUS);
        let tokens = mutate(&mut rng, line, &grammar);
        let args = files.resolve(&tokens);
        let parse = catch_unwind(AssertUnwindSafe(|| {
            weft_cli::Cli::try_parse_from(std::iter::once("weft".to_string()).chain(args.clone()))
                .is_ok()
        }));
        let mut outcome = match parse {
            Ok(ok) => {
                parsed += ok as u64;
                Outcome::Fine
            }
            Err(_) => Outcome::Finding("panic while parsing (in-process)".to_string()),
        };
        // Command lines that parse run as processes every `run_every`-th time; those the
        // parser refuses (a quick exit 2) ten times less often.
        let ok = matches!(parse, Ok(true));
        let every = if ok {
            cfg.run_every
        } else {
            cfg.run_every * 10
        };
        let seen = if ok { parsed } else { i - parsed };
        if matches!(outcome, Outcome::Fine) && seen % every == 0 {
            ran += 1;
            outcome = run_process(cfg, &files, &args);
        }
        let (why, prefix) = match outcome {
            Outcome::Fine => continue,
            Outcome::Finding(why) => {
                findings += 1;
                (why, "cli")
            }
            Outcome::Slow(why) => {
                slow += 1;
                (why, "slow")
            }
        };
        {
            let _ = std::fs::create_dir_all(&cfg.crashes);
            let out = cfg.crashes.join(format!("{prefix}-{}-{i}.txt", cfg.seed));
            let _ = std::fs::write(&out, tokens.join("\n") + "\n");
            eprintln!(
                "weft-fuzz: input {i}: weft {}: {why}; saved to {}",
                tokens.join(" "),
                out.display()
            );
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "weft-fuzz cli: {} inputs (seed {}) in {secs:.1} s ({:.0}/s), {parsed} parsed, {ran} run \
         as processes, {findings} panic(s) or hang(s), {slow} long job(s) stopped at the \
         timeout",
        cfg.iterations,
        cfg.seed,
        cfg.iterations as f64 / secs.max(1e-9)
    );
    findings
}
