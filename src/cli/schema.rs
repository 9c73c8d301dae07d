//! `kyvtel schema`: prints the JSON Schema of scenario files.

use crate::scenario::Scenario;
use crate::{Exit, Result};

/// Arguments of `kyvtel schema`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// The scenario JSON Schema (draft 2020-12), pretty-printed with a trailing newline.
pub fn scenario_schema() -> String {
    let schema = schemars::schema_for!(Scenario);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

/// Runs `kyvtel schema`.
pub fn run(_args: Args) -> Result<Exit> {
    print!("{}", scenario_schema());
    Ok(Exit::Success)
}
