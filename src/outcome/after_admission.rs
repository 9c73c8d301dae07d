//! Failures after admission, judged from a pod's status: the kubelet refuses a container
//! (`CreateContainerConfigError` for `runAsNonRoot` with a root image) or it fails (an init container
//! whose iptables needs root exits with `Error`, then `CrashLoopBackOff`).

use serde_json::Value;

use crate::scenario::expect::AfterAdmission;

/// Every status of `container` in `pod` (app and init containers): `(reason, message)` of its
/// current waiting or terminated state and of its last terminated state.
fn states<'a>(pod: &'a Value, container: &str) -> Vec<(&'a str, &'a str)> {
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .into_iter()
        .filter_map(|k| pod["status"][k].as_array())
        .flatten()
        .filter(|s| s["name"] == container);
    let mut out = Vec::new();
    for s in statuses {
        for state in [&s["state"]["waiting"], &s["state"]["terminated"], &s["lastState"]["terminated"]] {
            if let Some(reason) = state["reason"].as_str() {
                out.push((reason, state["message"].as_str().unwrap_or_default()));
            }
        }
    }
    out
}

/// `Ok(evidence)` when `pod` shows the expected failure (the message may also come from one of
/// `events`, the pod's event messages); `Err(last state)` otherwise.
pub fn judge(pod: &Value, events: &[String], expected: &AfterAdmission) -> Result<String, String> {
    let states = states(pod, &expected.container);
    let name = pod["metadata"]["name"].as_str().unwrap_or("?");
    let message_ok = |m: &str| {
        expected.message.as_deref().is_none_or(|want| m.contains(want) || events.iter().any(|e| e.contains(want)))
    };
    if let Some((reason, message)) = states.iter().find(|(r, m)| *r == expected.reason && message_ok(m)) {
        return Ok(format!("pod {name}: container {} is {reason}: {message}", expected.container));
    }
    let seen: Vec<String> = states.iter().map(|(r, m)| format!("{r} ({m})")).collect();
    Err(if seen.is_empty() {
        format!("pod {name}: container {} has no waiting or terminated state yet", expected.container)
    } else {
        format!("pod {name}: container {} is {}", expected.container, seen.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // The status the kubelet writes for issue telepresenceio/telepresence#3745 (tel-agent-init,
    // `runAsNonRoot` with an image that runs as root).
    fn pod() -> Value {
        json!({"metadata": {"name": "demo-1"}, "status": {"initContainerStatuses": [{
            "name": "tel-agent-init",
            "state": {"waiting": {"reason": "CreateContainerConfigError",
                "message": "container has runAsNonRoot and image will run as root"}}
        }]}})
    }

    #[test]
    fn a_refused_container_is_proven_by_reason_and_message() {
        let mut want = AfterAdmission {
            container: "tel-agent-init".into(),
            reason: "CreateContainerConfigError".into(),
            message: Some("image will run as root".into()),
        };
        assert!(judge(&pod(), &[], &want).is_ok());
        want.message = Some("iptables".into());
        let last = judge(&pod(), &[], &want).expect_err("another message");
        assert!(last.contains("CreateContainerConfigError"), "{last}");
        assert!(judge(&pod(), &["Error: iptables: Permission denied".into()], &want).is_ok(), "the events count");
        want.container = "traffic-agent".into();
        assert!(judge(&pod(), &[], &want).unwrap_err().contains("no waiting or terminated state"));
    }
}
