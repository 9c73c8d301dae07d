//! Executes a [`Plan`] exactly as printed: phases in order, each action with its time limit, then
//! the teardown stack in LIFO order, on success, failure, timeout and cancellation (Ctrl-C).

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::traffic::{self, Server};
use crate::kube::api::{ApiFailure, ClusterApi};
use crate::outcome::check::Check;
use crate::outcome::denial::{self, Parsed};
use crate::plan::{Action, DenialSource, Plan, WaitFor};
use crate::tools::{CommandLine, Output, RunError, Runner, Tool};

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
    /// How it ended.
    pub status: Status,
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

/// How long a workload's pod (or refusal) must stay unchanged to count as the injector's result:
/// Telepresence 2.20.2 refuses the first pod and restarts the workload about 3 s later (facts.md §7),
/// and a pod injected before the manager saw the workload's Services is evicted once it does.
const SETTLE_QUIET: Duration = Duration::from_secs(8);

/// A denial a step expected, as the evidence showed it (not yet redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvenDenial {
    /// The phase that expected it.
    pub phase: String,
    /// The evidence text that proved it.
    pub text: String,
}

/// Mutable state of one execution.
#[derive(Default)]
struct State {
    last_failed_output: Option<String>,
    last_apply_denial: Option<String>,
    recorded_pods: BTreeSet<String>,
    agent_pod: Option<Value>,
    /// The pod the pod checks judged.
    checks_pod: Option<Value>,
    servers: Vec<Server>,
    undone: HashSet<usize>,
    checks: Vec<Check>,
    /// The phase running now, and the phases whose commands all succeeded so far (installs).
    phase: String,
    installed: HashSet<String>,
    drift: Vec<super::drift::DriftRecord>,
    drift_notes: Vec<String>,
    infra: bool,
    asserted: usize,
    denials: Vec<ProvenDenial>,
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

/// Runs a command on a blocking thread, so that waits and servers keep running.
async fn run_command(s: &Settings, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError> {
    let runner = s.runner.clone();
    let cmd = cmd.clone();
    match tokio::task::spawn_blocking(move || runner.run(&cmd, timeout)).await {
        Ok(r) => r,
        Err(e) => Err(RunError::Io { command: String::from("(runner task)"), source: std::io::Error::other(e) }),
    }
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

async fn exec_action<A: ClusterApi>(
    api: &A,
    s: &Settings,
    st: &mut State,
    plan: &Plan,
    a: &Action,
) -> Result<(), String> {
    match a {
        Action::Run { command, .. } if command.tool == Tool::Sudo && s.as_root => {
            // Running as root: Telepresence's root daemon needs no sudo (doctor says the same).
            Ok(())
        }
        Action::Run { command, timeout, expect_failure, best_effort } => {
            let out = run_command(s, command, *timeout).await;
            match out {
                Ok(o) if o.success() && *expect_failure => {
                    Err(format!("`{command}` succeeded, but the scenario expects it to be denied"))
                }
                Ok(o) if o.success() => {
                    st.installed.insert(st.phase.clone());
                    Ok(())
                }
                Ok(o) if *expect_failure => {
                    st.last_failed_output = Some(format!("{}\n{}", o.stderr, o.stdout));
                    Ok(())
                }
                Ok(_) | Err(_) if *best_effort => Ok(()),
                Ok(o) if command.tool == Tool::Sudo => Err(format!(
                    "passwordless sudo is not available (`{command}` exited {}): Telepresence's root daemon cannot \
                     start; allow passwordless sudo for this user, or run kyvtel as root",
                    o.ended()
                )),
                Ok(o) => Err(format!(
                    "`{command}` exited {}: {}",
                    o.ended(),
                    tail(&format!("{}\n{}", o.stdout, o.stderr), 8)
                )),
                Err(e) if *expect_failure => {
                    st.last_failed_output = Some(e.to_string());
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            }
        }
        Action::SaveOutput { command, path, timeout } => {
            let o = run_command(s, command, *timeout).await.map_err(|e| e.to_string())?;
            if !o.success() {
                return Err(format!("`{command}` exited {}: {}", o.ended(), tail(&o.stderr, 8)));
            }
            if o.stdout.trim().is_empty() {
                return Err(format!("`{command}` printed nothing; {} was not written", path.display()));
            }
            crate::tools::env::write_private(path, &o.stdout).map_err(|e| format!("write {}: {e}", path.display()))
        }
        Action::WriteFile { path, contents } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            }
            std::fs::write(path, contents).map_err(|e| format!("write {}: {e}", path.display()))
        }
        Action::Apply { label, namespace, objects, timeout, expect_failure } => {
            match (api.apply(objects, namespace.as_deref(), *timeout).await, expect_failure) {
                (Ok(()), false) => Ok(()),
                (Ok(()), true) => Err(format!("{label} was admitted, but the scenario expects a denial")),
                (Err(ApiFailure { denial: Some(d), .. }), true) => {
                    st.last_apply_denial = Some(d);
                    Ok(())
                }
                (Err(e), _) => Err(format!("apply {label}: {e}")),
            }
        }
        Action::DryRunCreate { label, namespace, objects, timeout, expect_failure } => {
            match (api.dry_run_create(objects, namespace, *timeout).await, expect_failure) {
                (Ok(()), false) => Ok(()),
                (Ok(()), true) => Err(format!("{label} was admitted, but the scenario expects a denial")),
                (Err(ApiFailure { denial: Some(d), .. }), true) => {
                    st.last_apply_denial = Some(d);
                    Ok(())
                }
                (Err(ApiFailure { denial: Some(d), .. }), false) => {
                    Err(format!("{label} was denied, but the scenario expects it admitted: {}", tail(&d, 3)))
                }
                (Err(e), _) => Err(format!("admission of {label}: {e}")),
            }
        }
        Action::Wait { until: WaitFor::InjectedPod { namespace, selector, container }, timeout } => {
            let pod = api.injected_pod(namespace, selector, container, *timeout).await.map_err(|e| e.to_string())?;
            st.agent_pod = Some(pod);
            Ok(())
        }
        Action::Only { start, action } => {
            if s.processes.start() == *start {
                Box::pin(exec_action(api, s, st, plan, action)).await
            } else {
                Ok(())
            }
        }
        Action::Local(op) => {
            let r = crate::provider::local::op::run(op, api, &s.processes, &plan.phases).await;
            if r.is_err() {
                st.infra = true;
            }
            if r.is_ok() && matches!(op, crate::plan::providers::local::LocalOp::StartFromChart { .. }) {
                st.installed.insert(st.phase.clone());
            }
            r
        }
        Action::Skip { reason } => Err(format!("skipped: {reason}")),
        Action::Wait { until: WaitFor::ContainerFailure { namespace, selector, failure }, timeout } => {
            let evidence = container_failure(api, namespace, selector, failure, *timeout).await?;
            st.asserted += 1;
            tracing::info!("failure after admission proven: {evidence}");
            Ok(())
        }
        Action::Wait { until: WaitFor::NewAgentPod { namespace, selector }, timeout } => {
            let pod =
                api.new_agent_pod(namespace, selector, &st.recorded_pods, *timeout).await.map_err(|e| e.to_string())?;
            st.agent_pod = Some(pod);
            Ok(())
        }
        Action::Wait { until, timeout } => api.wait(until, *timeout).await.map_err(|e| e.to_string()),
        Action::CanaryDenied { pod, timeout } => {
            let text = api.canary_denied(pod, *timeout).await.map_err(|e| e.to_string())?;
            match denial::parse(&text) {
                Ok(Parsed::Kyverno(d)) if d.source == denial::Source::Policy => {
                    st.asserted += 1;
                    Ok(())
                }
                Ok(Parsed::Kyverno(d)) => Err(format!(
                    "the canary was denied by Kyverno's {} (`{}`), not by the scenario's ClusterPolicies",
                    d.source.name(),
                    d.webhook
                )),
                Ok(Parsed::PodSecurity(_)) => {
                    Err(format!("the canary was denied by Pod Security Admission, not by Kyverno: {}", tail(&text, 3)))
                }
                Ok(Parsed::OtherWebhook(o)) => {
                    Err(format!("the canary was denied by `{}`, not by Kyverno: {}", o.webhook, o.reason))
                }
                Err(e) => Err(format!("the canary was refused, but not by Kyverno ({e}): {}", tail(&text, 3))),
            }
        }
        Action::ReleaseGone { release, namespace, webhook_prefix, timeout } => {
            // Uninstalls and namespace deletions finish asynchronously: poll until nothing is left.
            let deadline = tokio::time::Instant::now() + *timeout;
            st.asserted += 1;
            loop {
                let left =
                    api.release_leftovers(release, namespace, webhook_prefix).await.map_err(|e| e.to_string())?;
                if left.is_empty() {
                    break Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    break Err(format!(
                        "after {:?}, left of release {namespace}/{release}: {}",
                        timeout,
                        left.join(", ")
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Action::PolicyExceptions { expected } => {
            let mut have = api.policy_exceptions().await.map_err(|e| e.to_string())?;
            let mut want = expected.clone();
            have.sort();
            want.sort();
            st.asserted += 1;
            if have == want {
                Ok(())
            } else {
                Err(format!(
                    "the cluster's PolicyExceptions are [{}], the scenario expects [{}]",
                    have.join(", "),
                    want.join(", ")
                ))
            }
        }
        Action::ProveDenial { source, expected, only, pod_security, timeout } => {
            let want = crate::scenario::expect::ExpectedDenial {
                violations: expected.clone(),
                only: *only,
                pod_security: pod_security.clone(),
            };
            let prove = |texts: &[String]| crate::outcome::denial::prove::prove_expected(texts, &want);
            let texts = match source {
                DenialSource::CommandOutput => st.last_failed_output.clone().into_iter().collect(),
                DenialSource::ApplyError => st.last_apply_denial.clone().into_iter().collect(),
                DenialSource::Workload { namespace, name } => {
                    // The ReplicaSet retries; poll until a denial shows up or time runs out.
                    let deadline = crate::duration::deadline(*timeout);
                    loop {
                        let texts = api.denial_messages(namespace, name).await.map_err(|e| e.to_string())?;
                        if prove(&texts).is_ok() || Instant::now() >= deadline {
                            break texts;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            prove(&texts)?;
            // The text that proved it: the first that proves it alone.
            if let Some(t) = texts.iter().find(|t| prove(std::slice::from_ref(*t)).is_ok()) {
                st.denials.push(ProvenDenial { phase: st.phase.clone(), text: t.clone() });
            }
            st.asserted += expected.len().max(1);
            Ok(())
        }
        Action::RecordPods { namespace, selector } => {
            st.recorded_pods = api.pod_uids(namespace, selector).await.map_err(|e| e.to_string())?;
            Ok(())
        }
        Action::Serve { port } => {
            let server =
                traffic::serve(*port, s.token.clone()).await.map_err(|e| format!("serve 127.0.0.1:{port}: {e}"))?;
            st.servers.push(server);
            Ok(())
        }
        Action::ClientRequest { pod, url, timeout } => client_request(api, pod, url, *timeout, &s.token).await,
        Action::Request { url, timeout } => {
            let url = resolve_url(api, url).await?;
            traffic::expect_token(&url, &s.token, *timeout).await
        }
        Action::VerifyPod { expectations, model, .. } => {
            let pod = st.agent_pod.clone().ok_or("no intercepted pod was observed")?;
            let pod = &pod;
            let mut drift_failure = None;
            if let Some(model) = model {
                match super::drift::compare_pod(api, pod, model).await {
                    Ok(record) => {
                        let open = record.lines();
                        st.drift.push(record);
                        if s.strict_model && !open.is_empty() {
                            drift_failure =
                                Some(format!("unexplained model drift (--strict-model): {}", open.join("; ")));
                        }
                    }
                    Err(e) => st.drift_notes.push(format!("the pod was not compared with the model: {e}")),
                }
            }
            let verdict = crate::outcome::pod::verify_pod(pod, expectations, &plan.versions);
            st.checks.extend(verdict.checks.iter().cloned());
            st.checks_pod = Some(pod.clone());
            st.asserted += verdict.checks.len();
            if let Some(failure) = drift_failure.filter(|_| verdict.passed) {
                Err(failure)
            } else if verdict.passed {
                Ok(())
            } else {
                let failed: Vec<String> = verdict
                    .failures()
                    .map(|c| {
                        c.note.clone().unwrap_or_else(|| {
                            format!("{} {}: expected {}, actual {}", c.target, c.field, c.expected, c.actual)
                        })
                    })
                    .collect();
                Err(format!("the intercepted pod does not match: {}", failed.join("; ")))
            }
        }
        Action::CompareModel { namespace, workloads, model, timeout } => {
            let settled =
                api.settled_workloads(namespace, workloads, SETTLE_QUIET, *timeout).await.map_err(|e| e.to_string())?;
            let services = super::drift::services(api, namespace).await.map_err(|e| e.to_string())?;
            let mut open = Vec::new();
            for one in &settled {
                let record =
                    super::drift::compare(api, one, &services, model, false).await.map_err(|e| e.to_string())?;
                open.extend(record.lines());
                st.drift.push(record);
            }
            st.asserted += settled.len();
            if open.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "the injection model differs from the injector in {} field(s): {}",
                    open.len(),
                    open.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
                ))
            }
        }
        Action::RestartWorkload { namespace, name } => api.restart(namespace, name).await.map_err(|e| e.to_string()),
        Action::Delete { objects, timeout, wait: true, .. } => {
            api.delete(objects, *timeout).await.map_err(|e| e.to_string())
        }
        Action::Delete { objects, .. } => api.delete_started(objects).await.map_err(|e| e.to_string()),
        Action::StopServer { port } => {
            st.servers.retain(|srv| srv.port != *port);
            Ok(())
        }
        Action::Undo { index } => {
            let entry = plan.teardown.get(*index).ok_or_else(|| format!("no teardown entry #{}", index + 1))?;
            for a in &entry.actions {
                Box::pin(exec_action(api, s, st, plan, a)).await?;
            }
            // Only a complete undo spares teardown: after a failed `leave`, the intercept may
            // still be active, so teardown must try again.
            st.undone.insert(*index);
            Ok(())
        }
    }
}

/// Names an infrastructure cause of a failure, when there is one: a component of the run that exited,
/// or a webhook the API server could not call. Such a failure is never a policy verdict.
fn infra_cause(s: &Settings, st: &mut State, e: String) -> String {
    if let Some(broken) = s.processes.failure_report() {
        st.infra = true;
        return format!("infrastructure failure: {broken}; {e}");
    }
    // ENOSPC as Rust and Go print it (strerror(28)): the machine's fault, whichever process wrote.
    if e.to_ascii_lowercase().contains("no space left on device") {
        st.infra = true;
        return format!("infrastructure failure: the disk is full: {e}");
    }
    if e.contains("failed calling webhook") {
        st.infra = true;
        return format!("infrastructure failure: a webhook could not be called: {e}");
    }
    if st.infra && !e.starts_with("infrastructure failure") {
        return format!("infrastructure failure: {e}");
    }
    e
}

/// After a failed action, whether the API server still answers (`GET /version`, bounded like every
/// call): when it does not, the failure is the infrastructure's (a cluster that died, a network that
/// went away), whatever the action said, and never a policy verdict.
async fn probe_api<A: ClusterApi>(api: &A, st: &mut State, e: String) -> String {
    match api.server_version().await {
        Ok(_) => e,
        Err(why) => {
            st.infra = true;
            format!("infrastructure failure: the API server does not answer ({why}); {e}")
        }
    }
}

/// Runs the in-cluster client until its answer carries the run token, or the time is up: right after
/// an intercept the Service may still route to the app's old pod for a moment (up to 2.21 it keeps
/// serving until the new ReplicaSet has taken over), so an answer without the token is tried again,
/// and the last one is reported. A refusal by admission or an API failure ends it at once.
async fn client_request<A: ClusterApi>(
    api: &A,
    pod: &serde_json::Value,
    url: &str,
    timeout: Duration,
    token: &str,
) -> Result<(), String> {
    let deadline = crate::duration::tokio_deadline(timeout);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = api.run_client_pod(pod, left).await.map_err(|e| match e.denial {
            Some(d) => format!("the in-cluster traffic client was refused by admission: {d}"),
            None => format!("the in-cluster traffic client: {e}"),
        })?;
        let Err(why) = traffic::judge_client_answer(url, &answer, token) else { return Ok(()) };
        let pause = Duration::from_secs(2);
        if tokio::time::Instant::now().checked_add(pause).is_none_or(|t| t >= deadline) {
            return Err(format!("{why} (attempt {attempts}, the last within {})", crate::duration::format(timeout)));
        }
        tokio::time::sleep(pause).await;
    }
}

/// Replaces `{clusterIP:<ns>/<svc>}` in a URL with the Service's ClusterIP.
async fn resolve_url<A: ClusterApi>(api: &A, url: &str) -> Result<String, String> {
    let Some(start) = url.find("{clusterIP:") else { return Ok(url.to_string()) };
    let end = url[start..].find('}').map(|e| start + e).ok_or_else(|| format!("malformed URL template {url}"))?;
    let (ns, svc) = url[start + 11..end].split_once('/').ok_or_else(|| format!("malformed URL template {url}"))?;
    let ip = api.cluster_ip(ns, svc).await.map_err(|e| e.to_string())?;
    Ok(format!("{}{ip}{}", &url[..start], &url[end + 1..]))
}

/// Executes `plan`: phases until the first failure or cancellation, then the teardown.
pub async fn execute<A: ClusterApi>(plan: &Plan, api: &A, s: &Settings) -> ScenarioResult {
    let mut st = State::default();
    let mut phases = Vec::new();
    let mut started: HashSet<&str> = HashSet::new();
    let mut failed_phase: Option<&str> = None;
    for phase in &plan.phases {
        if is_cancelled(s) {
            phases.push(PhaseResult {
                name: phase.name.clone(),
                status: Status::Skipped("cancelled".into()),
                seconds: 0.0,
            });
            continue;
        }
        if let Some(f) = failed_phase {
            phases.push(PhaseResult {
                name: phase.name.clone(),
                status: Status::Skipped(format!("{f} failed")),
                seconds: 0.0,
            });
            continue;
        }
        if let [Action::Skip { reason }] = phase.actions.as_slice() {
            phases.push(PhaseResult {
                name: phase.name.clone(),
                status: Status::Skipped(reason.clone()),
                seconds: 0.0,
            });
            continue;
        }
        started.insert(phase.name.as_str());
        st.phase = phase.name.clone();
        let shown = s.progress.as_ref().map(|p| p.phase(&plan.scenario, &phase.name));
        let t0 = Instant::now();
        let mut status = Status::Passed;
        for a in &phase.actions {
            // A step that runs only in part here: what ran passed, the rest is skipped with the reason.
            if let Action::Skip { reason } = a {
                status = Status::Skipped(reason.clone());
                break;
            }
            let r = tokio::select! {
                r = exec_action(api, s, &mut st, plan, a) => r,
                () = cancelled(s.cancel.clone()) => Err("cancelled (Ctrl-C)".to_string()),
                () = component_exited(&s.processes) => {
                    // The abandoned command (a Helm install) must not run on into the teardown.
                    crate::tools::runner::interrupt_all();
                    Err("the step was stopped".to_string())
                }
            };
            if let Err(e) = r {
                let mut why = infra_cause(s, &mut st, e);
                if !st.infra && !is_cancelled(s) {
                    why = probe_api(api, &mut st, why).await;
                }
                status = Status::Failed(why);
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
            failed_phase = Some(phase.name.as_str());
        }
        phases.push(PhaseResult { name: phase.name.clone(), status, seconds: t0.elapsed().as_secs_f64() });
    }
    // A Ctrl-C during the evidence or the teardown changes no verdict reached before it.
    let cancelled = is_cancelled(s);
    let passed = failed_phase.is_none() && !cancelled;
    let evidence = if passed {
        Vec::new()
    } else {
        let shown = s.progress.as_ref().map(|p| p.phase(&plan.scenario, "evidence"));
        use crate::plan::providers::local::components::{ETCD, KUBE_APISERVER};
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
        infra: st.infra,
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
    started: &HashSet<&str>,
) -> Vec<TeardownResult> {
    let mut out = Vec::new();
    // Teardown must run even after Ctrl-C: it uses a settings copy that is never cancelled.
    let (ts, _never) = uncancellable(s);
    let will_run = |entry: &crate::plan::Teardown| {
        !s.defer_teardown && started.contains(entry.registered_by.as_str()) && !(s.keep && entry.skip_if_kept)
    };
    let cluster_deleted = plan.teardown.iter().any(|t| t.deletes_cluster && will_run(t));
    let shown =
        plan.teardown.iter().any(will_run).then(|| s.progress.as_ref().map(|p| p.phase(&plan.scenario, "teardown")));
    for (i, entry) in plan.teardown_order() {
        let skip = if s.defer_teardown {
            Some("deferred to the cell's end".to_string())
        } else if !started.contains(entry.registered_by.as_str()) {
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
                status = Status::Failed(e);
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
            let all: Vec<String> = plan.phases.iter().map(|p| p.name.clone()).collect();
            let teardown = teardown_only(plan, api, s, &all).await;
            ScenarioResult {
                scenario: plan.scenario.clone(),
                passed: false,
                cancelled: false,
                phases: vec![PhaseResult { name: "run".into(), status: Status::Failed(message), seconds: 0.0 }],
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
    started: &[String],
) -> Vec<TeardownResult> {
    let mut st = State::default();
    let started: HashSet<&str> = started.iter().map(String::as_str).collect();
    teardown(plan, api, s, &mut st, &started).await
}

/// Where a failed scenario's evidence bundle goes.
pub fn evidence_dir(plan: &Plan) -> PathBuf {
    plan.run_dir.join(&plan.scenario)
}

/// Polls the workload's pods (and their events) until one shows `failure`; on timeout, the last
/// observed container states.
async fn container_failure<A: ClusterApi>(
    api: &A,
    namespace: &str,
    selector: &serde_json::Map<String, serde_json::Value>,
    failure: &crate::scenario::expect::AfterAdmission,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = crate::duration::deadline(timeout);
    let mut last = String::from("no pod of the workload yet");
    loop {
        let pods = api.pods(namespace, selector).await.map_err(|e| e.to_string())?;
        let mut states = Vec::new();
        for pod in &pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let events = api.event_messages(namespace, name).await.unwrap_or_default();
            match crate::outcome::after_admission::judge(pod, &events, failure) {
                Ok(evidence) => return Ok(evidence),
                Err(state) => states.push(state),
            }
        }
        if !states.is_empty() {
            last = states.join("; ");
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no container {} became {} within {}; last observed: {last}",
                failure.container,
                failure.reason,
                crate::duration::format(timeout)
            ));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
