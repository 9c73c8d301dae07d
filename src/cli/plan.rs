//! `kyvtel plan SCENARIO [--output json]`: prints the resolved plan. Pure.

use std::path::PathBuf;

use super::Output;
use crate::plan::{self, Options};
use crate::scenario;
use crate::{Exit, Result};

/// Arguments of `kyvtel plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// Runs `kyvtel plan`.
pub fn run(args: Args) -> Result<Exit> {
    let loaded = scenario::load(&args.scenario)?;
    let p = plan::build(&loaded, &Options::default());
    match args.output {
        Output::Text => print!("{}", plan::render::text(&p)),
        Output::Json => print!("{}", plan::render::json(&p)),
    }
    Ok(Exit::Success)
}
