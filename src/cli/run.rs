//! `kyvtel run SCENARIO...`.

use std::path::PathBuf;

use crate::run::session::{self, Provider, SessionOptions};
use crate::{Error, Exit, Result};

/// Which cluster provider a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProviderKind {
    /// A kind cluster per (node image, Kyverno chart) cell.
    #[default]
    Kind,
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
    /// Keep the cluster after the run.
    #[arg(long)]
    pub keep: bool,
    /// Reuse a matching cluster between runs.
    #[arg(long)]
    pub reuse: bool,
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
}

/// Runs `kyvtel run`.
pub fn run(args: Args) -> Result<Exit> {
    // Bad input stops the run before anything is executed.
    session::load_all(&args.scenarios)?;
    let provider = match args.provider {
        ProviderKind::Kind if args.kubeconfig.is_some() || args.context.is_some() => {
            return Err(Error::Usage("--kubeconfig and --context go with --provider existing".into()));
        }
        ProviderKind::Kind => Provider::Kind,
        ProviderKind::Existing => Provider::Existing {
            kubeconfig: args.kubeconfig.ok_or_else(|| {
                Error::Usage("--provider existing needs --kubeconfig FILE (and optionally --context)".into())
            })?,
            context: args.context,
        },
        ProviderKind::K3s => Provider::K3s {
            image: args.k3s_image.clone().ok_or_else(|| {
                Error::Usage("--provider k3s needs --k3s-image rancher/k3s:<tag> (kyvtel pins none)".into())
            })?,
        },
    };
    if args.k3s_image.is_some() && !matches!(provider, Provider::K3s { .. }) {
        return Err(Error::Usage("--k3s-image goes with --provider k3s".into()));
    }
    if args.reuse && !matches!(provider, Provider::Kind) {
        return Err(Error::Usage("--reuse goes with --provider kind".into()));
    }
    session::run(&SessionOptions {
        scenarios: args.scenarios,
        keep: args.keep,
        reuse: args.reuse,
        provider,
        report_dir: args.report_dir.unwrap_or_else(|| PathBuf::from("target/kyvtel")),
        work_dir: args.work_dir.unwrap_or_else(|| PathBuf::from(session::DEFAULT_WORK_DIR)),
        junit: args.junit,
    })
}
