//! Strategy specs: the text form users type (`--strategy pct:seed=3,depth=2`) and traces
//! store, parsed and printed so that the two round-trip.

use std::fmt;
use std::str::FromStr;

use crate::{Pct, Random, RoundRobin, Strategy};

/// A strategy and its parameters, as a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StrategySpec {
    RoundRobin {
        quantum: u64,
    },
    Random {
        seed: u64,
    },
    Pct {
        seed: u64,
        depth: u32,
        steps: u64,
        /// Count only points in the program's own code (see `pct`): `focus=1`.
        focus: bool,
    },
    /// Preemption-bounded DFS (`weft explore`); as a single strategy, its first schedule
    /// (no preemption at all).
    Dfs {
        bound: u32,
    },
    /// Race-directed search (`weft explore`): reverse the order of conflicting accesses
    /// seen in earlier runs; as a single strategy, its first schedule (no preemption).
    RaceDirected,
    /// Iterative delay bounding: schedule `index` of the enumeration (see `delay`), for
    /// runs of about `steps` contended points.
    Delay {
        index: u64,
        steps: u64,
    },
    /// `weft explore`'s default: complementary strategies taking turns by schedule index
    /// (see `portfolio`); as a single strategy, its first member.
    Portfolio {
        steps: u64,
        /// The focused PCT members' `steps`: contended points in the program's own code.
        focus_steps: u64,
    },
}

pub const DEFAULT_QUANTUM: u64 = 1000;
pub const DEFAULT_DEPTH: u32 = 3;
pub const DEFAULT_PCT_STEPS: u64 = 100_000;
pub const DEFAULT_DFS_BOUND: u32 = 2;

const ACCEPTED: &str = "round-robin[:quantum=N], random[:seed=N], \
     pct[:seed=N,depth=D,steps=K,focus=0|1], idb[:seed=N,steps=K], portfolio[:steps=K,focus=K], \
     dfs[:bound=C], race-directed";

/// Why a spec string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid strategy `{spec}`: {why} (accepted: {ACCEPTED})")]
pub struct SpecError {
    spec: String,
    why: String,
}

impl StrategySpec {
    /// A fresh strategy for this spec.
    pub fn build(&self) -> Box<dyn Strategy> {
        match *self {
            StrategySpec::RoundRobin { quantum } => Box::new(RoundRobin::new(quantum)),
            StrategySpec::Random { seed } => Box::new(Random::new(seed)),
            StrategySpec::Pct { .. } | StrategySpec::Portfolio { .. } => self.build_focused(None),
            StrategySpec::Dfs { bound } => {
                Box::new(crate::DfsTree::next_run(&crate::DfsTree::new(bound)))
            }
            StrategySpec::RaceDirected => Box::new(crate::Guided::new(Vec::new(), "race-directed")),
            StrategySpec::Delay { index, steps } => {
                Box::new(crate::DelayBounded::new(index, steps))
            }
        }
    }

    /// A fresh strategy; a focused PCT gets `focus`, the program's own code (without it,
    /// every contended point counts).
    pub fn build_focused(&self, focus: Option<crate::Focus>) -> Box<dyn Strategy> {
        match *self {
            StrategySpec::Pct {
                seed,
                depth,
                steps,
                focus: true,
            } => Box::new(Pct::new(seed, depth, steps).focused(focus)),
            StrategySpec::Pct {
                seed, depth, steps, ..
            } => Box::new(Pct::new(seed, depth, steps)),
            StrategySpec::Portfolio { steps, focus_steps } => {
                crate::portfolio::member(0, 0, steps, focus_steps).build_focused(focus)
            }
            _ => self.build(),
        }
    }

    /// Whether the strategy wants the program's own code (`build_focused`).
    pub fn wants_focus(&self) -> bool {
        matches!(
            self,
            StrategySpec::Pct { focus: true, .. } | StrategySpec::Portfolio { .. }
        )
    }

    /// The spec's seed (round-robin has none).
    pub fn seed(&self) -> Option<u64> {
        match *self {
            StrategySpec::Random { seed } | StrategySpec::Pct { seed, .. } => Some(seed),
            StrategySpec::Delay { index, .. } => Some(index),
            _ => None,
        }
    }

    /// The same spec with `seed` (round-robin has none and is returned unchanged).
    pub fn with_seed(self, seed: u64) -> StrategySpec {
        match self {
            StrategySpec::Random { .. } => StrategySpec::Random { seed },
            StrategySpec::Pct {
                depth,
                steps,
                focus,
                ..
            } => StrategySpec::Pct {
                seed,
                depth,
                steps,
                focus,
            },
            StrategySpec::Delay { steps, .. } => StrategySpec::Delay { index: seed, steps },
            rr => rr,
        }
    }
}

impl fmt::Display for StrategySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrategySpec::RoundRobin { quantum } => write!(f, "round-robin:quantum={quantum}"),
            StrategySpec::Random { seed } => write!(f, "random:seed={seed}"),
            StrategySpec::Pct {
                seed,
                depth,
                steps,
                focus,
            } => {
                write!(f, "pct:seed={seed},depth={depth},steps={steps}")?;
                if *focus {
                    write!(f, ",focus=1")?;
                }
                Ok(())
            }
            StrategySpec::Dfs { bound } => write!(f, "dfs:bound={bound}"),
            StrategySpec::RaceDirected => write!(f, "race-directed"),
            StrategySpec::Delay { index, steps } => write!(f, "idb:seed={index},steps={steps}"),
            StrategySpec::Portfolio { steps, focus_steps } => {
                write!(f, "portfolio:steps={steps},focus={focus_steps}")
            }
        }
    }
}

impl FromStr for StrategySpec {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        let err = |why: String| SpecError {
            spec: s.to_string(),
            why,
        };
        let (name, params) = s.split_once(':').unwrap_or((s, ""));
        let mut kv = Vec::new();
        for part in params.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("`{part}` is not key=value")))?;
            let n: u64 = v
                .parse()
                .map_err(|_| err(format!("`{v}` is not a number")))?;
            kv.push((k.to_string(), n));
        }
        let allow = |keys: &[&str]| -> Result<(), SpecError> {
            match kv.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
                Some((k, _)) => Err(err(format!("`{name}` has no parameter `{k}`"))),
                None => Ok(()),
            }
        };
        let get = |k: &str, d: u64| {
            kv.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map_or(d, |(_, v)| *v)
        };
        match name {
            "round-robin" | "rr" => {
                allow(&["quantum"])?;
                let quantum = get("quantum", DEFAULT_QUANTUM);
                if quantum == 0 {
                    return Err(err("quantum must be at least 1".into()));
                }
                Ok(StrategySpec::RoundRobin { quantum })
            }
            "random" => {
                allow(&["seed"])?;
                Ok(StrategySpec::Random {
                    seed: get("seed", 0),
                })
            }
            "pct" => {
                allow(&["seed", "depth", "steps", "focus"])?;
                let depth = get("depth", DEFAULT_DEPTH as u64);
                if depth == 0 || depth > 64 {
                    return Err(err("depth must be 1..=64".into()));
                }
                if get("focus", 0) > 1 {
                    return Err(err("focus is 0 or 1".into()));
                }
                Ok(StrategySpec::Pct {
                    seed: get("seed", 0),
                    depth: depth as u32,
                    steps: get("steps", DEFAULT_PCT_STEPS).max(1),
                    focus: get("focus", 0) == 1,
                })
            }
            "idb" | "delay" => {
                allow(&["seed", "steps"])?;
                Ok(StrategySpec::Delay {
                    index: get("seed", 0),
                    steps: get("steps", DEFAULT_PCT_STEPS).max(1),
                })
            }
            "portfolio" => {
                allow(&["steps", "focus"])?;
                Ok(StrategySpec::Portfolio {
                    steps: get("steps", DEFAULT_PCT_STEPS).max(1),
                    focus_steps: get("focus", DEFAULT_PCT_STEPS).max(1),
                })
            }
            "race-directed" | "race" => {
                allow(&[])?;
                Ok(StrategySpec::RaceDirected)
            }
            "dfs" => {
                allow(&["bound"])?;
                let bound = get("bound", DEFAULT_DFS_BOUND as u64);
                if bound > 64 {
                    return Err(err("bound must be 0..=64".into()));
                }
                Ok(StrategySpec::Dfs {
                    bound: bound as u32,
                })
            }
            other => Err(err(format!("unknown strategy `{other}`"))),
        }
    }
}
