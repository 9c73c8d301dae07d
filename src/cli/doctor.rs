//! `kyvtel doctor [--output json]`: what a live run needs; exit 0 when ready, 3 when not.

use super::Output;
use crate::doctor;
use crate::scenario::pins::Pins;
use crate::tools::runner::{DuctRunner, default_tools_dir};
use crate::{Exit, Result};

/// Arguments of `kyvtel doctor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

/// The local provider's findings on this machine.
pub fn local_findings() -> Vec<doctor::Finding> {
    let scratch = std::env::temp_dir().join(format!("kyvtel-doctor-{}", std::process::id()));
    let runner = DuctRunner::new(&scratch).with_tools_dir(Some(default_tools_dir()));
    let f = doctor::local(&runner, &Pins::builtin(), &crate::run::session::local::root());
    let _ = std::fs::remove_dir_all(&scratch);
    f
}

/// Runs `kyvtel doctor`.
pub fn run(args: Args) -> Result<Exit> {
    let mut findings = doctor::machine_findings();
    findings.extend(local_findings());
    match args.output {
        Output::Text => crate::console_print!("{}", doctor::render(&findings)),
        Output::Json => crate::console_println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ready": doctor::ready(&findings), "findings": findings}))
                .unwrap_or_default()
        ),
    }
    Ok(if doctor::ready(&findings) { Exit::Success } else { Exit::Infra })
}
