//! Format tests: round trips, damage of every kind, seeking, determinism, compactness.

use super::*;
use std::path::Path;

fn header() -> TraceHeader {
    TraceHeader {
        weft_version: "0.1.0".into(),
        guest: GuestImage::new("guest.elf", b"\x7fELF fake image bytes".to_vec()),
        options: MachineOptions::default(),
        strategy: "random:seed=1".into(),
    }
}

fn every_variant() -> Vec<Event> {
    let v = VcpuId(1);
    vec![
        Event::Access {
            step: Step(1),
            vcpu: v,
            rip: 0x401000,
            addr: GuestAddr(0x403000),
            size: 8,
            kind: AccessKind::Read,
            value: 5,
        },
        Event::Access {
            step: Step(2),
            vcpu: v,
            rip: 0x401007,
            addr: GuestAddr(0x403000),
            size: 8,
            kind: AccessKind::Write,
            value: 6,
        },
        Event::Access {
            step: Step(3),
            vcpu: VcpuId(0),
            rip: 0x401020,
            addr: GuestAddr(0x403010),
            size: 4,
            kind: AccessKind::AtomicRead,
            value: u64::MAX,
        },
        Event::Access {
            step: Step(3),
            vcpu: VcpuId(0),
            rip: 0x401020,
            addr: GuestAddr(0x403010),
            size: 4,
            kind: AccessKind::AtomicWrite,
            value: 0,
        },
        Event::Access {
            step: Step(4),
            vcpu: VcpuId(63),
            rip: 0,
            addr: GuestAddr(u64::MAX),
            size: 3,
            kind: AccessKind::Read,
            value: 1,
        },
        Event::Run { vcpu: v, points: 3 },
        Event::Console {
            step: Step(5),
            vcpu: v,
            fd: 2,
            bytes: b"hello\n".to_vec(),
        },
        Event::Syscall {
            step: Step(5),
            vcpu: v,
            rip: 0x401000,
            nr: 1,
            args: Box::new([1, 0x1000, 6, 0, 0, 0]),
            ret: 6,
        },
        Event::FileData {
            step: Step(5),
            vcpu: v,
            path: "/etc/x".into(),
            data: Err(2),
        },
        Event::Spawn {
            step: Step(5),
            vcpu: v,
            child: VcpuId(1),
            tid: 1001,
        },
        Event::Backtrace {
            step: Step(5),
            stack: Backtrace {
                vcpu: v,
                frames: vec![0x401000, 0x402345, 0x7fff_0000_1234],
                futex: Some(0x4c0000),
                owner: Some(VcpuId(1)),
                joins: None,
            },
        },
        Event::Share {
            step: Step(5),
            vcpu: v,
            addr: GuestAddr(0x403000),
            len: 4096,
            owner: Some(VcpuId(0)),
            read_only: true,
        },
        Event::Hypercall {
            step: Step(6),
            vcpu: v,
            rip: 0x401100,
            nr: 1,
            args: [1, 2, 3],
            ret: 2,
        },
        Event::Fence {
            step: Step(6),
            vcpu: v,
            rip: 0x401104,
            kind: FenceKind::Mfence,
        },
        Event::Mark {
            step: Step(7),
            vcpu: v,
            label: "phase 2".into(),
        },
        Event::Warning {
            step: Step(8),
            vcpu: v,
            rip: 1,
            message: "unknown hypercall".into(),
        },
        Event::VcpuEnd {
            step: Step(9),
            vcpu: v,
            reason: VcpuEndReason::Hlt,
        },
        Event::End {
            step: Step(10),
            verdict: Verdict::Crash(Box::new(CrashInfo {
                vcpu: v,
                rip: 3,
                what: "#UD".into(),
                instruction: "ud2".into(),
                regs: [7; 17],
            })),
        },
    ]
}

fn write(path: &Path, events: &[Event]) -> WriteSummary {
    let mut w = TraceWriter::create(path, &header()).unwrap();
    for e in events {
        w.write(e).unwrap();
    }
    w.finish().unwrap()
}

fn read_all(path: &Path) -> Vec<Event> {
    TraceReader::open(path)
        .unwrap()
        .into_events()
        .map(|e| e.unwrap())
        .collect()
}

/// A realistic loop: a few RIPs, strided addresses, counters, two vCPUs in runs of ~100.
fn workload(n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n + n / 50);
    let mut step = 0u64;
    let mut counters = [0u64; 2];
    let mut i = 0usize;
    while out.len() < n {
        let v = (i / 100 % 2) as u32;
        let k = i % 512;
        let c = &mut counters[v as usize];
        out.push(Event::Access {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x401008,
            addr: GuestAddr(0x404000 + v as u64 * 4096 + k as u64 * 8),
            size: 8,
            kind: AccessKind::Read,
            value: *c,
        });
        step += 1;
        *c += 3;
        out.push(Event::Access {
            step: Step(step),
            vcpu: VcpuId(v),
            rip: 0x401013,
            addr: GuestAddr(0x404000 + v as u64 * 4096 + k as u64 * 8),
            size: 8,
            kind: AccessKind::Write,
            value: *c,
        });
        step += 1;
        i += 1;
        if i.is_multiple_of(100) {
            out.push(Event::Run {
                vcpu: VcpuId(v),
                points: 200,
            });
        }
    }
    out
}

#[test]
fn every_variant_and_the_header_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.weft");
    let s = write(&p, &every_variant());
    assert_eq!(s.events, every_variant().len() as u64);
    let r = TraceReader::open(&p).unwrap();
    assert_eq!(r.header(), &header());
    assert!(r.is_complete());
    assert!(r.warning().is_none());
    assert_eq!(read_all(&p), every_variant());
}

#[test]
fn an_unstripped_guest_of_tens_of_mib_and_events_of_tens_of_mib_round_trip() {
    // A 29 MB unstripped guest once failed with bincode's "the size limit has been
    // reached" (16 MiB), and so did a 20 MB file a program read.
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big-guest.weft");
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(30 << 20, 0x5a);
    let h = TraceHeader {
        guest: GuestImage::new("big.elf", elf),
        ..header()
    };
    let file = Event::FileData {
        step: Step(3),
        vcpu: VcpuId(0),
        path: "/data/big".into(),
        data: Ok(vec![7u8; 20 << 20]),
    };
    let mut w = TraceWriter::create(&p, &h).unwrap();
    w.event(&file).unwrap();
    w.finish().unwrap();
    let r = TraceReader::open(&p).unwrap();
    assert_eq!(r.header().guest.elf.len(), 30 << 20);
    let events: Vec<Event> = r.into_events().map(|e| e.unwrap()).collect();
    assert_eq!(events, vec![file]);
}

#[test]
fn many_chunks_stream_back_in_order() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.weft");
    let events = workload(300_000);
    let s = write(&p, &events);
    assert!(s.chunks >= 4, "{s:?}");
    assert_eq!(read_all(&p), events);
}

#[test]
fn writing_the_same_events_twice_gives_identical_files() {
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("a.weft"), d.path().join("b.weft"));
    let events = workload(100_000);
    write(&a, &events);
    write(&b, &events);
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

#[test]
fn a_truncated_trace_yields_a_prefix_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("full.weft");
    let events = workload(200_000);
    write(&p, &events);
    let bytes = std::fs::read(&p).unwrap();
    let header_end = 16 + u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize + 4;
    let cut = d.path().join("cut.weft");
    let mut cuts: Vec<usize> = (1..24)
        .map(|i| header_end + (bytes.len() - header_end) * i / 24)
        .collect();
    cuts.extend([header_end, bytes.len() - 1, bytes.len() - 16]);
    for at in cuts {
        std::fs::write(&cut, &bytes[..at]).unwrap();
        let r = TraceReader::open(&cut).unwrap_or_else(|e| panic!("cut at {at}: {e}"));
        assert!(r.warning().is_some(), "cut at {at} gives no warning");
        assert!(!r.is_complete());
        let got: Vec<Event> = r.into_events().map(|e| e.unwrap()).collect();
        assert_eq!(&events[..got.len()], &got[..], "cut at {at}: not a prefix");
    }
    // A cut inside the header is an error that names the file.
    for at in [0, 5, 12, 17, header_end - 1] {
        std::fs::write(&cut, &bytes[..at]).unwrap();
        let e = TraceReader::open(&cut)
            .err()
            .unwrap_or_else(|| panic!("cut at {at} opened"))
            .to_string();
        assert!(e.contains("cut.weft"), "{e}");
    }
}

#[test]
fn foreign_corrupt_and_other_version_files_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.weft");
    write(&p, &workload(200_000));
    let good = std::fs::read(&p).unwrap();
    let bad = d.path().join("bad.weft");

    std::fs::write(&bad, b"GIF89a not a trace").unwrap();
    let e = TraceReader::open(&bad).err().unwrap().to_string();
    assert_eq!(
        e,
        format!("{}: not a weft trace (bad magic)", bad.display())
    );

    for (found, word, reads) in [
        (
            OLDEST_READABLE_VERSION - 1,
            "older",
            format!("(versions {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})"),
        ),
        (
            FORMAT_VERSION + 5,
            "newer",
            format!("(version {FORMAT_VERSION})"),
        ),
    ] {
        let mut v = good.clone();
        v[8..12].copy_from_slice(&found.to_le_bytes());
        std::fs::write(&bad, &v).unwrap();
        let e = TraceReader::open(&bad).err().unwrap().to_string();
        assert!(
            e.contains(&format!("trace format version {found} is {word}")) && e.contains(&reads),
            "{e}"
        );
    }
    // Every version from the oldest readable one on opens, with the header layout that
    // version wrote: before 5 it had no `sharing` and means every access was shared.
    for version in OLDEST_READABLE_VERSION..=FORMAT_VERSION {
        let mut h = header();
        if version < 5 {
            h.options.sharing = Sharing::All;
        }
        let mut w = TraceWriter::create_as_version(&bad, &h, version).unwrap();
        for e in workload(2_000) {
            w.write(&e).unwrap();
        }
        w.finish().unwrap();
        let r = TraceReader::open(&bad).unwrap();
        assert_eq!(r.format_version(), version);
        assert_eq!(r.header(), &h);
        assert_eq!(r.into_events().count(), 2_001);
    }
    // A header saying anything but `All` cannot be written in an old format.
    let e = TraceWriter::create_as_version(&bad, &header(), 4)
        .err()
        .unwrap();
    assert!(e.to_string().contains("Sharing::All"), "{e}");

    let mut h = good.clone();
    h[30] ^= 0x55;
    std::fs::write(&bad, &h).unwrap();
    let e = TraceReader::open(&bad).err().unwrap().to_string();
    assert!(e.contains("header is corrupt"), "{e}");

    // A flipped byte inside a chunk of a complete trace: an error when reading it.
    let mut c = good.clone();
    let mid = good.len() / 2;
    c[mid] ^= 0x01;
    std::fs::write(&bad, &c).unwrap();
    let r = TraceReader::open(&bad).unwrap();
    let err = r
        .into_events()
        .find_map(|e| e.err())
        .expect("corruption found")
        .to_string();
    assert!(err.contains("corrupt") && err.contains("bad.weft"), "{err}");
}

#[test]
fn random_damage_never_panics() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.weft");
    write(&p, &every_variant());
    let good = std::fs::read(&p).unwrap();
    let bad = d.path().join("bad.weft");
    let mut seed = 1u64;
    for _ in 0..300 {
        let mut b = good.clone();
        for _ in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (seed >> 33) as usize % b.len();
            b[i] = (seed >> 20) as u8;
        }
        std::fs::write(&bad, &b).unwrap();
        if let Ok(r) = TraceReader::open(&bad) {
            for e in r.into_events() {
                if e.is_err() {
                    break;
                }
            }
        }
    }
}

#[test]
fn events_from_a_step_include_everything_from_it() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.weft");
    let events = workload(300_000);
    write(&p, &events);
    for target in [0u64, 1, 150_000, 299_990, 10_000_000] {
        let from: Vec<Event> = TraceReader::open(&p)
            .unwrap()
            .events_from(target)
            .map(|e| e.unwrap())
            .collect();
        let want: Vec<&Event> = events
            .iter()
            .filter(|e| e.step().is_some_and(|s| s.0 >= target))
            .collect();
        let got: Vec<&Event> = from
            .iter()
            .filter(|e| e.step().is_some_and(|s| s.0 >= target))
            .collect();
        assert_eq!(got, want, "from step {target}");
        assert!(from.len() <= want.len() + CHUNK_EVENTS as usize + 2000);
    }
}

#[test]
fn accesses_compress_to_about_a_byte() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t.weft");
    let events = workload(1_000_000);
    let s = write(&p, &events);
    let per_event = s.bytes as f64 / s.events as f64;
    println!(
        "{} events in {} bytes: {per_event:.3} bytes/event",
        s.events, s.bytes
    );
    assert!(per_event < 1.5, "{per_event} bytes per event");
}

#[test]
fn events_stay_small() {
    // Every event is moved through readers, sinks and analyses millions of times; big
    // payloads (crash registers) are boxed so an access costs no more than it needs.
    let size = std::mem::size_of::<Event>();
    assert!(size <= 72, "Event is {size} bytes");
}

#[test]
fn a_size_limit_keeps_an_indexed_trace_within_the_limit() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("limited.weft");
    let events = workload(400_000);
    let full = write(&p, &events);
    assert!(full.chunks >= 4, "{full:?}");
    let limit = full.bytes / 2;
    let mut w = TraceWriter::create_limited(&p, &header(), Some(limit)).unwrap();
    let failed_at = events
        .iter()
        .position(|e| w.write(e).is_err())
        .expect("the limit is reached");
    let e = w.write(&events[0]).unwrap_err().to_string();
    assert!(e.contains("an earlier write failed"), "{e}");
    let s = w.finish().unwrap();
    assert!(s.indexed && s.chunks > 0, "{s:?}");
    assert!(s.events < failed_at as u64 + 1, "{s:?}");
    let len = std::fs::metadata(&p).unwrap().len();
    assert_eq!(len, s.bytes);
    assert!(len <= limit, "{len}");
    // Complete (indexed), no warning, and exactly the first events.
    let r = TraceReader::open(&p).unwrap();
    assert!(r.is_complete() && r.warning().is_none());
    let got = read_all(&p);
    assert_eq!(got.len() as u64, s.events);
    assert_eq!(&got[..], &events[..got.len()]);

    // A limit the header passes is refused before the file is created.
    let q = d.path().join("tiny.weft");
    let e = TraceWriter::create_limited(&q, &header(), Some(50))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("smaller than the trace header"), "{e}");
    assert!(!q.exists());
}
