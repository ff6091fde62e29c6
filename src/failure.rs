//! What a failed run's report says beyond its verdict line: the panics and unemulated
//! calls that tell a program's own failure from a concurrency bug ([`clues`]), where each
//! vCPU the failure concerns stood (its call stack by function and source line, with the
//! frame that panicked), what a blocked thread waits for and who holds it, and the lock
//! cycle of a lock-order deadlock. Shared by `weft record`, `weft replay`, `weft explore`
//! and `weft inspect`.

pub mod clues;

use weft_trace::{Backtrace, VcpuId, Verdict};

pub use clues::{Clues, Panic, PanicKind, Unemulated};

use crate::debuginfo::SourceMap;

/// The lines to print under a verdict (what the clues say, a crash's registers, then
/// [`stacks`]), or `None` if there is nothing to add.
pub fn details(
    v: &Verdict,
    stacks: &[Backtrace],
    clues: &Clues,
    map: &SourceMap,
) -> Option<String> {
    if v.is_pass() {
        return None;
    }
    let mut out = Vec::new();
    let panics = clues.panics();
    for (i, p) in panics.iter().take(clues::MAX_PANICS).enumerate() {
        out.push(panic_line(p, i > 0));
    }
    if panics.len() > clues::MAX_PANICS {
        out.push(format!(
            "  and {} more panic(s) on standard error",
            panics.len() - clues::MAX_PANICS
        ));
    }
    // A Rust program that panicked ends with 101 from `exit`: its stack there says nothing.
    let exit_of_panic = matches!(v, Verdict::ExitStatus { status: 101, .. })
        && panics.iter().any(|p| p.kind == PanicKind::Rust);
    if exit_of_panic {
        out.push(
            "  (exit status 101 is how a Rust program ends when a thread's panic reaches main)"
                .into(),
        );
    }
    if let Some(u) = clues.unemulated_before(v) {
        out.push(unemulated_line(u));
    }
    if let Verdict::Crash(c) = v {
        out.push(format!("registers:{}", registers(&c.regs)));
    }
    if !exit_of_panic {
        out.extend(self::stacks(v, stacks, map));
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

/// The hint under a crash of a board guest that resembles a Linux program
/// ([`crate::machine::resembles_linux`]): a static musl executable carries no Linux mark,
/// so it runs on the board unless `--linux` says otherwise, and crashes at its first
/// system call or in its startup code.
pub fn board_hint(v: &Verdict, elf: &[u8]) -> Option<String> {
    (matches!(v, Verdict::Crash(_)) && crate::machine::resembles_linux(elf)).then(|| {
        "hint: this guest ran on the weft board, but it looks like a Linux program (a C \
         library's startup code or thread-local storage); a static musl executable carries \
         no Linux mark in its ELF: record it with --linux"
            .to_string()
    })
}

/// `  Rust panic on vcpu6 (thread '<unnamed>') at src/a.rs:57:38: a worker gives up`.
fn panic_line(p: &Panic, later: bool) -> String {
    let then = if later { "then " } else { "" };
    let head = match p.kind {
        PanicKind::Rust => format!(
            "  {then}Rust panic on {}{}{}",
            p.vcpu,
            p.what
                .as_ref()
                .map_or_else(String::new, |t| format!(" (thread '{t}')")),
            p.location
                .as_ref()
                .map_or_else(String::new, |l| format!(" at {l}")),
        ),
        PanicKind::CxxException => format!(
            "  {then}uncaught C++ exception{} on {}",
            p.what
                .as_ref()
                .map_or_else(String::new, |t| format!(" {t}")),
            p.vcpu
        ),
    };
    if p.message.is_empty() {
        head
    } else {
        format!("{head}: {}", p.message.replace('\n', "\n      "))
    }
}

/// `  note: vcpu0 failed 2 system calls after epoll_create1 (291) returned ENOSYS: ...`.
fn unemulated_line(u: &Unemulated) -> String {
    let call = u.warning.split(':').next().unwrap_or(&u.warning);
    let after = match u.calls_after {
        0 => "right after".to_string(),
        1 => "1 system call after".to_string(),
        n => format!("{n} system calls after"),
    };
    format!(
        "  note: {} failed {after} {call} returned ENOSYS at step {}: weft does not emulate \
         that call (docs/linux.md), so this is likely a limit of weft, not a bug of the program",
        u.vcpu, u.step
    )
}

/// Where the vCPUs a failure concerns stood: each one's call stack (for a deadlock, under
/// the line saying where it waits, with what it is blocked on), and a lock cycle.
pub fn stacks(v: &Verdict, stacks: &[Backtrace], map: &SourceMap) -> Option<String> {
    let stack_of = |vcpu: VcpuId| stacks.iter().find(|b| b.vcpu == vcpu);
    let mut out = Vec::new();
    match v {
        Verdict::Pass => return None,
        Verdict::Deadlock { vcpus } => {
            for (v, rip) in vcpus {
                let at = map.describe(*rip);
                let at = if at.is_empty() {
                    String::new()
                } else {
                    format!(" {at}")
                };
                let mut line = format!("  {v} waits at {rip:#x}{at}");
                if let Some(b) = stack_of(*v) {
                    if let Some(w) = wait(map, b) {
                        line.push_str(&format!("\n      {w}"));
                    }
                    for l in map.describe_stack(&b.frames).into_iter().skip(1) {
                        line.push_str(&format!("\n      {l}"));
                    }
                }
                out.push(line);
            }
            if let Some(cycle) = lock_cycle(stacks) {
                let names: Vec<String> = cycle.iter().map(VcpuId::to_string).collect();
                out.push(format!(
                    "  lock cycle: {} -> {} (each waits for a mutex the next one holds)",
                    names.join(" -> "),
                    names[0]
                ));
            }
            return Some(out.join("\n"));
        }
        _ => {}
    }
    for b in stacks {
        out.push(format!("call stack of {}:", b.vcpu));
        let lines = map.describe_stack(&b.frames);
        if let Some((i, line, how)) = panic_frame(map, &b.frames) {
            out.push(format!("  {how} at {line} (in frame #{i})"));
        }
        for l in lines {
            out.push(format!("  {l}"));
        }
    }
    (!out.is_empty()).then(|| out.join("\n"))
}

/// Where a stack panicked or threw: the first frame past the Rust panic machinery or the
/// C++ runtime's throw and terminate whose source (its own line, or a line of code inlined
/// into it: Rust inlines the user's closure into std's thread start) is the program's,
/// not a toolchain library's. `None` if the stack does not pass through that machinery or
/// no frame past it has a source line of the program. Returns the frame's index, the
/// source line, and "panicked" or "threw".
pub fn panic_frame(
    map: &SourceMap,
    frames: &[u64],
) -> Option<(usize, crate::debuginfo::SourceLine, &'static str)> {
    let at = |i: usize| {
        if i == 0 {
            frames[i]
        } else {
            frames[i].wrapping_sub(1)
        }
    };
    let names: Vec<Option<String>> = (0..frames.len())
        .map(|i| map.symbol(at(i)).map(|(n, _)| n.to_string()))
        .collect();
    let marker = |n: &str| {
        n.contains("panic")
            || n.contains("unwrap_failed")
            || n.contains("expect_failed")
            || n.contains("__cxa_throw")
            || n.contains("__cxa_rethrow")
            || n.contains("terminate")
    };
    let last = names
        .iter()
        .rposition(|n| n.as_deref().is_some_and(marker))?;
    let library = |file: &str| {
        file.starts_with("/rustc/")
            || file.contains("/rustlib/")
            || file.starts_with("/usr/include/")
            || file.starts_with("/usr/lib/")
            || ["library/std/", "library/core/", "library/alloc/"]
                .iter()
                .any(|l| file.contains(l))
    };
    let threw = names
        .iter()
        .any(|n| n.as_deref().is_some_and(|n| n.contains("__cxa_")));
    let how = if threw { "threw" } else { "panicked" };
    (last + 1..frames.len()).find_map(|i| {
        map.frames(at(i))
            .into_iter()
            .find(|l| !library(&l.file))
            .map(|l| (i, l, how))
    })
}

/// What a blocked thread waits for: `blocked on the futex at 0x4c6f80 (lock_b), a mutex
/// held by vcpu2`.
pub fn wait(map: &SourceMap, b: &Backtrace) -> Option<String> {
    let f = b.futex?;
    let name = map
        .symbol_text(f)
        .map_or_else(String::new, |n| format!(" ({n})"));
    if let Some(j) = b.joins {
        return Some(format!(
            "blocked on the futex at {f:#x}{name}: waits for {j} to exit (pthread_join)"
        ));
    }
    Some(match b.owner {
        Some(o) if o == b.vcpu => {
            format!("blocked on the futex at {f:#x}{name}, a mutex it holds itself")
        }
        Some(o) => format!("blocked on the futex at {f:#x}{name}, a mutex held by {o}"),
        None => match waiting_in(map, &b.frames) {
            Some(what) => format!("blocked on the futex at {f:#x}{name}: {what}"),
            None => format!("blocked on the futex at {f:#x}{name}"),
        },
    })
}

/// The kind of wait a call stack is in, from the pthread (glibc or musl) or Rust std
/// function it passes through.
fn waiting_in(map: &SourceMap, frames: &[u64]) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        ("cond_wait", "waits on a condition variable"),
        ("cond_timedwait", "waits on a condition variable"),
        ("cond_clockwait", "waits on a condition variable"),
        ("sem_wait", "waits on a semaphore"),
        ("sem_timedwait", "waits on a semaphore"),
        ("sem_clockwait", "waits on a semaphore"),
        ("barrier_wait", "waits at a barrier"),
        ("rwlock_rdlock", "waits for a read lock"),
        ("rwlock_wrlock", "waits for a write lock"),
        ("rwlock_timed", "waits for a read-write lock"),
        ("mutex_lock", "waits for a mutex"),
        ("mutex_timedlock", "waits for a mutex"),
        ("mutex_clocklock", "waits for a mutex"),
        // Rust's std (futex-based: no owner to name).
        ("Mutex>::lock", "waits for a mutex"),
        ("Condvar>::wait", "waits on a condition variable"),
        ("RwLock>::read", "waits for a read lock"),
        ("RwLock>::write", "waits for a write lock"),
    ];
    frames.iter().enumerate().find_map(|(i, &pc)| {
        let at = if i == 0 { pc } else { pc.wrapping_sub(1) };
        let (name, _) = map.symbol(at)?;
        KINDS
            .iter()
            .find(|(k, _)| name.contains(k))
            .map(|(_, what)| *what)
    })
}

/// A cycle of vCPUs each blocked on a mutex the next one holds, starting from the lowest
/// vCPU in it; `None` if there is none.
pub fn lock_cycle(stacks: &[Backtrace]) -> Option<Vec<VcpuId>> {
    let holder = |v: VcpuId| stacks.iter().find(|b| b.vcpu == v)?.owner;
    let mut starts: Vec<VcpuId> = stacks.iter().map(|b| b.vcpu).collect();
    starts.sort();
    for start in starts {
        let mut path = vec![start];
        let mut at = start;
        while let Some(next) = holder(at) {
            if next == start {
                return Some(path);
            }
            if path.contains(&next) {
                break;
            }
            path.push(next);
            at = next;
        }
    }
    None
}

/// General registers and RFLAGS, four per line (each line starts with a newline).
pub fn registers(regs: &[u64; 17]) -> String {
    let mut s = String::new();
    for (i, (name, val)) in weft_trace::CRASH_REG_NAMES.iter().zip(regs).enumerate() {
        if i % 4 == 0 {
            s.push_str("\n ");
        }
        s.push_str(&format!(" {name:>6}={val:#018x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waits(vcpu: u32, owner: Option<u32>) -> Backtrace {
        Backtrace {
            vcpu: VcpuId(vcpu),
            frames: vec![0x401000],
            futex: Some(0x4c0000 + vcpu as u64),
            owner: owner.map(VcpuId),
            joins: None,
        }
    }

    #[test]
    fn a_cycle_of_holders_is_found_from_its_lowest_vcpu() {
        let s = [waits(3, Some(1)), waits(1, Some(2)), waits(2, Some(3))];
        assert_eq!(lock_cycle(&s), Some(vec![VcpuId(1), VcpuId(2), VcpuId(3)]));
    }

    #[test]
    fn a_chain_without_a_cycle_is_none() {
        let s = [waits(1, Some(2)), waits(2, None), waits(0, Some(1))];
        assert_eq!(lock_cycle(&s), None);
        // A chain leading into a cycle that excludes its start is not the start's cycle.
        let s = [waits(0, Some(1)), waits(1, Some(2)), waits(2, Some(1))];
        assert_eq!(lock_cycle(&s), Some(vec![VcpuId(1), VcpuId(2)]));
    }

    #[test]
    fn a_thread_waiting_on_its_own_mutex_says_so() {
        let map = SourceMap::default();
        let w = wait(&map, &waits(2, Some(2))).unwrap();
        assert!(w.ends_with("a mutex it holds itself"), "{w}");
        assert_eq!(
            wait(
                &map,
                &Backtrace {
                    futex: None,
                    ..waits(1, None)
                }
            ),
            None
        );
    }
}
