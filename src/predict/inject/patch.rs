//! The webhook's patch, applied: init container, agent, volumes, hidden ports, annotations, labels,
//! in the order upstream `createPatch` emits them (2.31.0: `mutator/agent_injector.go:182-227`).

use serde_json::{Value, json};

use super::config::AgentConfig;
use super::{AGENT_INIT, PREFIX, Telepresence, agent};

/// `tm-<name>`, cut to 15 characters (upstream `hiddenPortName`, ordinal 0).
#[must_use]
pub fn hidden_port_name(name: &str) -> String {
    format!("tm-{name}").chars().take(15).collect()
}

fn push(list: &mut Value, item: Value) {
    match list.as_array_mut() {
        Some(a) => a.push(item),
        None => *list = json!([item]),
    }
}

/// Renames an intercepted named port and the probe references to it (upstream `hidePorts`): only
/// for intercepts whose Service names the port (a numeric targetPort relies on the init container).
fn hide_ports(pod: &mut Value, config: &AgentConfig) {
    for cc in &config.containers {
        let Some(c) = pod["spec"]["containers"]
            .as_array_mut()
            .and_then(|cs| cs.iter_mut().find(|c| c["name"] == cc.name.as_str()))
        else {
            continue;
        };
        for ic in AgentConfig::port_unique(cc) {
            if ic.target_port_numeric {
                continue;
            }
            let name = &ic.container_port_name;
            let hidden = hidden_port_name(name);
            if let Some(p) = c["ports"].as_array_mut().and_then(|ps| ps.iter_mut().find(|p| p["name"] == name.as_str()))
            {
                p["name"] = json!(hidden);
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                for handler in ["httpGet", "tcpSocket"] {
                    if let Some(port) =
                        c.get_mut(probe).and_then(|p| p.get_mut(handler)).and_then(|h| h.get_mut("port"))
                        && port.as_str() == Some(name)
                    {
                        *port = json!(hidden);
                    }
                }
            }
        }
    }
}

/// The pod after the webhook's patch.
#[must_use]
pub fn apply(pod: &Value, tp: &Telepresence<'_>, config: &AgentConfig) -> Value {
    let mut out = pod.clone();
    let agent_container = agent::container(tp, config, pod);
    if config.needs_init() && tp.init_container_enabled() {
        let init = agent::init_container(tp, agent_container.get("securityContext"));
        let list = &mut out["spec"]["initContainers"];
        match list.as_array_mut().and_then(|l| l.iter_mut().find(|c| c["name"] == AGENT_INIT)) {
            Some(existing) => *existing = init,
            None => push(list, init),
        }
    }
    push(&mut out["spec"]["containers"], agent_container);
    let marker = if tp.at_least("2.22") { "export-volume" } else { "traffic-annotations" };
    let has_volumes = out["spec"]["volumes"].as_array().is_some_and(|v| v.iter().any(|v| v["name"] == marker));
    if !has_volumes {
        for v in agent::volumes(tp, &config.workload_name) {
            push(&mut out["spec"]["volumes"], v);
        }
    }
    hide_ports(&mut out, config);
    let meta = &mut out["metadata"];
    let added = if tp.at_least("2.22") {
        vec![
            (format!("{PREFIX}agent-config"), config.annotation_json()),
            (format!("{PREFIX}inject-traffic-agent"), "enabled".to_string()),
        ]
    } else {
        // 2.20.2: the config is in the ConfigMap, not on the pod (mutator/agent_injector.go:614-638).
        vec![(format!("{}inject-traffic-agent", super::LEGACY_PREFIX), "enabled".to_string())]
    };
    for (k, v) in added {
        if meta["annotations"].get(&k).is_none() {
            meta["annotations"][k] = json!(v);
        }
    }
    for (k, v) in [
        ("telepresence.io/workloadName", config.workload_name.as_str()),
        ("telepresence.io/workloadKind", config.workload_kind.as_str()),
        ("telepresence.io/workloadEnabled", "true"),
    ] {
        if meta["labels"].get(k).is_none() {
            meta["labels"][k] = json!(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_names_are_cut_to_fifteen() {
        assert_eq!(hidden_port_name("http"), "tm-http");
        assert_eq!(hidden_port_name("averyverylongna"), "tm-averyverylon");
    }
}
