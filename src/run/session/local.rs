//! `kyvtel run --provider local`: the scenarios once per Telepresence version the local provider
//! builds, each on a fresh stack of real components in the run's private namespaces.

use std::path::PathBuf;
use std::time::Instant;

use super::Session;
use crate::kube::ownership::Owner;
use crate::plan::{self, LocalPaths, Options, Provider as PlanProvider};
use crate::provider::local::{build, confine, variants};
use crate::run::executor::execute_guarded;
use crate::run::kube_api::KubeApi;
use crate::scenario::Loaded;
use crate::scenario::pins::Pins;
use crate::tools::Tool;
use crate::tools::install::ToolsDir;
use crate::tools::runner::{DuctRunner, default_tools_dir};
use crate::{Error, Result};

/// How long one component build may take (a cold Kubernetes build is ≈ 400 CPU-s; facts.md §7).
const BUILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The repository root: holds `tools/<wrapper>/go.mod` and `.tools/local/`. The working directory
/// when it is a checkout, else the one kyvtel was built from.
#[must_use]
pub fn root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    if cwd.join("tools/kube/go.mod").is_file() { cwd } else { PathBuf::from(env!("CARGO_MANIFEST_DIR")) }
}

/// The file:// module mirror for modules the proxy refuses (`$KYVTEL_SHARED_DIR/goproxy`).
#[must_use]
pub fn mirror() -> Option<PathBuf> {
    std::env::var_os("KYVTEL_SHARED_DIR").filter(|d| !d.is_empty()).map(|d| PathBuf::from(d).join("goproxy"))
}

/// Everything a local run needs before its runtime starts: the versions to run (refusing what cannot
/// be built, exit 3), confinement, and every component built (what is missing is built now).
///
/// # Errors
/// [`Error::Prerequisite`] (exit 3) naming what is missing.
pub(super) fn prepare(loaded: &[Loaded], pins: &Pins) -> Result<Vec<Loaded>> {
    let mut runs = Vec::new();
    for l in loaded {
        runs.extend(variants::variants(l, pins).map_err(Error::Prerequisite)?);
    }
    if !confine::is_confined() {
        return Err(Error::Prerequisite(
            "the local provider runs only inside its private namespaces (kyvtel enters them itself before it \
             starts; this process was not confined)"
                .into(),
        ));
    }
    build_components(pins, runs.iter().map(|l| l.versions.telepresence.as_str()))?;
    Ok(runs)
}

/// Builds the binaries the runs need that are not warm, with a line per binary on stderr.
///
/// # Errors
/// [`Error::Prerequisite`] for a missing Go or a failed build (module, proxy and fix named).
pub fn build_components<'a>(pins: &Pins, telepresence: impl Iterator<Item = &'a str>) -> Result<Vec<String>> {
    let wanted: Vec<String> = telepresence.map(build::traffic_name).collect();
    let targets: Vec<build::Target> = build::targets(pins)
        .into_iter()
        .filter(|t| !t.name.starts_with("traffic-") || wanted.contains(&t.name))
        .collect();
    let env = build::GoEnv::detect(mirror()).map_err(Error::Prerequisite)?;
    let root = root();
    build::build_missing(&targets, &env, &root, BUILD_TIMEOUT, |t, warm| {
        if !warm {
            eprintln!("building {} ({}@{}) with {} ...", t.name, t.spec.module, t.spec.version, env.version);
        }
    })
    .map_err(|e| Error::Prerequisite(e.to_string()))
}

/// The plan options of a local run under `work`.
pub fn options(work: PathBuf) -> Options {
    Options {
        run_dir: work,
        tools: ToolsDir::at(default_tools_dir()),
        provider: PlanProvider::Local,
        local: LocalPaths::detect(&root()),
    }
}

impl Session<'_> {
    /// One scenario variant on a fresh local stack. Returns whether the run was cancelled.
    pub(super) fn run_local(&mut self, l: &Loaded) -> Result<bool> {
        let id = format!("{}@{}", l.name(), l.versions.telepresence);
        let work = self.work.path.join(&id);
        let opts = options(work.clone());
        let p = plan::build(l, &opts);
        crate::tools::env::materialize(&crate::tools::env::for_tool(Tool::Helm, &work, &Default::default()))
            .map_err(|e| Error::infra(format!("prepare the run directory {}", work.display()), e))?;
        let runner = DuctRunner::new(&work).with_program(Tool::Helm, opts.local.bin.join("helm"));
        let runner: std::sync::Arc<dyn crate::tools::Runner> = std::sync::Arc::new(runner);
        let kubeconfig = plan::providers::local::layout(&opts).admin_kubeconfig();
        let api = KubeApi::new(kubeconfig, None, Owner::new(&self.run_id));
        let settings = self.settings(&runner, self.keep());
        let t0 = Instant::now();
        let mut result = self.rt.block_on(execute_guarded(&p, &api, &settings));
        // No component outlives its scenario, whatever the teardown did.
        let leftovers = self.processes.stop_all(crate::provider::local::process::GRACE);
        if !leftovers.is_empty() {
            eprintln!(
                "warning: stopped components the teardown had left: {:?}",
                leftovers.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
        }
        if result.passed && result.asserted == 0 {
            result.passed = false;
            result.phases.push(crate::run::executor::PhaseResult {
                name: "assert".into(),
                status: crate::run::executor::Status::Failed(
                    "the scenario asserted zero checks on the local provider".into(),
                ),
                seconds: 0.0,
            });
        }
        if result.infra {
            self.infra = true;
        }
        if !result.passed {
            for (name, log) in plan::providers::local::component_logs(&opts) {
                if let Ok(text) = std::fs::read(&log) {
                    result.evidence.push((format!("{name}.log"), String::from_utf8_lossy(&text).into_owned()));
                }
            }
        }
        self.finish(&p, &result, t0.elapsed());
        Ok(result.cancelled)
    }
}
