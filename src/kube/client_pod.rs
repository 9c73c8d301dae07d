//! A short-lived client pod, run to completion: the in-cluster traffic check of the kind path (a
//! request from inside the cluster, which `intercept.localShortcut` cannot answer locally; facts.md
//! §4). A pod of that name with kyvtel's label (left by an earlier run) is deleted first; anyone
//! else's is never touched. The pod's log is its answer; a container the kubelet refuses
//! (`CreateContainerConfigError`) ends the wait at once.

use std::time::Duration;

use ::kube::api::{Api, DeleteParams, LogParams, PostParams};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use tokio::time::{Instant, sleep};

use super::KubeError;
use super::ownership::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use super::wait::Summary as _;

/// Creates `pod` (deleting a leftover of the same name first), waits until it has run
/// (`Succeeded` or `Failed`) and returns its log.
///
/// # Errors
/// [`KubeError::Api`] when it cannot be created (an admission refusal keeps its status), or its log
/// cannot be read; [`KubeError::TimedOut`] with the pod's last phase and container states.
pub async fn run_to_completion(
    client: &::kube::Client,
    pod: &Value,
    timeout: Duration,
    interval: Duration,
) -> Result<String, KubeError> {
    let deadline = crate::plan::duration::tokio_deadline(timeout);
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
    let what = format!("client pod {namespace}/{name}");
    let typed: Pod = serde_json::from_value(pod.clone())
        .map_err(|e| KubeError::Manifest { index: 0, message: format!("{what}: {e}") })?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    remove_leftover(&api, &name, &what, deadline, interval).await?;
    api.create(&PostParams::default(), &typed).await.map_err(|e| KubeError::api(format!("create {what}"), e))?;
    loop {
        let last = match api.get_opt(&name).await {
            Ok(Some(p)) => {
                let phase = p.status.as_ref().and_then(|s| s.phase.clone()).unwrap_or_default();
                let hopeless = p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()).find_map(|c| {
                    let w = c.state.as_ref()?.waiting.as_ref()?;
                    let reason = w.reason.as_deref()?;
                    super::wait::HOPELESS_WAITING_REASONS
                        .contains(&reason)
                        .then(|| format!("{reason}: {}", w.message.as_deref().unwrap_or_default()))
                });
                if let Some(reason) = hopeless {
                    return Err(KubeError::WaitFailed {
                        what: format!("{what} to run"),
                        reason,
                        last_observed: p.summary(),
                    });
                }
                if phase == "Succeeded" || phase == "Failed" {
                    let log = api
                        .logs(&name, &LogParams::default())
                        .await
                        .map_err(|e| KubeError::api(format!("read the log of {what}"), e))?;
                    return Ok(if phase == "Failed" { format!("{log}\n(the client pod failed)") } else { log });
                }
                p.summary()
            }
            Ok(None) => "gone".into(),
            Err(e) => return Err(KubeError::api(format!("read {what}"), e)),
        };
        if Instant::now().checked_add(interval).is_none_or(|t| t > deadline) {
            return Err(KubeError::TimedOut { what: format!("{what} to run"), timeout, last_observed: last });
        }
        sleep(interval).await;
    }
}

/// Deletes a pod of that name left by an earlier run, and waits until it is gone.
async fn remove_leftover(
    api: &Api<Pod>,
    name: &str,
    what: &str,
    deadline: Instant,
    interval: Duration,
) -> Result<(), KubeError> {
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
    while api.get_opt(name).await.map_err(|e| KubeError::api(format!("read {what}"), e))?.is_some() {
        if Instant::now().checked_add(interval).is_none_or(|t| t > deadline) {
            return Err(KubeError::TimedOut {
                what: format!("the leftover {what} to be deleted"),
                timeout: deadline.saturating_duration_since(Instant::now()),
                last_observed: "still there".into(),
            });
        }
        sleep(interval).await;
    }
    Ok(())
}
