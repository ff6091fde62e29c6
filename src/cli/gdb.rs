//! `weft gdbserver` and `weft replay --gdb`: debug a recorded run in gdb, forwards and
//! backwards, every vCPU a thread (docs/gdb.md).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use weft::debugger::{TimeTravel, DEFAULT_CHECKPOINT_EVERY};

use super::EXIT_PASS;

#[derive(Args, Debug)]
pub struct GdbserverArgs {
    /// The trace to debug
    trace: PathBuf,
    /// TCP port to listen on (0: any free port, printed)
    #[arg(long, default_value_t = 1234)]
    port: u16,
    /// Address to listen on; anything but a loopback address needs --allow-remote
    #[arg(long, default_value = "127.0.0.1")]
    address: IpAddr,
    /// Accept a non-loopback --address (the stub has no authentication)
    #[arg(long)]
    allow_remote: bool,
    #[command(flatten)]
    session: SessionArgs,
}

/// Options of a debugging session.
#[derive(Args, Debug, Clone)]
pub struct SessionArgs {
    /// Steps between automatic checkpoints: a reverse motion re-executes at most about this
    /// many steps per stretch it searches
    #[arg(long, value_name = "STEPS", default_value_t = DEFAULT_CHECKPOINT_EVERY,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every: u64,
}

/// A started session: the debuggee, the files gdb loads, and the listener.
struct Started {
    tt: TimeTravel,
    /// The guest ELF, for gdb's symbols.
    elf: PathBuf,
    /// weft's gdb commands (`when`, `goto`) and the built-in guest's source directory.
    script: PathBuf,
    listener: TcpListener,
}

/// Start the session, write the guest ELF and the gdb script, and bind the listener.
fn start(trace: &Path, s: &SessionArgs, addr: SocketAddr) -> Result<Started> {
    let tt = TimeTravel::open(trace, s.checkpoint_every)?;
    let elf = tt.guest_elf()?;
    let script = tt.gdb_script()?;
    let listener = TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
    Ok(Started {
        tt,
        elf,
        script,
        listener,
    })
}

pub fn gdbserver(a: GdbserverArgs) -> Result<ExitCode> {
    if !a.address.is_loopback() && !a.allow_remote {
        bail!(
            "refusing to listen on {}: the gdb stub has no authentication; \
             add --allow-remote if you mean it",
            a.address
        );
    }
    let Started {
        tt,
        elf,
        script,
        listener,
    } = start(&a.trace, &a.session, SocketAddr::new(a.address, a.port))?;
    let addr = listener.local_addr()?;
    eprintln!(
        "weft: gdbserver on {addr} for {}\n  connect: gdb {} -x {} -ex 'target remote {addr}'",
        a.trace.display(),
        elf.display(),
        script.display()
    );
    let (stream, _) = listener.accept()?;
    drop(listener);
    weft_gdb::serve_tcp(stream, tt).map_err(anyhow::Error::msg)?;
    Ok(ExitCode::from(EXIT_PASS))
}

/// `weft replay --gdb`: serve on a free loopback port and run gdb on the guest against it.
pub fn replay_in_gdb(trace: &Path, s: &SessionArgs, gdb_args: &[String]) -> Result<ExitCode> {
    let gdb = std::env::var_os("WEFT_GDB").unwrap_or_else(|| "gdb".into());
    let Started {
        tt,
        elf,
        script,
        listener,
    } = start(trace, s, SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0))?;
    let addr = listener.local_addr()?;
    let mut child = match Command::new(&gdb)
        .arg("-q")
        .arg(&elf)
        .arg("-x")
        .arg(&script)
        .args(["-ex", &format!("target remote {addr}")])
        .args(gdb_args)
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{}: not found; install gdb (Debian: apt-get install gdb), set WEFT_GDB to its \
             path, or run `weft gdbserver {}` and connect your own",
            gdb.to_string_lossy(),
            trace.display()
        ),
        Err(e) => bail!("{}: cannot start: {e}", gdb.to_string_lossy()),
    };
    // Wait for gdb to connect, unless it ends first (a bad argument, say).
    listener.set_nonblocking(true)?;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if child.try_wait()?.is_some() {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(stream) = stream {
        stream.set_nonblocking(false)?;
        if let Err(e) = weft_gdb::serve_tcp(stream, tt) {
            eprintln!("weft: {e}");
        }
    }
    let status = child.wait()?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
