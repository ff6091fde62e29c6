//! Round-robin: each vCPU runs a quantum of scheduling points, then the next in id order.

use crate::{Point, Strategy, StrategySpec, VcpuId};

/// Runs the current vCPU for `quantum` points, then the next runnable one (wrapping);
/// switches early when the current one spins.
#[derive(Clone, Debug)]
pub struct RoundRobin {
    quantum: u64,
    used: u64,
}

impl RoundRobin {
    pub fn new(quantum: u64) -> RoundRobin {
        RoundRobin {
            quantum: quantum.max(1),
            used: 0,
        }
    }
}

impl Strategy for RoundRobin {
    fn spec(&self) -> String {
        StrategySpec::RoundRobin {
            quantum: self.quantum,
        }
        .to_string()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        if let Some(c) = p.current {
            let alone = p.runnable.len() == 1;
            if alone || (self.used < self.quantum && !p.spinning) {
                self.used += 1;
                return c;
            }
            self.used = 1;
            return p.runnable.next_after(c).unwrap_or(c);
        }
        self.used = 1;
        // Nobody holds the token: the lowest runnable id.
        p.runnable.nth(0).unwrap_or_default()
    }
}
