//! `kyvtel verify SCENARIO --pod FILE|-`.

use std::path::PathBuf;

use super::Output;
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel verify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario whose expectations are judged.
    pub scenario: PathBuf,
    /// A Pod, List or PodList in YAML or JSON; `-` reads standard input.
    #[arg(long)]
    pub pod: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel verify`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel verify"))
}
