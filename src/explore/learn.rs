//! What a search learns about a guest as it goes: the pages its threads share.
//!
//! With `Sharing::Pages` an access is a scheduling point only once its page is shared, so a
//! schedule cannot interleave the accesses a page received while one vCPU had it alone.
//! Later schedules start with the pages earlier ones found shared (`RunOutcome::
//! shared_pages`), and the search starts from the pages one round-robin run finds
//! (`discover`), so every access to them is a point from the first.

use std::collections::BTreeSet;

use weft_recorder::StrategySpec;
use weft_trace::{MachineOptions, Sharing};

use super::run_kept;
use crate::session::SessionError;

/// Pages known to be shared. It only grows. Searches read results in index order, in
/// batches of fixed sizes (`batch_size`), so what schedule `i` starts with never depends on
/// `--jobs`.
#[derive(Clone, Debug, Default)]
pub struct Learned(BTreeSet<u64>);

impl Learned {
    /// Add a run's shared pages; returns whether any was new.
    pub fn add(&mut self, pages: &[u64]) -> bool {
        let before = self.0.len();
        self.0.extend(pages);
        self.0.len() > before
    }

    /// How many pages.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `opts` with these pages shared from the start (unless it shares everything).
    pub fn apply(&self, opts: &MachineOptions) -> MachineOptions {
        let mut o = opts.clone();
        if let Sharing::Pages { shared } = &mut o.sharing {
            let mut all: BTreeSet<u64> = shared.iter().copied().collect();
            all.extend(&self.0);
            *shared = all.into_iter().collect();
        }
        o
    }
}

/// Pages a guest's threads share, found by one run under round-robin with a switch at every
/// point (the interleaving that lets every vCPU reach the most memory early): the start of
/// every search's learning, the same for every job and shard. Bounded by `deadline` like
/// every run of a search.
pub fn discover(
    name: &str,
    elf: &[u8],
    opts: &MachineOptions,
    deadline: Option<std::time::Instant>,
) -> Result<Learned, SessionError> {
    let mut learned = Learned::default();
    let stop = super::watchdog(deadline);
    let rr = StrategySpec::RoundRobin { quantum: 1 };
    let (out, _) = run_kept(name, elf, opts, rr.build(), stop.as_ref())?;
    learned.add(&out.shared_pages);
    Ok(learned)
}

/// Sizes of the batches a search examines, whatever the number of jobs: small at first,
/// so that the first schedules' sharing reaches the next ones soon.
pub fn batch_size(batch: u32) -> usize {
    1 << batch.min(6)
}
