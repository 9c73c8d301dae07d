//! `kyvtel tools install`.

use std::path::PathBuf;

use crate::scenario::pins::Pins;
use crate::tools::install::{self, Installer, Item, Outcome, Request, ToolsDir, source::DefaultSource};
use crate::tools::runner::DuctRunner;
use crate::{Exit, Result};

/// Arguments of `kyvtel tools`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `kyvtel tools` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Download the pinned kind, helm, kubectl, telepresence, kyverno CLI and Kyverno chart into
    /// `.tools/bin` (or `$KYVTEL_TOOLS_DIR`), verified by sha256.
    ///
    /// Exit codes: 0 installed or already up to date, 2 bad usage, 3 a download or check failed.
    Install(InstallArgs),
}

/// Arguments of `kyvtel tools install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Install only these (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Item>,
    /// Tools directory (default: `$KYVTEL_TOOLS_DIR`, else `.tools/bin`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Telepresence lock file (default: `$KYVTEL_LOCK_FILE`, else `./telepresence.lock`).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Never use a tool found on PATH, even if its version matches.
    #[arg(long)]
    pub ignore_path: bool,
}

/// Runs `kyvtel tools`.
pub fn run(args: Args) -> Result<Exit> {
    match args.action {
        Action::Install(a) => install(a),
    }
}

fn install(args: InstallArgs) -> Result<Exit> {
    let pins = Pins::builtin();
    let dir = args.dir.map_or_else(ToolsDir::from_env, ToolsDir::at);
    let lock = args.lock.unwrap_or_else(install::default_lock_path);
    let items: Vec<Item> = if args.only.is_empty() { Item::ALL.to_vec() } else { args.only };
    let requests: Vec<Request> = items.iter().map(|i| Request::default_for(*i, &pins)).collect();
    let source = DefaultSource::default();
    let probe =
        DuctRunner::new(std::env::temp_dir().join(format!("kyvtel-probe-{}", std::process::id()))).with_tools_dir(None);
    let mut installer = Installer::new(&pins, dir.clone(), &lock, &source);
    if !args.ignore_path {
        installer = installer.with_path_probe(&probe);
    }
    for done in installer.install(&requests)? {
        let name = done.item.name();
        let v = &done.version;
        match done.outcome {
            Outcome::Installed { path, sha256, verified_by } => {
                println!(
                    "{name} {v}: installed {} (sha256 {sha256}; verified by {})",
                    path.display(),
                    verified_by.join(", ")
                );
            }
            Outcome::UpToDate { path } => println!("{name} {v}: up to date ({})", path.display()),
            Outcome::OnPath { version } => {
                println!("{name} {v}: using the one on PATH (reports {version})")
            }
        }
    }
    Ok(Exit::Success)
}
