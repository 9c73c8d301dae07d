//! One plan action, executed: [`exec_action`] runs it against the cluster API, the tool runner and
//! the local provider, and says why it failed as a typed [`StepError`].

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::executor::{ProvenDenial, Settings};
use super::failure::{InfraCause, StepError};
use super::traffic::{self, Server};
use crate::kube::api::ClusterApi;
use crate::outcome::check::Check;
use crate::outcome::denial::{self, Parsed};
use crate::plan::{Action, DenialSource, PhaseKind, Plan, WaitFor};
use crate::text::last_lines as tail;
use crate::tools::{CommandLine, Output, RunError, Tool};

/// How long a workload's pod (or refusal) must stay unchanged to count as the injector's result:
/// Telepresence 2.20.2 refuses the first pod and restarts the workload about 3 s later (facts.md §7),
/// and a pod injected before the manager saw the workload's Services is evicted once it does.
const SETTLE_QUIET: Duration = Duration::from_secs(8);

/// Mutable state of one execution, carried from action to action.
#[derive(Default)]
pub(super) struct State {
    pub last_failed_output: Option<String>,
    pub last_apply_denial: Option<String>,
    pub recorded_pods: BTreeSet<String>,
    pub agent_pod: Option<Value>,
    /// The pod the pod checks judged.
    pub checks_pod: Option<Value>,
    pub servers: Vec<Server>,
    pub undone: HashSet<usize>,
    pub checks: Vec<Check>,
    /// The phase running now, and the phases whose commands all succeeded so far (installs).
    pub phase: Option<PhaseKind>,
    pub installed: HashSet<PhaseKind>,
    pub drift: Vec<super::drift::DriftRecord>,
    pub drift_notes: Vec<String>,
    pub asserted: usize,
    pub denials: Vec<ProvenDenial>,
    /// A teardown entry failed for an infrastructure reason (a component that would not stop): the
    /// run leaves the machine unclean, which is exit 3 whatever the verdict.
    pub teardown_infra: bool,
}

/// Runs a command on a blocking thread, so that waits and servers keep running.
pub(super) async fn run_command(s: &Settings, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError> {
    let runner = s.runner.clone();
    let cmd = cmd.clone();
    match tokio::task::spawn_blocking(move || runner.run(&cmd, timeout)).await {
        Ok(r) => r,
        Err(e) => Err(RunError::Io { command: String::from("(runner task)"), source: std::io::Error::other(e) }),
    }
}

/// A command that exited non-zero; its whole output, not only the tail the message keeps, may name
/// an infrastructure cause ([`super::failure::cause_named_in`]).
fn command_failed(command: &CommandLine, o: &Output) -> StepError {
    let all = format!("{}\n{}", o.stdout, o.stderr);
    let e = StepError::CommandFailed { command: command.to_string(), status: o.ended(), tail: tail(&all, 8) };
    match super::failure::cause_named_in(&all) {
        Some(cause) => e.because(cause),
        None => e,
    }
}

/// Executes one action; an `Err` says why it failed, typed.
pub(super) async fn exec_action<A: ClusterApi>(
    api: &A,
    s: &Settings,
    st: &mut State,
    plan: &Plan,
    a: &Action,
) -> Result<(), StepError> {
    match a {
        Action::Run { command, .. } if command.tool == Tool::Sudo && s.as_root => {
            // Running as root: Telepresence's root daemon needs no sudo (doctor says the same).
            Ok(())
        }
        Action::Run { command, timeout, expect_failure, best_effort } => {
            let out = run_command(s, command, *timeout).await;
            match out {
                Ok(o) if o.success() && *expect_failure => {
                    Err(StepError::Admitted { subject: format!("`{command}` succeeded") })
                }
                Ok(o) if o.success() => {
                    st.installed.extend(st.phase);
                    Ok(())
                }
                Ok(o) if *expect_failure => {
                    st.last_failed_output = Some(format!("{}\n{}", o.stderr, o.stdout));
                    Ok(())
                }
                Ok(_) | Err(_) if *best_effort => Ok(()),
                Ok(o) if command.tool == Tool::Sudo => Err(StepError::Infra {
                    cause: InfraCause::Prerequisite,
                    detail: format!(
                        "passwordless sudo is not available (`{command}` exited {}): Telepresence's root daemon \
                         cannot start; allow passwordless sudo for this user, or run kyvtel as root",
                        o.ended()
                    ),
                }),
                Ok(o) => Err(command_failed(command, &o)),
                Err(e) if *expect_failure => {
                    st.last_failed_output = Some(e.to_string());
                    Ok(())
                }
                Err(e) => Err(StepError::run(e)),
            }
        }
        Action::SaveOutput { command, path, timeout } => {
            let o = run_command(s, command, *timeout).await.map_err(StepError::run)?;
            if !o.success() {
                return Err(command_failed(command, &o));
            }
            if o.stdout.trim().is_empty() {
                return Err(StepError::Mismatch(format!(
                    "`{command}` printed nothing; {} was not written",
                    path.display()
                )));
            }
            crate::tools::env::write_private(path, &o.stdout)
                .map_err(|e| StepError::io(format!("write {}: {e}", path.display())))
        }
        Action::WriteFile { path, contents } => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| StepError::io(format!("create {}: {e}", dir.display())))?;
            }
            std::fs::write(path, contents).map_err(|e| StepError::io(format!("write {}: {e}", path.display())))
        }
        Action::Apply { label, namespace, objects, timeout, expect_failure } => {
            match (api.apply(objects, namespace.as_deref(), *timeout).await, expect_failure) {
                (Ok(()), false) => Ok(()),
                (Ok(()), true) => Err(StepError::Admitted { subject: format!("{label} was admitted") }),
                (Err(e), true) if e.denial().is_some() => {
                    st.last_apply_denial = Some(e.message);
                    Ok(())
                }
                (Err(e), false) if e.denial().is_some() => {
                    Err(StepError::Denied { subject: format!("apply {label}"), denial: e.message })
                }
                (Err(e), _) => Err(StepError::api(format!("apply {label}"), e)),
            }
        }
        Action::DryRunCreate { label, namespace, objects, timeout, expect_failure } => {
            match (api.dry_run_create(objects, namespace, *timeout).await, expect_failure) {
                (Ok(()), false) => Ok(()),
                (Ok(()), true) => Err(StepError::Admitted { subject: format!("{label} was admitted") }),
                (Err(e), true) if e.denial().is_some() => {
                    st.last_apply_denial = Some(e.message);
                    Ok(())
                }
                (Err(e), false) if e.denial().is_some() => {
                    Err(StepError::Denied { subject: label.clone(), denial: tail(&e.message, 3) })
                }
                (Err(e), _) => Err(StepError::api(format!("admission of {label}"), e)),
            }
        }
        Action::Wait { until: WaitFor::InjectedPod { namespace, selector, container }, timeout } => {
            let pod =
                api.injected_pod(namespace, selector, container, *timeout).await.map_err(|e| StepError::api("", e))?;
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
            if r.is_ok() && matches!(op, crate::plan::providers::local::LocalOp::StartFromChart { .. }) {
                st.installed.extend(st.phase);
            }
            r.map_err(|detail| {
                let cause =
                    if super::failure::is_enospc(&detail) { InfraCause::DiskFull } else { InfraCause::Provider };
                StepError::Infra { cause, detail }
            })
        }
        Action::Skip { reason } => Err(StepError::Skipped(reason.clone())),
        Action::Wait { until: WaitFor::ContainerFailure { namespace, selector, failure }, timeout } => {
            let evidence = container_failure(api, namespace, selector, failure, *timeout).await?;
            st.asserted += 1;
            tracing::info!("failure after admission proven: {evidence}");
            Ok(())
        }
        Action::Wait { until: WaitFor::NewAgentPod { namespace, selector }, timeout } => {
            let pod = api
                .new_agent_pod(namespace, selector, &st.recorded_pods, *timeout)
                .await
                .map_err(|e| StepError::api("", e))?;
            st.agent_pod = Some(pod);
            Ok(())
        }
        Action::Wait { until, timeout } => api.wait(until, *timeout).await.map_err(|e| StepError::api("", e)),
        Action::CanaryDenied { pod, timeout } => {
            let text = api.canary_denied(pod, *timeout).await.map_err(|e| StepError::api("the canary", e))?;
            match denial::parse(&text) {
                Ok(Parsed::Kyverno(d)) if d.source == denial::Source::Policy => {
                    st.asserted += 1;
                    Ok(())
                }
                Ok(Parsed::Kyverno(d)) => Err(StepError::Mismatch(format!(
                    "the canary was denied by Kyverno's {} (`{}`), not by the scenario's ClusterPolicies",
                    d.source.name(),
                    d.webhook
                ))),
                Ok(Parsed::PodSecurity(_)) => Err(StepError::Mismatch(format!(
                    "the canary was denied by Pod Security Admission, not by Kyverno: {}",
                    tail(&text, 3)
                ))),
                Ok(Parsed::OtherWebhook(o)) => Err(StepError::Mismatch(format!(
                    "the canary was denied by `{}`, not by Kyverno: {}",
                    o.webhook, o.reason
                ))),
                Err(e) => Err(StepError::Mismatch(format!(
                    "the canary was refused, but not by Kyverno ({e}): {}",
                    tail(&text, 3)
                ))),
            }
        }
        Action::ReleaseGone { release, namespace, webhook_prefix, timeout } => {
            // Uninstalls and namespace deletions finish asynchronously: poll until nothing is left.
            let deadline = tokio::time::Instant::now() + *timeout;
            st.asserted += 1;
            loop {
                let left = api
                    .release_leftovers(release, namespace, webhook_prefix)
                    .await
                    .map_err(|e| StepError::api("list what is left of the release", e))?;
                if left.is_empty() {
                    break Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    break Err(StepError::TimedOut(format!(
                        "after {:?}, left of release {namespace}/{release}: {}",
                        timeout,
                        left.join(", ")
                    )));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        Action::PolicyExceptions { expected } => {
            let mut have = api.policy_exceptions().await.map_err(|e| StepError::api("list PolicyExceptions", e))?;
            let mut want = expected.clone();
            have.sort();
            want.sort();
            st.asserted += 1;
            if have == want {
                Ok(())
            } else {
                Err(StepError::Mismatch(format!(
                    "the cluster's PolicyExceptions are [{}], the scenario expects [{}]",
                    have.join(", "),
                    want.join(", ")
                )))
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
                        let texts = api
                            .denial_messages(namespace, name)
                            .await
                            .map_err(|e| StepError::api("read the workload's denials", e))?;
                        if prove(&texts).is_ok() || Instant::now() >= deadline {
                            break texts;
                        }
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            };
            prove(&texts).map_err(StepError::Mismatch)?;
            // The text that proved it: the first that proves it alone.
            if let Some(t) = texts.iter().find(|t| prove(std::slice::from_ref(*t)).is_ok()) {
                let phase = st.phase.map(PhaseKind::name).unwrap_or_default().to_string();
                st.denials.push(ProvenDenial { phase, text: t.clone() });
            }
            st.asserted += expected.len().max(1);
            Ok(())
        }
        Action::RecordPods { namespace, selector } => {
            st.recorded_pods = api.pod_uids(namespace, selector).await.map_err(|e| StepError::api("list pods", e))?;
            Ok(())
        }
        Action::Serve { port } => {
            let server = traffic::serve(*port, s.token.clone())
                .await
                .map_err(|e| StepError::io(format!("serve 127.0.0.1:{port}: {e}")))?;
            st.servers.push(server);
            Ok(())
        }
        Action::ClientRequest { pod, url, timeout } => client_request(api, pod, url, *timeout, &s.token).await,
        Action::Request { url, timeout } => {
            let url = resolve_url(api, url).await?;
            traffic::expect_token(&url, &s.token, *timeout).await.map_err(StepError::TimedOut)
        }
        Action::VerifyPod { expectations, model, .. } => {
            let pod =
                st.agent_pod.clone().ok_or_else(|| StepError::Mismatch("no intercepted pod was observed".into()))?;
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
                Err(StepError::Mismatch(failure))
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
                Err(StepError::Mismatch(format!("the intercepted pod does not match: {}", failed.join("; "))))
            }
        }
        Action::CompareModel { namespace, workloads, model, timeout } => {
            let settled = api
                .settled_workloads(namespace, workloads, SETTLE_QUIET, *timeout)
                .await
                .map_err(|e| StepError::api("", e))?;
            let services =
                super::drift::services(api, namespace).await.map_err(|e| StepError::api("list Services", e))?;
            let mut open = Vec::new();
            for one in &settled {
                let record = super::drift::compare(api, one, &services, model, false)
                    .await
                    .map_err(|e| StepError::api("compare with the model", e))?;
                open.extend(record.lines());
                st.drift.push(record);
            }
            st.asserted += settled.len();
            if open.is_empty() {
                Ok(())
            } else {
                Err(StepError::Mismatch(format!(
                    "the injection model differs from the injector in {} field(s): {}",
                    open.len(),
                    open.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
                )))
            }
        }
        Action::RestartWorkload { namespace, name } => {
            api.restart(namespace, name).await.map_err(|e| StepError::api(format!("restart {namespace}/{name}"), e))
        }
        Action::Delete { objects, timeout, wait: true, .. } => {
            api.delete(objects, *timeout).await.map_err(|e| StepError::api("delete", e))
        }
        Action::Delete { objects, .. } => api.delete_started(objects).await.map_err(|e| StepError::api("delete", e)),
        Action::PathsGone { paths, timeout } => {
            let deadline = crate::duration::deadline(*timeout);
            loop {
                let left: Vec<String> =
                    paths.iter().filter(|p| p.symlink_metadata().is_ok()).map(|p| p.display().to_string()).collect();
                if left.is_empty() {
                    break Ok(());
                }
                if Instant::now() >= deadline {
                    break Err(StepError::TimedOut(format!(
                        "still there after {}: {}",
                        crate::duration::format(*timeout),
                        left.join(", ")
                    )));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Action::StopServer { port } => {
            st.servers.retain(|srv| srv.port != *port);
            Ok(())
        }
        Action::Undo { index } => {
            let entry = plan
                .teardown
                .get(*index)
                .ok_or_else(|| StepError::Mismatch(format!("internal: no teardown entry #{}", index + 1)))?;
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
) -> Result<(), StepError> {
    let deadline = crate::duration::tokio_deadline(timeout);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = api.run_client_pod(pod, left).await.map_err(|e| match e.denial() {
            Some(d) => StepError::Denied { subject: "the in-cluster traffic client".into(), denial: d.to_string() },
            None => StepError::api("the in-cluster traffic client", e),
        })?;
        let Err(why) = traffic::judge_client_answer(url, &answer, token) else { return Ok(()) };
        let pause = Duration::from_secs(2);
        if tokio::time::Instant::now().checked_add(pause).is_none_or(|t| t >= deadline) {
            return Err(StepError::TimedOut(format!(
                "{why} (attempt {attempts}, the last within {})",
                crate::duration::format(timeout)
            )));
        }
        tokio::time::sleep(pause).await;
    }
}

/// Replaces `{clusterIP:<ns>/<svc>}` in a URL with the Service's ClusterIP.
async fn resolve_url<A: ClusterApi>(api: &A, url: &str) -> Result<String, StepError> {
    let malformed = || StepError::Mismatch(format!("malformed URL template {url}"));
    let Some(start) = url.find("{clusterIP:") else { return Ok(url.to_string()) };
    let end = url[start..].find('}').map(|e| start + e).ok_or_else(malformed)?;
    let (ns, svc) = url[start + 11..end].split_once('/').ok_or_else(malformed)?;
    let ip = api.cluster_ip(ns, svc).await.map_err(|e| StepError::api(format!("read Service {ns}/{svc}"), e))?;
    Ok(format!("{}{ip}{}", &url[..start], &url[end + 1..]))
}

/// Polls the workload's pods (and their events) until one shows `failure`; on timeout, the last
/// observed container states.
async fn container_failure<A: ClusterApi>(
    api: &A,
    namespace: &str,
    selector: &serde_json::Map<String, serde_json::Value>,
    failure: &crate::scenario::expect::AfterAdmission,
    timeout: Duration,
) -> Result<String, StepError> {
    let deadline = crate::duration::deadline(timeout);
    let mut last = String::from("no pod of the workload yet");
    loop {
        let pods = api.pods(namespace, selector).await.map_err(|e| StepError::api("list pods", e))?;
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
            return Err(StepError::TimedOut(format!(
                "no container {} became {} within {}; last observed: {last}",
                failure.container,
                failure.reason,
                crate::duration::format(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
