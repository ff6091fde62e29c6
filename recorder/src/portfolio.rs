//! The portfolio: `weft explore`'s default search. No one strategy finds every bug
//! first (the SCTBench study: PCT needs few schedules where a bug needs a specific order
//! of a few events in a long run, random where it needs many switches anywhere, delay
//! bounding where it needs few deviations from a plain round-robin run), so complementary
//! strategies take turns: schedule `i` of a search is member `i % N` with seed (or
//! index) `start + i / N`. A schedule is still a function of its index alone, so a
//! portfolio search is as parallel, shardable and repeatable as any seeded one, and a
//! failure names the member that found it.

use crate::StrategySpec;

/// The members, in turn order: random; PCT depth 3; iterative delay bounding; focused PCT
/// depth 2 (change points only in the program's own code); PCT depth 2; focused PCT
/// depth 3.
pub const MEMBERS: usize = 6;

/// Schedule `i` of a portfolio search whose seeds start at `start`, for runs of about
/// `steps` contended points (PCT's `steps`, the delay enumeration's `k`), `focus_steps` of
/// them in the program's own code (focused PCT's `steps`).
pub fn member(i: u64, start: u64, steps: u64, focus_steps: u64) -> StrategySpec {
    let seed = start.wrapping_add(i / MEMBERS as u64);
    let pct = |depth, focus| StrategySpec::Pct {
        seed,
        depth,
        steps: if focus { focus_steps } else { steps },
        focus,
    };
    match i % MEMBERS as u64 {
        0 => StrategySpec::Random { seed },
        1 => pct(3, false),
        2 => StrategySpec::Delay { index: seed, steps },
        3 => pct(2, true),
        4 => pct(2, false),
        _ => pct(3, true),
    }
}

/// The members as text, for the summary line.
pub fn describe(steps: u64, focus_steps: u64) -> String {
    format!(
        "portfolio (random, pct depth 3, idb, focused pct depth 2, pct depth 2, focused pct \
         depth 3; steps={steps}, in the program's code {focus_steps})"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_take_turns_and_seeds_advance_per_round() {
        let names: Vec<String> = (0..7).map(|i| member(i, 10, 7, 3).to_string()).collect();
        assert_eq!(names[0], "random:seed=10");
        assert_eq!(names[1], "pct:seed=10,depth=3,steps=7");
        assert_eq!(names[2], "idb:seed=10,steps=7");
        assert_eq!(names[3], "pct:seed=10,depth=2,steps=3,focus=1");
        assert_eq!(names[5], "pct:seed=10,depth=3,steps=3,focus=1");
        assert_eq!(names[6], "random:seed=11");
    }
}
