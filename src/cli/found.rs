//! `kyvtel found [--write FILE]`: README's "What we found", generated from the catalog and the
//! committed observed records (`scenarios/observed/`, written by `kyvtel run --record`).

use std::path::PathBuf;

use crate::report::record::{self, Finding};
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel found`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Replace the generated section of this file (between its markers) instead of printing it.
    #[arg(long)]
    pub write: Option<PathBuf>,
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
}

/// The generated section for the default catalog and records.
///
/// # Errors
/// A scenario or a record that does not load.
pub fn section(root: &super::RootArgs) -> Result<String> {
    let files = super::validate::scenario_files(&[])?;
    let catalog = crate::scenario::load_all_confined(&files, &root.confinement())?;
    let findings: Vec<Finding> = catalog
        .iter()
        .zip(&files)
        .map(|(l, f)| Finding {
            name: l.name().to_string(),
            file: f.display().to_string(),
            claim: l.scenario.metadata.description.clone(),
        })
        .collect();
    let records = record::read_all(std::path::Path::new(record::DIR)).map_err(Error::Usage)?;
    Ok(record::found(&findings, &records))
}

/// Runs `kyvtel found`.
pub fn run(args: Args) -> Result<Exit> {
    let text = section(&args.root)?;
    match &args.write {
        None => println!("{text}"),
        Some(file) => {
            let old = crate::input::read_arg(file)?.1;
            let new = record::replace_section(&old, &text).ok_or_else(|| {
                Error::input(
                    file,
                    None,
                    format!("no generated section: add the lines `{}` and `{}`", record::BEGIN, record::END),
                )
            })?;
            std::fs::write(file, new).map_err(|e| Error::input(file, None, format!("cannot write: {e}")))?;
        }
    }
    Ok(Exit::Success)
}
