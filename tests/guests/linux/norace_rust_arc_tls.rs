//! norace_rust_arc_tls.rs - a correct program for `weft races`: Arc clones dropped on
//! several threads (the last drop frees the shared String), thread_local! counters, and
//! println! from every thread at once. Prints "norace_rust_arc_tls: ok" and exits 0.

use std::cell::Cell;
use std::sync::Arc;
use std::thread;

thread_local! {
    static CALLS: Cell<u32> = const { Cell::new(0) };
}

fn count() -> u32 {
    CALLS.with(|c| {
        c.set(c.get() + 1);
        c.get()
    })
}

fn main() {
    let shared = Arc::new(String::from("shared between threads"));
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let s = Arc::clone(&shared);
            thread::spawn(move || {
                let mut n = 0;
                for _ in 0..5 {
                    n = count();
                }
                println!("thread {i}: {} bytes, {n} calls", s.len());
                n
            })
        })
        .collect();
    drop(shared);
    let calls: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let ok = calls == 15 && count() == 1;
    println!("norace_rust_arc_tls: {}", if ok { "ok" } else { "wrong" });
    std::process::exit(if ok { 0 } else { 1 });
}
