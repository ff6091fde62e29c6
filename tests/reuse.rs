//! A machine kept from run to run (what `weft explore` does) must behave exactly like a
//! fresh one: same events, byte for byte, whatever ran on it before.

mod common;
use std::cell::RefCell;
use std::rc::Rc;

use common::guest;
use weft::machine::{Machine, RunConfig};
use weft_recorder::StrategySpec;
use weft_trace::{Event, MachineOptions, TmOptions, VecSink};

fn events(m: &Machine, spec: &str) -> Vec<Event> {
    let sink = Rc::new(RefCell::new(VecSink::default()));
    let spec: StrategySpec = spec.parse().unwrap();
    m.run(spec.build(), sink.clone(), RunConfig::default())
        .expect("run");
    let e = std::mem::take(&mut sink.borrow_mut().0);
    e
}

#[test]
fn a_kept_machine_runs_exactly_like_a_fresh_one() {
    for (name, vcpus) in [
        ("racy_counter", 2),
        ("locked_counter", 3),
        ("tm_elided_lock_buggy", 2),
        ("tm_semantics", 1),
        ("tm_xabort", 3),
        ("entry_state", 4),
    ] {
        let elf = std::fs::read(guest(name)).unwrap();
        let opts = MachineOptions {
            vcpus,
            ..MachineOptions::default()
        };
        let fresh = |spec: &str| events(&Machine::new(&elf, &opts).unwrap(), spec);
        let kept = Machine::new(&elf, &opts).unwrap();
        for spec in [
            "random:seed=1",
            "random:seed=2",
            "round-robin:quantum=3",
            "random:seed=1",
        ] {
            assert_eq!(events(&kept, spec), fresh(spec), "{name} {spec}");
        }
    }
}

#[test]
fn tm_options_can_change_between_runs() {
    let elf = std::fs::read(guest("tm_elided_lock")).unwrap();
    let opts = MachineOptions::default();
    let mut kept = Machine::new(&elf, &opts).unwrap();
    let injected = TmOptions {
        abort_nth: vec![1, 2, 3],
        ..TmOptions::default()
    };
    kept.set_tm_options(injected.clone());
    let with = events(&kept, "random:seed=4");
    kept.set_tm_options(TmOptions::default());
    let without = events(&kept, "random:seed=4");
    let fresh = Machine::new(
        &elf,
        &MachineOptions {
            tm: injected,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(with, events(&fresh, "random:seed=4"));
    assert_eq!(
        without,
        events(&Machine::new(&elf, &opts).unwrap(), "random:seed=4")
    );
    assert_ne!(with, without);
}
