//! Executes a [`Plan`] exactly as printed: phases in order, each action with its time limit, then
//! the teardown stack in LIFO order, on success, failure, timeout and cancellation (Ctrl-C).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::action::{State, exec_action, run_command};
use super::failure::{FailureKind, InfraCause, StepError};
use crate::kube::api::ClusterApi;
use crate::outcome::check::Check;
use crate::plan::{Action, PhaseKind, Plan};
use crate::tools::Runner;

/// How a phase or teardown entry ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status", content = "reason")]
pub enum Status {
    /// Everything held.
    Passed,
    /// Something did not hold or failed; the reason says what, with the last observed state.
    Failed(String),
    /// Not run, because an earlier phase failed or the run was cancelled.
    Skipped(String),
}

/// The result of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseResult {
    /// The phase name.
    pub name: String,
    /// The plan phase it reports (`None` for a cell's reset or a whole run that panicked).
    #[serde(skip)]
    pub kind: Option<PhaseKind>,
    /// How it ended.
    pub status: Status,
    /// What kind of failure it was, when it failed (the status's reason says it for people).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    /// How long it took.
    pub seconds: f64,
}

/// The result of one teardown entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeardownResult {
    /// What was undone.
    pub label: String,
    /// How it ended (`Skipped` with the reason when not needed).
    pub status: Status,
}

/// The result of executing one plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioResult {
    /// The scenario.
    pub scenario: String,
    /// Whether every phase passed.
    pub passed: bool,
    /// Whether the run was cancelled (Ctrl-C).
    pub cancelled: bool,
    /// Per phase, in order.
    pub phases: Vec<PhaseResult>,
    /// Pod checks made by the outcome engine.
    pub checks: Vec<Check>,
    /// The injection model compared with the live pods (model drift), one record per workload.
    pub drift: Vec<super::drift::DriftRecord>,
    /// Comparisons that could not be made, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift_notes: Vec<String>,
    /// The failure was the infrastructure's (a component died, a webhook could not be called), never
    /// a policy verdict: exit 3.
    pub infra: bool,
    /// How many checks were asserted: pod checks, proven denials and canary denials.
    pub asserted: usize,
    /// The teardown, in the order it ran.
    pub teardown: Vec<TeardownResult>,
    /// Evidence collected on failure: (file name, content), not yet redacted.
    #[serde(skip)]
    pub evidence: Vec<(String, String)>,
    /// The pod the checks judged, as the API server returned it (not yet redacted).
    #[serde(skip)]
    pub judged_pod: Option<Value>,
    /// The denials the steps expected, as proven (not yet redacted).
    #[serde(skip)]
    pub denials: Vec<ProvenDenial>,
}

impl ScenarioResult {
    /// The first failure, for one-line reports.
    pub fn failure(&self) -> Option<String> {
        self.phases.iter().find_map(|p| match &p.status {
            Status::Failed(r) => Some(format!("{}: {r}", p.name)),
            _ => None,
        })
    }
}

/// Settings of one execution.
#[derive(Clone)]
pub struct Settings {
    /// Runs external commands.
    pub runner: Arc<dyn Runner>,
    /// The per-run token the local server answers with.
    pub token: String,
    /// Keep the cluster (`--keep` / `--reuse`): teardown entries marked `skip_if_kept` are skipped.
    pub keep: bool,
    /// Becomes `true` on Ctrl-C.
    pub cancel: watch::Receiver<bool>,
    /// Shows each phase with its elapsed time (spinners on a terminal, plain lines otherwise).
    pub progress: Option<crate::report::progress::Progress>,
    /// kyvtel runs as root: the passwordless-sudo probe is skipped.
    pub as_root: bool,
    /// The cluster is kyvtel's own (kind, k3s): after a failed Helm install, its leftovers are
    /// removed. On an existing cluster, a release kyvtel did not install is never uninstalled.
    pub owns_cluster: bool,
    /// The local provider's running components (empty elsewhere).
    pub processes: crate::provider::local::process::Table,
    /// The whole teardown waits for the cell's end (a cell's shared setup).
    pub defer_teardown: bool,
    /// Unexplained model drift fails the pod's verification (`--strict-model`).
    pub strict_model: bool,
}

/// A denial a step expected, as the evidence showed it (not yet redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenDenial {
    /// The phase that expected it.
    pub phase: String,
    /// The evidence text that proved it.
    pub text: String,
}

fn is_cancelled(s: &Settings) -> bool {
    *s.cancel.borrow()
}

/// Waits until cancelled (never returns otherwise).
async fn cancelled(mut rx: watch::Receiver<bool>) {
    loop {
        if *rx.borrow() {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// How long a component may stay stopped (SIGSTOP) before the step is abandoned: longer than any
/// admission webhook's `timeoutSeconds` (at most 30 s, admissionregistration.k8s.io/v1), so that a
/// webhook that hangs is first reported by the API server as "failed calling webhook".
const HUNG: Duration = Duration::from_secs(40);

/// Resolves when a component of the run (the local provider's) has exited, or has been stopped for
/// [`HUNG`]: no wait goes on for its timeout once the stack is broken ([`infra_cause`] names it).
/// Never resolves without components.
async fn component_exited(table: &crate::provider::local::process::Table) {
    let mut stopped_since: Option<Instant> = None;
    loop {
        if !table.dead().is_empty() {
            return;
        }
        if table.stopped().is_empty() {
            stopped_since = None;
        } else if stopped_since.get_or_insert_with(Instant::now).elapsed() >= HUNG {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Names the infrastructure's part in a failure, when it has one: a component of the run that
/// exited or hangs, or (in the step's own words) a full disk or a webhook the API server could not
/// call. Such a failure is never a policy verdict.
fn infra_cause(s: &Settings, e: StepError) -> StepError {
    if let Some(broken) = s.processes.failure_report() {
        return match e {
            StepError::Infra { detail, .. } => StepError::Infra { cause: InfraCause::Component(broken), detail },
            other => other.because(InfraCause::Component(broken)),
        };
    }
    match super::failure::cause_named_in(&e.to_string()) {
        Some(cause) => e.because(cause),
        None => e,
    }
}

/// After a failed action, whether the API server still answers (`GET /version`, bounded like every
/// call): when it does not, the failure is the infrastructure's (a cluster that died, a network that
/// went away), whatever the action said, and never a policy verdict.
async fn probe_api<A: ClusterApi>(api: &A, e: StepError) -> StepError {
    match api.server_version().await {
        Ok(_) => e,
        Err(why) => e.because(InfraCause::ApiServerGone(why.to_string())),
    }
}

/// Executes `plan`: phases until the first failure or cancellation, then the teardown.
pub async fn execute<A: ClusterApi>(plan: &Plan, api: &A, s: &Settings) -> ScenarioResult {
    let mut st = State::default();
    let mut phases = Vec::new();
    let mut started: HashSet<PhaseKind> = HashSet::new();
    let mut failed_phase: Option<PhaseKind> = None;
    let mut infra = false;
    for phase in &plan.phases {
        if is_cancelled(s) {
            phases.push(PhaseResult {
                name: phase.kind.name().into(),
                kind: Some(phase.kind),
                status: Status::Skipped("cancelled".into()),
                failure: None,
                seconds: 0.0,
            });
            continue;
        }
        if let Some(f) = failed_phase {
            phases.push(PhaseResult {
                name: phase.kind.name().into(),
                kind: Some(phase.kind),
                status: Status::Skipped(format!("{f} failed")),
                failure: None,
                seconds: 0.0,
            });
            continue;
        }
        if let [Action::Skip { reason }] = phase.actions.as_slice() {
            phases.push(PhaseResult {
                name: phase.kind.name().into(),
                kind: Some(phase.kind),
                status: Status::Skipped(reason.clone()),
                failure: None,
                seconds: 0.0,
            });
            continue;
        }
        started.insert(phase.kind);
        st.phase = Some(phase.kind);
        let shown = s.progress.as_ref().map(|p| p.phase(&plan.scenario, phase.kind.name()));
        let t0 = Instant::now();
        let mut status = Status::Passed;
        let mut failure = None;
        for a in &phase.actions {
            // A step that runs only in part here: what ran passed, the rest is skipped with the reason.
            if let Action::Skip { reason } = a {
                status = Status::Skipped(reason.clone());
                break;
            }
            let r = tokio::select! {
                r = exec_action(api, s, &mut st, plan, a) => r,
                () = cancelled(s.cancel.clone()) => Err(StepError::Interrupted("cancelled (Ctrl-C)".into())),
                () = component_exited(&s.processes) => {
                    // The abandoned command (a Helm install) must not run on into the teardown.
                    crate::tools::runner::interrupt_all();
                    Err(StepError::Interrupted("the step was stopped".into()))
                }
            };
            if let Err(e) = r {
                let mut why = infra_cause(s, e);
                if !why.is_infra() && !is_cancelled(s) {
                    why = probe_api(api, why).await;
                }
                infra |= why.is_infra();
                failure = Some(why.kind());
                status = Status::Failed(why.to_string());
                break;
            }
        }
        if let Some(p) = shown {
            match status {
                Status::Skipped(_) => p.skipped(),
                _ => p.finish(status == Status::Passed),
            };
        }
        if matches!(status, Status::Failed(_)) {
            failed_phase = Some(phase.kind);
        }
        phases.push(PhaseResult {
            name: phase.kind.name().into(),
            kind: Some(phase.kind),
            status,
            failure,
            seconds: t0.elapsed().as_secs_f64(),
        });
    }
    // A Ctrl-C during the evidence or the teardown changes no verdict reached before it.
    let cancelled = is_cancelled(s);
    let passed = failed_phase.is_none() && !cancelled;
    let evidence = if passed {
        Vec::new()
    } else {
        let shown = s.progress.as_ref().map(|p| p.phase(&plan.scenario, "evidence"));
        use crate::names::local::{ETCD, KUBE_APISERVER};
        let control_plane_down: Vec<String> =
            s.processes.broken().into_iter().filter(|n| n == ETCD || n == KUBE_APISERVER).collect();
        let mut e = if control_plane_down.is_empty() {
            collect_evidence(plan, api).await
        } else {
            // The API server could only fail or hang: nothing to read (the components' logs are in
            // the bundle).
            let why = format!(
                "not read: {} exited or hangs, so the API server cannot answer\n",
                control_plane_down.join(", ")
            );
            vec![("kubernetes-api.error.txt".to_string(), why)]
        };
        e.extend(gather(plan, s).await);
        if let Some(p) = shown {
            p.finish(true);
        }
        e
    };
    let teardown = teardown(plan, api, s, &mut st, &started).await;
    ScenarioResult {
        scenario: plan.scenario.clone(),
        passed,
        cancelled,
        phases,
        checks: std::mem::take(&mut st.checks),
        drift: std::mem::take(&mut st.drift),
        drift_notes: std::mem::take(&mut st.drift_notes),
        infra: infra || st.teardown_infra,
        asserted: st.asserted,
        teardown,
        evidence,
        judged_pod: st.checks_pod.take(),
        denials: std::mem::take(&mut st.denials),
    }
}

/// A copy of `s` that is never cancelled (for evidence and teardown, which run even after Ctrl-C);
/// keep the returned sender alive while it is used.
fn uncancellable(s: &Settings) -> (Settings, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    (Settings { cancel: rx, ..s.clone() }, tx)
}

/// Runs the plan's evidence commands before the teardown (even after Ctrl-C, like the teardown),
/// and returns what each printed, as `<name>.command.txt`; their files stay at their outputs.
async fn gather(plan: &Plan, s: &Settings) -> Vec<(String, String)> {
    let (gs, _never) = uncancellable(s);
    let mut out = Vec::new();
    for g in &plan.evidence {
        if let Some(dir) = g.output.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let text = match run_command(&gs, &g.command, g.timeout).await {
            Ok(o) => {
                format!("$ {}\nexited {}\n--- stdout\n{}\n--- stderr\n{}\n", g.command, o.ended(), o.stdout, o.stderr)
            }
            Err(e) => format!("$ {}\ncould not run: {e}\n", g.command),
        };
        out.push((format!("{}.command.txt", g.name), text));
    }
    out
}

async fn collect_evidence<A: ClusterApi>(plan: &Plan, api: &A) -> Vec<(String, String)> {
    let mut namespaces: Vec<String> =
        vec!["kyverno".into(), "default".into(), plan.app_namespace.clone(), plan.manager_namespace.clone()];
    namespaces.sort();
    namespaces.dedup();
    let mut out = Vec::new();
    let read = async {
        if let Ok(messages) = api.denial_messages(&plan.app_namespace, &plan.workload).await
            && !messages.is_empty()
        {
            out.push(("replicaset-failedcreate.txt".to_string(), messages.join("\n---\n")));
        }
        out.extend(api.evidence(&namespaces, &plan.manager_namespace).await);
    };
    let bound = crate::plan::budget::EVIDENCE_API;
    if tokio::time::timeout(bound, read).await.is_err() {
        out.push((
            "kubernetes-api.error.txt".to_string(),
            format!(
                "gave up reading the cluster after {}: the API server did not answer\n",
                crate::duration::format(bound)
            ),
        ));
    }
    out
}

/// Runs the teardown stack in LIFO order; every entry that applies is attempted (not those of phases
/// that never started, kept ones under `--keep`, nor cluster-only ones when the cluster is deleted),
/// and failures are recorded.
async fn teardown<A: ClusterApi>(
    plan: &Plan,
    api: &A,
    s: &Settings,
    st: &mut State,
    started: &HashSet<PhaseKind>,
) -> Vec<TeardownResult> {
    let mut out = Vec::new();
    // Teardown must run even after Ctrl-C: it uses a settings copy that is never cancelled.
    let (ts, _never) = uncancellable(s);
    let will_run = |entry: &crate::plan::Teardown| {
        !s.defer_teardown && started.contains(&entry.registered_by) && !(s.keep && entry.skip_if_kept)
    };
    let cluster_deleted = plan.teardown.iter().any(|t| t.deletes_cluster && will_run(t));
    let shown =
        plan.teardown.iter().any(will_run).then(|| s.progress.as_ref().map(|p| p.phase(&plan.scenario, "teardown")));
    for (i, entry) in plan.teardown_order() {
        let skip = if s.defer_teardown {
            Some("deferred to the cell's end".to_string())
        } else if !started.contains(&entry.registered_by) {
            Some(format!("{} never started", entry.registered_by))
        } else if st.undone.contains(&i) {
            Some("already done by a step".to_string())
        } else if s.keep && entry.skip_if_kept {
            Some("kept (--keep/--reuse)".to_string())
        } else if cluster_deleted && entry.cluster_only {
            Some("the cluster is deleted at the end of the teardown".to_string())
        } else {
            None
        };
        if let Some(why) = skip {
            out.push(TeardownResult { label: entry.label.clone(), status: Status::Skipped(why) });
            continue;
        }
        // A broken local stack is destroyed with its processes and directory: only stopping them
        // is left to do; a call to its API server could only fail or hang.
        let broken = s.processes.broken();
        if !broken.is_empty() && !entry.actions.iter().all(|a| matches!(a, Action::Local(_))) {
            out.push(TeardownResult {
                label: entry.label.clone(),
                status: Status::Skipped(format!(
                    "the local stack is broken ({} exited or hangs): it is stopped and removed whole",
                    broken.join(", ")
                )),
            });
            continue;
        }
        let install_failed = entry.undoes_install && !st.installed.contains(&entry.registered_by);
        if install_failed && !s.owns_cluster {
            out.push(TeardownResult {
                label: entry.label.clone(),
                status: Status::Skipped(
                    "the install did not succeed: a release kyvtel did not install is left alone on a cluster it \
                     does not own"
                        .into(),
                ),
            });
            continue;
        }
        let actions = if install_failed && !entry.on_failure.is_empty() { &entry.on_failure } else { &entry.actions };
        let mut status = Status::Passed;
        for a in actions {
            if let Err(e) = exec_action(api, &ts, st, plan, a).await {
                st.teardown_infra |= e.is_infra();
                status = Status::Failed(e.to_string());
            }
        }
        st.undone.insert(i);
        out.push(TeardownResult { label: entry.label.clone(), status });
    }
    st.servers.clear();
    if let Some(p) = shown.flatten() {
        p.finish(!out.iter().any(|t| matches!(t.status, Status::Failed(_))));
    }
    out
}

/// Like [`execute`], but a panic inside the run (a bug in kyvtel) does not skip the teardown: the
/// whole teardown stack runs, LIFO and best effort (entries for what was never set up fail
/// harmlessly), and the result says that kyvtel panicked.
pub async fn execute_guarded<A: ClusterApi>(plan: &Plan, api: &A, s: &Settings) -> ScenarioResult {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(execute(plan, api, s)).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|m| (*m).to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            let message = format!("kyvtel panicked ({what}); tore down everything the plan registers");
            let all: Vec<PhaseKind> = plan.phases.iter().map(|p| p.kind).collect();
            let teardown = teardown_only(plan, api, s, &all).await;
            ScenarioResult {
                scenario: plan.scenario.clone(),
                passed: false,
                cancelled: false,
                phases: vec![PhaseResult {
                    name: "run".into(),
                    kind: None,
                    status: Status::Failed(message),
                    failure: Some(FailureKind::Infrastructure),
                    seconds: 0.0,
                }],
                checks: Vec::new(),
                drift: Vec::new(),
                drift_notes: Vec::new(),
                // A bug in kyvtel is not a verdict on the system under test.
                infra: true,
                asserted: 0,
                teardown,
                evidence: Vec::new(),
                judged_pod: None,
                denials: Vec::new(),
            }
        }
    }
}

/// Runs only the teardown of `plan`, as if the phases in `started` had run (with no record of
/// which installs succeeded, so [`crate::plan::Teardown::undoes_install`] entries follow the
/// failed-install rule). Used for a cell's shared setup, whose teardown waits until its last scenario is done.
pub async fn teardown_only<A: ClusterApi>(
    plan: &Plan,
    api: &A,
    s: &Settings,
    started: &[PhaseKind],
) -> Vec<TeardownResult> {
    let mut st = State::default();
    let started: HashSet<PhaseKind> = started.iter().copied().collect();
    teardown(plan, api, s, &mut st, &started).await
}

/// Where a failed scenario's evidence bundle goes.
pub fn evidence_dir(plan: &Plan) -> PathBuf {
    plan.run_dir.join(&plan.scenario)
}
