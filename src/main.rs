//! The `weft` command line: parses flags (clap) and dispatches to one module per subcommand.
//! Exit codes: 0 the guest passed, 1 a guest failure was found, 2 usage or input error.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("weft: error: {e:#}");
            ExitCode::from(cli::EXIT_INPUT)
        }
    }
}
