//! How many points of a guest's runs could change anything: what PCT's `steps` and delay
//! bounding's `k` are fitted to before a search.

use std::cell::Cell;
use std::rc::Rc;

use weft_recorder::{in_focus, Focus, Point, Strategy, StrategySpec, VcpuId};

use super::run_kept;
use crate::session::SessionError;

/// The most contended points seen over a few different runs, all of them and those in the
/// program's own code (`focus`): PCT places its change points and delay bounding its
/// delays among that many. Runs differ a lot (a thread that runs to its end before the next
/// exists has all its points uncontended; interleaved, they all are), and too small a
/// number makes the late part of a run unreachable, so the largest of round-robin, the
/// plain non-preemptive run and two random runs is taken (as far as they get by
/// `deadline`).
pub fn contended_points(
    name: &str,
    elf: &[u8],
    opts: &weft_trace::MachineOptions,
    focus: Option<&Focus>,
    deadline: Option<std::time::Instant>,
) -> Result<(u64, u64), SessionError> {
    // Bounded by the search's deadline like every run of it: a run cut short still
    // counts what it saw.
    let stop = super::watchdog(deadline);
    let (mut all, mut own) = (1, 1);
    let specs = [
        StrategySpec::RoundRobin { quantum: 1 },
        StrategySpec::Delay { index: 0, steps: 1 },
        StrategySpec::Random { seed: 0 },
        StrategySpec::Random { seed: 1 },
    ];
    for spec in specs {
        let counts = Rc::new(Cell::new((0u64, 0u64)));
        let counting = Counting {
            inner: spec.build(),
            focus: focus.cloned(),
            counts: counts.clone(),
        };
        run_kept(name, elf, opts, Box::new(counting), stop.as_ref())?;
        let (a, o) = counts.get();
        (all, own) = (all.max(a), own.max(o));
    }
    Ok((all, own))
}

/// Counts the contended points of a run, and those in the program's own code.
struct Counting {
    inner: Box<dyn Strategy>,
    focus: Option<Focus>,
    counts: Rc<Cell<(u64, u64)>>,
}

impl Strategy for Counting {
    fn spec(&self) -> String {
        self.inner.spec()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        if p.runnable.len() > 1 {
            let (a, o) = self.counts.get();
            let own = self.focus.as_ref().is_some_and(|f| in_focus(f, p.rip));
            self.counts.set((a + 1, o + own as u64));
        }
        self.inner.pick(p)
    }
}
