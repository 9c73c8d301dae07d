//! A short-lived client pod, run to completion: the in-cluster traffic check of the kind path (a
//! request from inside the cluster, which `intercept.localShortcut` cannot answer locally; facts.md
//! §4). A pod of that name with kyvtel's label (left by an earlier run) is deleted first; anyone
//! else's is never touched. The pod's log is its answer; a container the kubelet refuses
//! (`CreateContainerConfigError`) ends the wait at once.

use std::time::Duration;

use ::kube::api::{Api, DeleteParams, LogParams, PostParams};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::time::Instant;

use super::KubeError;
use super::wait::{self, conditions};
use crate::names::{MANAGED_BY_KEY, MANAGED_BY_VALUE};

/// Creates `pod` (deleting a leftover of the same name first), waits until it has run
/// (`Succeeded` or `Failed`) and returns its log.
///
/// # Errors
/// [`KubeError::Api`] when it cannot be created (an admission refusal keeps its status), or its log
/// cannot be read; [`KubeError::TimedOut`] with the pod's last phase and container states;
/// [`KubeError::WaitFailed`] when its container is refused ([`wait::stuck_container`]).
pub async fn run_to_completion(client: &::kube::Client, pod: &Value, timeout: Duration) -> Result<String, KubeError> {
    let deadline = crate::duration::tokio_deadline(timeout);
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let what = format!("client pod {namespace}/{name}");
    let typed: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| KubeError::Manifest { index: 0, message: format!("{what}: {e}") })?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    remove_leftover(&api, &name, &what, deadline).await?;
    api.create(&PostParams::default(), &typed).await.map_err(|e| KubeError::api(format!("create {what}"), e))?;
    let left = deadline.saturating_duration_since(Instant::now());
    let finished = |p: Option<&Pod>| matches!(phase(p), Some("Succeeded" | "Failed"));
    let stuck = |p: Option<&Pod>| p.and_then(|p| wait::stuck_container(p, None));
    let done = wait::wait_for(api.clone(), &name, &format!("{what} to run"), left, finished, stuck).await?;
    let log = api
        .logs(&name, &LogParams::default())
        .await
        .map_err(|e| KubeError::api(format!("read the log of {what}"), e))?;
    Ok(if phase(done.as_ref()) == Some("Failed") { format!("{log}\n(the client pod failed)") } else { log })
}

fn phase(p: Option<&Pod>) -> Option<&str> {
    p?.status.as_ref()?.phase.as_deref()
}

/// Deletes a pod of that name left by an earlier run (only kyvtel's), and waits until it is gone.
async fn remove_leftover(api: &Api<Pod>, name: &str, what: &str, deadline: Instant) -> Result<(), KubeError> {
    let Some(found) = api.get_opt(name).await.map_err(|e| KubeError::api(format!("read {what}"), e))? else {
        return Ok(());
    };
    let labels = found.metadata.labels.unwrap_or_default();
    if labels.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return Err(KubeError::Refused(format!("{what} exists and is not kyvtel's ({MANAGED_BY_KEY} is not kyvtel)")));
    }
    match api.delete(name, &DeleteParams::default().grace_period(0)).await {
        Ok(_) => {}
        Err(::kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(KubeError::api(format!("delete the leftover {what}"), e)),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let gone = format!("the leftover {what} to be deleted");
    wait::wait_for(api.clone(), name, &gone, left, conditions::gone(), wait::never).await.map(drop)
}
