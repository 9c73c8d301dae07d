//! Command-line interface: one module per command, each returning an [`Exit`] or an [`Error`].

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::{Exit, Result};

pub mod check;
pub mod doctor;
pub mod explain;
pub mod found;
pub mod matrix;
pub mod plan;
pub mod post_render;
pub mod run;
pub mod schema;
pub mod tools;
pub mod validate;
pub mod verify;

/// Proves whether Telepresence works under strict Kyverno policies, and what it takes.
///
/// Exit codes: 0 success, 1 a scenario failed, 2 usage or input error, 3 missing prerequisite
/// or infrastructure error.
#[derive(Debug, Parser)]
#[command(name = "kyvtel", version, about)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of commands that support machine-readable output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// For people.
    #[default]
    Text,
    /// For programs.
    Json,
}

/// Where a scenario's files may come from (flattened into every command that loads scenarios).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RootArgs {
    /// The scenario root: paths in a scenario must stay inside it. Default: the nearest ancestor
    /// of the scenario file holding `kind-config/` or `.git`, else the scenario file's directory.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Accept scenario paths that are absolute or lead out of the scenario root.
    #[arg(long)]
    pub allow_outside_root: bool,
}

impl RootArgs {
    /// The confinement these flags ask for.
    #[must_use]
    pub fn confinement(&self) -> crate::scenario::Confinement {
        crate::scenario::Confinement { root: self.root.clone(), allow_outside_root: self.allow_outside_root }
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check scenario files: schema, referenced files, policies and rules, versions.
    Validate(validate::Args),
    /// Print the resolved plan of a scenario (pure: no side effects, no network).
    Plan(plan::Args),
    /// Report what a live run needs and what is missing.
    Doctor(doctor::Args),
    /// Print the JSON Schema of scenario files.
    Schema(schema::Args),
    /// Judge a pod (from `kubectl get pod -o yaml|json`) against a scenario's expectations.
    Verify(verify::Args),
    /// Explain a Kyverno denial message.
    Explain(explain::Args),
    /// Predict admission offline with the real Kyverno engine (Kyverno CLI).
    Check(check::Args),
    /// Run scenarios on a live cluster.
    Run(run::Args),
    /// Print README's "What we found", generated from the catalog and the observed records.
    Found(found::Args),
    /// List the version matrix (`scenarios/matrix.yaml`): cells, pruning, scenarios per cell.
    Matrix(matrix::Args),
    /// Manage the pinned external tools.
    Tools(tools::Args),
    /// Helm post-renderer of the local provider's Telepresence install (internal).
    #[command(hide = true)]
    PostRender(post_render::Args),
}

/// Runs one parsed command.
pub fn dispatch(cli: Cli) -> Result<Exit> {
    match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Check(a) => check::run(a),
        Command::Run(a) => run::run(a),
        Command::Matrix(a) => matrix::run(a),
        Command::Found(a) => found::run(a),
        Command::Tools(a) => tools::run(a),
        Command::PostRender(a) => post_render::run(&a),
    }
}

/// The default scenario directory, relative to the working directory.
pub fn default_scenario_dir() -> PathBuf {
    PathBuf::from("scenarios")
}
