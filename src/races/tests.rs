//! Unit tests of the happens-before pass on hand-made event streams.

use super::*;
use weft_trace::{AccessKind, GuestAddr, GuestImage, MachineOptions, Step, VcpuId};

fn header(vcpus: u32) -> TraceHeader {
    TraceHeader {
        weft_version: String::new(),
        guest: GuestImage::new("t", Vec::new()),
        options: MachineOptions {
            vcpus,
            ..MachineOptions::default()
        },
        strategy: String::new(),
    }
}

fn acc(step: u64, v: u32, kind: AccessKind, addr: u64) -> Event {
    Event::Access {
        step: Step(step),
        vcpu: VcpuId(v),
        rip: 0x1000 + step,
        addr: GuestAddr(addr),
        size: 8,
        kind,
        value: step,
    }
}

fn run(vcpus: u32, events: Vec<Event>) -> RaceReport {
    let h = header(vcpus);
    let sync = sync_cells(&h, events.clone());
    analyze(&h, sync, events)
}

use AccessKind::{AtomicRead as AR, AtomicWrite as AW, Read as R, Write as W};

#[test]
fn unordered_writes_race_and_a_lock_orders_them() {
    let r = run(2, vec![acc(0, 0, W, 0x100), acc(1, 1, W, 0x100)]);
    assert_eq!(r.races.len(), 1);
    assert_eq!(r.races[0].class, "WaW");
    // vCPU 0 writes, releases a lock (plain store to a word an XCHG touches), vCPU 1
    // takes it (XCHG) and writes: ordered, a conflict but no race.
    let r = run(
        2,
        vec![
            acc(0, 0, AR, 0x200),
            acc(0, 0, AW, 0x200),
            acc(1, 0, W, 0x100),
            acc(2, 0, W, 0x200),
            acc(3, 1, AR, 0x200),
            acc(3, 1, AW, 0x200),
            acc(4, 1, W, 0x100),
        ],
    );
    assert!(r.races.is_empty(), "{:?}", r.races);
    assert!(r
        .conflicts
        .iter()
        .any(|g| g.class == "WaW" && g.first.addr == 0x100));
}

#[test]
fn every_reader_since_the_last_write_pairs_with_the_next_write() {
    let r = run(
        4,
        vec![
            acc(0, 0, R, 0x100),
            acc(1, 1, R, 0x100),
            acc(2, 2, R, 0x100),
            acc(3, 3, W, 0x100),
        ],
    );
    let mut readers: Vec<u32> = r.races.iter().map(|g| g.first.vcpu).collect();
    readers.sort();
    assert_eq!(readers, vec![0, 1, 2]);
    assert!(r
        .races
        .iter()
        .all(|g| g.class == "WaR" && g.second.vcpu == 3));
}

#[test]
fn one_vcpu_never_pairs_with_itself() {
    let r = run(
        2,
        vec![
            acc(0, 0, W, 0x100),
            acc(1, 0, R, 0x100),
            acc(2, 0, W, 0x100),
        ],
    );
    assert!(r.races.is_empty() && r.conflicts.is_empty());
}

#[test]
fn aborted_transactions_leave_no_accesses() {
    let begin = |step, v| Event::TxBegin {
        step: Step(step),
        vcpu: VcpuId(v),
        rip: 0x500,
        depth: 1,
    };
    let r = run(
        2,
        vec![
            begin(0, 0),
            acc(1, 0, W, 0x100),
            Event::TxAbort {
                step: Step(2),
                vcpu: VcpuId(0),
                rip: 0x501,
                begin_rip: 0x500,
                status: 6,
                cause: weft_trace::AbortCause::Injected,
            },
            acc(3, 1, W, 0x100),
        ],
    );
    assert_eq!(r.aborted_accesses, 1);
    assert!(r.races.is_empty() && r.conflicts.is_empty());
}

fn sized(step: u64, v: u32, kind: AccessKind, addr: u64, size: u8, rip: u64) -> Event {
    Event::Access {
        step: Step(step),
        vcpu: VcpuId(v),
        rip,
        addr: GuestAddr(addr),
        size,
        kind,
        value: step,
    }
}

#[test]
fn adjacent_elements_of_one_word_never_race_but_a_wide_read_of_both_does() {
    // int phase[2]: vCPU 0 writes phase[0], vCPU 1 phase[1], concurrently.
    let r = run(
        2,
        vec![
            sized(0, 0, W, 0x100, 4, 0x10),
            sized(1, 1, W, 0x104, 4, 0x20),
            sized(2, 0, R, 0x100, 4, 0x30),
            sized(3, 1, R, 0x104, 4, 0x40),
        ],
    );
    assert!(r.races.is_empty() && r.conflicts.is_empty(), "{r:?}");
    // An 8-byte read of both by vCPU 0 races with vCPU 1's write of phase[1] only.
    let r = run(
        2,
        vec![
            sized(0, 0, W, 0x100, 4, 0x10),
            sized(1, 1, W, 0x104, 4, 0x20),
            sized(2, 0, R, 0x100, 8, 0x30),
        ],
    );
    assert_eq!(r.races.len(), 1, "{r:?}");
    let g = &r.races[0];
    assert_eq!((g.addr_start, g.addr_end), (0x104, 0x108));
    assert_eq!((g.first.vcpu, g.second.vcpu), (1, 0));
}

#[test]
fn a_racy_increment_is_one_race_with_every_class_and_a_count() {
    // counter++ on two vCPUs, three times each, both loads before both stores: load at
    // 0x10, store at 0x20.
    let mut events = Vec::new();
    let mut step = 0;
    for _ in 0..3 {
        for (v, kind, rip) in [(0, R, 0x10), (1, R, 0x10), (0, W, 0x20), (1, W, 0x20)] {
            events.push(sized(step, v, kind, 0x200, 8, rip));
            step += 1;
        }
    }
    let r = run(2, events);
    // Without DWARF a location is an instruction: {load, store} and {store, store}.
    assert_eq!(r.races.len(), 2, "{:?}", r.races);
    let rw = r
        .races
        .iter()
        .find(|g| g.first.rip != g.second.rip)
        .unwrap();
    assert_eq!(rw.classes, vec!["RaW", "WaR"]);
    let ww = r
        .races
        .iter()
        .find(|g| g.first.rip == g.second.rip)
        .unwrap();
    assert_eq!(ww.classes, vec!["WaW"]);
    assert!(rw.count > 3 && ww.count >= 3, "{:?}", r.races);
    assert!(r
        .races
        .iter()
        .all(|g| g.addr_start == 0x200 && g.addr_end == 0x208));
}
