//! Builds a [`Plan`] from a loaded scenario. Pure: it reads nothing and runs nothing.

use crate::plan::PhaseKind;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::action::{Action, Gather, Phase, Plan, Teardown};
use super::provider::{LocalPaths, Provider};
use crate::duration;
use crate::predict::render;
use crate::scenario::Loaded;
use crate::scenario::model::Step;
use crate::tools::env::{self, TelepresenceTimeouts};
use crate::tools::install::ToolsDir;
use crate::tools::{CommandLine, Tool, docker, kind, telepresence};

/// Where a plan runs and puts things; the defaults are what `kyvtel plan` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The run directory (`target/kyvtel-work/RUN_ID`).
    pub run_dir: PathBuf,
    /// Where `kyvtel tools install` put the binaries and charts.
    pub tools: ToolsDir,
    /// The provider.
    pub provider: Provider,
    /// Where the local provider's binaries and charts are.
    pub local: LocalPaths,
}

impl Default for Options {
    /// What `kyvtel plan` prints: a placeholder run id, the default tools directory, kind.
    fn default() -> Self {
        Options {
            run_dir: PathBuf::from("target/kyvtel-work/RUN_ID"),
            tools: ToolsDir::at(".tools/bin"),
            provider: Provider::Kind,
            local: LocalPaths::default(),
        }
    }
}

impl Options {
    /// A member of a local cell: it resets the shared stack, and the cell's reset check waits until
    /// what it deleted is gone (its namespaces terminate together instead of one after another).
    #[must_use]
    pub fn resets_shared_stack(&self) -> bool {
        self.provider == Provider::Local && self.local.stack.is_some()
    }
}

/// The cluster a plan runs on: its kind name and the kubeconfig every command uses.
///
/// A scenario planned alone gets its own ([`ClusterTarget::own`]); the scenarios of a cell share the
/// cell's (see [`super::cells`]), while keeping their own run directories for Helm and Telepresence state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTarget {
    /// The kind cluster name.
    pub name: String,
    /// The kubeconfig file: `KUBECONFIG` of every command, and `--kubeconfig` of `kind create/delete cluster`.
    pub kubeconfig: PathBuf,
}

impl ClusterTarget {
    /// The scenario's own cluster, `kyvtel-<scenario>`, with the kubeconfig in the run directory.
    #[must_use]
    pub fn own(loaded: &Loaded, opts: &Options) -> ClusterTarget {
        let kubeconfig = match opts.provider {
            Provider::Local => super::providers::local::layout(opts).admin_kubeconfig(),
            _ => env::kubeconfig(&opts.run_dir),
        };
        ClusterTarget { name: format!("kyvtel-{}", loaded.name()), kubeconfig }
    }
}

/// Default time limits, per operation. A step's `timeout:` replaces them within that step.
pub(crate) mod limits {
    use std::time::Duration;
    const fn m(n: u64) -> Duration {
        Duration::from_secs(n * 60)
    }
    pub const CREATE_CLUSTER: Duration = m(5);
    pub const PULL_IMAGE: Duration = m(5);
    pub const HELM_KYVERNO: Duration = m(11);
    pub const ROLLOUT: Duration = m(5);
    pub const APPLY: Duration = m(2);
    pub const POLICIES_READY: Duration = m(2);
    pub const CANARY: Duration = m(2);
    pub const TP_INSTALL: Duration = m(6);
    pub const CONNECT: Duration = m(3);
    pub const INTERCEPT: Duration = m(4);
    pub const AGENT_POD: Duration = m(3);
    pub const DENIAL_EVIDENCE: Duration = m(3);
    pub const REQUEST: Duration = m(1);
    /// The in-cluster traffic client: its pod started, curl's own retries (at most 70 s), its log.
    pub const CLIENT_POD: Duration = m(2);
    pub const QUICK: Duration = Duration::from_secs(30);
    pub const TEARDOWN: Duration = m(5);
    pub const GATHER: Duration = m(3);
    /// A local component from start to ready (Kyverno from a fresh etcd: ≈ 8 s; facts.md §7).
    pub const COMPONENT: Duration = m(2);
    /// A local component's SIGTERM grace period (facts.md §7: ≥ 15 s).
    pub const STOP_GRACE: Duration = Duration::from_secs(15);
    /// The injected pod on the local provider (0.2–3 s after the workload; facts.md §7).
    pub const INJECTED_POD: Duration = m(1);
}

/// Normalizes `a/b/../c` to `a/c` without touching the file system.
pub(crate) fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir if out.components().next_back().is_some_and(|l| matches!(l, Component::Normal(_))) => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Accumulates phases and the teardown stack.
pub(crate) struct Builder {
    pub(crate) phases: Vec<Phase>,
    pub(crate) teardown: Vec<Teardown>,
    pub(crate) run_dir: PathBuf,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) provider: Provider,
    /// The scenario runs on a cell's shared stack (local): its teardown resets what it set up.
    pub(crate) shared_stack: bool,
}

/// The run-private environment of `tool` under `run_dir`, with `KUBECONFIG` set to `kubeconfig`.
fn tool_env(tool: Tool, run_dir: &Path, kubeconfig: &Path) -> env::ToolEnv {
    let mut e = env::for_tool(tool, run_dir, &TelepresenceTimeouts::default());
    for (k, v) in &mut e.vars {
        if k == "KUBECONFIG" {
            *v = kubeconfig.display().to_string();
        }
    }
    e
}

impl Builder {
    /// Attaches the run-private environment the command's tool needs.
    pub(crate) fn cmd(&self, c: CommandLine) -> CommandLine {
        let e = tool_env(c.tool, &self.run_dir, &self.kubeconfig);
        env::apply(c, &e)
    }

    pub(crate) fn run(&self, c: CommandLine, timeout: Duration) -> Action {
        Action::Run { command: self.cmd(c), timeout, expect_failure: false, best_effort: false }
    }

    /// Registers a teardown entry; returns its index.
    pub(crate) fn push_undo(
        &mut self,
        phase: PhaseKind,
        label: &str,
        actions: Vec<Action>,
        on_failure: Vec<Action>,
        skip_if_kept: bool,
    ) -> usize {
        self.teardown.push(Teardown {
            label: label.into(),
            registered_by: phase,
            actions,
            on_failure,
            skip_if_kept,
            undoes_install: false,
            cluster_only: false,
            deletes_cluster: false,
        });
        self.teardown.len() - 1
    }

    /// Registers a teardown entry that undoes only objects inside the cluster, unless the provider's
    /// cluster state dies with the run (local: the stack and its data directory go at once). It is
    /// skipped at run time when the plan deletes the cluster (see [`Teardown::cluster_only`]).
    pub(crate) fn push_cluster_undo(
        &mut self,
        phase: PhaseKind,
        label: &str,
        actions: Vec<Action>,
        on_failure: Vec<Action>,
        skip_if_kept: bool,
    ) -> Option<usize> {
        (!self.provider.drops_cluster_state(self.shared_stack)).then(|| {
            let i = self.push_undo(phase, label, actions, on_failure, skip_if_kept);
            self.teardown[i].cluster_only = true;
            i
        })
    }

    /// Marks the newest teardown entry as undoing a Helm install (see [`Teardown::undoes_install`]).
    pub(crate) fn undoes_install(&mut self) {
        if let Some(t) = self.teardown.last_mut() {
            t.undoes_install = true;
        }
    }
}

pub(crate) fn object_ref(o: &Value, namespace: Option<&str>) -> Value {
    let mut r = json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"]});
    if let Some(ns) = namespace.filter(|_| o["kind"] != "Namespace") {
        r["namespace"] = json!(ns);
    }
    r
}

pub(crate) fn timeout_for(step: &Step, default: Duration) -> Duration {
    step.timeout().and_then(|t| duration::parse(t).ok()).unwrap_or(default)
}

/// Every image the scenario needs on the node: the workload's containers and init containers, then
/// the Telepresence image; each once, in first-seen order.
#[must_use]
pub fn images(loaded: &Loaded) -> Vec<String> {
    let workload = loaded.manifest_values().flat_map(|d| {
        let spec = &d["spec"]["template"]["spec"];
        ["containers", "initContainers"]
            .into_iter()
            .flat_map(move |k| spec[k].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["image"].as_str().map(str::to_string))
    });
    let mut out: Vec<String> = Vec::new();
    for img in workload.chain([telepresence::image(&loaded.versions.telepresence_version())]) {
        if !out.contains(&img) {
            out.push(img);
        }
    }
    out
}

/// The `preload-images` phase: each image pulled once on the host, then loaded into the kind cluster.
#[must_use]
pub fn preload_phase(images: &[String], run_dir: &Path, cluster: &ClusterTarget) -> Phase {
    let b = Builder {
        phases: Vec::new(),
        teardown: Vec::new(),
        run_dir: run_dir.to_path_buf(),
        kubeconfig: cluster.kubeconfig.clone(),
        provider: Provider::Kind,
        shared_stack: false,
    };
    let mut actions = Vec::new();
    for img in images {
        let archive = docker::archive_name(&crate::tools::env::images_dir(run_dir), img);
        actions.push(b.run(docker::pull(img), limits::PULL_IMAGE));
        actions.push(b.run(docker::save(img, &archive), limits::PULL_IMAGE));
        actions.push(b.run(kind::load_image_archive(&cluster.name, &archive), limits::PULL_IMAGE));
    }
    Phase { kind: PhaseKind::PreloadImages, expects_denial: false, actions }
}

/// Builds the plan of `loaded` on its own cluster.
#[must_use]
pub fn build(loaded: &Loaded, opts: &Options) -> Plan {
    build_in(loaded, opts, &ClusterTarget::own(loaded, opts))
}

/// Builds the plan of `loaded` on `target`: every command uses the target's cluster name and kubeconfig;
/// everything else run-private stays under `opts.run_dir`. The provider's setup phases come first
/// (see [`super::providers`]), then one phase per step (see [`super::steps`]).
#[must_use]
pub fn build_in(loaded: &Loaded, opts: &Options, target: &ClusterTarget) -> Plan {
    let s = &loaded.scenario.spec;
    let v = &loaded.versions;
    let mut b = Builder {
        phases: Vec::new(),
        teardown: Vec::new(),
        run_dir: opts.run_dir.clone(),
        kubeconfig: target.kubeconfig.clone(),
        provider: opts.provider,
        shared_stack: opts.local.stack.is_some(),
    };
    super::providers::setup(&mut b, loaded, opts, target);
    for step in &s.steps {
        let phase = super::steps::phase(&mut b, loaded, opts, step);
        b.phases.push(phase);
    }
    // After setup, the policies must still be enforced in the app namespace.
    if s.steps.iter().any(|st| matches!(st, Step::ApplyPolicies(_))) {
        let mut actions = vec![Action::CanaryDenied { pod: canary_pod(loaded), timeout: limits::CANARY }];
        if let Some(expected) = &s.expect.policy_exceptions {
            actions.push(Action::PolicyExceptions { expected: expected.clone() });
        }
        b.phases.push(Phase { kind: PhaseKind::AssertStillEnforced, expects_denial: false, actions });
    }
    let env = tool_env(Tool::Telepresence, &opts.run_dir, &target.kubeconfig).vars;
    // A local run names the Telepresence version it ran: one scenario runs once per buildable version.
    let scenario = match opts.provider {
        Provider::Local => format!("{}@{}", loaded.name(), v.telepresence),
        _ => loaded.name().to_string(),
    };
    Plan {
        scenario,
        source: loaded.path.clone(),
        versions: v.clone(),
        provider: opts.provider,
        cluster: target.name.clone(),
        app_namespace: s.workload.namespace.clone(),
        workload: s.workload.name.clone(),
        manager_namespace: s.telepresence.manager_namespace.clone(),
        run_dir: opts.run_dir.clone(),
        telepresence_binary: telepresence_binary(opts, &v.telepresence),
        env,
        warnings: v.support_warning().into_iter().collect(),
        evidence: super::providers::evidence(&b, target),
        phases: b.phases,
        teardown: b.teardown,
    }
}

/// What is gathered on failure, into `<run_dir>/evidence/`: `telepresence gather-logs` (its zip) and
/// `kind export logs` (a directory). The kind part is dropped on clusters kind did not make.
pub(crate) fn gathers(b: &Builder, cluster: &str) -> Vec<Gather> {
    let dir = b.run_dir.join("evidence");
    let zip = dir.join("telepresence-gather-logs.zip");
    let kind_logs = dir.join("kind-logs");
    vec![
        Gather {
            name: "telepresence-gather-logs".into(),
            command: b.cmd(telepresence::gather_logs(&zip)),
            timeout: limits::GATHER,
            output: zip,
        },
        Gather {
            name: "kind-logs".into(),
            command: b.cmd(kind::export_logs(cluster, &kind_logs)),
            timeout: limits::GATHER,
            output: kind_logs,
        },
    ]
}

/// The binary of a non-default Telepresence `version`; `None` for the pinned default.
fn telepresence_binary(opts: &Options, version: &str) -> Option<PathBuf> {
    if opts.provider == Provider::Local {
        return None;
    }
    let pins = crate::scenario::pins::Pins::builtin();
    (version != pins.telepresence.default).then(|| opts.tools.telepresence(&pins, version))
}

pub(crate) fn canary_pod(loaded: &Loaded) -> Value {
    render::canary_pod(&loaded.scenario.spec.workload.namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_resolves_parent_components() {
        assert_eq!(
            clean(Path::new("scenarios/../kind-config/default.yaml")),
            PathBuf::from("kind-config/default.yaml")
        );
        assert_eq!(clean(Path::new("../x/./y")), PathBuf::from("../x/y"));
    }
}
