//! Subcommands of `weft`, one module each, and what they share: machine options, sizes,
//! exit codes and output helpers.

mod demo;
mod examples;
mod explore;
mod gdb;
mod inspect;
mod races;
mod record;
mod replay;
mod report;
mod tm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use weft_recorder::StrategySpec;
use weft_trace::{Backtrace, MachineOptions, TmOptions, Verdict};

/// The guest passed.
pub const EXIT_PASS: u8 = 0;
/// weft found a guest failure (assertion, exit status, crash, deadlock, budget).
pub const EXIT_FAILURE: u8 = 1;
/// Usage error or bad input (file, trace, options).
pub const EXIT_INPUT: u8 = 2;
/// `weft replay`: the replay diverged from the recording (it did not reproduce it, whether
/// the recording passed or failed).
pub const EXIT_DIVERGED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "weft",
    version,
    about = "Deterministic record, replay and schedule search for multithreaded x86-64 guests",
    long_about = "weft runs a static x86-64 ELF guest on the weft board, one emulated vCPU per guest \
thread over shared RAM, under a schedule controller that decides every interleaving. It records \
the schedule and every shared memory access into a trace that replays bit for bit.\n\n\
Static Linux programs run unchanged, each thread a vCPU, every system call emulated: C and C++ \
(gcc/g++ -static -pthread) and Rust (-C target-feature=+crt-static); see docs/linux.md.\n\n\
Start with `weft demo`. Exit codes: 0 guest passed, 1 guest failure found (or reproduced), 2 usage or input error, 3 a replay diverged from its recording, 130 recording interrupted by Ctrl-C (the trace is kept)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a guest and record its schedule and shared accesses into a trace
    Record(record::RecordArgs),
    /// Run a guest without recording (fastest)
    Run(record::RunArgs),
    /// Re-execute a trace under its recorded schedule and check every event
    #[command(
        after_help = "Exit codes: 0 the recorded run passed and the replay reproduced it; 1 the \
recorded run failed and the replay reproduced the failure; 2 bad input (no such file, not a \
trace, a trace cut short before its end); 3 the replay diverged from the recording (the step \
and both events are printed). --goto exits 0 when it reaches its step."
    )]
    Replay(replay::ReplayArgs),
    /// Search schedules (random, PCT, bounded DFS, race-directed) until the guest fails; save
    /// the failure and a minimized trace with the fewest preemptions found
    Explore(explore::ExploreArgs),
    /// Serve a trace to gdb (forwards and backwards, every vCPU a thread) on 127.0.0.1
    Gdbserver(gdb::GdbserverArgs),
    /// Summarise a trace, or list its events
    Inspect(inspect::InspectArgs),
    /// List the data races (and with --all every conflict) of a trace, with source lines
    Races(races::RacesArgs),
    /// Report a trace's transactions per XBEGIN site: commits, aborts by cause, conflicts
    Tm(tm::TmArgs),
    /// Write a self-contained HTML timeline of a trace: vCPU lanes, accesses, races, transactions, the failure
    Report(report::ReportArgs),
    /// Find the bug in a built-in racy guest, record it and replay it (under a minute)
    Demo(demo::DemoArgs),
    /// List the built-in example guests, or write them (ELF and C source) to a directory
    Examples(examples::ExamplesArgs),
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Record(a) => record::record(a),
        Command::Run(a) => record::run(a),
        Command::Replay(a) => replay::replay(a),
        Command::Explore(a) => explore::explore(a),
        Command::Gdbserver(a) => gdb::gdbserver(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Races(a) => races::races(a),
        Command::Tm(a) => tm::tm(a),
        Command::Report(a) => report::report(a),
        Command::Demo(a) => demo::demo(a),
        Command::Examples(a) => examples::examples(a),
    }
}

/// The guest and, for a Linux program, the process it starts as; shared by `record`,
/// `run` and `explore`.
#[derive(Args, Debug, Clone)]
pub struct GuestArgs {
    /// The guest: a static ELF64 x86-64 executable, for the weft board or for Linux
    guest: PathBuf,
    /// Arguments of a Linux guest (its argv[1..]); after `--` if they start with `-`
    #[arg(value_name = "ARGS")]
    args: Vec<String>,
    /// Run the guest as a Linux program (the default when its ELF says it is one: OS ABI
    /// GNU/Linux, or the ABI tag note every glibc executable has; musl ones need --linux)
    #[arg(long, conflicts_with = "board")]
    linux: bool,
    /// Run the guest on the weft board even if its ELF looks like a Linux program
    #[arg(long)]
    board: bool,
    /// Linux: an environment variable, NAME=VALUE, on top of the fixed default
    /// environment (docs/linux.md); repeatable
    #[arg(long, value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Linux: standard input from this file (its bytes go into the trace); default: empty
    #[arg(long, value_name = "FILE")]
    stdin: Option<PathBuf>,
    /// Linux: how many CPUs the process is told it has (sched_getaffinity, /sys)
    #[arg(long, default_value_t = weft::machine::linux::DEFAULT_CPUS,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    cpus: u32,
    /// Linux: the most threads alive at once, the main one included (1..=64); each thread
    /// is a vCPU, an exited thread's vCPU is reused, and a clone beyond waits for an exit
    #[arg(long, default_value_t = weft_trace::MAX_VCPUS)]
    max_threads: u32,
    /// Linux: seed of getrandom() and of the AT_RANDOM bytes
    #[arg(long, default_value_t = 0)]
    random_seed: u64,
}

impl GuestArgs {
    /// The guest's display name and ELF bytes, and the machine options `m` and the guest's
    /// kind (board or Linux) give.
    fn load(&self, m: &MachineArgs) -> Result<(String, Vec<u8>, MachineOptions)> {
        let elf = read_guest(&self.guest)?;
        let name = self.guest.display().to_string();
        let linux = self.linux || (!self.board && weft::machine::looks_like_linux(&elf));
        let mut opts = m.options();
        if !linux {
            if !self.args.is_empty() {
                bail!(
                    "{name}: arguments ({}) are for Linux guests; this one runs on the weft board (add --linux if it is a Linux program)",
                    self.args.join(" ")
                );
            }
            return Ok((name, elf, opts));
        }
        if m.vcpus.is_some() {
            bail!("{name}: --vcpus is for board guests; a Linux guest's threads are its vCPUs (--max-threads bounds them)");
        }
        let stdin = match &self.stdin {
            Some(p) => std::fs::read(p)
                .with_context(|| format!("{}: cannot read (--stdin)", p.display()))?,
            None => Vec::new(),
        };
        let mut env: Vec<String> = weft::machine::linux::DEFAULT_ENV
            .iter()
            .map(|s| s.to_string())
            .collect();
        for e in &self.env {
            let Some((k, _)) = e.split_once('=') else {
                bail!("--env {e}: use NAME=VALUE");
            };
            env.retain(|x| x.split_once('=').is_none_or(|(n, _)| n != k));
            env.push(e.clone());
        }
        let mut argv = vec![name.clone()];
        argv.extend(self.args.iter().cloned());
        opts.vcpus = self.max_threads;
        opts.ram_bytes = m.ram.unwrap_or(weft::machine::linux::DEFAULT_RAM);
        opts.linux = Some(weft_trace::LinuxOptions {
            argv,
            env,
            stdin,
            random_seed: self.random_seed,
            cpus: self.cpus,
        });
        Ok((name, elf, opts))
    }

    /// Where a trace of this guest goes by default.
    fn default_trace(&self) -> PathBuf {
        default_trace_path(&self.guest)
    }
}

/// Options that shape the machine, shared by `record` and `run`.
#[derive(Args, Debug, Clone)]
pub struct MachineArgs {
    /// Number of vCPUs of a board guest (1..=64) [default: 2]
    #[arg(long)]
    vcpus: Option<u32>,
    /// Scheduling strategy: round-robin[:quantum=N], random[:seed=N], pct[:seed=N,depth=D,steps=K],
    /// idb[:seed=N,steps=K] (delay bounding), portfolio, dfs[:bound=C], race-directed (the
    /// last two search with `weft explore`; explore uses the portfolio when this is left at
    /// round-robin)
    #[arg(long, default_value = "round-robin")]
    strategy: StrategySpec,
    /// Seed for the strategy (overrides a seed given in --strategy)
    #[arg(long)]
    seed: Option<u64>,
    /// Stop with a budget verdict after this many steps (scheduling points)
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_steps: Option<u64>,
    /// Guest RAM size (e.g. 64M, 1G) [default: 64M; 2G for a Linux guest, whose
    /// untouched memory costs nothing]
    #[arg(long, value_parser = parse_size)]
    ram: Option<u64>,
    /// Stack size per vCPU (e.g. 64K)
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    stack: u64,
    /// Also schedule on and record accesses to a vCPU's own stack
    #[arg(long)]
    trace_stack: bool,
    /// Which accesses are scheduling points and recorded: `pages` (those to pages more
    /// than one vCPU has touched: fast, small traces) or `all` (every access outside the
    /// own stack, as weft before format 5 did)
    #[arg(long, value_enum, default_value = "pages")]
    sharing: SharingArg,
    /// Steps without progress, with every vCPU spinning, before a deadlock verdict
    #[arg(long, default_value_t = MachineOptions::default().deadlock_window,
          value_parser = clap::value_parser!(u64).range(1..))]
    deadlock_window: u64,
    /// RTM read-set capacity: distinct 64-byte lines a transaction may read
    #[arg(long, default_value_t = TmOptions::default().read_lines, value_parser = clap::value_parser!(u32).range(1..))]
    tm_read_lines: u32,
    /// RTM write-set capacity: distinct 64-byte lines a transaction may write
    #[arg(long, default_value_t = TmOptions::default().write_lines, value_parser = clap::value_parser!(u32).range(1..))]
    tm_write_lines: u32,
    /// Abort this share of transactions at XBEGIN (status 0), to exercise fallback paths:
    /// a fraction (0.1) or a percentage (10%); drawn from the strategy's seed
    #[arg(long, value_parser = parse_rate, default_value = "0")]
    tm_abort_rate: u32,
    /// Abort the K-th transaction of the run (counted from 1 over all vCPUs); repeatable
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    tm_abort_nth: Vec<u64>,
}

/// `--sharing`: see [`weft_trace::Sharing`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharingArg {
    Pages,
    All,
}

impl MachineArgs {
    fn options(&self) -> MachineOptions {
        MachineOptions {
            vcpus: self.vcpus.unwrap_or(2),
            ram_bytes: self.ram.unwrap_or(64 << 20),
            stack_bytes: self.stack,
            max_steps: self.max_steps.unwrap_or(0),
            trace_stack: self.trace_stack,
            sharing: match self.sharing {
                SharingArg::Pages => weft_trace::Sharing::default(),
                SharingArg::All => weft_trace::Sharing::All,
            },
            deadlock_window: self.deadlock_window,
            tm: TmOptions {
                read_lines: self.tm_read_lines,
                write_lines: self.tm_write_lines,
                abort_ppm: self.tm_abort_rate,
                abort_seed: self.seed.or(self.strategy.seed()).unwrap_or(0),
                abort_nth: self.tm_abort_nth.clone(),
            },
            ..MachineOptions::default()
        }
    }

    fn strategy(&self) -> StrategySpec {
        match self.seed {
            Some(s) => self.strategy.clone().with_seed(s),
            None => self.strategy.clone(),
        }
    }
}

/// Parse an abort rate, `0.1` or `10%`, into parts per million.
pub fn parse_rate(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n, 10_000.0),
        None => (t, 1_000_000.0),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a rate (try 0.1 or 10%)"))?;
    let ppm = v * scale;
    if !(0.0..=1_000_000.0).contains(&ppm) {
        return Err(format!("`{s}` is not between 0 and 1 (0% and 100%)"));
    }
    Ok(ppm.round() as u32)
}

/// Parse a size such as `65536`, `64K`, `64KiB`, `16M`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (try 65536, 64K, 16M, 1G)"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(format!(
                "`{s}` has an unknown unit `{unit}` (use K, M, G or T)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// The full access log of `trace` for an analysis (`session::full_log`): derived by a
/// replay, or, when that cannot be done (a guest that no longer runs), the recording alone
/// with a warning: what was recorded is still worth analysing.
pub fn full_log(trace: &Path) -> Result<weft::session::FullLog> {
    match weft::session::full_log(trace) {
        Ok(log) => Ok(log),
        Err(weft::session::SessionError::Trace(e)) => Err(e.into()),
        Err(e) => {
            eprintln!(
                "weft: warning: {e:#}; using the recorded accesses only (those to pages one \
                 vCPU alone had touched are missing)"
            );
            Ok(weft::session::FullLog::recorded(trace))
        }
    }
}

/// Read a guest ELF, naming the file in errors.
fn read_guest(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("{}: cannot read the guest", path.display()))
}

/// The exit code for a verdict.
fn verdict_code(v: Option<&Verdict>) -> ExitCode {
    match v {
        Some(Verdict::Pass) => ExitCode::from(EXIT_PASS),
        _ => ExitCode::from(EXIT_FAILURE),
    }
}

/// The one-line verdict summary printed at the end of a run.
fn verdict_line(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "verdict: pass".to_string(),
        other => format!("verdict: FAIL ({}): {other}", other.class()),
    }
}

/// Extra lines for a verdict (weft::failure::details), and for a board guest's crash the
/// hint that it may be a Linux program (`linux`: the run was on the Linux platform).
fn verdict_details(
    v: &Verdict,
    stacks: &[Backtrace],
    clues: &weft::failure::Clues,
    elf: &[u8],
    linux: bool,
) -> Option<String> {
    if v.is_pass() {
        return None;
    }
    let d = weft::failure::details(v, stacks, clues, &weft::debuginfo::SourceMap::new(elf));
    let hint = if linux {
        None
    } else {
        weft::failure::board_hint(v, elf)
    };
    match (d, hint) {
        (Some(d), Some(h)) => Some(format!("{d}\n{h}")),
        (d, h) => d.or(h),
    }
}

/// General registers and RFLAGS, four per line (each line starts with a newline).
fn registers(regs: &[u64; 17]) -> String {
    weft::failure::registers(regs)
}

/// A trace name next to `guest` that does not overwrite an existing file.
fn default_trace_path(guest: &Path) -> PathBuf {
    let stem = guest
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "guest".into());
    let first = PathBuf::from(format!("{stem}.weft"));
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|i| PathBuf::from(format!("{stem}-{i}.weft")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Human-readable byte count.
fn human_bytes(n: u64) -> String {
    match n {
        n if n < 1 << 10 => format!("{n} B"),
        n if n < 1 << 20 => format!("{:.1} KiB", n as f64 / 1024.0),
        n if n < 1 << 30 => format!("{:.1} MiB", n as f64 / (1 << 20) as f64),
        n => format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64),
    }
}

/// Reject paths that clap accepted but are unusable, before any work starts.
fn check_output(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!(
            "{}: is a directory; give a trace file name with -o",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12Q").unwrap_err().contains("unknown unit"));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G")
            .unwrap_err()
            .contains("too large"));
    }
}
