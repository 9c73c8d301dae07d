//! `kyvtel run --provider local`: the scenarios once per Telepresence version the local provider
//! builds, each on a fresh stack of real components in the run's private namespaces.

use std::path::PathBuf;
use std::time::Instant;

use super::Session;
use crate::kube::ownership::Owner;
use std::sync::Arc;
use std::time::Duration;

use crate::plan::providers::local::components::{Ports, reuse_hint};
use crate::plan::providers::local::paths::traffic_name;
use crate::plan::{self, LocalPaths, Options, Plan, Provider as PlanProvider};
use crate::provider::local::{build, confine, process, variants};
use crate::run::cell::execute_cell;
use crate::run::executor::{PhaseResult, ScenarioResult, Settings, Status};
use crate::run::kube_api::KubeApi;
use crate::scenario::Loaded;
use crate::scenario::pins::Pins;
use crate::tools::install::ToolsDir;
use crate::tools::runner::{DuctRunner, default_tools_dir};
use crate::tools::{Runner, Tool};
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

/// The scenario variants a local run executes (refusing what cannot be built, exit 3).
///
/// # Errors
/// [`Error::Prerequisite`] naming the version that cannot be built.
pub fn variants_of(loaded: &[Loaded], pins: &Pins) -> Result<Vec<Loaded>> {
    let mut runs = Vec::new();
    for l in loaded {
        runs.extend(variants::variants(l, pins).map_err(Error::Prerequisite)?);
    }
    Ok(runs)
}

/// Builds what the local run of `loaded` needs, **before** the namespaces are entered: inside them
/// only `lo` exists, and Go could not fetch a module.
///
/// # Errors
/// A version that cannot be built or a failed build (exit 3).
pub fn build_for(loaded: &[Loaded]) -> Result<()> {
    let pins = Pins::builtin();
    let runs = variants_of(loaded, &pins)?;
    build_components(&pins, &wanted(&runs)).map(drop)
}

/// The Telepresence and Kyverno versions `runs` run.
fn wanted(runs: &[Loaded]) -> Vec<&str> {
    runs.iter().flat_map(|l| [l.versions.telepresence.as_str(), l.versions.kyverno.as_str()]).collect()
}

/// The build targets the runs of `versions` (Telepresence and Kyverno) need: every default binary
/// but the traffic-managers of other versions, and a nightly Kyverno where one is wanted.
fn needed_targets(pins: &Pins, versions: &[&str]) -> Vec<build::Target> {
    let traffic: Vec<String> = versions.iter().map(|v| traffic_name(v)).collect();
    let mut out: Vec<build::Target> = build::targets(pins)
        .into_iter()
        .filter(|t| !t.name.starts_with("traffic-") || traffic.contains(&t.name))
        .collect();
    for v in versions {
        if let Some(t) = build::nightly_kyverno(pins, v)
            && !out.contains(&t)
        {
            out.push(t);
        }
    }
    out
}

/// Everything a local run needs before its runtime starts: the versions to run, confinement, and
/// every component built (by [`build_for`], before confinement; here only checked: warm means no
/// `go` invocation).
///
/// # Errors
/// [`Error::Prerequisite`] (exit 3) naming what is missing.
pub(super) fn prepare(loaded: &[Loaded], pins: &Pins, unconfined: bool) -> Result<Vec<Loaded>> {
    let runs = variants_of(loaded, pins)?;
    if !unconfined && !confine::is_confined() {
        return Err(Error::Prerequisite(
            "the local provider runs only inside its private namespaces (kyvtel enters them itself before it \
             starts; this process was not confined)"
                .into(),
        ));
    }
    // Built by [`build_for`] before confinement; here no build can fetch anything, so only checked.
    let env = build::GoEnv::detect(mirror()).map_err(Error::Prerequisite)?;
    let root = root();
    let cold: Vec<String> = needed_targets(pins, &wanted(&runs))
        .into_iter()
        .filter(|t| !build::is_warm(t, &env, &root))
        .map(|t| t.name)
        .collect();
    if !cold.is_empty() {
        return Err(Error::Prerequisite(format!(
            "local components not built: {} (run `kyvtel tools build`)",
            cold.join(", ")
        )));
    }
    Ok(runs)
}

/// Builds the binaries the runs need that are not warm, with a line per binary on stderr.
///
/// # Errors
/// [`Error::Prerequisite`] for a missing Go or a failed build (module, proxy and fix named).
pub fn build_components(pins: &Pins, versions: &[&str]) -> Result<Vec<String>> {
    let targets = needed_targets(pins, versions);
    let env = build::GoEnv::detect(mirror()).map_err(Error::Prerequisite)?;
    let root = root();
    build::build_missing(&targets, &env, &root, BUILD_TIMEOUT, |t, warm| {
        if !warm {
            crate::console_eprintln!(
                "building {} ({}@{}) with {} ...",
                t.name,
                t.spec.module,
                t.spec.version,
                env.version
            );
        }
    })
    .map_err(|e| Error::Prerequisite(e.to_string()))
}

/// `local` for an unconfined run, with loopback ports picked free now.
///
/// # Errors
/// [`Error::Prerequisite`] when no loopback port can be bound.
pub fn unconfine(local: LocalPaths) -> Result<LocalPaths> {
    let ports =
        Ports::pick().map_err(|e| Error::Prerequisite(format!("no free loopback port for an unconfined run: {e}")))?;
    Ok(local.unconfined(ports))
}

/// The plan options of a local run under `work`; an unconfined one picks its ports here.
///
/// # Errors
/// [`Error::Prerequisite`] when no loopback port can be bound.
pub fn options(work: PathBuf, cold: bool, unconfined: bool) -> Result<Options> {
    let mut local = LocalPaths::detect(&root(), cold);
    if unconfined {
        local = unconfine(local)?;
    }
    Ok(Options { run_dir: work, tools: ToolsDir::at(default_tools_dir()), provider: PlanProvider::Local, local })
}

impl Session<'_> {
    /// A runner for Helm (the local build) whose run-private directories live under `dir`.
    fn local_runner(&self, dir: &std::path::Path, bin: &std::path::Path) -> Result<Arc<dyn Runner>> {
        crate::tools::env::materialize(&crate::tools::env::for_tool(Tool::Helm, dir, &Default::default()))
            .map_err(|e| Error::infra(format!("prepare the run directory {}", dir.display()), e))?;
        Ok(Arc::new(DuctRunner::new(dir).with_program(Tool::Helm, bin.join("helm"))))
    }

    /// Every scenario variant, grouped into cells that share one stack (control plane and Kyverno,
    /// started once): exactly `kyvtel plan --provider local`. Each member resets what it set up, and
    /// fails if it left anything behind. Returns whether the run was cancelled.
    pub(super) fn run_local_cells(&mut self, runs: &[Loaded]) -> Result<bool> {
        let opts = options(self.work.path.clone(), self.opts.cold, self.opts.unconfined)?;
        if opts.local.unconfined {
            crate::console_println!("{}", confine::unconfined_notice(&opts.local.ports));
        }
        for cell in plan::cells::group(runs, &opts) {
            let setup_runner = self.local_runner(&cell.run_dir, &opts.local.bin)?;
            let mut runners = Vec::new();
            for m in &cell.scenarios {
                runners.push((m.scenario.clone(), self.local_runner(&m.run_dir, &opts.local.bin)?));
            }
            // Everything is on loopback: poll at a quarter second, not at a remote cluster's pace.
            let api = KubeApi::new(cell.kubeconfig.clone(), None, Owner::new(&self.run_id))
                .poll_interval(Duration::from_millis(250));
            let setup_settings = self.settings(&setup_runner, self.keep());
            let t0 = Instant::now();
            let result =
                self.rt.block_on(execute_cell(&cell, &cell.setup, &api, &setup_settings, |m: &Plan| Settings {
                    runner: runners
                        .iter()
                        .find(|(n, _)| *n == m.scenario)
                        .map_or_else(|| setup_runner.clone(), |(_, r)| r.clone()),
                    // Each member always resets: the next one needs the stack as the setup left it,
                    // and the stack never outlives kyvtel (`--keep` keeps only the work directory).
                    keep: false,
                    ..setup_settings.clone()
                }));
            for t in &result.teardown {
                if let Status::Failed(e) = &t.status {
                    crate::console_eprintln!("warning: teardown of {} failed: {e}", t.label);
                }
            }
            // No component outlives its cell, whatever the teardown did.
            let left = self.processes.stop_all(process::GRACE);
            if !left.is_empty() {
                let names: Vec<&str> = left.iter().map(|s| s.name.as_str()).collect();
                crate::console_eprintln!("warning: stopped components the teardown had left: {names:?}");
            }
            let logs =
                plan::providers::local::component_logs(&Options { run_dir: cell.run_dir.clone(), ..opts.clone() });
            let with_logs = |mut r: ScenarioResult| {
                if !r.passed {
                    for (name, log) in &logs {
                        if let Ok(text) = std::fs::read(log) {
                            r.evidence.push((format!("{name}.log"), String::from_utf8_lossy(&text).into_owned()));
                        }
                    }
                }
                r
            };
            if !result.setup.passed {
                // The shared stack is infrastructure: its failure is never a policy verdict.
                self.infra |= !result.setup.cancelled;
                let why = format!(
                    "infrastructure failure: the shared stack {} failed: {}",
                    cell.cluster,
                    result.setup.failure().unwrap_or_else(|| "cancelled".into())
                );
                crate::console_eprintln!("{why}");
                let setup = with_logs(result.setup.clone());
                self.finish(&cell.setup, &setup, t0.elapsed());
                for m in &cell.scenarios {
                    self.report.scenarios.push(crate::report::ScenarioReport::new(
                        &m.scenario,
                        crate::report::Verdict::Failed { message: why.clone() },
                        Duration::ZERO,
                    ));
                }
            }
            for (member, r) in &result.members {
                let mut r = with_logs(r.clone());
                if r.passed && r.asserted == 0 {
                    r.passed = false;
                    r.phases.push(PhaseResult {
                        name: "assert".into(),
                        kind: None,
                        status: Status::Failed("the scenario asserted zero checks on the local provider".into()),
                        failure: Some(crate::run::failure::FailureKind::Mismatch),
                        seconds: 0.0,
                    });
                }
                self.infra |= r.infra;
                let took = Duration::from_secs_f64(r.phases.iter().map(|p| p.seconds).sum());
                self.finish(member, &r, took);
            }
            if self.keep() {
                // The work directory (with the stack's data and PKI) stays; its processes do not.
                let l = plan::providers::local::layout(&Options { run_dir: cell.run_dir.clone(), ..opts.clone() });
                crate::console_eprintln!("{}", reuse_hint(&l));
            }
            if result.cancelled {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
