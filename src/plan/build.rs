//! Builds a [`Plan`] from a loaded scenario. Pure: it reads nothing and runs nothing.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::action::{Action, DenialSource, Gather, Phase, Plan, Teardown, WaitFor};
use super::duration;
use crate::check::render;
use crate::outcome::expect::StepOutcome;
use crate::scenario::Loaded;
use crate::scenario::model::Step;
use crate::scenario::policy;
use crate::tools::env::{self, TelepresenceTimeouts};
use crate::tools::install::ToolsDir;
use crate::tools::{CommandLine, Tool, docker, helm, kind, telepresence};

/// Where a plan puts things; the defaults are what `kyvtel plan` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The run directory (`target/kyvtel-work/RUN_ID`).
    pub run_dir: PathBuf,
    /// Where `kyvtel tools install` put the binaries and charts.
    pub tools: ToolsDir,
}

impl Default for Options {
    /// What `kyvtel plan` prints: a placeholder run id and the default tools directory.
    fn default() -> Self {
        Options { run_dir: PathBuf::from("target/kyvtel-work/RUN_ID"), tools: ToolsDir::at(".tools/bin") }
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
        ClusterTarget { name: format!("kyvtel-{}", loaded.name()), kubeconfig: env::kubeconfig(&opts.run_dir) }
    }
}

/// Default time limits, per operation. A step's `timeout:` replaces them within that step.
mod limits {
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
    pub const QUICK: Duration = Duration::from_secs(30);
    pub const TEARDOWN: Duration = m(5);
    pub const GATHER: Duration = m(3);
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
struct Builder {
    phases: Vec<Phase>,
    teardown: Vec<Teardown>,
    run_dir: PathBuf,
    kubeconfig: PathBuf,
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
    fn cmd(&self, c: CommandLine) -> CommandLine {
        let e = tool_env(c.tool, &self.run_dir, &self.kubeconfig);
        env::apply(c, &e)
    }

    fn run(&self, c: CommandLine, timeout: Duration) -> Action {
        Action::Run { command: self.cmd(c), timeout, expect_failure: false, best_effort: false }
    }

    fn push_undo(
        &mut self,
        phase: &str,
        label: &str,
        actions: Vec<Action>,
        on_failure: Vec<Action>,
        skip_if_kept: bool,
    ) -> usize {
        self.teardown.push(Teardown {
            label: label.into(),
            registered_by: phase.into(),
            actions,
            on_failure,
            skip_if_kept,
            undoes_install: false,
        });
        self.teardown.len() - 1
    }

    /// Marks the newest teardown entry as undoing a Helm install (see [`Teardown::undoes_install`]).
    fn undoes_install(&mut self) {
        if let Some(t) = self.teardown.last_mut() {
            t.undoes_install = true;
        }
    }
}

fn object_ref(o: &Value, namespace: Option<&str>) -> Value {
    let mut r = json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "name": o["metadata"]["name"]});
    if let Some(ns) = namespace.filter(|_| o["kind"] != "Namespace") {
        r["namespace"] = json!(ns);
    }
    r
}

fn timeout_for(step: &Step, default: Duration) -> Duration {
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
    };
    let mut actions = Vec::new();
    for img in images {
        actions.push(b.run(docker::pull(img), limits::PULL_IMAGE));
        actions.push(b.run(kind::load_image(&cluster.name, img), limits::PULL_IMAGE));
    }
    Phase { name: "preload-images".into(), expects_denial: false, actions }
}

/// Builds the plan of `loaded` on its own cluster.
#[must_use]
pub fn build(loaded: &Loaded, opts: &Options) -> Plan {
    build_in(loaded, opts, &ClusterTarget::own(loaded, opts))
}

/// Builds the plan of `loaded` on `target`: every command uses the target's cluster name and kubeconfig;
/// everything else run-private stays under `opts.run_dir`.
#[must_use]
pub fn build_in(loaded: &Loaded, opts: &Options, target: &ClusterTarget) -> Plan {
    let s = &loaded.scenario.spec;
    let v = &loaded.versions;
    let tp = v.telepresence_version();
    let cluster = target.name.clone();
    let app_ns = s.workload.namespace.as_str();
    let mgr_ns = s.telepresence.manager_namespace.as_str();
    let selector = loaded.workload_selector();
    let mut b = Builder {
        phases: Vec::new(),
        teardown: Vec::new(),
        run_dir: opts.run_dir.clone(),
        kubeconfig: target.kubeconfig.clone(),
    };
    let kubeconfig = target.kubeconfig.clone();

    // create-cluster
    {
        let name = "create-cluster";
        let create = kind::create(
            &cluster,
            &clean(&loaded.kind_config),
            &v.node_image.reference,
            &kubeconfig,
            kind::CREATE_WAIT,
        );
        // The run's kubeconfig is what `kind get kubeconfig` prints (facts.md §2), replacing the file
        // `create` wrote through `--kubeconfig` (which only keeps kind away from `~/.kube/config`).
        let save = Action::SaveOutput {
            command: b.cmd(kind::get_kubeconfig(&cluster)),
            path: kubeconfig.clone(),
            timeout: limits::QUICK,
        };
        let actions = vec![b.run(create, limits::CREATE_CLUSTER), save];
        let del = b.run(kind::delete(&cluster, &kubeconfig), limits::TEARDOWN);
        b.push_undo(name, "delete the kind cluster", vec![del], vec![], true);
        b.phases.push(Phase { name: name.into(), expects_denial: false, actions });
    }

    // preload-images: pulled once on the host, loaded into kind.
    b.phases.push(preload_phase(&images(loaded), &opts.run_dir, target));

    for step in &s.steps {
        let name = step.name();
        let expected = step.expect().for_versions(|w| v.satisfies(w));
        let denial = match &expected {
            StepOutcome::Denied(d) => Some(d.clone()),
            StepOutcome::Ok => None,
        };
        let mut actions = Vec::new();
        match step {
            Step::InstallKyverno(_) => {
                let chart = opts.tools.charts().join(format!("kyverno-{}.tgz", v.kyverno_chart));
                let values = s.kyverno.values.as_ref().map(|vals| {
                    let path = opts.run_dir.join("kyverno-values.yaml");
                    actions.push(Action::WriteFile {
                        path: path.clone(),
                        contents: serde_saphyr::to_string(vals).unwrap_or_default(),
                    });
                    path
                });
                actions.push(Action::Run {
                    command: b.cmd(helm::install_kyverno(&chart, values.as_deref())),
                    timeout: timeout_for(step, limits::HELM_KYVERNO),
                    expect_failure: denial.is_some(),
                    best_effort: false,
                });
                let un = b.run(helm::uninstall_kyverno(), limits::TEARDOWN);
                b.push_undo(name, "uninstall Kyverno", vec![un], vec![], true);
                b.undoes_install();
                actions.push(Action::Wait {
                    until: WaitFor::DeploymentAvailable {
                        namespace: "kyverno".into(),
                        name: "kyverno-admission-controller".into(),
                    },
                    timeout: timeout_for(step, limits::ROLLOUT),
                });
            }
            Step::ApplyPolicies(_) => {
                let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": app_ns}});
                actions.push(Action::Apply {
                    label: format!("Namespace {app_ns}"),
                    namespace: None,
                    objects: vec![ns.clone()],
                    timeout: limits::APPLY,
                    expect_failure: false,
                });
                let del = Action::Delete {
                    label: format!("Namespace {app_ns}"),
                    objects: vec![object_ref(&ns, None)],
                    timeout: limits::TEARDOWN,
                };
                b.push_undo(name, &format!("delete namespace {app_ns}"), vec![del], vec![], true);
                let objects: Vec<Value> = loaded.policies.iter().map(|p| p.merged.clone()).collect();
                let names: Vec<String> = objects.iter().filter_map(|o| policy::name(o).map(str::to_string)).collect();
                let refs = objects.iter().map(|o| object_ref(o, None)).collect();
                let del = Action::Delete {
                    label: format!("ClusterPolicies {}", names.join(", ")),
                    objects: refs,
                    timeout: limits::TEARDOWN,
                };
                b.push_undo(name, "remove the policies", vec![del], vec![], false);
                actions.push(Action::Apply {
                    label: format!("ClusterPolicies {} (exclusions merged)", names.join(", ")),
                    namespace: None,
                    objects,
                    timeout: timeout_for(step, limits::APPLY),
                    expect_failure: denial.is_some(),
                });
                actions.push(Action::Wait {
                    until: WaitFor::PoliciesReady { names },
                    timeout: timeout_for(step, limits::POLICIES_READY),
                });
                actions
                    .push(Action::CanaryDenied { pod: canary_pod(loaded), timeout: timeout_for(step, limits::CANARY) });
            }
            Step::InstallTelepresence(_) => {
                for f in env::telepresence(&opts.run_dir, &TelepresenceTimeouts::default()).files {
                    actions.push(Action::WriteFile { path: f.path, contents: f.contents });
                }
                let values = loaded.telepresence_values.as_ref().map(|(p, _)| clean(p));
                let un = b.run(telepresence::helm_uninstall(mgr_ns, false), limits::TEARDOWN);
                let un_no_hooks = b.run(telepresence::helm_uninstall(mgr_ns, true), limits::TEARDOWN);
                // Registered before the install: a failed atomic install can leave objects behind.
                b.push_undo(name, "uninstall the traffic-manager", vec![un], vec![un_no_hooks], false);
                b.undoes_install();
                actions.push(Action::Run {
                    command: b.cmd(telepresence::helm_install(mgr_ns, values.as_deref())),
                    timeout: timeout_for(step, limits::TP_INSTALL),
                    expect_failure: denial.is_some(),
                    best_effort: false,
                });
                if denial.is_none() {
                    actions.push(Action::Wait {
                        until: WaitFor::TrafficManagerReady {
                            namespace: s.expect.traffic_manager_namespace.clone().unwrap_or_else(|| mgr_ns.to_string()),
                            workload_kind: telepresence::manager_kind(&tp).into(),
                        },
                        timeout: timeout_for(step, limits::ROLLOUT),
                    });
                }
            }
            Step::DeployWorkload(_) => {
                let objects: Vec<Value> = loaded.manifest_values().cloned().collect();
                let refs = objects.iter().map(|o| object_ref(o, Some(app_ns))).collect();
                let del = Action::Delete {
                    label: format!("workload {}", s.workload.name),
                    objects: refs,
                    timeout: limits::TEARDOWN,
                };
                b.push_undo(name, &format!("delete workload {}", s.workload.name), vec![del], vec![], false);
                actions.push(Action::Apply {
                    label: format!("workload {}", s.workload.name),
                    namespace: Some(app_ns.into()),
                    objects,
                    timeout: timeout_for(step, limits::APPLY),
                    expect_failure: denial.is_some(),
                });
                if denial.is_none() {
                    actions.push(Action::Wait {
                        until: WaitFor::DeploymentAvailable { namespace: app_ns.into(), name: s.workload.name.clone() },
                        timeout: timeout_for(step, limits::ROLLOUT),
                    });
                }
            }
            Step::Connect(_) => {
                // The daemons are machine-wide: stop any left over by another run first.
                actions.push(Action::Run {
                    command: b.cmd(telepresence::quit()),
                    timeout: limits::QUICK,
                    expect_failure: false,
                    best_effort: true,
                });
                actions.push(b.run(telepresence::sudo_probe(), limits::QUICK));
                let quit = b.run(telepresence::quit(), limits::QUICK);
                b.push_undo(name, "stop the Telepresence daemons", vec![quit], vec![], false);
                actions.push(Action::Run {
                    command: b.cmd(telepresence::connect(app_ns, mgr_ns)),
                    timeout: timeout_for(step, limits::CONNECT),
                    expect_failure: denial.is_some(),
                    best_effort: false,
                });
                actions.push(b.run(telepresence::status_json(&tp), limits::QUICK));
            }
            Step::Intercept(i) => {
                actions.push(Action::Serve { port: i.port });
                b.push_undo(name, "stop the local server", vec![Action::StopServer { port: i.port }], vec![], false);
                actions.push(Action::RecordPods { namespace: app_ns.into(), selector: selector.clone() });
                let mut leave = vec![b.run(telepresence::leave(&tp, &i.workload), limits::QUICK)];
                if tp >= crate::scenario::version::Version::parse("2.22").expect("literal") {
                    // From 2.22 the intercept evicts pods; recovery after leave can take minutes.
                    leave.push(Action::RestartWorkload { namespace: app_ns.into(), name: i.workload.clone() });
                }
                b.push_undo(name, &format!("leave the intercept of {}", i.workload), leave, vec![], false);
                actions.push(Action::Run {
                    command: b.cmd(telepresence::intercept(&i.workload, i.port, i.service_port)),
                    timeout: timeout_for(step, limits::INTERCEPT),
                    expect_failure: denial.is_some(),
                    best_effort: false,
                });
                if denial.is_none() {
                    actions.push(Action::Wait {
                        until: WaitFor::NewAgentPod { namespace: app_ns.into(), selector: selector.clone() },
                        timeout: timeout_for(step, limits::AGENT_POD),
                    });
                    let expectations: Vec<_> = s
                        .expect
                        .pod
                        .iter()
                        .filter(|g| g.when.as_ref().is_none_or(|w| v.satisfies(w)))
                        .cloned()
                        .collect();
                    if !expectations.is_empty() {
                        actions.push(Action::VerifyPod {
                            namespace: app_ns.into(),
                            selector: selector.clone(),
                            expectations,
                            predicted: render::injected_pod(loaded).ok(),
                        });
                    }
                }
            }
            Step::SendTraffic(t) => {
                let svc = t.service.clone().unwrap_or_else(|| s.workload.name.clone());
                for url in [
                    format!("http://{{clusterIP:{app_ns}/{svc}}}:{}/", t.port),
                    format!("http://{svc}.{app_ns}.svc.cluster.local:{}/", t.port),
                ] {
                    actions.push(Action::Request { url, timeout: timeout_for(step, limits::REQUEST) });
                }
            }
            Step::Leave(_) => {
                if let Some(i) = b.teardown.iter().rposition(|t| t.registered_by == "intercept") {
                    actions.push(Action::Undo { index: i });
                    actions.push(Action::Wait {
                        until: WaitFor::DeploymentAvailable { namespace: app_ns.into(), name: s.workload.name.clone() },
                        timeout: timeout_for(step, limits::ROLLOUT),
                    });
                }
            }
        }
        if let Some(expected) = denial {
            let source = match step {
                Step::Intercept(i) => DenialSource::Workload { namespace: app_ns.into(), name: i.workload.clone() },
                Step::DeployWorkload(_) | Step::ApplyPolicies(_) => DenialSource::ApplyError,
                _ => DenialSource::CommandOutput,
            };
            actions.push(Action::ProveDenial { source, expected, timeout: timeout_for(step, limits::DENIAL_EVIDENCE) });
        }
        b.phases.push(Phase { name: name.into(), expects_denial: matches!(expected, StepOutcome::Denied(_)), actions });
    }

    // After setup, the policies must still be enforced in the app namespace.
    if s.steps.iter().any(|st| matches!(st, Step::ApplyPolicies(_))) {
        b.phases.push(Phase {
            name: "assert-still-enforced".into(),
            expects_denial: false,
            actions: vec![Action::CanaryDenied { pod: canary_pod(loaded), timeout: limits::CANARY }],
        });
    }

    Plan {
        scenario: loaded.name().to_string(),
        source: loaded.path.clone(),
        versions: v.clone(),
        cluster,
        app_namespace: app_ns.to_string(),
        workload: s.workload.name.clone(),
        manager_namespace: mgr_ns.to_string(),
        run_dir: opts.run_dir.clone(),
        telepresence_binary: telepresence_binary(opts, &v.telepresence),
        env: tool_env(Tool::Telepresence, &opts.run_dir, &kubeconfig).vars,
        warnings: v.support_warning().into_iter().collect(),
        evidence: gathers(&b, &target.name),
        phases: b.phases,
        teardown: b.teardown,
    }
}

/// What is gathered on failure, into `<run_dir>/evidence/`: `telepresence gather-logs` (its zip) and
/// `kind export logs` (a directory). The kind part is dropped on clusters kind did not make.
fn gathers(b: &Builder, cluster: &str) -> Vec<Gather> {
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
    let pins = crate::scenario::pins::Pins::builtin();
    (version != pins.telepresence.default).then(|| opts.tools.telepresence(&pins, version))
}

fn canary_pod(loaded: &Loaded) -> Value {
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
