//! norace_rust_sync.rs - a correct program for `weft races`: Rust std synchronisation:
//! Mutex, RwLock, Condvar, Barrier and OnceLock, shared through Arc between four threads.
//! Prints "norace_rust_sync: ok" and exits 0.

use std::sync::{Arc, Barrier, Condvar, Mutex, OnceLock, RwLock};
use std::thread;

static TABLE: OnceLock<Vec<u64>> = OnceLock::new();

fn main() {
    let counter = Arc::new(Mutex::new(0u64));
    let config = Arc::new(RwLock::new(vec![1u64, 2, 3]));
    let barrier = Arc::new(Barrier::new(4));
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    let handles: Vec<_> = (0..4usize)
        .map(|id| {
            let (counter, config, barrier, turn) = (
                Arc::clone(&counter),
                Arc::clone(&config),
                Arc::clone(&barrier),
                Arc::clone(&turn),
            );
            thread::spawn(move || {
                let table = TABLE.get_or_init(|| (0..8).map(|i| i * i).collect());
                if id == 0 {
                    config.write().unwrap().push(4);
                }
                barrier.wait();
                let sum: u64 = config.read().unwrap().iter().sum();
                *counter.lock().unwrap() += sum + table[id];
                // Take turns in id order.
                let (m, cv) = &*turn;
                let mut t = cv.wait_while(m.lock().unwrap(), |t| *t != id).unwrap();
                *t += 1;
                cv.notify_all();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = *counter.lock().unwrap();
    let ok = total == 4 * 10 + 14 && *turn.0.lock().unwrap() == 4;
    println!("norace_rust_sync: {}", if ok { "ok" } else { "wrong" });
    std::process::exit(if ok { 0 } else { 1 });
}
