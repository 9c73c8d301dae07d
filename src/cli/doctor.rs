//! `kyvtel doctor`.

use crate::{Error, Exit, Result};

/// Arguments of `kyvtel doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `kyvtel doctor`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel doctor"))
}
