//! norace_rust_mpsc.rs - a correct program for `weft races`: std::sync::mpsc channels,
//! unbounded and bounded (sync_channel), carrying boxed vectors and strings from three
//! producers to a consumer and replies back. Prints "norace_rust_mpsc: sum=..." and
//! exits 0.

use std::sync::mpsc;
use std::thread;

fn main() {
    let (tx, rx) = mpsc::channel::<Box<Vec<u32>>>();
    let (btx, brx) = mpsc::sync_channel::<String>(1);
    let mut producers = Vec::new();
    for p in 0..3u32 {
        let tx = tx.clone();
        let btx = btx.clone();
        producers.push(thread::spawn(move || {
            for i in 0..4 {
                tx.send(Box::new(vec![p, i, p * i])).unwrap();
            }
            btx.send(format!("producer {p} done")).unwrap();
        }));
    }
    drop(tx);
    drop(btx);
    let names = thread::spawn(move || brx.iter().map(|s| s.len()).sum::<usize>());
    let sum: u32 = rx.iter().map(|v| v.iter().sum::<u32>()).sum();
    for p in producers {
        p.join().unwrap();
    }
    let len = names.join().unwrap();
    println!("norace_rust_mpsc: sum={sum} names={len}");
    std::process::exit(if sum == 48 && len == 45 { 0 } else { 1 });
}
