//! `kyvtel tools install`.

use crate::{Error, Exit, Result};

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
    /// Download the pinned kind, helm, telepresence, kubectl and kyverno into `.tools/bin`
    /// (or `$KYVTEL_TOOLS_DIR`), verified by sha256.
    Install,
}

/// Runs `kyvtel tools`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel tools install"))
}
