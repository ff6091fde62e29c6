//! Random: a uniformly random runnable vCPU at every point (a switch at most points).

use crate::{rng::Rng, Point, Strategy, StrategySpec, VcpuId};

/// Picks uniformly among runnable vCPUs at each point; a spinning vCPU is passed over when
/// another can run.
#[derive(Clone, Debug)]
pub struct Random {
    seed: u64,
    rng: Rng,
}

impl Random {
    pub fn new(seed: u64) -> Random {
        Random {
            seed,
            rng: Rng::new(seed),
        }
    }
}

impl Strategy for Random {
    fn spec(&self) -> String {
        StrategySpec::Random { seed: self.seed }.to_string()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let mut set = p.runnable;
        if let (true, Some(c)) = (p.spinning, p.current) {
            if set.len() > 1 {
                set.remove(c);
            }
        }
        let k = self.rng.below(set.len() as u64) as u32;
        set.nth(k).unwrap_or_default()
    }
}
