//! rust_panic_abort.rs - a Rust program built with `-C panic=abort`: a thread's `expect`
//! on a missing value panics, and the panic aborts the process (SIGABRT) instead of
//! unwinding. `check` is small enough that rustc inlines it into std's thread start, so
//! only the debug information's inlined frames say where the panic was.

fn check(values: &[u32]) -> u32 {
    values.get(10).copied().expect("the tenth value is missing")
}

fn main() {
    let t = std::thread::spawn(|| check(&[1, 2, 3]));
    println!("{}", t.join().unwrap_or(0));
}
