//! `kyvtel plan`.

use crate::{Error, Exit, Result};

/// Arguments of `kyvtel plan`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `kyvtel plan`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel plan"))
}
