//! The executor: a process that holds a debug machine replaying the trace, paused at an
//! instruction boundary, and does what the front asks (run to a goal, read registers and
//! memory, fork a checkpoint). A checkpoint is a forked copy waiting on a Unix socket; when
//! the front connects to it, it forks again and the copy serves as the new executor, from
//! the checkpoint's position. The executor exits when the front hangs up or says quit.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_replayer::ScheduleReplay;
use weft_trace::{Event, NullSink, TraceReader, Verdict};

use super::process::{self, Fork};
use super::proto::{self, CheckpointInfo, RegsMsg, Request, Response, RunEnd, RunRequest, Status};
use crate::machine::debug::{PauseReason, Scan};
use crate::machine::{DebugEvent, DebugRun, Machine};

/// A step that either went on here or turned this process into a new executor (the copy
/// of a checkpoint that was just activated), which must serve this connection instead.
enum Forked<T> {
    Here(T),
    Activated(UnixStream),
}

struct Executor {
    run: DebugRun,
    /// Kept alive for the run's sake (it owns the guest image).
    _machine: Machine,
    /// Where checkpoint sockets go.
    dir: PathBuf,
    /// Readable (end of file) once the front is gone: dormant checkpoints then exit.
    lifeline: UnixStream,
    made: u64,
    /// Where the run ended, once it has: (position, verdict line).
    ended: Option<(u64, String)>,
}

/// Build the debug machine for the trace at `path` (whose schedule this process reads into
/// memory once: the file offset is not shared with later forks) and serve `conn`. Never
/// returns.
pub fn main(path: &Path, mut conn: UnixStream, lifeline: UnixStream, dir: PathBuf) -> ! {
    let built = build(path);
    let (machine, run) = match built {
        Ok(b) => b,
        Err(e) => {
            let _ = proto::send(&mut conn, &Response::Error(e));
            process::exit_now(1)
        }
    };
    let mut ex = Executor {
        run,
        _machine: machine,
        dir,
        lifeline,
        made: 0,
        ended: None,
    };
    // The start of history is the first checkpoint.
    match ex.checkpoint(Some(0)) {
        Ok(Forked::Here(info)) => {
            let _ = proto::send(&mut conn, &Response::Checkpoint(info));
        }
        Ok(Forked::Activated(c)) => conn = c,
        Err(e) => {
            let _ = proto::send(&mut conn, &Response::Error(format!("checkpoint: {e}")));
            process::exit_now(1)
        }
    }
    ex.serve(conn)
}

fn build(path: &Path) -> Result<(Machine, DebugRun), String> {
    let reader = TraceReader::open(path).map_err(|e| e.to_string())?;
    let header = reader.header().clone();
    let mut runs = Vec::new();
    for e in reader.into_events() {
        match e {
            Ok(Event::Run { vcpu, points }) => runs.push((vcpu, points)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let mut machine = Machine::new_debug(&header.guest.elf, &header.options)
        .map_err(|e| format!("{}: embedded guest: {e}", path.display()))?;
    if header.options.linux.is_some() {
        machine.set_files(crate::session::recorded_files(path).map_err(|e| e.to_string())?);
    }
    let sink = std::rc::Rc::new(std::cell::RefCell::new(NullSink));
    let run = machine
        .debug_run(Box::new(ScheduleReplay::new(runs.into_iter())), sink)
        .map_err(|e| e.to_string())?;
    Ok((machine, run))
}

impl Executor {
    fn serve(&mut self, mut conn: UnixStream) -> ! {
        loop {
            let Ok(req) = proto::receive::<Request>(&mut conn) else {
                process::exit_now(0)
            };
            let resp = match req {
                Request::Status => Response::Status(self.status()),
                Request::Regs(v) => self.regs(v),
                Request::Memory { addr, len } => {
                    let mut buf = vec![0u8; len.min(1 << 20) as usize];
                    let n = self.run.read_memory(addr, &mut buf);
                    buf.truncate(n);
                    Response::Memory(buf)
                }
                Request::Transactions => Response::Text(self.transactions()),
                Request::Checkpoint => match self.checkpoint(None) {
                    Ok(Forked::Here(info)) => Response::Checkpoint(info),
                    Ok(Forked::Activated(c)) => {
                        conn = c;
                        continue;
                    }
                    Err(e) => Response::Error(format!("checkpoint: {e}")),
                },
                Request::Run(r) => match self.run_to(r) {
                    Ok(Forked::Here(resp)) => resp,
                    Ok(Forked::Activated(c)) => {
                        conn = c;
                        continue;
                    }
                    Err(e) => Response::Error(format!("checkpoint: {e}")),
                },
                Request::Quit => process::exit_now(0),
            };
            if proto::send(&mut conn, &resp).is_err() {
                process::exit_now(0)
            }
        }
    }

    fn status(&self) -> Status {
        let ctl = self.run.ctl();
        let n = ctl.icount.len() as u32;
        Status {
            g: ctl.g,
            next_step: self.run.next_step(),
            vcpu: ctl.last_vcpu,
            icount: ctl.icount.clone(),
            began: ctl.began.clone(),
            live: (0..n).filter(|&v| self.run.is_live(v)).collect(),
            pid: std::process::id() as i32,
        }
    }

    fn regs(&self, v: u32) -> Response {
        if v as usize >= self.run.ctl().icount.len() {
            return Response::Error(format!("no vcpu {v}"));
        }
        let r = self.run.regs(v);
        Response::Regs(Box::new(RegsMsg {
            gprs: r.gprs,
            rip: r.rip,
            rflags: r.rflags,
            segments: r.segments,
            st: r.st,
            fctrl: r.fctrl,
            fstat: r.fstat,
            ftag: r.ftag,
            xmm: r.xmm.to_vec(),
            mxcsr: r.mxcsr,
        }))
    }

    fn transactions(&self) -> String {
        let n = self.run.ctl().icount.len() as u32;
        let mut s = String::new();
        for v in 0..n {
            let what = self
                .run
                .transaction(v)
                .unwrap_or_else(|| "not in a transaction".into());
            s.push_str(&format!("vcpu {v}: {what}\n"));
        }
        s
    }

    /// Fork a dormant copy of this process here. In the copy's own copies (one per
    /// activation) this returns `Activated` with the front's new connection.
    fn checkpoint(&mut self, slot: Option<u64>) -> io::Result<Forked<CheckpointInfo>> {
        self.made += 1;
        let socket = self
            .dir
            .join(format!("ckpt-{}-{}.sock", std::process::id(), self.made));
        let listener = UnixListener::bind(&socket)?;
        let status = self.status();
        match process::fork()? {
            Fork::Parent(pid) => Ok(Forked::Here(CheckpointInfo {
                status,
                socket,
                pid,
                slot,
            })),
            Fork::Child => Ok(Forked::Activated(dormant(listener, &self.lifeline))),
        }
    }

    /// Carry out a run request.
    fn run_to(&mut self, r: RunRequest) -> io::Result<Forked<Response>> {
        let mut have: BTreeSet<u64> = r.have_checkpoints.into_iter().collect();
        let every = r.checkpoint_every.max(1);
        {
            let mut c = self.run.ctl();
            c.goal = r.goal;
            c.breakpoints = r.breakpoints.into_iter().collect();
            c.watches = r.watches;
            c.scan = r.scan_below.map(|below| Scan { below, last: None });
            c.limit = r.limit;
        }
        self.run.sync_watching();
        let mut made = Vec::new();
        let end = loop {
            if let Some((g, verdict)) = &self.ended {
                break RunEnd::Ended {
                    g: *g,
                    verdict: verdict.clone(),
                };
            }
            let next = next_slot(self.run.next_step(), every, &have);
            self.run.ctl().checkpoint_at_step = Some(next * every);
            match self.run.resume() {
                DebugEvent::Paused {
                    reason: PauseReason::Checkpoint,
                    ..
                } => {
                    let slot = self.run.next_step() / every;
                    match self.checkpoint(Some(slot))? {
                        Forked::Here(info) => made.push(info),
                        Forked::Activated(c) => return Ok(Forked::Activated(c)),
                    }
                    have.insert(slot);
                }
                DebugEvent::Paused { reason, .. } => break RunEnd::Paused(reason),
                DebugEvent::Ended(outcome) => {
                    let verdict = match &outcome.verdict {
                        Some(Verdict::Pass) => "the guest passed".to_string(),
                        Some(v) => format!("{} ({v})", v.class()),
                        None => "the recorded schedule ends here".to_string(),
                    };
                    self.ended = Some((self.run.ctl().g, verdict));
                }
            }
        };
        let hit = self.run.ctl().scan.take().and_then(|s| s.last);
        Ok(Forked::Here(Response::Ran {
            end,
            status: self.status(),
            hit,
            checkpoints: made,
        }))
    }
}

/// The first checkpoint slot after `step` that has no checkpoint yet.
fn next_slot(step: u64, every: u64, have: &BTreeSet<u64>) -> u64 {
    let mut k = step / every + 1;
    while have.contains(&k) {
        k += 1;
    }
    k
}

/// A checkpoint's life: wait for the front to connect, and for each connection fork a
/// copy that becomes an executor (this returns in that copy). Exits when the front is gone.
fn dormant(listener: UnixListener, lifeline: &UnixStream) -> UnixStream {
    process::ignore_children();
    loop {
        match process::wait_readable(&listener, lifeline, Duration::from_secs(5)) {
            None => continue,
            Some(false) => process::exit_now(0),
            Some(true) => {}
        }
        let Ok((stream, _)) = listener.accept() else {
            continue;
        };
        if let Ok(Fork::Child) = process::fork() {
            drop(listener);
            return stream;
        }
        // This process stays the checkpoint; its copy serves the stream.
        drop(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_slots_skip_those_taken() {
        let have: BTreeSet<u64> = [1, 2, 4].into_iter().collect();
        assert_eq!(next_slot(0, 100, &have), 3);
        assert_eq!(next_slot(250, 100, &have), 3);
        assert_eq!(next_slot(300, 100, &have), 5);
    }
}
