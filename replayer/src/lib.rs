//! Replay of weft traces.
//!
//! A replay re-executes the guest under the recorded schedule and checks, event by event,
//! that the re-execution says exactly what the recording said. Two pieces, one per seam of
//! the machine: [`ScheduleReplay`] is a [`Strategy`] that answers every scheduling point from
//! the recorded `Run` entries, and [`Checker`] is an [`EventSink`] that compares each new
//! event with the next recorded one and stops the run at the first difference. Neither
//! knows anything about the emulator.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use weft_recorder::{Point, Strategy, VcpuId};
use weft_trace::{Event, EventSink, SinkError, Step};

/// The vCPU [`ScheduleReplay`] names once the recorded schedule is used up; never runnable,
/// so the machine stops there.
pub const END_OF_SCHEDULE: VcpuId = VcpuId(u32::MAX);

/// A strategy that replays a recorded run-length encoded schedule.
pub struct ScheduleReplay<I: Iterator<Item = (VcpuId, u64)>> {
    runs: I,
    current: Option<VcpuId>,
    left: u64,
}

impl<I: Iterator<Item = (VcpuId, u64)>> ScheduleReplay<I> {
    /// Replay the `(vcpu, points)` runs in order.
    pub fn new(runs: I) -> Self {
        ScheduleReplay {
            runs,
            current: None,
            left: 0,
        }
    }
}

impl<I: Iterator<Item = (VcpuId, u64)>> Strategy for ScheduleReplay<I> {
    fn spec(&self) -> String {
        "replay".to_string()
    }

    fn pick(&mut self, _point: &Point) -> VcpuId {
        while self.left == 0 {
            match self.runs.next() {
                Some((v, n)) => {
                    self.current = Some(v);
                    self.left = n;
                }
                None => return END_OF_SCHEDULE,
            }
        }
        self.left -= 1;
        self.current.unwrap_or(END_OF_SCHEDULE)
    }
}

/// The first point where a replay differs from its recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Step of the first differing event (the later of the two events' steps when known).
    pub step: Step,
    /// vCPU of the differing event, when it has one.
    pub vcpu: Option<VcpuId>,
    /// What the recording says here (`None`: the recording ends here).
    pub expected: Option<Event>,
    /// What the replay did (`None`: the replay ended here).
    pub got: Option<Event>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replay diverged at step {}", self.step)?;
        if let Some(v) = self.vcpu {
            write!(f, " on {v}")?;
        }
        match &self.expected {
            Some(e) => write!(f, ": expected {e:?}")?,
            None => write!(f, ": expected nothing more (the recording ends here)")?,
        }
        match &self.got {
            Some(g) => write!(f, ", got {g:?}"),
            None => write!(f, ", got nothing (the replay ended)"),
        }
    }
}

/// Shared result of a [`Checker`]: how many events matched and the divergence, if any.
#[derive(Debug, Default)]
pub struct CheckState {
    pub matched: u64,
    pub divergence: Option<Divergence>,
    /// The recording ran out while the replay went on (a truncated trace).
    pub recording_exhausted: bool,
    /// Console bytes of the replay, in order.
    pub console: Vec<u8>,
}

/// An event sink that checks each replayed event against the recorded stream.
pub struct Checker<I: Iterator<Item = Event>> {
    expected: std::iter::Peekable<I>,
    state: Rc<RefCell<CheckState>>,
    /// Let `Backtrace` events of the replay pass unchecked (a recording from before they
    /// existed, trace format 3).
    skip_backtraces: bool,
}

impl<I: Iterator<Item = Event>> Checker<I> {
    /// Check against `expected`; results accumulate in the returned shared state.
    pub fn new(expected: I) -> (Self, Rc<RefCell<CheckState>>) {
        let state = Rc::new(RefCell::new(CheckState::default()));
        (
            Checker {
                expected: expected.peekable(),
                state: state.clone(),
                skip_backtraces: false,
            },
            state,
        )
    }

    /// Check a recording that has no `Backtrace` events (trace format 3): the replay's own
    /// pass unchecked.
    pub fn without_backtraces(mut self) -> Self {
        self.skip_backtraces = true;
        self
    }

    /// After the run: the recording must have no events left, or the replay stopped early.
    /// `end_step` is where the replay ended.
    pub fn finish(&mut self, end_step: Step) {
        let mut st = self.state.borrow_mut();
        if st.divergence.is_some() || st.recording_exhausted {
            return;
        }
        if let Some(next) = self.expected.next() {
            st.divergence = Some(Divergence {
                step: next.step().unwrap_or(end_step),
                vcpu: next.vcpu(),
                expected: Some(next),
                got: None,
            });
        }
    }
}

impl<I: Iterator<Item = Event>> EventSink for Checker<I> {
    fn event(&mut self, event: &Event) -> Result<(), SinkError> {
        let mut st = self.state.borrow_mut();
        if let Event::Console { bytes, .. } = event {
            st.console.extend_from_slice(bytes);
        }
        if self.skip_backtraces && matches!(event, Event::Backtrace { .. }) {
            return Ok(());
        }
        match self.expected.next() {
            Some(e) if e == *event => {
                st.matched += 1;
                Ok(())
            }
            Some(e) => {
                let step = match (e.step(), event.step()) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or_default(),
                };
                let d = Divergence {
                    step,
                    vcpu: event.vcpu().or(e.vcpu()),
                    expected: Some(e),
                    got: Some(event.clone()),
                };
                let msg = d.to_string();
                st.divergence = Some(d);
                Err(SinkError(msg))
            }
            None => {
                st.recording_exhausted = true;
                Err(SinkError("the recording ends here".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_recorder::VcpuSet;
    use weft_trace::{AccessKind, GuestAddr};

    fn point(step: u64) -> Point {
        Point {
            step: Step(step),
            current: None,
            runnable: VcpuSet::first(2),
            spinning: false,
            rip: 0,
        }
    }

    #[test]
    fn schedule_replays_runs_then_ends() {
        let mut s =
            ScheduleReplay::new(vec![(VcpuId(0), 2), (VcpuId(1), 1), (VcpuId(0), 1)].into_iter());
        let picks: Vec<u32> = (0..5).map(|i| s.pick(&point(i)).0).collect();
        assert_eq!(picks, vec![0, 0, 1, 0, u32::MAX]);
    }

    fn access(step: u64, value: u64) -> Event {
        Event::Access {
            step: Step(step),
            vcpu: VcpuId(1),
            rip: 0x401000,
            addr: GuestAddr(0x403000),
            size: 8,
            kind: AccessKind::Write,
            value,
        }
    }

    #[test]
    fn checker_reports_the_first_difference() {
        let rec = vec![access(1, 1), access(2, 2), access(3, 3)];
        let (mut c, st) = Checker::new(rec.into_iter());
        assert!(c.event(&access(1, 1)).is_ok());
        let err = c.event(&access(2, 7)).unwrap_err();
        assert!(err.0.contains("step 2"), "{}", err.0);
        let st = st.borrow();
        assert_eq!(st.matched, 1);
        let d = st.divergence.as_ref().unwrap();
        assert_eq!(d.step, Step(2));
        assert_eq!(d.vcpu, Some(VcpuId(1)));
        assert_eq!(d.expected, Some(access(2, 2)));
        assert_eq!(d.got, Some(access(2, 7)));
    }

    #[test]
    fn checker_notices_missing_and_extra_events() {
        let (mut c, st) = Checker::new(vec![access(1, 1), access(2, 2)].into_iter());
        c.event(&access(1, 1)).unwrap();
        c.finish(Step(2));
        assert_eq!(st.borrow().divergence.as_ref().unwrap().got, None);

        let (mut c, st) = Checker::new(vec![access(1, 1)].into_iter());
        c.event(&access(1, 1)).unwrap();
        assert!(c.event(&access(2, 2)).is_err());
        assert!(st.borrow().recording_exhausted);
    }
}
