//! The `weft` command line: parses flags (clap) and dispatches to one module per subcommand.
//! Exit codes: 0 the guest passed, 1 a guest failure was found (or a replay reproduced
//! one), 2 usage or input error, 3 a replay diverged from its recording.

mod cli;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => return usage_error(e),
    };
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: error: {e:#}");
            ExitCode::from(cli::EXIT_INPUT)
        }
    }
}

/// `weft ... | head` closes stdout early; `println!` then panics. End quietly instead, with
/// the status a shell gives a process killed by SIGPIPE, as other Unix tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A command line clap refused: help and version as clap prints them; any other error as
/// one line (`weft: error: ...`, exit code 2) that scripts and people can read at a glance.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { cli::EXIT_INPUT } else { 0 });
    }
    eprintln!("weft: {}", one_line(&e.render().to_string()));
    ExitCode::from(cli::EXIT_INPUT)
}

/// clap's message on one line: its lines joined, without the usage and help hints.
fn one_line(rendered: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for line in rendered.lines().map(str::trim) {
        if line.starts_with("Usage:") || line.starts_with("For more information") {
            continue;
        }
        if !line.is_empty() {
            parts.push(line);
        }
    }
    let mut s = parts.join("; ");
    s.push_str(" (see --help)");
    s
}
