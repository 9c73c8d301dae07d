//! `kyvtel validate`.

use crate::{Error, Exit, Result};

/// Arguments of `kyvtel validate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `kyvtel validate`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel validate"))
}
