//! `kyvtel explain [--pod FILE] [--output json] [FILE|-]`.

use std::path::PathBuf;

use super::Output;
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The denial text; `-` or nothing reads standard input.
    pub input: Option<PathBuf>,
    /// The pod the denial is about, to name containers by index.
    #[arg(long)]
    pub pod: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel explain`.
pub fn run(_args: Args) -> Result<Exit> {
    Err(Error::NotImplemented("kyvtel explain"))
}
