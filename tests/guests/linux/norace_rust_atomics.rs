//! norace_rust_atomics.rs - a correct program for `weft races`: Rust atomics with
//! Release/Acquire, which compile to plain MOVs on x86. A producer writes data through an
//! UnsafeCell and publishes it with a release store to a static AtomicBool and to an
//! AtomicUsize inside a heap object; the consumer spins with acquire loads. No locked
//! instruction touches either flag. Prints "norace_rust_atomics: sum=..." and exits 0.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

static READY: AtomicBool = AtomicBool::new(false);

struct Slot {
    data: UnsafeCell<[u64; 4]>,
    len: AtomicUsize,
}

// Safety: `data` is written before `len` is stored with Release and read only after
// `len` is loaded with Acquire.
unsafe impl Sync for Slot {}

fn main() {
    let slot = Arc::new(Slot {
        data: UnsafeCell::new([0; 4]),
        len: AtomicUsize::new(0),
    });
    let s2 = Arc::clone(&slot);
    let consumer = thread::spawn(move || {
        while !READY.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        let n = loop {
            let n = s2.len.load(Ordering::Acquire);
            if n > 0 {
                break n;
            }
            thread::yield_now();
        };
        // Safety: published by the release store of `len`.
        let data: &[u64; 4] = unsafe { &*s2.data.get() };
        data[..n].iter().sum::<u64>()
    });
    let producer = thread::spawn(move || {
        // Safety: the consumer reads `data` only after seeing `len` > 0.
        unsafe { *slot.data.get() = [5, 6, 7, 8] };
        slot.len.store(4, Ordering::Release);
        READY.store(true, Ordering::Release);
    });
    producer.join().unwrap();
    let sum = consumer.join().unwrap();
    println!("norace_rust_atomics: sum={sum}");
    std::process::exit(if sum == 26 { 0 } else { 1 });
}
