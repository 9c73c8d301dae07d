//! One `kyvtel run`: load every scenario (bad input stops everything, exit 2), check the
//! prerequisites (exit 3), then execute each plan in turn with Ctrl-C forwarding, write an evidence
//! bundle for each failure, and write the JUnit, JSON and Markdown reports.
//!
//! Telepresence daemons are machine-wide, so scenarios run one after another, never concurrently.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::cell::execute_cell;
use super::executor::{ScenarioResult, Settings, Status, execute_guarded};
use super::kube_api::KubeApi;
use super::reuse::{self, Decision};
use crate::kube::api::ClusterApi;
use crate::kube::ownership::Owner;
use crate::plan::{self, Gather, Options, Plan};
use crate::provider::ClusterProvider;
use crate::provider::k3s::{K3sProvider, K3sSpec};
use crate::report::evidence::{Bundle, nested_name};
use crate::report::{self, Phase, RunReport, ScenarioReport, Verdict};
use crate::scenario::Loaded;
use crate::scenario::pins::Pins;
use crate::tools::install::ToolsDir;
use crate::tools::runner::{DuctRunner, default_tools_dir, interrupt_all, is_executable};
use crate::tools::{Runner, Tool};
use crate::{Error, Exit, Result};

/// Where the cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// A kind cluster per scenario, created and deleted by the plan.
    Kind,
    /// A privileged k3s container (testcontainers) per scenario, removed afterwards; images are
    /// pulled by k3s itself (it cannot preload them).
    K3s {
        /// The image, `rancher/k3s:<tag>` (kyvtel pins none).
        image: String,
    },
    /// An existing cluster: a kubeconfig and optional context; never created or deleted.
    Existing {
        /// The user's kubeconfig (copied into the run directory, never written).
        kubeconfig: PathBuf,
        /// The context to use.
        context: Option<String>,
    },
    /// The local stack (no Docker): components built from Go modules, run in private namespaces.
    Local,
}

/// What a run needs to know.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The scenario files.
    pub scenarios: Vec<PathBuf>,
    /// Where the scenarios' files may come from.
    pub confinement: crate::scenario::Confinement,
    /// Keep clusters after the run.
    pub keep: bool,
    /// Reuse a kind cluster whose fingerprint matches (implies keeping it).
    pub reuse: bool,
    /// The cluster provider.
    pub provider: Provider,
    /// The report root (`target/kyvtel`): reports and redacted evidence, safe to upload.
    pub report_dir: PathBuf,
    /// The root of the run-private directories ([`DEFAULT_WORK_DIR`]): kubeconfigs and tool state,
    /// unredacted. Never inside `report_dir`; removed when the run ends unless `--keep`.
    pub work_dir: PathBuf,
    /// An extra JUnit output path.
    pub junit: Option<PathBuf>,
    /// Local provider: every stack starts from an empty etcd; no snapshot is restored or saved.
    pub cold: bool,
    /// Local provider: no private namespaces (`--unconfined`).
    pub unconfined: bool,
    /// Unexplained model drift fails the pod's verification.
    pub strict_model: bool,
    /// Run as this cell of the version matrix (`kyvtel run --cell`): its versions replace the
    /// scenarios' own; scenarios that pin other versions are left out, with a note.
    pub cell: Option<crate::scenario::matrix::MatrixCell>,
    /// Write the run's observed record to `scenarios/observed/` (`--record`).
    pub record: bool,
    /// Run a scenario that failed for an infrastructure reason again, up to this many times
    /// (`--retries`); never one with a policy verdict.
    pub retries: u32,
    /// Scenarios whose failures are tolerated (`quarantine.yaml`, checked before the run).
    pub quarantine: crate::scenario::quarantine::Quarantine,
}

/// Where run-private directories go by default, `target/kyvtel-work/<run-id>/`: beside the reports,
/// not in them, because they hold credentials (the run's kubeconfig) and unredacted tool logs.
pub const DEFAULT_WORK_DIR: &str = "target/kyvtel-work";

/// A run id that sorts by time: `run-<unix seconds>-<pid>`.
pub fn new_run_id() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    format!("run-{secs}-{}", std::process::id())
}

/// The per-run token the intercepted local server answers with: `<run-id>-<32 hex digits>`, the
/// digits being 16 bytes from the operating system's CSPRNG (ring's `SystemRandom`).
///
/// The token is no credential (it opens nothing); it proves that a response came from this run's
/// server through the intercept, so it must not be guessable. If the system RNG fails the run
/// stops (exit 3) rather than fall back to a predictable value.
fn new_token(run_id: &str) -> Result<String> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut bytes).map_err(|ring::error::Unspecified| {
        Error::infra("draw the run's traffic token", std::io::Error::other("the system random number generator failed"))
    })?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{run_id}-{hex}"))
}

pub use crate::scenario::load_all;

/// The runner of commands whose run-private directories live under `work`, with tools from
/// `tools`. With `telepresence` (a plan's [`Plan::telepresence_binary`]), `telepresence` commands
/// run that binary; otherwise the default (tools directory, then PATH).
fn scenario_runner(work: &Path, tools: &ToolsDir, telepresence: Option<&Path>) -> DuctRunner {
    let runner = DuctRunner::new(work).with_tools_dir(Some(tools.bin.clone()));
    match telepresence {
        Some(bin) => runner.with_program(Tool::Telepresence, bin.to_path_buf()),
        None => runner,
    }
}

/// Copies the user's kubeconfig into the run directory, selecting `context`; the user's file is
/// only read.
fn private_kubeconfig(user: &Path, context: Option<&str>, target: &Path) -> Result<()> {
    let src = crate::yaml::read(user)?;
    let docs = crate::yaml::documents(user, &src)?;
    let mut cfg =
        docs.into_iter().next().map(|d| d.value).ok_or_else(|| Error::input(user, None, "empty kubeconfig"))?;
    if let Some(c) = context {
        let known = cfg["contexts"].as_array().is_some_and(|cs| cs.iter().any(|x| x["name"] == c));
        if !known {
            return Err(Error::input(user, None, format!("no context `{c}` in this kubeconfig")));
        }
        cfg["current-context"] = serde_json::json!(c);
    }
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::infra(format!("create {}", dir.display()), e))?;
    }
    let text = serde_saphyr::to_string(&cfg).map_err(|e| Error::infra("serialize kubeconfig", e))?;
    crate::tools::env::write_private(target, &text).map_err(|e| Error::infra(format!("write {}", target.display()), e))
}

/// The state of one `kyvtel run` while it goes through its scenarios.
struct Session<'a> {
    opts: &'a SessionOptions,
    rt: tokio::runtime::Runtime,
    run_id: String,
    /// The traffic token of this run (see [`new_token`]).
    token: String,
    root: PathBuf,
    /// This run's private directories, removed when the session ends (see [`WorkDir`]).
    work: WorkDir,
    cancel: watch::Receiver<bool>,
    progress: report::progress::Progress,
    report: RunReport,
    refused: bool,
    /// A scenario failed for an infrastructure reason (exit 3).
    infra: bool,
    /// The local provider's components (empty elsewhere).
    processes: crate::provider::local::process::Table,
}

/// What `--reuse` made of a plan: the plan to run and the fingerprint to record after setup.
enum Gate {
    Run(Box<Plan>, Option<std::collections::BTreeMap<String, String>>),
    Refused,
}

impl Session<'_> {
    /// A runner for commands whose run-private directories live under `work` (created here),
    /// running the Telepresence binary `telepresence` (see [`scenario_runner`]).
    fn runner(&self, work: &Path, telepresence: Option<&Path>) -> Result<Arc<dyn Runner>> {
        for tool in [Tool::Kind, Tool::Helm, Tool::Telepresence, Tool::Docker] {
            crate::tools::env::materialize(&crate::tools::env::for_tool(tool, work, &Default::default()))
                .map_err(|e| Error::infra(format!("prepare the run directory {}", work.display()), e))?;
        }
        let tools = ToolsDir::at(default_tools_dir());
        Ok(Arc::new(scenario_runner(work, &tools, telepresence)))
    }

    fn settings(&self, runner: &Arc<dyn Runner>, keep: bool) -> Settings {
        Settings {
            runner: runner.clone(),
            token: self.token.clone(),
            keep,
            cancel: self.cancel.clone(),
            progress: Some(self.progress.clone()),
            as_root: crate::tools::is_root(),
            owns_cluster: !matches!(self.opts.provider, Provider::Existing { .. }),
            processes: self.processes.clone(),
            defer_teardown: false,
            strict_model: self.opts.strict_model,
        }
    }

    fn keep(&self) -> bool {
        self.opts.keep || self.opts.reuse
    }

    /// Applies `--reuse` to a plan that creates a kind cluster (`kind_config` is its config file).
    fn reuse_gate(
        &mut self,
        plan: Plan,
        api: &KubeApi,
        runner: &Arc<dyn Runner>,
        kind_config: &Path,
        for_names: &[&str],
    ) -> Result<Gate> {
        if !self.opts.reuse {
            return Ok(Gate::Run(Box::new(plan), None));
        }
        let config = crate::input::read(kind_config)?;
        let want = reuse::expected(&plan, &config);
        let kubeconfig =
            plan.env.iter().find(|(k, _)| k == "KUBECONFIG").map(|(_, v)| PathBuf::from(v)).unwrap_or_default();
        match self.rt.block_on(reuse::decide(&plan, api, runner.clone(), &want, &kubeconfig)) {
            Ok(Decision::Reuse) => {
                crate::console_eprintln!("reusing cluster {} (fingerprint matches)", plan.cluster);
                Ok(Gate::Run(Box::new(reuse::reused(plan)), None))
            }
            Ok(Decision::Create) => Ok(Gate::Run(Box::new(plan), Some(want))),
            Ok(Decision::Refuse(why)) => {
                crate::console_eprintln!("refused: {why}");
                self.refused = true;
                for n in for_names {
                    self.report.scenarios.push(ScenarioReport::new(
                        *n,
                        Verdict::Failed { message: why.clone() },
                        Duration::ZERO,
                    ));
                }
                Ok(Gate::Refused)
            }
            Err(e) => Err(Error::infra("check the cluster for --reuse", e)),
        }
    }

    /// Records the fingerprint once the cluster and Kyverno are set up.
    fn record_fingerprint(
        &self,
        api: &KubeApi,
        result: &ScenarioResult,
        fp: Option<std::collections::BTreeMap<String, String>>,
    ) {
        let set_up = |kind: &crate::plan::PhaseKind| {
            result.phases.iter().any(|ph| ph.kind == Some(*kind) && ph.status == Status::Passed)
        };
        if let Some(fp) = fp
            && reuse::SETUP_PHASES.iter().all(set_up)
            && let Err(e) = self.rt.block_on(api.write_fingerprint(&fp))
        {
            crate::console_eprintln!("warning: could not record the cluster fingerprint for --reuse: {e}");
        }
    }

    /// Evidence, drift, per-phase lines and the report entry of one executed plan.
    fn finish(&mut self, plan: &Plan, result: &ScenarioResult, took: Duration) {
        let evidence = if result.passed {
            None
        } else {
            match write_evidence(&self.root, &self.run_id, plan, result) {
                Ok(dir) => Some(dir),
                Err(e) => {
                    crate::console_eprintln!("warning: could not write the evidence bundle: {e}");
                    None
                }
            }
        };
        let open: Vec<String> = result.drift.iter().flat_map(super::drift::DriftRecord::lines).collect();
        if !open.is_empty() {
            crate::console_eprintln!(
                "model drift in {} (the injection model differs from the live pod; nothing in not_modelled.yaml explains it):",
                plan.scenario
            );
            for d in open.iter().take(20) {
                crate::console_eprintln!("  {d}");
            }
        }
        for n in &result.drift_notes {
            crate::console_eprintln!("  note: {n}");
        }
        if !result.drift.is_empty() {
            let drift = serde_json::to_string_pretty(&result.drift).unwrap_or_default();
            let _ = self.write_report_file(&format!("{}-model-drift.json", plan.scenario), &drift);
        }
        for ph in &result.phases {
            crate::console_eprintln!("  {:<24} {:>7.1}s  {}", ph.name, ph.seconds, status_text(&ph.status));
        }
        let v = &plan.versions;
        self.report.versions.insert(format!("{}/telepresence", plan.scenario), v.telepresence.clone());
        self.report.versions.insert(format!("{}/kyvernoChart", plan.scenario), v.kyverno_chart.clone());
        self.report.digests.insert(format!("{}/nodeImage", plan.scenario), v.node_image.reference.clone());
        let mut report = scenario_report(plan, result, took, evidence);
        if let Some(pod) = &result.judged_pod {
            // Redacted like all evidence; what `kyvtel verify SCENARIO --pod FILE` judges again.
            // A list's items carry no kind; the file reads as `kubectl get pod -o json` prints it.
            let mut pod = pod.clone();
            if let Some(o) = pod.as_object_mut() {
                o.entry("apiVersion").or_insert_with(|| "v1".into());
                o.entry("kind").or_insert_with(|| "Pod".into());
            }
            let text = crate::report::redact::redact(&serde_json::to_string_pretty(&pod).unwrap_or_default());
            let name = format!("{}-pod.json", plan.scenario);
            match self.write_report_file(&name, &text) {
                Ok(file) => report.pod = Some(file),
                Err(e) => crate::console_eprintln!("warning: could not write {name} in the report directory: {e}"),
            }
        }
        self.report.scenarios.push(report);
    }

    /// Writes `text`, redacted, as `name` in this run's report directory.
    fn write_report_file(&self, name: &str, text: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.join(&self.run_id);
        std::fs::create_dir_all(&dir)?;
        let file = dir.join(name);
        std::fs::write(&file, crate::report::redact::redact(text))?;
        Ok(file)
    }

    fn execute(&mut self, plan: &Plan, api: &KubeApi, settings: &Settings) -> ScenarioResult {
        let result = self.rt.block_on(execute_guarded(plan, api, settings));
        self.note_server_version(api);
        result
    }

    /// A scenario whose setup failed before its plan ran (a provider that did not start, a run
    /// directory that could not be written) is a failed scenario, reported as an infrastructure
    /// failure, and the run goes on so that the reports are always written; bad input still stops it.
    /// Returns whether the run was cancelled.
    fn scenario_setup(&mut self, name: &str, r: Result<bool>) -> Result<bool> {
        match r {
            Ok(cancelled) => Ok(cancelled),
            Err(e) if e.exit() == Exit::Input => Err(e),
            Err(e) => {
                crate::console_eprintln!("{name}: setup failed: {e}");
                self.infra = true;
                self.report.scenarios.push(ScenarioReport::new(
                    name,
                    Verdict::Failed { message: format!("infrastructure failure: setup failed: {e}") },
                    Duration::ZERO,
                ));
                Ok(false)
            }
        }
    }

    /// Records the API server's version once, for the JSON summary (best effort).
    fn note_server_version(&mut self, api: &KubeApi) {
        if self.report.server_version.is_none() {
            self.report.server_version = self.rt.block_on(api.server_version()).ok();
        }
    }

    /// Every scenario of `loaded` (or the local provider's `local_runs`), by cells where the
    /// provider shares clusters. Returns whether the run was cancelled.
    fn run_all(&mut self, loaded: &[Loaded], local_runs: Option<&[Loaded]>) -> Result<bool> {
        if let Some(runs) = local_runs {
            let r = self.run_local_cells(runs);
            return self.scenario_setup("local stack", r);
        }
        if self.opts.provider == Provider::Kind && loaded.len() > 1 {
            return self.run_cells(loaded);
        }
        for l in loaded {
            let r = self.run_one(l);
            if self.scenario_setup(l.name(), r)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// One scenario on its own cluster: exactly `kyvtel plan SCENARIO`. Returns whether it was cancelled.
    fn run_one(&mut self, l: &Loaded) -> Result<bool> {
        let work = self.work.path.join(l.name());
        let provider = match self.opts.provider {
            Provider::Kind => plan::Provider::Kind,
            Provider::K3s { .. } => plan::Provider::K3s,
            Provider::Existing { .. } => plan::Provider::Existing,
            Provider::Local => return self.run_local_cells(std::slice::from_ref(l)),
        };
        // The provider is an input of the plan: k3s and existing clusters get no cluster phases.
        let p = plan::build(
            l,
            &Options {
                run_dir: work.clone(),
                tools: ToolsDir::at(default_tools_dir()),
                provider,
                ..Options::default()
            },
        );
        let kind_cluster = self.opts.provider == Provider::Kind;
        let mut k3s = None;
        let (kubeconfig, context) = match &self.opts.provider {
            Provider::Kind => (crate::tools::env::kubeconfig(&work), None),
            Provider::K3s { image } => {
                let spec = K3sSpec {
                    image: image.clone(),
                    kubeconfig: crate::tools::env::kubeconfig(&work),
                    startup_timeout: Duration::from_secs(300),
                };
                // A malformed image reference is bad input.
                let provider = K3sProvider::new(spec).map_err(|e| Error::Usage(format!("--k3s-image: {e}")))?;
                let ensured = self
                    .rt
                    .block_on(provider.ensure())
                    .map_err(|e| Error::infra(format!("start k3s ({image}) for {}", l.name()), e))?;
                k3s = Some(provider);
                (ensured.cluster.kubeconfig, ensured.cluster.context)
            }
            Provider::Local => return self.run_local_cells(std::slice::from_ref(l)),
            Provider::Existing { kubeconfig, context } => {
                let private = crate::tools::env::kubeconfig(&work);
                private_kubeconfig(kubeconfig, context.as_deref(), &private)?;
                (private, None)
            }
        };
        // The scenario's own Telepresence version, for the plan and for the evidence bundle.
        let runner = self.runner(&work, p.telepresence_binary.as_deref())?;
        let api = KubeApi::new(kubeconfig, context, Owner::new(&self.run_id));
        let t0 = Instant::now();
        let (p, record) = if kind_cluster {
            match self.reuse_gate(p, &api, &runner, &l.kind_config, &[l.name()])? {
                Gate::Run(p, record) => (*p, record),
                Gate::Refused => return Ok(false),
            }
        } else {
            (p, None)
        };
        let settings = self.settings(&runner, self.keep());
        let result = self.execute(&p, &api, &settings);
        if let Some(provider) = k3s.take()
            && let Err(e) = self.rt.block_on(provider.delete())
        {
            crate::console_eprintln!("warning: could not remove the k3s container: {e}");
        }
        self.record_fingerprint(&api, &result, record);
        self.finish(&p, &result, t0.elapsed());
        Ok(result.cancelled)
    }

    /// Several scenarios on kind: one cluster and one Kyverno install per cell, exactly
    /// `kyvtel plan --all`. Returns whether the run was cancelled.
    fn run_cells(&mut self, loaded: &[Loaded]) -> Result<bool> {
        let work = self.work.path.clone();
        let cells = plan::cells::group(
            loaded,
            &Options { run_dir: work.clone(), tools: ToolsDir::at(default_tools_dir()), ..Options::default() },
        );
        for cell in cells {
            let names: Vec<&str> = cell.scenarios.iter().map(|p| p.scenario.as_str()).collect();
            // The shared setup (cluster, Kyverno) runs no Telepresence command.
            let runner = self.runner(&cell.run_dir, None)?;
            let api = KubeApi::new(cell.kubeconfig.clone(), None, Owner::new(&self.run_id));
            let kind_config = loaded
                .iter()
                .find(|l| names.first().is_some_and(|n| *n == l.name()))
                .map(|l| l.kind_config.clone())
                .unwrap_or_default();
            let (setup, record) = match self.reuse_gate(cell.setup.clone(), &api, &runner, &kind_config, &names)? {
                Gate::Run(p, r) => (*p, r),
                Gate::Refused => continue,
            };
            let mut member_runners = Vec::new();
            for m in &cell.scenarios {
                let own = self.runner(&work.join(&m.scenario), m.telepresence_binary.as_deref())?;
                member_runners.push((m.scenario.clone(), own));
            }
            let keep = self.keep();
            let token = self.token.clone();
            let cancel = self.cancel.clone();
            let progress = self.progress.clone();
            let setup_settings = self.settings(&runner, keep);
            let result = self.rt.block_on(execute_cell(&cell, &setup, &api, &setup_settings, |m: &Plan| Settings {
                runner: member_runners
                    .iter()
                    .find(|(n, _)| *n == m.scenario)
                    .map(|(_, r)| r.clone())
                    .unwrap_or_else(|| runner.clone()),
                token: token.clone(),
                keep,
                cancel: cancel.clone(),
                progress: Some(progress.clone()),
                as_root: crate::tools::is_root(),
                owns_cluster: true,
                processes: Default::default(),
                defer_teardown: false,
                strict_model: setup_settings.strict_model,
            }));
            self.note_server_version(&api);
            self.record_fingerprint(&api, &result.setup, record);
            if !result.setup.passed {
                let why = format!(
                    "the shared setup of cluster {} failed: {}",
                    cell.cluster,
                    result.setup.failure().unwrap_or_else(|| "cancelled".into())
                );
                crate::console_eprintln!("{why}");
                for ph in &result.setup.phases {
                    crate::console_eprintln!("  {:<24} {:>7.1}s  {}", ph.name, ph.seconds, status_text(&ph.status));
                }
                let bundle = write_evidence(&self.root, &self.run_id, &setup, &result.setup);
                if let Err(e) = &bundle {
                    crate::console_eprintln!("warning: could not write the evidence bundle of {}: {e}", cell.cluster);
                }
                for n in &names {
                    self.report.scenarios.push(ScenarioReport::new(
                        *n,
                        Verdict::Failed { message: why.clone() },
                        Duration::ZERO,
                    ));
                }
            }
            for (member, r) in &result.members {
                let took = Duration::from_secs_f64(r.phases.iter().map(|p| p.seconds).sum());
                self.finish(member, r, took);
            }
            for t in &result.teardown {
                if let Status::Failed(e) = &t.status {
                    crate::console_eprintln!("warning: teardown of {} failed: {e}", t.label);
                }
            }
            let cancelled = result.cancelled;
            if cancelled {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Runs the scenarios; returns exit 0 when all pass, 1 when one fails, 3 when `--reuse` refused.
pub fn run(opts: &SessionOptions) -> Result<Exit> {
    let mut loaded = crate::scenario::load_all_confined(&opts.scenarios, &opts.confinement)?;
    if let Some(cell) = &opts.cell {
        let (kept, left_out) = crate::scenario::matrix::apply_cell(loaded, cell, &Pins::builtin())?;
        for note in &left_out {
            crate::console_eprintln!("note: left out of cell {}: {note}", cell.id);
        }
        if kept.is_empty() {
            return Err(Error::Usage(format!("no scenario runs in cell {}", cell.id)));
        }
        loaded = kept;
    }
    let mut names = std::collections::BTreeSet::new();
    if let Some(dup) = loaded.iter().find(|l| !names.insert(l.name().to_string())) {
        return Err(Error::input(
            &dup.path,
            dup.index.value("/metadata/name"),
            format!("another scenario is also named `{}`", dup.name()),
        ));
    }
    if let Provider::Existing { kubeconfig, .. } = &opts.provider
        && !kubeconfig.is_file()
    {
        return Err(Error::input(kubeconfig, None, "file not found"));
    }
    let pins = Pins::builtin();
    check_work_dir(opts)?;
    // Every missing prerequisite at once: the machine's (Docker first, as doctor orders them), then
    // the versions the scenarios need.
    let versions_missing = if opts.provider == Provider::Local {
        Vec::new()
    } else {
        provisioned_version_problems(&loaded, &ToolsDir::at(default_tools_dir()), &pins)
    };
    let local_runs =
        if opts.provider == Provider::Local { Some(local::prepare(&loaded, &pins, opts.unconfined)?) } else { None };
    let findings = if local_runs.is_some() { Vec::new() } else { crate::doctor::machine_findings() };
    let needed: &[&str] = match opts.provider {
        Provider::Kind => &["docker", "kind", "helm", "telepresence", "sudo", "tun"],
        Provider::K3s { .. } => &["docker", "helm", "telepresence", "sudo", "tun"],
        Provider::Existing { .. } => &["helm", "telepresence", "sudo", "tun"],
        Provider::Local => &[],
    };
    // doctor checks the default Telepresence; other versions were checked above.
    let default_telepresence = loaded.iter().any(|l| l.versions.telepresence == pins.telepresence.default);
    let mut missing: Vec<String> = findings
        .iter()
        .filter(|f| !f.ok && needed.contains(&f.check.as_str()))
        .filter(|f| f.check != "telepresence" || default_telepresence)
        .map(|f| format!("{}: {} (fix: {})", f.check, f.detail, f.fix))
        .collect();
    missing.extend(versions_missing);
    if !missing.is_empty() {
        return Err(Error::Prerequisite(format!("{} missing:\n  {}", missing.len(), missing.join("\n  "))));
    }

    let run_id = new_run_id();
    let token = new_token(&run_id)?;
    crate::provider::local::confine::hand_signals_to_runtime();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::infra("start the async runtime", e))?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    rt.spawn(async move {
        // SIGTERM (a CI timeout, `kill`) is handled as Ctrl-C: stop the step, then tear down. The
        // local provider's confined kyvtel is PID 1 of its namespace, which ignores unhandled signals.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let ok = tokio::select! {
            r = tokio::signal::ctrl_c() => r.is_ok(),
            () = terminated => true,
        };
        if ok {
            crate::console_eprintln!(
                "interrupted: stopping the current step, then tearing down (Ctrl-C again has no effect)"
            );
            let _ = cancel_tx.send(true);
            interrupt_all();
        }
    });
    let started = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let mut session = Session {
        opts,
        rt,
        run_id: run_id.clone(),
        token,
        root: opts.report_dir.clone(),
        work: WorkDir::new(&opts.work_dir, &run_id, opts.keep),
        cancel: cancel_rx,
        progress: report::progress::Progress::detect(),
        report: RunReport {
            run_id: run_id.clone(),
            started_at: format!("{started}"),
            versions: Default::default(),
            digests: Default::default(),
            server_version: None,
            scenarios: Vec::new(),
        },
        refused: false,
        infra: false,
        processes: Default::default(),
    };
    let mut cancelled = session.run_all(&loaded, local_runs.as_deref())?;
    // Infrastructure failures only, never a policy verdict; each attempt's evidence is kept.
    let members: Vec<String> = match &local_runs {
        Some(runs) => runs.iter().map(|l| format!("{}@{}", l.name(), l.versions.telepresence)).collect(),
        None => loaded.iter().map(|l| l.name().to_string()).collect(),
    };
    for attempt in 2..=opts.retries.saturating_add(1) {
        if cancelled {
            break;
        }
        let mut earlier = retry::take_infra_failures(&mut session.report.scenarios, &members);
        if earlier.is_empty() {
            break;
        }
        let names: Vec<&String> = earlier.keys().collect();
        crate::console_eprintln!(
            "attempt {attempt} of {}: {} (infrastructure failures only)",
            opts.retries + 1,
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        let again = |l: &Loaded, id: String| earlier.contains_key(&id).then(|| l.clone());
        let local_again: Option<Vec<Loaded>> = local_runs.as_ref().map(|runs| {
            runs.iter().filter_map(|l| again(l, format!("{}@{}", l.name(), l.versions.telepresence))).collect()
        });
        let loaded_again: Vec<Loaded> = loaded.iter().filter_map(|l| again(l, l.name().to_string())).collect();
        session.infra = false;
        // A fresh work directory: nothing of the failed attempt's stack is reused (kept aside with
        // --keep; its processes are gone with its teardown).
        if opts.keep {
            session.work.path = session.work.path.join(format!("attempt-{attempt}"));
        } else if let Err(e) = std::fs::remove_dir_all(&session.work.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            crate::console_eprintln!(
                "warning: could not clear {} for the next attempt: {e}",
                session.work.path.display()
            );
        }
        cancelled = session.run_all(&loaded_again, local_again.as_deref())?;
        retry::carry_attempts(&mut session.report.scenarios, &mut earlier);
        session.infra |= session.report.scenarios.iter().any(retry::is_infra_failure);
    }
    // A failure `quarantine.yaml` tolerates is reported as quarantined, never as failed.
    let mut tolerated_infra = false;
    for s in &mut session.report.scenarios {
        if let (Verdict::Failed { message }, Some(entry)) = (&s.verdict, opts.quarantine.tolerating(&s.name)) {
            crate::console_eprintln!("{}: failure tolerated, {}", s.name, entry.describe());
            tolerated_infra |= message.contains("infrastructure failure");
            s.quarantined = Some(entry.describe());
        }
    }
    let untolerated_infra = session.report.scenarios.iter().any(|s| {
        s.quarantined.is_none()
            && matches!(&s.verdict, Verdict::Failed { message } if message.contains("infrastructure failure"))
    });
    if session.infra && tolerated_infra && !untolerated_infra {
        session.infra = false;
    }
    let root = session.root.clone();
    let written = session
        .report
        .write(&root.join(&run_id), opts.junit.as_deref())
        .map_err(|e| Error::infra(format!("write reports under {}", root.display()), e))?;
    crate::console_eprintln!(
        "reports: {}, {}, {}",
        written.junit.display(),
        written.json.display(),
        written.markdown.display()
    );
    if opts.record {
        // Recorded next to the catalog of the first scenario (`<catalog>/observed/`).
        let catalog = loaded
            .first()
            .and_then(|l| l.path.parent())
            .map(|d| if d.ends_with("reports") { d.parent().unwrap_or(d) } else { d })
            .map_or_else(|| PathBuf::from(crate::report::record::DIR), |d| d.join("observed"));
        let record = crate::report::record::Record::of(&session.report);
        let path = record
            .write(&catalog, &run_id)
            .map_err(|e| Error::infra(format!("write the observed record under {}", catalog.display()), e))?;
        crate::console_eprintln!(
            "recorded: {} (commit it; `kyvtel found --write README.md` regenerates README)",
            path.display()
        );
    }
    crate::console_println!("{}", session.report.closing_line());
    Ok(if session.refused || session.infra {
        Exit::Infra
    } else if session.report.counts().failed == 0 {
        Exit::Success
    } else {
        Exit::Failed
    })
}

fn status_text(s: &Status) -> String {
    match s {
        Status::Passed => "passed".into(),
        Status::Failed(r) => format!("FAILED: {r}"),
        Status::Skipped(r) => format!("skipped ({r})"),
    }
}

mod evidence;
pub mod local;
mod prerequisites;
pub mod retry;
mod work_dir;

#[cfg(test)]
use evidence::add_gathered;
use evidence::{scenario_report, write_evidence};
use prerequisites::provisioned_version_problems;
use work_dir::{WorkDir, check_work_dir};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn existing_cluster_plans_never_create_or_delete_the_cluster() {
        let l = crate::scenario::load(Path::new("scenarios/documented-recipe.yaml")).unwrap();
        let full = plan::build(&l, &Options::default());
        let p = plan::build(&l, &Options { provider: plan::Provider::Existing, ..Options::default() });
        assert!(p.evidence.iter().all(|g| g.command.tool != Tool::Kind), "no kind export logs");
        let text = plan::render::text(&p);
        assert!(!text.contains("kind create cluster") && !text.contains("kind delete cluster"), "{text}");
        assert_eq!(p.teardown.len(), full.teardown.len() - 1);
        // The leave step still undoes the intercept entry.
        let undo = p.phases.iter().flat_map(|ph| &ph.actions).find_map(|a| match a {
            plan::Action::Undo { index } => Some(*index),
            _ => None,
        });
        assert!(p.teardown[undo.unwrap()].label.starts_with("leave the intercept"));
    }

    #[test]
    fn traffic_tokens_are_the_run_id_and_32_random_hex_digits() {
        let a = new_token("run-1-2").unwrap();
        let b = new_token("run-1-2").unwrap();
        assert_ne!(a, b, "two draws gave the same token");
        for t in [&a, &b] {
            let hex = t.strip_prefix("run-1-2-").unwrap_or_else(|| panic!("no run-id prefix: {t}"));
            assert_eq!(hex.len(), 32, "{t}");
            assert!(hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)), "{t}");
        }
    }

    /// A fresh bundle and a gather output directory under the test's temporary directory.
    fn bundle_for(test: &str) -> (Bundle, PathBuf) {
        let root = std::env::temp_dir().join(format!("kyvtel-gather-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let b = Bundle::create(&root.join("reports"), "run-1", "documented-recipe").unwrap();
        std::fs::create_dir_all(root.join("work/evidence")).unwrap();
        (b, root)
    }

    fn gathered(name: &str, output: PathBuf) -> Gather {
        let command = crate::tools::CommandLine::new(Tool::Telepresence).args(["gather-logs"]);
        Gather { name: name.into(), command, timeout: Duration::from_secs(1), output }
    }

    fn index(dir: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap()
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_gathered_zip_is_added_member_by_member_redacted_and_not_kept() {
        let connector = "2026-01-01 connector: GET /api Authorization: Bearer s3cr3t-bearer.value\n".to_string();
        let zip = crate::report::zip_members::tests::zip_of(&[
            ("connector.log", connector.as_bytes()),
            ("pods/", b""),
            ("pods/traffic-manager-0.yaml", format!("ca: |\n{PEM}name: traffic-manager-0\n").as_bytes()),
            ("core.bin", &[0xff, 0xfe, 0x00, 0x01]),
        ]);
        let (mut b, root) = bundle_for("zip");
        let out = root.join("work/evidence/telepresence-gather-logs.zip");
        std::fs::write(&out, zip).unwrap();
        add_gathered(&mut b, &gathered("telepresence-gather-logs", out.clone())).unwrap();
        let dir = b.finish().unwrap();

        let log = std::fs::read_to_string(dir.join("telepresence-gather-logs__connector.log")).unwrap();
        assert!(!log.contains("s3cr3t-bearer") && log.contains("Bearer REDACTED"), "{log}");
        let pod = std::fs::read_to_string(dir.join("telepresence-gather-logs__pods__traffic-manager-0.yaml")).unwrap();
        assert!(!pod.contains("MIIBszCCAVmgAwIBAgIU") && pod.contains("name: traffic-manager-0"), "{pod}");
        assert!(!out.exists(), "the raw zip was left at {}", out.display());
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "index.json",
                "telepresence-gather-logs__connector.log",
                "telepresence-gather-logs__pods__traffic-manager-0.yaml"
            ],
            "no zip and no binary member in the bundle"
        );
        let index = index(&dir);
        let files: Vec<(&str, &str, bool)> = index["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap(), f["description"].as_str().unwrap(), f["redacted"] == true))
            .collect();
        let what = "telepresence-gather-logs (gathered before the teardown)";
        assert_eq!(
            files,
            [
                ("telepresence-gather-logs__connector.log", format!("{what}: connector.log").as_str(), true),
                (
                    "telepresence-gather-logs__pods__traffic-manager-0.yaml",
                    format!("{what}: pods/traffic-manager-0.yaml").as_str(),
                    true
                ),
            ]
        );
        let skipped = index["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0]["name"], "telepresence-gather-logs__core.bin");
        assert_eq!(skipped[0]["bytes"], 4);
        assert!(skipped[0]["reason"].as_str().unwrap().contains("cannot be redacted"), "{skipped:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_gathered_directory_is_added_file_by_file_redacted_and_removed() {
        let (mut b, root) = bundle_for("dir");
        let out = root.join("work/evidence/kind-logs");
        std::fs::create_dir_all(out.join("kyvtel-control-plane")).unwrap();
        std::fs::write(out.join("kind-version.txt"), "kind v0.33.0\n").unwrap();
        std::fs::write(out.join("kyvtel-control-plane/kubelet.log"), format!("token: abc.def\n{PEM}")).unwrap();
        add_gathered(&mut b, &gathered("kind-logs", out.clone())).unwrap();
        let dir = b.finish().unwrap();
        let kubelet = std::fs::read_to_string(dir.join("kind-logs__kyvtel-control-plane__kubelet.log")).unwrap();
        assert!(!kubelet.contains("abc.def") && !kubelet.contains("MIIBszCCAVmgAwIBAgIU"), "{kubelet}");
        assert_eq!(std::fs::read_to_string(dir.join("kind-logs__kind-version.txt")).unwrap(), "kind v0.33.0\n");
        assert!(!out.exists(), "the raw logs were left at {}", out.display());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn nothing_gathered_adds_nothing_and_a_broken_zip_is_listed_as_skipped() {
        let (mut b, root) = bundle_for("broken");
        let out = root.join("work/evidence/telepresence-gather-logs.zip");
        add_gathered(&mut b, &gathered("telepresence-gather-logs", out.clone())).unwrap();
        std::fs::write(&out, b"PK\x03\x04 cut short").unwrap();
        add_gathered(&mut b, &gathered("telepresence-gather-logs", out.clone())).unwrap();
        let dir = b.finish().unwrap();
        assert!(!dir.join("telepresence-gather-logs.zip").exists() && !out.exists());
        let index = index(&dir);
        assert_eq!(index["files"], serde_json::json!([]));
        assert_eq!(index["skipped"][0]["name"], "telepresence-gather-logs.zip");
        assert!(index["skipped"][0]["reason"].as_str().unwrap().starts_with("not a readable zip"), "{index}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn private_kubeconfig_selects_the_context_and_leaves_the_source_alone() {
        let dir = std::env::temp_dir().join(format!("kyvtel-kc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = dir.join("user");
        let src = "apiVersion: v1\nkind: Config\ncurrent-context: a\ncontexts:\n- name: a\n  context: {cluster: a}\n- name: b\n  context: {cluster: b}\n";
        std::fs::write(&user, src).unwrap();
        let target = dir.join("run/kubeconfig");
        private_kubeconfig(&user, Some("b"), &target).unwrap();
        assert!(std::fs::read_to_string(&target).unwrap().contains("current-context: b"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&target).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "a copy of the user's credentials is private");
        assert_eq!(std::fs::read_to_string(&user).unwrap(), src);
        let err = private_kubeconfig(&user, Some("zz"), &target).unwrap_err().to_string();
        assert!(err.contains("no context `zz`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn options(report_dir: PathBuf, work_dir: PathBuf) -> SessionOptions {
        SessionOptions {
            confinement: crate::scenario::Confinement::default(),
            scenarios: vec![],
            keep: false,
            reuse: false,
            provider: Provider::Kind,
            report_dir,
            work_dir,
            junit: None,
            cold: false,
            unconfined: false,
            strict_model: false,
            cell: None,
            record: false,
            retries: 0,
            quarantine: Default::default(),
        }
    }

    #[test]
    fn a_work_dir_inside_the_reports_is_refused_however_it_is_spelled() {
        let dir = std::env::temp_dir().join(format!("kyvtel-workdir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("reports")).unwrap();
        std::os::unix::fs::symlink(dir.join("reports"), dir.join("link")).unwrap();
        for work in ["reports/w", "x/../reports/w", "./reports/./w", "link/w"] {
            let err = check_work_dir(&options(dir.join("reports"), dir.join(work))).unwrap_err();
            assert_eq!(err.exit(), Exit::Input, "{work}");
            assert!(err.to_string().contains("inside the report directory"), "{work}: {err}");
        }
        check_work_dir(&options(dir.join("reports"), dir.join("reports-work"))).unwrap();
        check_work_dir(&options(dir.join("reports"), dir.join("work"))).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_work_dir_goes_when_the_run_ends_unless_the_cluster_is_kept() {
        let dir = std::env::temp_dir().join(format!("kyvtel-workdrop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A root kyvtel creates goes with the run's directory.
        let root = dir.join("made");
        let w = WorkDir::new(&root, "run-1", false);
        std::fs::create_dir_all(w.path.join("s/home")).unwrap();
        std::fs::write(w.path.join("s/kubeconfig"), "x").unwrap();
        drop(w);
        assert!(!root.exists());
        // A root that existed stays; another run's files in it stay.
        std::fs::create_dir_all(dir.join("given/run-0")).unwrap();
        let w = WorkDir::new(&dir.join("given"), "run-1", false);
        std::fs::create_dir_all(&w.path).unwrap();
        drop(w);
        assert!(!dir.join("given/run-1").exists() && dir.join("given/run-0").exists());
        // --keep keeps it.
        let w = WorkDir::new(&dir.join("kept"), "run-1", true);
        std::fs::create_dir_all(&w.path).unwrap();
        drop(w);
        assert!(dir.join("kept/run-1").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn fake_tools(name: &str) -> (PathBuf, ToolsDir) {
        let dir = std::env::temp_dir().join(format!("kyvtel-session-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin/charts")).unwrap();
        std::fs::write(dir.join("bin/charts/kyverno-3.9.1.tgz"), b"chart").unwrap();
        (dir.clone(), ToolsDir::at(dir.join("bin")))
    }

    fn executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_missing_non_default_telepresence_is_refused_naming_the_install_command() {
        let l = crate::scenario::load(Path::new("tests/fixtures/run/recipe-telepresence-2.27.yaml")).unwrap();
        let pins = Pins::builtin();
        let (dir, tools) = fake_tools("tp-missing");
        // The default binary does not stand in for another version.
        executable(&tools.binary(Tool::Telepresence));
        let msg = provisioned_version_problems(std::slice::from_ref(&l), &tools, &pins).join("; ");
        assert!(msg.contains("recipe-on-telepresence-2-27: needs Telepresence 2.27.4"), "{msg}");
        assert!(msg.contains(&tools.bin.join("telepresence-2.27.4/telepresence").display().to_string()), "{msg}");
        assert!(msg.contains("run `kyvtel tools install --telepresence 2.27.4`"), "{msg}");

        executable(&tools.telepresence(&pins, "2.27.4"));
        assert!(provisioned_version_problems(std::slice::from_ref(&l), &tools, &pins).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_chart_is_refused_naming_the_scenario_to_install_for() {
        let l = crate::scenario::load(Path::new("scenarios/documented-recipe.yaml")).unwrap();
        let (dir, tools) = fake_tools("chart-missing");
        std::fs::remove_file(tools.charts().join("kyverno-3.9.1.tgz")).unwrap();
        let msg = provisioned_version_problems(&[l], &tools, &Pins::builtin()).join("; ");
        assert!(msg.contains("the Kyverno chart 3.9.1 is not downloaded"), "{msg}");
        assert!(msg.contains("kyvtel tools install --for-scenarios scenarios/documented-recipe.yaml"), "{msg}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_runner_runs_the_scenarios_own_telepresence() {
        let pins = Pins::builtin();
        let (dir, tools) = fake_tools("runner");
        executable(&tools.binary(Tool::Telepresence));
        executable(&tools.telepresence(&pins, "2.27.4"));
        let work = dir.join("work");
        let opts = Options { run_dir: work.clone(), tools: tools.clone(), ..Options::default() };
        let other = crate::scenario::load(Path::new("tests/fixtures/run/recipe-telepresence-2.27.yaml")).unwrap();
        let other = plan::build(&other, &opts);
        let versioned = tools.bin.join("telepresence-2.27.4/telepresence");
        assert_eq!(other.telepresence_binary.as_deref(), Some(versioned.as_path()));
        let runner = scenario_runner(&work, &tools, other.telepresence_binary.as_deref());
        assert_eq!(runner.program_path(Tool::Telepresence), Some(versioned));
        let recipe = crate::scenario::load(Path::new("scenarios/documented-recipe.yaml")).unwrap();
        let recipe = plan::build(&recipe, &opts);
        assert_eq!(recipe.telepresence_binary, None);
        let default = scenario_runner(&work, &tools, recipe.telepresence_binary.as_deref());
        assert_eq!(default.program_path(Tool::Telepresence), Some(tools.bin.join("telepresence")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
