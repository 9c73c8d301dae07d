//! `kyvtel check [SCENARIO...]`.

use std::path::PathBuf;

use super::Output;
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files (default: every scenario under `scenarios/`).
    pub scenarios: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel check`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel check"))
}
