//! Time travel over a trace: the [`weft_gdb::Debuggee`] that `weft gdbserver` serves.
//!
//! The front (this process, which talks to gdb) never runs the guest. An executor process
//! replays the trace on a debug machine and pauses at instruction boundaries; checkpoints
//! are dormant forks of it (see `executor`). A position is the number of instructions begun
//! over all vCPUs, which the recorded schedule makes the same on every replay. Going
//! backwards activates the latest checkpoint before the target and runs forward to it, so
//! a reverse motion costs at most about one checkpoint interval of re-execution per
//! interval searched.

mod executor;
mod process;
mod proto;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use weft_gdb::{Debuggee, Motion, Regs, Stop, StopKind, Stops, Vcpu};
use weft_trace::{Event, TraceHeader, TraceReader};

use crate::machine::debug::{Goal, PauseReason};
use crate::races::RaceReport;
use proto::{CheckpointInfo, Request, Response, RunEnd, RunRequest, Status};

/// Steps between automatic checkpoints unless told otherwise.
pub const DEFAULT_CHECKPOINT_EVERY: u64 = 1 << 20;

/// A debugging session over one trace.
pub struct TimeTravel {
    trace: PathBuf,
    header: TraceHeader,
    /// vCPUs of the run (a Linux guest: the threads it ever had), all shown to gdb.
    vcpus: u32,
    /// Holds the checkpoint sockets; removed on drop.
    dir: PathBuf,
    /// Its other end is in every executor and checkpoint: they exit when this one closes.
    _lifeline: UnixStream,
    conn: UnixStream,
    status: Status,
    /// Whether the executor's run is over (it must be replaced to go anywhere).
    exec_ended: bool,
    /// Sorted by position.
    checkpoints: Vec<CheckpointInfo>,
    every: u64,
    /// The last position of the history and the run's verdict, once known.
    end: Option<(u64, String)>,
    /// For `monitor`: the schedule and the races, read when first asked for.
    runs: Option<Vec<(u32, u64)>>,
    races: Option<RaceReport>,
}

impl TimeTravel {
    /// Start a session on the trace at `path`, taking a checkpoint every `every` steps.
    pub fn open(path: &Path, every: u64) -> anyhow::Result<TimeTravel> {
        let reader = TraceReader::open(path)?;
        let header = reader.header().clone();
        drop(reader);
        crate::machine::Machine::new(&header.guest.elf, &header.options).map_err(|e| {
            anyhow::anyhow!(
                "{}: embedded guest {}: {e}",
                path.display(),
                header.guest.name
            )
        })?;
        let dir = std::env::temp_dir().join(format!(
            "weft-gdb-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", dir.display()))?;
        let (lifeline, child_lifeline) = UnixStream::pair()?;
        let (conn, child_conn) = UnixStream::pair()?;
        process::become_subreaper();
        match process::fork()? {
            process::Fork::Child => {
                drop(lifeline);
                drop(conn);
                executor::main(path, child_conn, child_lifeline, dir)
            }
            process::Fork::Parent(_) => {}
        }
        drop(child_lifeline);
        drop(child_conn);
        let vcpus = crate::session::vcpus_in(path, &header)?;
        let mut tt = TimeTravel {
            trace: path.to_path_buf(),
            header,
            vcpus,
            dir,
            _lifeline: lifeline,
            conn,
            status: Status::default(),
            exec_ended: false,
            checkpoints: Vec::new(),
            every: every.max(1),
            end: None,
            runs: None,
            races: None,
        };
        match proto::receive::<Response>(&mut tt.conn) {
            Ok(Response::Checkpoint(c)) => tt.add_checkpoint(c),
            Ok(Response::Error(e)) => anyhow::bail!("{e}"),
            Ok(other) => anyhow::bail!("the replay process said {other:?}"),
            Err(e) => anyhow::bail!("the replay process failed to start: {e}"),
        }
        tt.refresh().map_err(|e| anyhow::anyhow!(e))?;
        Ok(tt)
    }

    /// Write the trace's guest ELF into the session's directory, for gdb's symbols.
    pub fn guest_elf(&self) -> anyhow::Result<PathBuf> {
        let name = Path::new(&self.header.guest.name)
            .file_name()
            .map_or_else(|| "guest".into(), |n| n.to_string_lossy().to_string());
        self.write_file(&name, &self.header.guest.elf)
    }

    /// Write the gdb script of the session (see [`gdb_script`]) into its directory.
    pub fn gdb_script(&self) -> anyhow::Result<PathBuf> {
        let sources = self.builtin_sources()?;
        self.write_file("weft.gdb", gdb_script(sources.as_deref()).as_bytes())
    }

    /// If the guest is a built-in example, write its source (and weft.h) where its debug
    /// information says they are, below the session's directory, and return that directory:
    /// the sources gdb would otherwise look for in the weft repository.
    fn builtin_sources(&self) -> anyhow::Result<Option<PathBuf>> {
        let elf = self.header.guest.elf.as_slice();
        let board = crate::examples::EXAMPLES.iter().find(|e| e.2 == elf);
        let linux = crate::examples::LINUX_EXAMPLES.iter().find(|e| e.2 == elf);
        let (rel, src) = match (board, linux) {
            (Some((name, src, _)), _) => (format!("src/examples/{name}.c"), *src),
            (None, Some((name, src, _))) => (format!("src/examples/linux/{name}.c"), *src),
            (None, None) => return Ok(None),
        };
        self.write_file(&rel, src.as_bytes())?;
        self.write_file(
            "src/examples/include/weft.h",
            crate::examples::WEFT_H.as_bytes(),
        )?;
        Ok(Some(self.dir.join("src")))
    }

    /// Write `bytes` to `rel` below the session's directory (removed when the session ends).
    fn write_file(&self, rel: &str, bytes: &[u8]) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("{}: cannot create: {e}", parent.display()))?;
        }
        std::fs::write(&path, bytes)
            .map_err(|e| anyhow::anyhow!("{}: cannot write: {e}", path.display()))?;
        Ok(path)
    }

    fn add_checkpoint(&mut self, c: CheckpointInfo) {
        let at = self
            .checkpoints
            .partition_point(|x| x.status.g <= c.status.g);
        self.checkpoints.insert(at, c);
    }

    fn request(&mut self, req: &Request) -> Result<Response, String> {
        proto::send(&mut self.conn, req).map_err(|e| format!("the replay process is gone: {e}"))?;
        match proto::receive::<Response>(&mut self.conn) {
            Ok(Response::Error(e)) => Err(e),
            Ok(r) => Ok(r),
            Err(e) => Err(format!("the replay process is gone: {e}")),
        }
    }

    fn refresh(&mut self) -> Result<(), String> {
        match self.request(&Request::Status)? {
            Response::Status(s) => {
                self.status = s;
                Ok(())
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Run the executor forward; returns how it ended and the scan's hit.
    fn run(
        &mut self,
        goal: Goal,
        stops: &Stops,
        scan_below: Option<u64>,
    ) -> Result<(RunEnd, Option<crate::machine::debug::Hit>), String> {
        let req = Request::Run(RunRequest {
            goal,
            breakpoints: stops.breakpoints.clone(),
            watches: stops.watches.clone(),
            scan_below,
            limit: self.end.as_ref().map(|e| e.0),
            checkpoint_every: self.every,
            have_checkpoints: self.checkpoints.iter().filter_map(|c| c.slot).collect(),
        });
        match self.request(&req)? {
            Response::Ran {
                end,
                status,
                hit,
                checkpoints,
            } => {
                self.status = status;
                for c in checkpoints {
                    self.add_checkpoint(c);
                }
                if let RunEnd::Ended { g, verdict } = &end {
                    self.exec_ended = true;
                    self.end = Some((*g, verdict.clone()));
                }
                Ok((end, hit))
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// Replace the executor by a fresh copy of checkpoint `i`.
    fn activate(&mut self, i: usize) -> Result<(), String> {
        let _ = proto::send(&mut self.conn, &Request::Quit);
        let old = self.status.pid;
        let socket = self.checkpoints[i].socket.clone();
        self.conn = UnixStream::connect(&socket)
            .map_err(|e| format!("checkpoint {}: {e}", socket.display()))?;
        process::reap(old);
        self.exec_ended = false;
        self.refresh()
    }

    /// The latest checkpoint accepted by `ok`.
    fn latest(&self, ok: impl Fn(&CheckpointInfo) -> bool) -> Option<usize> {
        self.checkpoints.iter().rposition(ok)
    }

    /// Make the executor stand at position `g`.
    fn goto(&mut self, g: u64) -> Result<(), String> {
        if self.status.g == g && !self.exec_ended {
            return Ok(());
        }
        let best = self.latest(|c| c.status.g <= g).ok_or("no checkpoint")?;
        let here_usable = !self.exec_ended && self.status.g < g;
        if !here_usable || self.checkpoints[best].status.g > self.status.g {
            self.activate(best)?;
        }
        if self.status.g < g {
            self.run(Goal::Position(g), &Stops::default(), None)?;
        }
        Ok(())
    }

    fn stop(&self, kind: StopKind) -> Stop {
        Stop {
            vcpu: self.status.vcpu,
            kind,
        }
    }

    fn at_end(&self) -> bool {
        self.end.as_ref().is_some_and(|e| self.status.g >= e.0)
    }

    /// Run forwards to `goal` or the first breakpoint or watchpoint hit.
    fn forward(&mut self, goal: Goal, stops: &Stops) -> Result<Stop, String> {
        if self.at_end() {
            return Ok(self.stop(StopKind::EndOfHistory));
        }
        if self.exec_ended {
            let g = self.status.g;
            self.goto(g)?;
        }
        let (end, _) = self.run(goal, stops, None)?;
        Ok(match end {
            RunEnd::Paused(r) => self.stop(stop_kind(r)),
            RunEnd::Ended { g, .. } => {
                self.goto(g)?;
                self.stop(StopKind::EndOfHistory)
            }
        })
    }

    /// Back to where `v` was one instruction earlier: the last position before `v` began
    /// its current instruction. If `v`'s previous instruction waited at a scheduling point
    /// while others ran, that is the moment just before it went on, not when it began:
    /// memory then is what the instruction saw.
    fn reverse_step(&mut self, v: Vcpu) -> Result<Stop, String> {
        let k = self.status.icount.get(v as usize).copied().unwrap_or(0);
        let began = self.status.began.get(v as usize).copied().unwrap_or(0);
        if k <= 1 || began <= 1 {
            self.goto(0)?;
            return Ok(Stop {
                vcpu: v,
                kind: StopKind::StartOfHistory,
            });
        }
        self.goto(began - 1)?;
        Ok(Stop {
            vcpu: v,
            kind: StopKind::Step,
        })
    }

    /// Back to the previous breakpoint or watchpoint hit: search each stretch between
    /// checkpoints, latest first, for the hit a reverse motion meets first (the latest
    /// [`Hit::at`](crate::machine::debug::Hit::at): a write watchpoint stops before its
    /// write). A write reported in one stretch may have happened in the one before, so
    /// the search goes on until no earlier stretch can hold a later stop.
    fn reverse_continue(&mut self, stops: &Stops) -> Result<Stop, String> {
        let mut hi = self.status.g;
        let mut below = hi;
        let mut best: Option<crate::machine::debug::Hit> = None;
        while let Some(i) = self.latest(|c| c.status.g < hi) {
            self.activate(i)?;
            let (_, hit) = self.run(Goal::Position(hi), stops, Some(below))?;
            if let Some(h) = hit {
                if best.is_none_or(|b| h.at > b.at) {
                    best = Some(h);
                }
            }
            hi = self.checkpoints[i].status.g;
            below = hi + 1;
            // Every hit of an earlier stretch stops at or before its start.
            if best.is_some_and(|b| b.at >= hi) {
                break;
            }
        }
        if let Some(h) = best {
            self.goto(h.at)?;
            return Ok(Stop {
                vcpu: h.vcpu,
                kind: stop_kind(h.reason),
            });
        }
        self.goto(0)?;
        Ok(self.stop(StopKind::StartOfHistory))
    }

    /// Stand at the first instruction boundary where `step` is the next step.
    fn goto_step(&mut self, step: u64) -> Result<(), String> {
        let i = self.latest(|c| c.status.next_step < step).unwrap_or(0);
        let from_here = !self.exec_ended
            && self.status.next_step < step
            && self.status.g >= self.checkpoints[i].status.g;
        if !from_here {
            self.activate(i)?;
        }
        let (end, _) = self.run(Goal::Step(step), &Stops::default(), None)?;
        if let RunEnd::Paused(PauseReason::Goal) = end {
            return Ok(());
        }
        let last = self.end.as_ref().map_or(self.status.g, |e| e.0);
        self.goto(last)?;
        Err(format!(
            "step {step} is past the end of the trace (its last step is {}); standing at the end",
            self.status.next_step.saturating_sub(1)
        ))
    }

    fn when(&self) -> String {
        let mut s = format!(
            "step {} is next; instruction {} of the run; vcpu {}",
            self.status.next_step, self.status.g, self.status.vcpu
        );
        if let Some((g, verdict)) = &self.end {
            if self.status.g >= *g {
                s.push_str(&format!("\nthe end of the recorded history: {verdict}"));
            }
        }
        s
    }

    fn schedule(&mut self, count: usize) -> Result<String, String> {
        if self.runs.is_none() {
            let mut runs = Vec::new();
            let r = TraceReader::open(&self.trace).map_err(|e| e.to_string())?;
            for e in r.into_events().map_while(Result::ok) {
                if let Event::Run { vcpu, points } = e {
                    runs.push((vcpu.0, points));
                }
            }
            self.runs = Some(runs);
        }
        let runs = self.runs.as_deref().unwrap_or_default();
        let now = self.status.next_step;
        let mut start = 0u64;
        let mut out = Vec::new();
        for &(v, n) in runs {
            let end = start + n;
            if end > now {
                let from = start.max(now);
                out.push(format!(
                    "steps {from}..{}: vcpu {v} ({} step(s))",
                    end - 1,
                    end - from
                ));
                if out.len() == count {
                    break;
                }
            }
            start = end;
        }
        if out.is_empty() {
            return Ok("no steps left in the recorded schedule".into());
        }
        Ok(out.join("\n"))
    }

    /// The races whose code some live vCPU is at now, the nearest in steps first: the
    /// three nearest in full, the others by number.
    fn races_here(&mut self) -> Result<String, String> {
        if self.races.is_none() {
            let log = crate::session::full_log(&self.trace).map_err(|e| e.to_string())?;
            self.races = Some(crate::races::report_file(log.path()).map_err(|e| e.to_string())?);
        }
        let mut pcs = Vec::new();
        for v in self.status.live.clone() {
            pcs.push((v, self.regs(v)?.rip));
        }
        let now = self.status.next_step;
        let r = self.races.as_ref().expect("computed above");
        let mut found: Vec<(u64, String, &crate::races::Group)> = Vec::new();
        for g in &r.races {
            let at: Vec<String> = pcs
                .iter()
                .filter(|(_, pc)| *pc == g.first.rip || *pc == g.second.rip)
                .map(|(v, _)| format!("vcpu {v}"))
                .collect();
            if at.is_empty() {
                continue;
            }
            let distance = if (g.first_step..=g.last_step).contains(&now) {
                0
            } else {
                now.abs_diff(g.first_step).min(now.abs_diff(g.last_step))
            };
            found.push((distance, at.join(" and "), g));
        }
        if found.is_empty() {
            return Ok(format!(
                "no vcpu is at an access of a data race here ({} race(s) in the trace: \
                 `weft races {}` lists them; `goto STEP` goes to one)",
                r.races.len(),
                self.trace.display()
            ));
        }
        found.sort_by_key(|(d, _, g)| (*d, g.id));
        let mut out: Vec<String> = found
            .iter()
            .take(3)
            .map(|(_, who, g)| format!("{who} at an instruction of\n{}", g.describe()))
            .collect();
        if found.len() > 3 {
            let rest: Vec<String> = found[3..]
                .iter()
                .map(|(_, _, g)| format!("#{}", g.id))
                .collect();
            out.push(format!(
                "and {} more race(s) at these instructions: {} (`weft inspect {} --race N`)",
                rest.len(),
                rest.join(" "),
                self.trace.display()
            ));
        }
        Ok(out.join("\n\n"))
    }

    fn checkpoint_now(&mut self) -> Result<String, String> {
        match self.request(&Request::Checkpoint)? {
            Response::Checkpoint(c) => {
                let s = format!(
                    "checkpoint at step {}, instruction {} ({} checkpoints in all)",
                    c.status.next_step,
                    c.status.g,
                    self.checkpoints.len() + 1
                );
                self.add_checkpoint(c);
                Ok(s)
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }
}

fn stop_kind(r: PauseReason) -> StopKind {
    match r {
        PauseReason::Goal | PauseReason::Checkpoint => StopKind::Step,
        PauseReason::Breakpoint => StopKind::Breakpoint,
        PauseReason::Watch { addr, kind } => StopKind::Watch { addr, kind },
        PauseReason::Limit => StopKind::EndOfHistory,
    }
}

/// gdb commands for a weft session: `when` and `goto STEP` (which, unlike the bare monitor
/// command, makes gdb forget the registers and frames it had cached), and the directory of
/// a built-in guest's sources.
pub fn gdb_script(sources: Option<&Path>) -> String {
    let mut s = String::from(
        "# weft: commands for debugging a recorded run (docs/gdb.md)\n\
         define when\n  monitor when\nend\n\
         document when\nSay which step is next, the instruction count and the vcpu.\nend\n\
         define goto\n  monitor goto $arg0 flushed\n  maintenance flush register-cache\n  frame\nend\n\
         document goto\nGo to the first instruction boundary where step STEP is next \
         (the steps of `weft races`).\nUsage: goto STEP\nend\n",
    );
    if let Some(dir) = sources {
        s.push_str(&format!("directory {}\n", dir.display()));
    }
    s
}

const MONITOR_HELP: &str = "weft monitor commands:
  when              the current step (next scheduling decision), instruction and vcpu
  goto STEP         go to the first instruction boundary where STEP is the next step
                    (weft's gdb command `goto STEP` does this and refreshes gdb's view)
  races             data races at the instruction some vcpu is at now
  tm                every vcpu's transaction (depth, XBEGIN, read and write sets)
  schedule [N]      the next N (10) runs of the recorded schedule
  checkpoint        take a checkpoint here (reverse motions start from checkpoints)
  checkpoints       list the checkpoints";

impl Debuggee for TimeTravel {
    fn vcpus(&self) -> u32 {
        self.vcpus
    }

    fn load_bias(&self) -> u64 {
        crate::machine::load_bias(&self.header.guest.elf)
    }

    fn live_vcpus(&mut self) -> Result<Vec<Vcpu>, String> {
        Ok(self.status.live.clone())
    }

    fn unborn_vcpus(&mut self) -> Result<Vec<Vcpu>, String> {
        let s = &self.status;
        Ok((0..self.vcpus)
            .filter(|&v| !s.live.contains(&v) && s.icount.get(v as usize).is_none_or(|&n| n == 0))
            .collect())
    }

    fn current_vcpu(&mut self) -> Result<Vcpu, String> {
        Ok(self.status.vcpu)
    }

    fn regs(&mut self, vcpu: Vcpu) -> Result<Regs, String> {
        match self.request(&Request::Regs(vcpu))? {
            Response::Regs(r) => {
                let mut xmm = [0u128; 16];
                for (o, x) in xmm.iter_mut().zip(&r.xmm) {
                    *o = *x;
                }
                Ok(Regs {
                    gprs: r.gprs,
                    rip: r.rip,
                    rflags: r.rflags,
                    segments: r.segments,
                    st: r.st,
                    fctrl: r.fctrl,
                    fstat: r.fstat,
                    ftag: r.ftag,
                    xmm,
                    mxcsr: r.mxcsr,
                })
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    fn read_memory(&mut self, addr: u64, out: &mut [u8]) -> Result<usize, String> {
        let len = out.len().min(1 << 20) as u32;
        match self.request(&Request::Memory { addr, len })? {
            Response::Memory(m) => {
                out[..m.len()].copy_from_slice(&m);
                Ok(m.len())
            }
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    fn resume(&mut self, motion: Motion, stops: &Stops) -> Result<Stop, String> {
        match motion {
            Motion::Continue => self.forward(Goal::Continue, stops),
            Motion::Step(v) => {
                let k = self.status.icount.get(v as usize).copied().unwrap_or(0);
                self.forward(
                    Goal::Vcpu {
                        vcpu: v,
                        icount: k + 1,
                    },
                    stops,
                )
            }
            Motion::ReverseStep(v) => self.reverse_step(v),
            Motion::ReverseContinue => self.reverse_continue(stops),
        }
    }

    fn monitor(&mut self, cmd: &str) -> Result<String, String> {
        let mut words = cmd.split_whitespace();
        let word = words.next().unwrap_or("help");
        let arg = words.next();
        match word {
            "when" => Ok(self.when()),
            "goto" => {
                let step = arg
                    .and_then(|a| a.parse::<u64>().ok())
                    .ok_or("usage: monitor goto STEP (a step number, as `weft races` prints)")?;
                self.goto_step(step)?;
                // weft's gdb `goto` command flushes gdb's caches itself.
                if words.next() == Some("flushed") {
                    return Ok(self.when());
                }
                Ok(format!(
                    "{}\n(gdb still shows the old registers: type `maintenance flush \
                     register-cache`, or use weft's gdb command `goto STEP`, which does)",
                    self.when()
                ))
            }
            "races" => self.races_here(),
            "tm" => match self.request(&Request::Transactions)? {
                Response::Text(t) => Ok(t.trim_end().to_string()),
                other => Err(format!("unexpected answer {other:?}")),
            },
            "schedule" => {
                let n = arg.and_then(|a| a.parse().ok()).unwrap_or(10);
                self.schedule(n)
            }
            "checkpoint" => self.checkpoint_now(),
            "checkpoints" => Ok(self
                .checkpoints
                .iter()
                .map(|c| {
                    format!(
                        "step {:>10}  instruction {:>12}  {}",
                        c.status.next_step,
                        c.status.g,
                        if c.slot.is_some() {
                            "automatic"
                        } else {
                            "asked for"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")),
            "help" => Ok(MONITOR_HELP.into()),
            other => Err(format!("unknown monitor command `{other}`\n{MONITOR_HELP}")),
        }
    }
}

impl Drop for TimeTravel {
    fn drop(&mut self) {
        let _ = proto::send(&mut self.conn, &Request::Quit);
        process::kill(self.status.pid);
        for c in &self.checkpoints {
            process::kill(c.pid);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
