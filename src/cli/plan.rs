//! `kyvtel plan SCENARIO` and `kyvtel plan --all [PATH...]` (`--output json`): prints the resolved
//! plan of one scenario, or of several grouped into cells that share a cluster. Pure.

use std::path::PathBuf;

use super::Output;
use crate::error::Diagnostic;
use crate::plan::{self, Options};
use crate::scenario::load_all_confined;
use crate::scenario::{self, Loaded};
use crate::tools::install::ToolsDir;
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file (or use `--all`).
    pub scenario: Option<PathBuf>,
    /// Plan several scenarios as one run: files or directories (default: every scenario under
    /// `scenarios/`), grouped into cells that share one cluster and one Kyverno install.
    #[arg(long, value_name = "PATH", num_args = 0..)]
    pub all: Option<Vec<PathBuf>>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
    /// The provider to plan for (never probed: the default is kind). With `local`, a scenario that
    /// does not pin Telepresence is planned once per version the local provider builds.
    #[arg(long, value_enum, default_value_t)]
    pub provider: plan::Provider,
    /// With `--provider local`: plan every stack from an empty etcd (no snapshot restored or saved).
    #[arg(long)]
    pub cold: bool,
    /// With `--provider local`: plan a run without private namespaces (ports picked free now, every
    /// start cold, the traffic-manager not started and the steps that need its injector skipped).
    #[arg(long)]
    pub unconfined: bool,
    /// Plan one cell of the version matrix (an id from `kyvtel matrix`), exactly as `kyvtel run
    /// --cell` runs it: its versions replace the scenarios' own.
    #[arg(long, value_name = "ID")]
    pub cell: Option<String>,
    /// The matrix file `--cell` reads.
    #[arg(long, default_value = "scenarios/matrix.yaml", requires = "cell")]
    pub matrix: PathBuf,
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
}

/// The scenarios of `loaded` that run in cell `id` of `matrix`, with its versions (a note on
/// stderr for each left out); all of them without a cell.
fn in_cell(
    loaded: Vec<Loaded>,
    cell: Option<&str>,
    matrix: &std::path::Path,
    provider: plan::Provider,
) -> Result<Vec<Loaded>> {
    use crate::scenario::matrix::CellProvider;
    let Some(id) = cell else { return Ok(loaded) };
    let wanted = match provider {
        plan::Provider::Kind => Some(CellProvider::Kind),
        plan::Provider::Local => Some(CellProvider::Local),
        _ => None,
    };
    let cell = super::run::matrix_cell(matrix, id, wanted)?;
    let (kept, left_out) = crate::scenario::matrix::apply_cell(loaded, &cell, &crate::scenario::pins::Pins::builtin())?;
    for note in &left_out {
        crate::console_eprintln!("note: left out of cell {}: {note}", cell.id);
    }
    if kept.is_empty() {
        return Err(Error::Usage(format!("no scenario runs in cell {}", cell.id)));
    }
    Ok(kept)
}

/// Runs `kyvtel plan`.
pub fn run(args: Args) -> Result<Exit> {
    if args.provider == plan::Provider::Local {
        let how = LocalHow { cold: args.cold, unconfined: args.unconfined };
        let cell = args.cell.as_deref().map(|id| (id, args.matrix.as_path()));
        return local(args.scenario, args.all, args.output, how, cell, &args.root.confinement());
    }
    if args.cold {
        return Err(Error::Usage("--cold goes with --provider local".into()));
    }
    if args.unconfined {
        return Err(Error::Usage("--unconfined goes with --provider local".into()));
    }
    match (args.scenario, args.all) {
        (Some(file), None) if args.cell.is_none() => {
            let loaded = scenario::load_confined(&file, &args.root.confinement())?;
            // The directories `kyvtel run` uses: its tools, and this scenario's run directory.
            let opts = Options {
                run_dir: Options::default().run_dir.join(loaded.name()),
                tools: ToolsDir::from_env(),
                provider: args.provider,
                ..Options::default()
            };
            let p = plan::build(&loaded, &opts);
            match args.output {
                Output::Text => print!("{}", plan::render::text(&p)),
                Output::Json => print!("{}", plan::render::json(&p)),
            }
        }
        (Some(file), None) => {
            let loaded = vec![scenario::load_confined(&file, &args.root.confinement())?];
            print_cells(
                &in_cell(loaded, args.cell.as_deref(), &args.matrix, args.provider)?,
                args.provider,
                args.output,
            );
        }
        (None, Some(paths)) => {
            let loaded = load_all_confined(&super::validate::scenario_files(&paths)?, &args.root.confinement())?;
            let loaded = in_cell(loaded, args.cell.as_deref(), &args.matrix, args.provider)?;
            unique_names(&loaded)?;
            print_cells(&loaded, args.provider, args.output);
        }
        (Some(file), Some(_)) => {
            return Err(Error::Usage(format!(
                "give either a scenario file ({}) or --all [PATH...], not both (put the file after --all to include it)",
                file.display()
            )));
        }
        (None, None) => {
            return Err(Error::Usage("give a scenario file, or --all [PATH...] to plan several scenarios".into()));
        }
    }
    Ok(Exit::Success)
}

/// Prints the cells `loaded` is grouped into on `provider`, as `--output` asks.
fn print_cells(loaded: &[scenario::Loaded], provider: plan::Provider, output: Output) {
    let cells = plan::group(loaded, &Options { tools: ToolsDir::from_env(), provider, ..Options::default() });
    match output {
        Output::Text => print!("{}", plan::render::cells_text(&cells)),
        Output::Json => print!("{}", plan::render::cells_json(&cells)),
    }
}

/// How a local run starts: `--cold`, `--unconfined`.
struct LocalHow {
    cold: bool,
    unconfined: bool,
}

/// `kyvtel plan --provider local`: every scenario once per Telepresence version it runs with, one
/// stack each, exactly as `kyvtel run --provider local` executes them.
fn local(
    file: Option<PathBuf>,
    all: Option<Vec<PathBuf>>,
    output: Output,
    how: LocalHow,
    cell: Option<(&str, &std::path::Path)>,
    confinement: &scenario::Confinement,
) -> Result<Exit> {
    let files = match (file, all) {
        (Some(f), None) => vec![f],
        (None, Some(paths)) => super::validate::scenario_files(&paths)?,
        (Some(_), Some(_)) => {
            return Err(Error::Usage("give either a scenario file or --all [PATH...], not both".into()));
        }
        (None, None) => {
            return Err(Error::Usage("give a scenario file, or --all [PATH...] to plan several scenarios".into()));
        }
    };
    let loaded = load_all_confined(&files, confinement)?;
    let loaded = match cell {
        Some((id, matrix)) => in_cell(loaded, Some(id), matrix, plan::Provider::Local)?,
        None => loaded,
    };
    unique_names(&loaded)?;
    let runs = crate::run::session::local::variants_of(&loaded, &crate::scenario::pins::Pins::builtin())?;
    // Exactly what `kyvtel run --provider local` executes: the variants grouped into cells.
    let mut opts = Options { provider: plan::Provider::Local, ..Options::default() };
    if how.cold {
        opts.local.snapshots = None;
    }
    if how.unconfined {
        opts.local = crate::run::session::local::unconfine(opts.local)?;
    }
    let cells = plan::group(&runs, &opts);
    match output {
        Output::Text => {
            if how.unconfined {
                println!(
                    "{} (these ports were free when planned; a run picks its own)\n",
                    crate::provider::local::confine::unconfined_notice(&opts.local.ports)
                );
            }
            print!("{}", plan::render::cells_text(&cells));
        }
        Output::Json => print!("{}", plan::render::cells_json(&cells)),
    }
    Ok(Exit::Success)
}

/// Scenario names must be unique in one run: they name the scenarios' run directories and reports.
fn unique_names(loaded: &[Loaded]) -> Result<()> {
    let problems: Vec<Diagnostic> = loaded
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let first = loaded[..i].iter().find(|o| o.name() == l.name())?;
            Some(Diagnostic::at(
                &l.path,
                l.index.value("/metadata/name"),
                format!("scenario name `{}` is also used by {}", l.name(), first.path.display()),
            ))
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(Error::Input(problems)) }
}
