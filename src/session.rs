//! Whole runs as the front ends use them: record a guest to a trace file, run it without a
//! trace, replay a trace and check it. The CLI, the demo and the tests all go through here.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use weft_recorder::{Strategy, StrategySpec};
use weft_replayer::{Checker, Divergence, ScheduleReplay, END_OF_SCHEDULE};
use weft_trace::{
    Event, EventSink, GuestImage, MachineOptions, NullSink, SinkError, Step, TraceError,
    TraceHeader, TraceReader, TraceWriter, VcpuId, Verdict,
};

use crate::machine::linux::FileSource;
use crate::machine::{Machine, MachineError, Paused, RunConfig, RunOutcome, SharedSink};

/// Why a session could not do its work (as opposed to a guest failure, which is a verdict).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The machine error is part of the message, not a chained source: printing the chain
    /// (`{:#}`) would repeat it.
    #[error("{path}: {error}")]
    Guest { path: String, error: MachineError },
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error("{0}")]
    Other(String),
}

/// A recording that finished (whatever the guest's verdict).
#[derive(Debug)]
pub struct Recorded {
    pub outcome: RunOutcome,
    /// Events and bytes written.
    pub events: u64,
    pub bytes: u64,
}

/// Turns a machine error into one that names the guest.
fn guest_error(guest_name: &str) -> impl Fn(MachineError) -> SessionError + '_ {
    move |error| SessionError::Guest {
        path: guest_name.to_string(),
        error,
    }
}

/// Record `elf` under `strategy` into a trace at `out`.
pub fn record(
    guest_name: &str,
    elf: &[u8],
    options: &MachineOptions,
    strategy: &StrategySpec,
    out: &Path,
    config: RunConfig,
) -> Result<Recorded, SessionError> {
    record_with(guest_name, elf, options, build(strategy, elf), out, config)
}

/// Record under any strategy (e.g. a minimized schedule); its `spec()` goes in the header.
/// A fresh strategy for `spec`; a focused PCT gets the program's own code from `elf`.
pub fn build(spec: &StrategySpec, elf: &[u8]) -> Box<dyn Strategy> {
    let focus = spec
        .wants_focus()
        .then(|| crate::debuginfo::program_code(elf))
        .flatten();
    spec.build_focused(focus)
}

pub fn record_with(
    guest_name: &str,
    elf: &[u8],
    options: &MachineOptions,
    strategy: Box<dyn Strategy>,
    out: &Path,
    config: RunConfig,
) -> Result<Recorded, SessionError> {
    let machine = Machine::new(elf, options).map_err(guest_error(guest_name))?;
    let header = TraceHeader {
        weft_version: env!("CARGO_PKG_VERSION").to_string(),
        guest: GuestImage::new(guest_name, elf.to_vec()),
        options: options.clone(),
        strategy: strategy.spec(),
    };
    let w = TraceWriter::create_limited(out, &header, config.trace_limit)?;
    let writer = Rc::new(RefCell::new(w));
    let outcome = match machine.run(strategy, writer.clone(), config) {
        Ok(o) => o,
        Err(e) => {
            // The machine could not be built (e.g. no memory for its RAM): nothing ran, so
            // the file holds only a header; do not leave it behind.
            drop(writer);
            let _ = std::fs::remove_file(out);
            return Err(guest_error(guest_name)(e));
        }
    };
    let writer = Rc::try_unwrap(writer)
        .map_err(|_| SessionError::Other("internal: trace writer still shared".into()))?
        .into_inner();
    let summary = writer.finish();
    if let Some(e) = &outcome.sink_error {
        // The writer's own error (it names the file and what the trace keeps).
        return Err(SessionError::Other(e.clone()));
    }
    let summary = summary?;
    Ok(Recorded {
        outcome,
        events: summary.events,
        bytes: summary.bytes,
    })
}

/// The schedule of a run and when vCPUs ended: all a search needs to know of it.
#[derive(Debug, Default)]
pub struct ScheduleSink {
    /// Run-length schedule: (vCPU, points), as in the trace's `Run` events.
    pub runs: Vec<(VcpuId, u64)>,
}

impl EventSink for ScheduleSink {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        if let Event::Run { vcpu, points } = event {
            self.runs.push((*vcpu, *points));
        }
        Ok(())
    }
    fn wants_accesses(&self) -> bool {
        false
    }
}

/// Run under any strategy without a trace, keeping the schedule.
pub fn run_schedule(
    guest_name: &str,
    elf: &[u8],
    options: &MachineOptions,
    strategy: Box<dyn Strategy>,
) -> Result<(RunOutcome, Vec<(VcpuId, u64)>), SessionError> {
    let machine = Machine::new(elf, options).map_err(guest_error(guest_name))?;
    let sink = Rc::new(RefCell::new(ScheduleSink::default()));
    let outcome = machine
        .run(strategy, sink.clone(), RunConfig::default())
        .map_err(guest_error(guest_name))?;
    let runs = std::mem::take(&mut sink.borrow_mut().runs);
    Ok((outcome, runs))
}

/// Run `elf` with no trace at all: the fastest mode.
pub fn run(
    guest_name: &str,
    elf: &[u8],
    options: &MachineOptions,
    strategy: &StrategySpec,
    config: RunConfig,
) -> Result<RunOutcome, SessionError> {
    let machine = Machine::new(elf, options).map_err(guest_error(guest_name))?;
    machine
        .run(
            build(strategy, elf),
            Rc::new(RefCell::new(NullSink)),
            config,
        )
        .map_err(guest_error(guest_name))
}

/// What a replay found.
#[derive(Debug)]
pub struct Replayed {
    pub header: TraceHeader,
    /// The verdict of the re-execution (`None` when it stopped at a divergence or at the
    /// end of a truncated recording).
    pub verdict: Option<Verdict>,
    /// The verdict the recording ends with (`None` if the trace is truncated before it).
    pub recorded_verdict: Option<Verdict>,
    pub divergence: Option<Divergence>,
    /// The reader's warning about a damaged or truncated trace.
    pub warning: Option<String>,
    /// Steps replayed and events that matched the recording.
    pub steps: u64,
    pub matched: u64,
    /// Console output of the replay.
    pub console: Vec<u8>,
    /// Where the replay paused (`RunConfig::pause_at`, `weft replay --goto`).
    pub paused: Option<Paused>,
    /// Call stacks of the vCPUs the failure concerns.
    pub backtraces: Vec<weft_trace::Backtrace>,
    /// With `RunConfig::keep_files`: the files the program created or changed.
    pub files: Vec<(String, Vec<u8>)>,
    /// What the replay's events say about its failure (panics, unemulated calls).
    pub clues: crate::failure::Clues,
}

impl Replayed {
    /// Whether the replay reproduced the whole recording exactly.
    pub fn reproduced(&self) -> bool {
        self.divergence.is_none() && self.verdict.is_some() && self.verdict == self.recorded_verdict
    }
}

/// Re-execute the trace at `path` under its recorded schedule and check every event.
pub fn replay(path: &Path, config: RunConfig) -> Result<Replayed, SessionError> {
    replay_deriving(path, config, None)
}

/// A replay that also writes every event, and the accesses the recording left out (to
/// pages their owner alone had touched), to `out`.
struct Deriving<C> {
    check: Rc<RefCell<C>>,
    out: TraceWriter,
}

impl<C: EventSink> EventSink for Deriving<C> {
    fn event(&mut self, e: &Event) -> Result<(), SinkError> {
        self.check.borrow_mut().event(e)?;
        self.out.event(e)
    }
    fn wants_private(&self) -> bool {
        true
    }
    fn private_access(&mut self, e: &Event) -> Result<(), SinkError> {
        self.out.event(e)
    }
}

/// A trace with every access of its run, for the analyses: the recording itself when it
/// has them all (`Sharing::All`), or else a replay of it that adds the accesses to pages
/// only their owner had touched, in a temporary file removed when this is dropped.
pub struct FullLog {
    path: std::path::PathBuf,
    temporary: bool,
}

impl FullLog {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recording as it is (what an analysis falls back to when nothing can be derived).
    pub fn recorded(path: &Path) -> FullLog {
        FullLog {
            path: path.to_path_buf(),
            temporary: false,
        }
    }
}

impl Drop for FullLog {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The full access log of the trace at `path` (see [`FullLog`]). Derived logs are exact:
/// the replay is checked against the recording, and a replay that diverges is an error.
pub fn full_log(path: &Path) -> Result<FullLog, SessionError> {
    let header = TraceReader::open(path)?.header().clone();
    if header.options.sharing == weft_trace::Sharing::All {
        return Ok(FullLog::recorded(path));
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = FullLog {
        path: std::env::temp_dir().join(format!("weft-full-{}-{n}.weft", std::process::id())),
        temporary: true,
    };
    let r = replay_deriving(path, RunConfig::default(), Some(&log.path))?;
    if let Some(d) = &r.divergence {
        return Err(SessionError::Other(format!(
            "{}: cannot derive the accesses the recording left out: {d}",
            path.display()
        )));
    }
    Ok(log)
}

fn replay_deriving(
    path: &Path,
    config: RunConfig,
    derive: Option<&Path>,
) -> Result<Replayed, SessionError> {
    let reader = TraceReader::open(path)?;
    let header = reader.header().clone();
    let warning = reader.warning().map(str::to_string);
    let build = if derive.is_some() {
        Machine::new_deriving
    } else {
        Machine::new
    };
    let mut machine =
        build(&header.guest.elf, &header.options).map_err(|error| SessionError::Guest {
            path: format!("{} (embedded guest {})", path.display(), header.guest.name),
            error,
        })?;
    if header.options.linux.is_some() {
        machine.set_files(recorded_files(path)?);
    }
    // One pass for the schedule, one for the check: both stream, neither holds the trace.
    let runs = TraceReader::open(path)?
        .into_events()
        .map_while(Result::ok)
        .filter_map(|e| match e {
            Event::Run { vcpu, points } => Some((vcpu, points)),
            _ => None,
        });
    let recorded_verdict = recorded_verdict(path)?;
    let expected = TraceReader::open(path)?.into_events().map_while(Result::ok);
    let (mut checker, state) = Checker::new(expected);
    if reader.format_version() < 4 {
        checker = checker.without_backtraces();
    }
    let checker = Rc::new(RefCell::new(checker));
    let deriving = match derive {
        Some(out) => Some(Rc::new(RefCell::new(Deriving {
            check: checker.clone(),
            out: TraceWriter::create(out, &header)?,
        }))),
        None => None,
    };
    let sink: SharedSink = match &deriving {
        Some(d) => d.clone(),
        None => checker.clone(),
    };
    let outcome = machine
        .run(Box::new(ScheduleReplay::new(runs)), sink, config)
        .map_err(|error| SessionError::Guest {
            path: path.display().to_string(),
            error,
        })?;
    if let Some(d) = deriving {
        let d = Rc::try_unwrap(d)
            .map_err(|_| SessionError::Other("the derived log is still in use".into()))?;
        d.into_inner().out.finish()?;
    }
    let schedule_ran_out = outcome.bad_pick.is_some_and(|(_, v)| v == END_OF_SCHEDULE);
    let truncated = recorded_verdict.is_none();
    if !(schedule_ran_out && truncated) && outcome.paused.is_none() {
        // The replay ended on its own (or by a divergence): nothing recorded may be left.
        checker.borrow_mut().finish(Step(outcome.stats.steps));
    }
    let mut st = state.borrow_mut();
    let mut divergence = st.divergence.take();
    if divergence.is_none() {
        match outcome.bad_pick {
            Some((step, vcpu)) if vcpu != END_OF_SCHEDULE => {
                divergence = Some(Divergence {
                    step,
                    vcpu: Some(vcpu),
                    expected: Some(Event::Run { vcpu, points: 1 }),
                    got: None,
                });
            }
            Some((step, _)) if !truncated => {
                // A complete recording whose schedule ran out before the replay ended.
                divergence = Some(Divergence {
                    step,
                    vcpu: None,
                    expected: None,
                    got: None,
                });
            }
            _ => {}
        }
    }
    Ok(Replayed {
        header,
        verdict: outcome.verdict,
        recorded_verdict,
        divergence,
        warning,
        steps: outcome.stats.steps,
        matched: st.matched,
        console: std::mem::take(&mut st.console),
        paused: outcome.paused,
        backtraces: outcome.backtraces,
        files: outcome.files,
        clues: outcome.clues,
    })
}

/// The verdict a trace ends with, read from its last chunk only (`None` if the trace is
/// truncated before its end).
pub fn recorded_verdict(path: &Path) -> Result<Option<Verdict>, SessionError> {
    let reader = TraceReader::open(path)?;
    if !reader.is_complete() {
        return Ok(None);
    }
    let from = reader.index().last().map_or(0, |c| c.first_step);
    Ok(reader
        .events_from(from)
        .map_while(Result::ok)
        .filter_map(|e| match e {
            Event::End { verdict, .. } => Some(verdict),
            _ => None,
        })
        .last())
}

/// How many vCPUs a trace's run had: the board's `--vcpus`, or for a Linux guest its main
/// thread and every thread it created (a pass over the events).
pub fn vcpus_in(path: &Path, header: &TraceHeader) -> Result<u32, TraceError> {
    if header.options.linux.is_none() {
        return Ok(header.options.vcpus);
    }
    let spawned = TraceReader::open(path)?
        .into_events()
        .map_while(Result::ok)
        .filter(|e| matches!(e, Event::Spawn { .. }))
        .count() as u32;
    Ok((1 + spawned).min(header.options.vcpus))
}

/// The host files a Linux guest's recording read (its `FileData` events), for a replay
/// that needs none of them.
pub fn recorded_files(path: &Path) -> Result<FileSource, TraceError> {
    let files = TraceReader::open(path)?
        .into_events()
        .map_while(Result::ok)
        .filter_map(|e| match e {
            Event::FileData { path, data, .. } => Some((path, data)),
            _ => None,
        });
    Ok(FileSource::recorded(files))
}
