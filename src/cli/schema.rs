//! `kyvtel schema`.

use crate::{Error, Exit, Result};

/// Arguments of `kyvtel schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `kyvtel schema`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel schema"))
}
