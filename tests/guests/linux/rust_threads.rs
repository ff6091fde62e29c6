//! rust_threads.rs - an ordinary Rust program on weft (std threads, Mutex, mpsc, a
//! panic), built static by build.rs (`-C target-feature=+crt-static -C
//! relocation-model=static`). Prints "rust_threads: total=305 received=10" and exits 0;
//! with the argument "deadlock", two threads take two mutexes in opposite orders (a
//! deadlock under some schedules: `weft explore` finds it); with "panic", a thread panics
//! and main panics on the join's error (exit status 101).

use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;

fn transfer(from: &Mutex<i64>, to: &Mutex<i64>, amount: i64) {
    let mut f = from.lock().unwrap();
    let mut t = to.lock().unwrap();
    *f -= amount;
    *t += amount;
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    let total = Arc::new(Mutex::new(0i64));
    let (tx, rx) = mpsc::channel();
    let workers: Vec<_> = (1..=5)
        .map(|i| {
            let total = Arc::clone(&total);
            let tx = tx.clone();
            thread::spawn(move || {
                for j in 0..2 {
                    *total.lock().unwrap() += i * 10 + j;
                    tx.send(i).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
    let received = rx.iter().count();
    println!("rust_threads: total={} received={received}", total.lock().unwrap());
    match arg.as_str() {
        "deadlock" => {
            let a = Arc::new(Mutex::new(100));
            let b = Arc::new(Mutex::new(100));
            // Both transfers start together, so their lock windows overlap.
            let start = Arc::new(Barrier::new(2));
            let (a2, b2, start2) = (Arc::clone(&a), Arc::clone(&b), Arc::clone(&start));
            let t = thread::spawn(move || {
                start2.wait();
                transfer(&a2, &b2, 10)
            });
            start.wait();
            transfer(&b, &a, 20);
            t.join().unwrap();
            println!("rust_threads: a={} b={}", a.lock().unwrap(), b.lock().unwrap());
        }
        "panic" => {
            let t = thread::spawn(|| panic!("a worker gives up"));
            t.join().expect("the worker panicked");
        }
        _ => {}
    }
}
