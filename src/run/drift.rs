//! Model drift: differences between the pod `kyvtel check` predicts (its model of Telepresence's
//! injection) and the pod the live cluster really made. A difference means the offline model is
//! wrong somewhere, so it is reported, never hidden; it does not fail the scenario by itself.

use serde_json::Value;

use crate::predict::serialize::api_server_form;

/// Fields compared per container; the rest (env, ports, probes, volumes) is not modelled.
const CONTAINER_FIELDS: [&str; 2] = ["image", "securityContext"];

fn by_name(pod: &Value, list: &str) -> Vec<(String, Value)> {
    pod["spec"][list]
        .as_array()
        .map(|cs| cs.iter().map(|c| (c["name"].as_str().unwrap_or_default().to_string(), c.clone())).collect())
        .unwrap_or_default()
}

fn show(v: &Value) -> String {
    if v.is_null() { "(absent)".to_string() } else { v.to_string() }
}

/// Lists every difference, one line each, e.g.
/// `container/traffic-agent securityContext: model {...}, live {...}`.
#[must_use]
pub fn compare(predicted: &Value, live: &Value) -> Vec<String> {
    let (p, l) = (api_server_form(predicted), api_server_form(live));
    let mut out = Vec::new();
    if p["spec"]["securityContext"] != l["spec"]["securityContext"] {
        out.push(format!(
            "pod securityContext: model {}, live {}",
            show(&p["spec"]["securityContext"]),
            show(&l["spec"]["securityContext"])
        ));
    }
    for (list, target) in [("containers", "container"), ("initContainers", "initContainer")] {
        let (pc, lc) = (by_name(&p, list), by_name(&l, list));
        let names = |v: &[(String, Value)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        if names(&pc) != names(&lc) {
            out.push(format!("{list}: model {:?}, live {:?}", names(&pc), names(&lc)));
        }
        for (name, pcont) in &pc {
            let Some((_, lcont)) = lc.iter().find(|(n, _)| n == name) else { continue };
            for f in CONTAINER_FIELDS {
                if pcont[f] != lcont[f] {
                    out.push(format!("{target}/{name} {f}: model {}, live {}", show(&pcont[f]), show(&lcont[f])));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identical_pods_have_no_drift_and_differences_are_named() {
        let model = json!({"spec": {"containers": [
            {"name": "demo", "image": "a", "securityContext": {"runAsUser": 1000}},
            {"name": "traffic-agent", "image": "ghcr.io/telepresenceio/tel2:2.32.1", "securityContext": {"runAsGroup": 7439, "capabilities": {"drop": []}}}
        ]}});
        let mut live = model.clone();
        // The API server drops the empty list: not drift.
        live["spec"]["containers"][1]["securityContext"] = json!({"runAsGroup": 7439, "capabilities": {}});
        assert_eq!(compare(&model, &live), Vec::<String>::new());
        live["spec"]["containers"][1]["securityContext"] = json!({});
        live["spec"]["initContainers"] = json!([{"name": "tel-agent-init", "image": "x"}]);
        let d = compare(&model, &live);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].starts_with("container/traffic-agent securityContext: model"), "{d:?}");
        assert!(d[1].starts_with("initContainers: model [], live [\"tel-agent-init\"]"), "{d:?}");
    }
}
