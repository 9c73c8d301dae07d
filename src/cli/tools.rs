//! `kyvtel tools install`.

use std::path::PathBuf;

use crate::scenario::{self, pins::Pins};
use crate::tools::install::{self, Installer, Item, Outcome, Request, ToolsDir, source::DefaultSource};
use crate::tools::runner::DuctRunner;
use crate::{Error, Exit, Result};

/// Arguments of `kyvtel tools`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
}

/// `kyvtel tools` actions.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Download the pinned kind, helm, kubectl, telepresence, kyverno CLI and Kyverno chart into
    /// `.tools/bin` (or `$KYVTEL_TOOLS_DIR`), verified by sha256.
    ///
    /// Installs the pinned default of every item (or of the `--only` items), plus every Telepresence
    /// version and Kyverno chart the scenarios resolve to (`--for-scenarios`, by default the catalog
    /// under `scenarios/` when that directory exists), plus each `--telepresence VERSION`. The
    /// default Telepresence is `<dir>/telepresence`; any other version is
    /// `<dir>/telepresence-<version>/telepresence`, which `kyvtel run` uses for scenarios that need it.
    ///
    /// Downloads without a pinned sha256 are recorded in `tools.lock` on first use and must match
    /// it afterwards.
    ///
    /// Exit codes: 0 installed or already up to date, 2 bad usage or a bad scenario file, 3 a
    /// download or check failed.
    Install(InstallArgs),
    /// Build the local provider's components from their Go modules into `.tools/local`: what is
    /// missing or stale only (a binary whose stamp matches needs no `go` invocation at all).
    ///
    /// Go's module and build caches stay where Go keeps them, outside the clone. `GOPROXY` is honoured;
    /// modules the proxy refuses are looked up in `$KYVTEL_SHARED_DIR/goproxy` when it exists.
    ///
    /// Exit codes: 0 built or up to date, 3 Go missing or a build failed (module, proxy and fix named).
    Build(BuildArgs),
}

/// Arguments of `kyvtel tools build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Only these Telepresence versions' traffic-managers (default: every buildable one).
    #[arg(long = "telepresence", value_name = "VERSION")]
    pub telepresence: Vec<String>,
    /// Also these Kyverno versions' admission controllers (the nightly local job's, e.g. 1.18.2);
    /// the default Kyverno is always built.
    #[arg(long = "kyverno", value_name = "VERSION")]
    pub kyverno: Vec<String>,
}

/// Arguments of `kyvtel tools install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// Install only these (default: all); also limits what `--for-scenarios` adds.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Item>,
    /// Also install this pinned Telepresence version, as `<dir>/telepresence-<version>/telepresence` (repeatable;
    /// added even with `--only`). An unknown version is a usage error.
    #[arg(long = "telepresence", value_name = "VERSION")]
    pub telepresence: Vec<String>,
    /// Also install the Telepresence versions and Kyverno charts these scenarios resolve to: scenario
    /// files, or directories of them (default: `scenarios/` when it exists).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub for_scenarios: Vec<PathBuf>,
    /// Install only the pinned defaults (and any `--telepresence`), ignoring the scenario catalog.
    #[arg(long, conflicts_with = "for_scenarios")]
    pub defaults_only: bool,
    /// Tools directory (default: `$KYVTEL_TOOLS_DIR`, else `.tools/bin`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Trust-on-first-use lock file (default: `$KYVTEL_LOCK_FILE`, else `./tools.lock`).
    #[arg(long)]
    pub lock: Option<PathBuf>,
    /// Never use a tool found on PATH, even if its version matches.
    #[arg(long)]
    pub ignore_path: bool,
}

/// What `kyvtel tools install` installs for `args`: defaults, then the scenarios' versions, then
/// `--telepresence` (without repeats, in install order).
fn requests(pins: &Pins, args: &InstallArgs) -> Result<Vec<Request>> {
    for v in &args.telepresence {
        if pins.telepresence.release(v).is_none() {
            return Err(Error::Usage(format!(
                "--telepresence {v}: not a pinned Telepresence version (known: {})",
                pins.telepresence.known()
            )));
        }
    }
    let items: Vec<Item> = if args.only.is_empty() { Item::ALL.to_vec() } else { args.only.clone() };
    let mut out: Vec<Request> = items.iter().map(|i| Request::default_for(*i, pins)).collect();
    let scenario_paths = if args.defaults_only {
        Vec::new()
    } else if !args.for_scenarios.is_empty() {
        args.for_scenarios.clone()
    } else if super::default_scenario_dir().is_dir() {
        vec![super::default_scenario_dir()]
    } else {
        Vec::new()
    };
    if !scenario_paths.is_empty() {
        let loaded = scenario::load_all(&super::validate::scenario_files(&scenario_paths)?)?;
        out.extend(Request::for_scenarios(&loaded).into_iter().filter(|r| items.contains(&r.item)));
    }
    out.extend(args.telepresence.iter().map(|v| Request::new(Item::Telepresence, v.clone())));
    Ok(install::dedup(out))
}

/// Runs `kyvtel tools`.
pub fn run(args: Args) -> Result<Exit> {
    match args.action {
        Action::Install(a) => install(a),
        Action::Build(a) => build(&a),
    }
}

fn build(args: &BuildArgs) -> Result<Exit> {
    let pins = Pins::builtin();
    for v in &args.telepresence {
        if !pins.local.telepresence.contains_key(v) {
            let known: Vec<&str> = pins.local.telepresence.keys().map(String::as_str).collect();
            return Err(Error::Usage(format!("--telepresence {v}: not buildable; buildable: {}", known.join(", "))));
        }
    }
    for v in &args.kyverno {
        if pins.local.kyverno(v).is_none() {
            let known = pins.local.kyverno_versions().join(", ");
            return Err(Error::Usage(format!("--kyverno {v}: not buildable; buildable: {known}")));
        }
    }
    let mut versions: Vec<&str> = if args.telepresence.is_empty() {
        pins.local.telepresence.keys().map(String::as_str).collect()
    } else {
        args.telepresence.iter().map(String::as_str).collect()
    };
    versions.extend(args.kyverno.iter().map(String::as_str));
    let t0 = std::time::Instant::now();
    let built = crate::run::session::local::build_components(&pins, &versions)?;
    crate::console_eprintln!(
        "local components: {} built in {:.1}s, the rest up to date (.tools/local)",
        built.len(),
        t0.elapsed().as_secs_f64()
    );
    Ok(Exit::Success)
}

fn install(args: InstallArgs) -> Result<Exit> {
    let pins = Pins::builtin();
    let requests = requests(&pins, &args)?;
    let dir = args.dir.map_or_else(ToolsDir::from_env, ToolsDir::at);
    let lock = args.lock.unwrap_or_else(install::default_lock_path);
    let source = DefaultSource::default();
    let scratch = std::env::temp_dir().join(format!("kyvtel-probe-{}", std::process::id()));
    let probe = DuctRunner::new(&scratch).with_tools_dir(None);
    let mut installer = Installer::new(&pins, dir.clone(), &lock, &source);
    if !args.ignore_path {
        installer = installer.with_path_probe(&probe);
    }
    let installed = installer.install(&requests);
    let _ = std::fs::remove_dir_all(&scratch);
    for done in installed? {
        let name = done.item.name();
        let v = &done.version;
        match done.outcome {
            Outcome::Installed { path, sha256, verified_by } => {
                crate::console_println!(
                    "{name} {v}: installed {} (sha256 {sha256}; verified by {})",
                    path.display(),
                    verified_by.join(", ")
                );
            }
            Outcome::UpToDate { path } => crate::console_println!("{name} {v}: up to date ({})", path.display()),
            Outcome::OnPath { version } => {
                crate::console_println!("{name} {v}: using the one on PATH (reports {version})")
            }
        }
    }
    Ok(Exit::Success)
}
