//! norace_rust_scope.rs - a correct program for `weft races`: a parallel sum the way rayon
//! does it, with std only: thread::scope splits a vector into chunks, each thread sums
//! its chunk and writes the squares back in place (disjoint &mut slices, adjacent u32
//! elements at the seams), and the partial sums come back through the join handles.
//! Prints "norace_rust_scope: sum=..." and exits 0.

use std::thread;

fn main() {
    let mut v: Vec<u32> = (1..=40).collect();
    let total: u64 = thread::scope(|s| {
        let handles: Vec<_> = v
            .chunks_mut(10)
            .map(|chunk| {
                s.spawn(move || {
                    let sum: u64 = chunk.iter().map(|&x| x as u64).sum();
                    for x in chunk.iter_mut() {
                        *x *= *x;
                    }
                    sum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let squares: u64 = v.iter().map(|&x| x as u64).sum();
    println!("norace_rust_scope: sum={total} squares={squares}");
    std::process::exit(if total == 820 && squares == 22140 { 0 } else { 1 });
}
