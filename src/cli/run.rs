//! `kyvtel run SCENARIO...`.

use std::path::PathBuf;

use crate::run::session::{self, Provider, SessionOptions};
use crate::{Error, Exit, Result};

/// Which cluster provider a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProviderKind {
    /// kind when `kyvtel doctor`'s kind checks pass, else local; the first line says which and why.
    #[default]
    Auto,
    /// A kind cluster per (node image, Kyverno chart) cell.
    Kind,
    /// Real control plane, Kyverno and Telepresence injector as host processes built from Go
    /// modules, in private namespaces; no Docker, no kubelet (kubelet-only steps are skipped).
    Local,
    /// A privileged k3s container through testcontainers.
    K3s,
    /// A given kubeconfig and context; never created or deleted.
    Existing,
}

/// Arguments of `kyvtel run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// Where the scenarios' files may come from.
    #[command(flatten)]
    pub root: super::RootArgs,
    /// Keep the cluster after the run.
    #[arg(long)]
    pub keep: bool,
    /// Reuse a matching cluster between runs.
    #[arg(long)]
    pub reuse: bool,
    /// Fail a scenario whose injected pod differs from the injection model in a field the
    /// not-modelled file does not explain (model drift); `make test` uses it.
    #[arg(long)]
    pub strict_model: bool,
    /// The cluster provider.
    #[arg(long, value_enum, default_value_t)]
    pub provider: ProviderKind,
    /// Kubeconfig of an existing cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Context in that kubeconfig.
    #[arg(long)]
    pub context: Option<String>,
    /// The k3s image for `--provider k3s`, e.g. `rancher/k3s:<tag>`.
    #[arg(long)]
    pub k3s_image: Option<String>,
    /// Where reports and evidence go (default `target/kyvtel`).
    #[arg(long)]
    pub report_dir: Option<PathBuf>,
    /// Where run-private files go (default `target/kyvtel-work`): the run's kubeconfig and tool
    /// state, unredacted. Never inside the report directory; removed when the run ends unless
    /// `--keep` keeps the cluster.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// JUnit XML output file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Local provider: start every stack from an empty etcd, neither restoring nor saving a
    /// "stack ready" snapshot (by default a matching snapshot gives a warm start).
    #[arg(long)]
    pub cold: bool,
    /// Local provider: run without private namespaces, where none can be made. Listeners stay on
    /// loopback at ports picked free and every start is cold, but the traffic-manager cannot run (its
    /// credentials live at a fixed path under /var/run), so the steps that need its injector are
    /// skipped with the reason. Without this flag such a machine refuses the run (exit 3).
    #[arg(long)]
    pub unconfined: bool,
    /// Reproduce one cell of the version matrix (an id from `kyvtel matrix`): its versions replace the
    /// scenarios' own. A kind cell needs `--provider kind`, a local cell `--provider local`.
    #[arg(long)]
    pub cell: Option<String>,
    /// Record what the run observed in `scenarios/observed/` (commit it: README's "What we found" is
    /// generated from these records).
    #[arg(long)]
    pub record: bool,
    /// Scenarios whose failures are tolerated until an expiry date (default: the catalog's
    /// `quarantine.yaml`, when it has one); an expired or malformed entry is refused (exit 2).
    #[arg(long, value_name = "FILE")]
    pub quarantine: Option<PathBuf>,
    /// Run a scenario that failed for an infrastructure reason (a component died, a webhook timed
    /// out, a setup failed) again, up to N times; a policy verdict is never retried. One that passes
    /// later is reported flaky, with each attempt's evidence kept. At most 5.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// The matrix file `--cell` reads.
    #[arg(long, default_value = "scenarios/matrix.yaml", requires = "cell")]
    pub matrix: PathBuf,
}

/// The checks `--provider auto` needs for kind (those of `kyvtel doctor`).
pub const KIND_CHECKS: [&str; 6] = ["docker", "kind", "helm", "telepresence", "sudo", "tun"];

/// Resolves `--provider auto`: kind when doctor's kind checks pass, else local, with the reason.
#[must_use]
pub fn resolve_auto() -> (ProviderKind, String) {
    let findings = crate::doctor::machine_findings();
    let failing: Vec<String> = findings
        .iter()
        .filter(|f| !f.ok && KIND_CHECKS.contains(&f.check.as_str()))
        .map(|f| format!("{}: {}", f.check, f.detail))
        .collect();
    if failing.is_empty() {
        (ProviderKind::Kind, "provider kind (auto): doctor's kind checks pass".into())
    } else {
        (ProviderKind::Local, format!("provider local (auto): kind cannot run here ({})", failing.join("; ")))
    }
}

/// Checks the flag combinations (exit 2), before `auto` probes anything or a namespace is entered.
///
/// # Errors
/// [`Error::Usage`] naming the flag that does not fit.
pub fn check_flags(args: &Args) -> Result<()> {
    let usage = |m: &str| Err(Error::Usage(m.into()));
    let p = args.provider;
    if (args.kubeconfig.is_some() || args.context.is_some()) && p != ProviderKind::Existing {
        return usage("--kubeconfig and --context go with --provider existing");
    }
    if p == ProviderKind::Existing && args.kubeconfig.is_none() {
        return usage("--provider existing needs --kubeconfig FILE (and optionally --context)");
    }
    if p == ProviderKind::K3s && args.k3s_image.is_none() {
        return usage("--provider k3s needs --k3s-image rancher/k3s:<tag> (kyvtel pins none)");
    }
    if args.k3s_image.is_some() && p != ProviderKind::K3s {
        return usage("--k3s-image goes with --provider k3s");
    }
    if args.cold && !matches!(p, ProviderKind::Local | ProviderKind::Auto) {
        return usage("--cold goes with --provider local (or auto, when it picks local)");
    }
    if args.unconfined && !matches!(p, ProviderKind::Local | ProviderKind::Auto) {
        return usage("--unconfined goes with --provider local (or auto, when it picks local)");
    }
    if args.reuse && p != ProviderKind::Kind {
        return usage("--reuse goes with --provider kind");
    }
    let max = crate::run::session::retry::MAX_RETRIES;
    if args.retries > max {
        return Err(Error::Usage(format!(
            "--retries {}: at most {max} (each retry reruns a whole setup)",
            args.retries
        )));
    }
    Ok(())
}

/// Runs `kyvtel run`; `--provider auto` must have been resolved (`main` does, before the run and its
/// namespaces start).
pub fn run(args: Args) -> Result<Exit> {
    // Bad input stops the run before anything is executed.
    crate::scenario::load_all_confined(&super::validate::scenario_files(&args.scenarios)?, &args.root.confinement())?;
    check_flags(&args)?;
    let provider = match args.provider {
        ProviderKind::Auto => return Err(Error::Usage("--provider auto is resolved before the run starts".into())),
        ProviderKind::Local => Provider::Local,
        ProviderKind::Kind => Provider::Kind,
        ProviderKind::Existing => Provider::Existing {
            kubeconfig: args.kubeconfig.clone().unwrap_or_default(),
            context: args.context.clone(),
        },
        ProviderKind::K3s => Provider::K3s { image: args.k3s_image.clone().unwrap_or_default() },
    };
    let cell = match &args.cell {
        None => None,
        Some(id) => Some(matrix_cell(&args.matrix, id, cell_provider(&provider))?),
    };
    let quarantine = super::validate::quarantine(&args.scenarios, args.quarantine.as_deref())?;
    session::run(&SessionOptions {
        // A directory stands for its catalog (its scenarios and reports/).
        scenarios: super::validate::scenario_files(&args.scenarios)?,
        confinement: args.root.confinement(),
        keep: args.keep,
        strict_model: args.strict_model,
        reuse: args.reuse,
        provider,
        report_dir: args.report_dir.unwrap_or_else(|| PathBuf::from("target/kyvtel")),
        work_dir: args.work_dir.unwrap_or_else(|| PathBuf::from(session::DEFAULT_WORK_DIR)),
        junit: args.junit,
        cold: args.cold,
        unconfined: args.unconfined,
        cell,
        record: args.record,
        retries: args.retries,
        quarantine,
    })
}

/// The kind of cell a provider runs (`None`: no cell fits it).
fn cell_provider(provider: &Provider) -> Option<crate::scenario::matrix::CellProvider> {
    use crate::scenario::matrix::CellProvider;
    match provider {
        Provider::Kind => Some(CellProvider::Kind),
        Provider::Local => Some(CellProvider::Local),
        _ => None,
    }
}

/// The cell `id` of the matrix file, if it runs and fits the provider (`run` and `plan` share it).
pub(super) fn matrix_cell(
    file: &std::path::Path,
    id: &str,
    provider: Option<crate::scenario::matrix::CellProvider>,
) -> Result<crate::scenario::matrix::MatrixCell> {
    use crate::scenario::matrix::CellProvider;
    let cells = crate::scenario::matrix::load(file, &crate::scenario::pins::Pins::builtin())?;
    let Some(cell) = cells.iter().find(|c| c.id == id) else {
        let ids: Vec<&str> = cells.iter().filter(|c| c.pruned.is_none()).map(|c| c.id.as_str()).collect();
        return Err(Error::Usage(format!(
            "--cell {id}: no such cell in {}; cells that run: {}",
            file.display(),
            ids.join(", ")
        )));
    };
    if let Some(why) = &cell.pruned {
        return Err(Error::Usage(format!("--cell {id} is pruned: {why}")));
    }
    if provider != Some(cell.provider) {
        let want = if cell.provider == CellProvider::Kind { "kind" } else { "local" };
        return Err(Error::Usage(format!("--cell {id} is a {want} cell: run it with --provider {want}")));
    }
    Ok(cell.clone())
}
