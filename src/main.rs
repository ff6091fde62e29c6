//! The `weft` command line: parses flags (clap) and dispatches to one module per subcommand.
//! Exit codes: 0 the guest passed, 1 a guest failure was found, 2 usage or input error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let args = cli::Cli::parse();
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
