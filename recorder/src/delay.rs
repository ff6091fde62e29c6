//! Iterative delay bounding (Emmi, Qadeer, Rakamarić, POPL 2011; the "IDB" of the
//! SCTBench study, Thomson, Donaldson, Betts, TOPC 2016).
//!
//! The base scheduler is deterministic and non-preemptive: the running vCPU goes on until
//! it ends, blocks or spins, then the next vCPU in round-robin order (by id, after the
//! one that ran last) takes over. A *delay* at a point skips the vCPU the base scheduler
//! would pick, so the next one in round-robin order runs instead (two delays at one point
//! skip two). Bound `d` allows `d` delays anywhere in the run; iterative delay bounding
//! tries every schedule with 0 delays, then 1, then 2, ...
//!
//! Delays go only at points where more than one vCPU can run (elsewhere they change
//! nothing). A schedule is addressed by one number, its *index*, so that a search is a
//! range of indices like random and PCT seeds (and so parallel, shardable and
//! repeatable): index 0 is the base schedule; the next `k` indices are the schedules with
//! one delay, at each of the `k` first contended points; then every multiset of two
//! positions; and so on, where `k` is an estimate of the contended points of a run
//! (measured by `weft explore`). Within one bound the positions are spread over the run
//! first (a golden-ratio stride visits the whole range early rather than its start), since
//! a search rarely has the budget for every schedule of bound 2 on a long run.

use crate::{Point, Strategy, StrategySpec, VcpuId};

/// One schedule of iterative delay bounding.
#[derive(Clone, Debug)]
pub struct DelayBounded {
    index: u64,
    steps: u64,
    /// Contended points at which to delay, sorted; a point listed twice gets two delays.
    delays: Vec<u64>,
    next: usize,
    contended: u64,
    /// The vCPU picked last (round-robin goes on after it).
    last: Option<VcpuId>,
}

/// C(n, r), saturating at u128::MAX.
fn choose(n: u128, r: u128) -> u128 {
    let mut acc: u128 = 1;
    for i in 0..r {
        acc = match acc.checked_mul(n - i) {
            Some(v) => v / (i + 1),
            None => return u128::MAX,
        };
    }
    acc
}

/// Multisets of size `r` drawn from `k` values: C(k + r - 1, r).
fn multisets(k: u64, r: u32) -> u128 {
    if r == 0 {
        return 1;
    }
    if k == 0 {
        return 0;
    }
    choose(k as u128 + r as u128 - 1, r as u128)
}

/// The `rank`-th multiset (lexicographic, non-decreasing) of size `r` from `0..k`.
fn unrank(mut rank: u128, k: u64, r: u32) -> Vec<u64> {
    let mut out = Vec::with_capacity(r as usize);
    let mut lo = 0u64;
    for left in (1..=r).rev() {
        // Multisets of size `left` from lo..k whose first element is v: those of size
        // left-1 from v..k. Find v by binary search over the number with first < v.
        let total = multisets(k - lo, left);
        let (mut a, mut b) = (lo, k - 1);
        while a < b {
            let mid = a + (b - a).div_ceil(2);
            // Multisets whose first element is < mid.
            let before = total - multisets(k - mid, left);
            if before <= rank {
                a = mid;
            } else {
                b = mid - 1;
            }
        }
        rank -= total - multisets(k - a, left);
        out.push(a);
        lo = a;
    }
    out
}

/// A permutation of `0..k` that spreads consecutive values over the range: multiples of
/// a stride near k/φ that is coprime to k.
fn spread(x: u64, k: u64) -> u64 {
    if k <= 2 {
        return x;
    }
    let mut g = ((k as f64) * 0.618_033_988_75) as u64;
    while gcd(g, k) != 1 {
        g += 1;
    }
    ((x as u128 * g as u128) % k as u128) as u64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Which delays schedule `index` has, for runs of about `steps` contended points.
pub fn delays_of(index: u64, steps: u64) -> Vec<u64> {
    let k = steps.max(1);
    let mut rank = index as u128;
    let mut bound = 0u32;
    loop {
        let n = multisets(k, bound);
        if rank < n {
            break;
        }
        rank -= n;
        bound += 1;
    }
    let mut d: Vec<u64> = unrank(rank, k, bound)
        .into_iter()
        .map(|x| spread(x, k))
        .collect();
    d.sort_unstable();
    d
}

impl DelayBounded {
    pub fn new(index: u64, steps: u64) -> DelayBounded {
        DelayBounded {
            index,
            steps,
            delays: delays_of(index, steps),
            next: 0,
            contended: 0,
            last: None,
        }
    }

    /// The number of delays of this schedule (its delay bound).
    pub fn bound(&self) -> usize {
        self.delays.len()
    }
}

impl Strategy for DelayBounded {
    fn spec(&self) -> String {
        StrategySpec::Delay {
            index: self.index,
            steps: self.steps,
        }
        .to_string()
    }

    fn pick(&mut self, p: &Point) -> VcpuId {
        let after = self.last.unwrap_or(VcpuId(u32::MAX));
        let mut pick = match p.current {
            Some(c) if !p.spinning || p.runnable.len() == 1 => c,
            Some(c) => p.runnable.next_after(c).unwrap_or(c),
            None if self.last.is_none() => p.runnable.nth(0).unwrap_or_default(),
            None => p.runnable.next_after(after).unwrap_or_default(),
        };
        if p.runnable.len() > 1 {
            while self.next < self.delays.len() && self.delays[self.next] == self.contended {
                pick = p.runnable.next_after(pick).unwrap_or(pick);
                self.next += 1;
            }
            self.contended += 1;
        }
        self.last = Some(pick);
        pick
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn indices_enumerate_each_bound_completely_and_once() {
        let k = 7;
        // Bound 0: one schedule; bound 1: k; bound 2: C(k+1, 2).
        assert!(delays_of(0, k).is_empty());
        let one: BTreeSet<Vec<u64>> = (1..=k).map(|i| delays_of(i, k)).collect();
        assert_eq!(one.len(), k as usize);
        assert!(one.iter().all(|d| d.len() == 1 && d[0] < k));
        let n2 = (k * (k + 1) / 2) as usize;
        let two: BTreeSet<Vec<u64>> = (k + 1..k + 1 + n2 as u64)
            .map(|i| delays_of(i, k))
            .collect();
        assert_eq!(two.len(), n2);
        assert!(two.iter().all(|d| d.len() == 2 && d[0] <= d[1] && d[1] < k));
        assert_eq!(delays_of(k + 1 + n2 as u64, k).len(), 3);
    }

    #[test]
    fn one_delay_schedules_spread_over_the_run() {
        // The first few single delays of a long run are not all at its start.
        let firsts: Vec<u64> = (1..=4).map(|i| delays_of(i, 1000)[0]).collect();
        assert!(firsts.iter().any(|&p| p > 500), "{firsts:?}");
    }

    #[test]
    fn unrank_is_lexicographic() {
        let all: Vec<Vec<u64>> = (0..multisets(4, 2)).map(|r| unrank(r, 4, 2)).collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(all, sorted);
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], vec![0, 0]);
        assert_eq!(all[9], vec![3, 3]);
    }
}
