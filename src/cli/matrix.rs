//! `kyvtel matrix [--provider kind|local] [--output text|json|github]`: the version matrix of
//! `scenarios/matrix.yaml`, every cell with the scenarios that run in it or why it is pruned; the
//! GitHub Actions matrix of the runnable cells for the nightly job.

use std::path::PathBuf;

use serde::Serialize;

use crate::scenario::load_all_confined;
use crate::scenario::matrix::{self, CellProvider, MatrixCell, runs_in};
use crate::scenario::pins::Pins;
use crate::{Exit, Result};

/// Output formats of `kyvtel matrix`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum MatrixOutput {
    /// A table.
    #[default]
    Text,
    /// Every cell, with its scenarios, as JSON.
    Json,
    /// `{"include": [...]}` of the runnable cells, for a GitHub Actions `strategy.matrix`.
    Github,
}

/// Which cells to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderFilter {
    /// kind cells.
    Kind,
    /// local cells.
    Local,
}

/// Arguments of `kyvtel matrix`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The matrix file.
    #[arg(long, default_value = "scenarios/matrix.yaml")]
    pub file: PathBuf,
    /// Only the cells of this provider.
    #[arg(long, value_enum)]
    pub provider: Option<ProviderFilter>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: MatrixOutput,
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
}

/// A cell and the catalog scenarios that run in it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    #[serde(flatten)]
    cell: &'a MatrixCell,
    scenarios: Vec<String>,
}

/// Runs `kyvtel matrix`.
pub fn run(args: Args) -> Result<Exit> {
    let pins = Pins::builtin();
    let cells: Vec<MatrixCell> = matrix::load(&args.file, &pins)?
        .into_iter()
        .filter(|c| match args.provider {
            None => true,
            Some(ProviderFilter::Kind) => c.provider == CellProvider::Kind,
            Some(ProviderFilter::Local) => c.provider == CellProvider::Local,
        })
        .collect();
    let files = super::validate::scenario_files(&[])?;
    let catalog = load_all_confined(&files, &args.root.confinement())?;
    let listed: Vec<Listed<'_>> = cells
        .iter()
        .map(|cell| Listed {
            cell,
            scenarios: if cell.pruned.is_some() {
                Vec::new()
            } else {
                catalog.iter().filter(|l| runs_in(l, cell)).map(|l| l.name().to_string()).collect()
            },
        })
        .collect();
    match args.output {
        MatrixOutput::Json => println!("{}", serde_json::to_string_pretty(&listed).unwrap_or_default()),
        MatrixOutput::Github => {
            let include: Vec<serde_json::Value> = listed
                .iter()
                .filter(|l| l.cell.pruned.is_none())
                .map(|l| {
                    serde_json::json!({
                        "cell": l.cell.id,
                        "provider": l.cell.provider,
                        "kubernetes": l.cell.kubernetes,
                        "kyverno": l.cell.kyverno,
                        "telepresence": l.cell.telepresence,
                    })
                })
                .collect();
            println!("{}", serde_json::json!({ "include": include }));
        }
        MatrixOutput::Text => {
            let runnable = listed.iter().filter(|l| l.cell.pruned.is_none()).count();
            println!("{} cell(s), {runnable} run, {} pruned", listed.len(), listed.len() - runnable);
            for l in &listed {
                match &l.cell.pruned {
                    Some(why) => println!("  {:<44} pruned: {why}", l.cell.id),
                    None => {
                        println!("  {:<44} {} scenario(s): {}", l.cell.id, l.scenarios.len(), l.scenarios.join(", "))
                    }
                }
            }
        }
    }
    Ok(Exit::Success)
}
