//! The `kyvtel` binary: parse arguments, call the library, map errors to exit codes.
//!
//! `kyvtel run` with the local provider (given, or chosen by `--provider auto`) enters its private
//! namespaces here, before anything else starts a thread: a multi-threaded process cannot move itself.

use std::process::ExitCode;

use clap::Parser;
use kyvtel::cli::run::ProviderKind;
use kyvtel::cli::{Cli, Command};

fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap's own exits: 0 for --help/--version, 2 for usage errors.
            return ExitCode::from(if e.use_stderr() { kyvtel::Exit::Input.code() } else { 0 });
        }
    };
    if !matches!(cli.command, Command::Run(_)) {
        // A reader that stops early (`kyvtel plan ... | head`) ends a printing command as it ends
        // other command-line tools: by SIGPIPE, which Rust ignores by default (then `println!`
        // panics on EPIPE). `run` keeps ignoring it: its teardown must run whatever its output does.
        // SAFETY: called before any thread exists; restores the default disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    if let Command::Run(args) = &mut cli.command {
        // Bad input stops everything before any probe or namespace: exit 2, nothing executed. A
        // directory stands for its catalog.
        let loaded = match kyvtel::cli::validate::scenario_files(&args.scenarios)
            .inspect(|files| args.scenarios.clone_from(files))
            .and_then(|files| kyvtel::scenario::load_all_confined(&files, &args.root.confinement()))
            .and_then(|l| kyvtel::cli::run::check_flags(args).map(|()| l))
            .and_then(|l| kyvtel::cli::validate::quarantine(&args.scenarios, args.quarantine.as_deref()).map(|_| l))
        {
            Ok(l) => l,
            Err(e) => {
                kyvtel::console_eprintln!("error: {e}");
                return e.exit().into();
            }
        };
        if args.provider == ProviderKind::Auto {
            let (chosen, why) = kyvtel::cli::run::resolve_auto();
            kyvtel::console_println!("{why}");
            args.provider = chosen;
        }
        if args.provider == ProviderKind::Local {
            // Builds need the network; the namespaces have only `lo`.
            if let Err(e) = kyvtel::run::session::local::build_for(&loaded) {
                kyvtel::console_eprintln!("error: {e}");
                return e.exit().into();
            }
            if !args.unconfined {
                match kyvtel::provider::local::confine::enter() {
                    Ok(mode) => kyvtel::console_println!("{}", mode.notice()),
                    Err(e) => {
                        kyvtel::console_eprintln!("error: missing prerequisite: {e}");
                        return kyvtel::Exit::Infra.into();
                    }
                }
            }
        }
    }
    match kyvtel::cli::dispatch(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            kyvtel::console_eprintln!("error: {e}");
            e.exit().into()
        }
    }
}
