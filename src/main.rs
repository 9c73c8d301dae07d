//! The `kyvtel` binary: parse arguments, call the library, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use kyvtel::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's own exits: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(if e.use_stderr() { kyvtel::Exit::Input.code() } else { 0 });
        }
    };
    match kyvtel::cli::dispatch(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit().into()
        }
    }
}
