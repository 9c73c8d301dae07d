//! The agent config the manager generates for a workload: which container ports of which Services
//! the agent intercepts (facts.md §4; upstream `pkg/agentmap/generator.go`, `discorvery.go`).

use serde_json::{Map, Value, json};

use super::{Cluster, TRAFFIC_AGENT, Telepresence, Workload, annotation, selects};

/// The first agent port (chart `agent.port`; upstream GeneratorConfig.AgentPort).
pub const AGENT_PORT: u64 = 9900;
/// The manager's gRPC port the agent dials (chart default).
pub const MANAGER_PORT: u64 = 8081;

/// Why no config came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A user error: the webhook admits the pod without an agent and warns (2.31.0).
    User(String),
    /// Any other error: the webhook denies the pod.
    Refused(String),
    /// The manager's handler panics; the API server's call fails and `failurePolicy: Ignore` admits the
    /// pod as it is.
    Panic(String),
}

/// One intercept: a Service port resolved to a container port.
#[derive(Debug, Clone, PartialEq)]
pub struct Intercept {
    /// The container port's name ("" when unnamed).
    pub container_port_name: String,
    /// The Service ("" for `inject-container-ports`).
    pub service_name: String,
    /// The Service's uid.
    pub service_uid: String,
    /// The Service port's name.
    pub service_port_name: String,
    /// Whether the Service's targetPort is a number (after defaulting, an omitted one is).
    pub target_port_numeric: bool,
    /// `TCP` or `UDP`.
    pub protocol: String,
    /// The Service port's appProtocol.
    pub app_protocol: String,
    /// The container port.
    pub container_port: u64,
    /// The Service port (0 for `inject-container-ports`).
    pub service_port: u64,
    /// The agent's port for it.
    pub agent_port: u64,
}

/// One app container of the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    /// The container's name.
    pub name: String,
    /// Its intercepts.
    pub intercepts: Vec<Intercept>,
    /// `A_`, `B_`, ... by position.
    pub env_prefix: String,
    /// `/tel_app_mounts/<name>`.
    pub mount_point: String,
    /// Mount policies of its volume mounts (path → policy), `Remote` unless the defaults say otherwise.
    pub mounts: Vec<(String, String)>,
}

/// The whole config.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The agent image.
    pub agent_image: String,
    /// The workload's name.
    pub workload_name: String,
    /// Its kind.
    pub workload_kind: String,
    /// Its namespace.
    pub namespace: String,
    /// `traffic-manager.<manager namespace>`.
    pub manager_host: String,
    /// The app containers, intercepted ones first.
    pub containers: Vec<Container>,
}

/// The default mount policies (chart `agent.mountPolicies`: `/tmp` is local).
const MOUNT_POLICIES: [(&str, &str); 1] = [("/tmp", "Local")];

fn mount_policy(name: &str, path: &str) -> &'static str {
    MOUNT_POLICIES.iter().find(|(k, _)| *k == name || path.starts_with(k)).map_or("Remote", |(_, p)| p)
}

impl Intercept {
    fn json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            let empty = v.as_str() == Some("") || v.as_u64() == Some(0) || v == Value::Bool(false);
            if !empty {
                m.insert(k.into(), v);
            }
        };
        put("containerPortName", json!(self.container_port_name));
        put("serviceName", json!(self.service_name));
        put("serviceUID", json!(self.service_uid));
        put("servicePortName", json!(self.service_port_name));
        put("targetPortNumeric", json!(self.target_port_numeric));
        put("protocol", json!(self.protocol));
        put("appProtocol", json!(self.app_protocol));
        put("containerPort", json!(self.container_port));
        put("servicePort", json!(self.service_port));
        put("agentPort", json!(self.agent_port));
        Value::Object(m)
    }
}

impl AgentConfig {
    /// The intercepts whose (agent port, protocol) is the first of its kind, per container.
    // upstream: pkg/agentconfig/util.go@v2.31.0 (PortUniqueIntercepts).
    #[must_use]
    pub fn port_unique(c: &Container) -> Vec<&Intercept> {
        let mut seen = Vec::new();
        c.intercepts
            .iter()
            .filter(|i| {
                let k = (i.agent_port, i.protocol.clone());
                let new = !seen.contains(&k);
                seen.push(k);
                new
            })
            .collect()
    }

    /// Whether `tel-agent-init` is needed: an intercept with a numeric targetPort (2.31.0:
    /// `NftRedirectsActive`).
    #[must_use]
    pub fn needs_init(&self) -> bool {
        self.containers.iter().flat_map(|c| &c.intercepts).any(|i| i.target_port_numeric)
    }

    /// The `telepresence.io/agent-config` annotation's JSON, as `MarshalTight` writes it (the image,
    /// pull policy and contexts left out; zero values omitted).
    // upstream: pkg/agentconfig/sidecar.go@v2.31.0 (Sidecar, Container, Intercept, MarshalTight).
    #[must_use]
    pub fn annotation_json(&self) -> String {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let mut m = Map::new();
                m.insert("name".into(), json!(c.name));
                if !c.intercepts.is_empty() {
                    m.insert("intercepts".into(), c.intercepts.iter().map(Intercept::json).collect());
                }
                m.insert("envPrefix".into(), json!(c.env_prefix));
                m.insert("mountPoint".into(), json!(c.mount_point));
                if !c.mounts.is_empty() {
                    let mounts: Map<String, Value> = c.mounts.iter().map(|(p, v)| (p.clone(), json!(v))).collect();
                    m.insert("mounts".into(), Value::Object(mounts));
                    let mut remote: Vec<&String> =
                        c.mounts.iter().filter(|(_, v)| v.starts_with("Remote")).map(|(p, _)| p).collect();
                    remote.sort();
                    if !remote.is_empty() {
                        m.insert("Mounts".into(), json!(remote));
                    }
                }
                Value::Object(m)
            })
            .collect();
        let policies: Map<String, Value> = MOUNT_POLICIES.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect();
        let mut m = Map::new();
        m.insert("agentName".into(), json!(self.workload_name));
        m.insert("namespace".into(), json!(self.namespace));
        m.insert("workloadName".into(), json!(self.workload_name));
        m.insert("workloadKind".into(), json!(self.workload_kind));
        m.insert("managerHost".into(), json!(self.manager_host));
        m.insert("managerPort".into(), json!(MANAGER_PORT));
        m.insert("mountPolicies".into(), Value::Object(policies));
        if !containers.is_empty() {
            m.insert("containers".into(), Value::Array(containers));
        }
        m.insert("clientConnectionTTL".into(), json!("24h0m0s"));
        m.insert("enableMetrics".into(), json!(false));
        m.insert("enableH2cProbing".into(), json!(true));
        m.insert("watchRetryInterval".into(), json!("10s"));
        Value::Object(m).to_string()
    }
}

/// `A`, `B`, ..., `Z`, `BA`, ... (upstream `CapsBase26`).
fn caps_base26(mut v: u64) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (v % 26) as u8);
        if v < 26 {
            break;
        }
        v /= 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn protocol_of(port: &Value) -> String {
    port["protocol"].as_str().filter(|p| !p.is_empty()).unwrap_or("TCP").to_string()
}

/// A port identifier of an annotation: `name` or `number`, optionally `/<protocol>`: 2.20.2 accepts
/// exactly `TCP` or `UDP`; 2.31.0 any case, and SCTP too (2.20.2 agentconfig/portidentifier.go:54-67;
/// 2.31.0 pkg/types/portidentifier.go:50-60, proto.go:26-49).
fn parse_port_identifier(tp: &Telepresence<'_>, s: &str) -> Result<(String, Option<String>, u64), String> {
    let (body, proto) = match s.split_once('/') {
        Some((b, p)) if !b.is_empty() => (b, p.to_string()),
        _ => (s, "TCP".to_string()),
    };
    let proto = if tp.at_least("2.22") { proto.to_uppercase() } else { proto };
    let known: &[&str] = if tp.at_least("2.22") { &["TCP", "UDP", "SCTP"] } else { &["TCP", "UDP"] };
    if !known.contains(&proto.as_str()) {
        return Err(format!("unsupported protocol {proto:?}"));
    }
    match body.parse::<u64>() {
        Ok(n) if (1..=65535).contains(&n) => Ok((proto, None, n)),
        Ok(_) => Err(format!("invalid port number {body}")),
        Err(_) if is_port_name(body) => Ok((proto, Some(body.to_string()), 0)),
        Err(_) => Err(format!("invalid port name {body:?}")),
    }
}

/// A DNS-1035 label: 1-63 lowercase alphanumerics or `-`, starting with a letter, ending alphanumeric.
fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
}

fn port_list(
    tp: &Telepresence<'_>,
    meta: &Value,
    name: &str,
    what: &str,
) -> Result<Vec<(String, Option<String>, u64)>, Failure> {
    match annotation(tp, meta, name) {
        None => Ok(Vec::new()),
        Some(v) => v
            .split(',')
            .map(|p| {
                parse_port_identifier(tp, p)
                    .map_err(|e| Failure::User(format!("unable to parse annotation {what}: {e}")))
            })
            .collect(),
    }
}

/// The container (index, port index) a Service port resolves to (upstream `findContainerMatchingPort`):
/// a named targetPort matches a port name, a numeric one a number (same protocol); a number that no
/// port has falls back to the first container without ports (port index `None`).
fn resolve<'a>(port: &Value, containers: &'a [Value]) -> Option<(usize, Option<usize>)> {
    let proto = protocol_of(port);
    let same = |p: &Value| protocol_of(p) == proto;
    let ports = |c: &'a Value| c["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    match &port["targetPort"] {
        Value::String(name) => containers.iter().enumerate().find_map(|(ci, c)| {
            ports(c).iter().position(|p| p["name"].as_str() == Some(name) && same(p)).map(|pi| (ci, Some(pi)))
        }),
        t => {
            let n = t.as_u64().filter(|n| *n != 0).or_else(|| port["port"].as_u64());
            containers
                .iter()
                .enumerate()
                .find_map(|(ci, c)| {
                    ports(c).iter().position(|p| p["containerPort"].as_u64() == n && same(p)).map(|pi| (ci, Some(pi)))
                })
                .or_else(|| containers.iter().position(|c| ports(c).is_empty()).map(|ci| (ci, None)))
        }
    }
}

fn new_container(c: &Value, index: usize, intercepts: Vec<Intercept>) -> Container {
    let name = c["name"].as_str().unwrap_or_default().to_string();
    let mounts = c["volumeMounts"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| {
                    let path = m["mountPath"].as_str()?;
                    Some((path.to_string(), mount_policy(m["name"].as_str().unwrap_or_default(), path).to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    Container {
        mount_point: format!("/tel_app_mounts/{name}"),
        env_prefix: format!("{}_", caps_base26(index as u64)),
        name,
        intercepts,
        mounts,
    }
}

/// The config for `workload` (upstream `GeneratorConfig.Generate`, 2.31.0).
///
/// # Errors
/// A [`Failure`] as the manager's would be categorised.
pub fn generate(tp: &Telepresence<'_>, workload: &Workload<'_>, cluster: &Cluster<'_>) -> Result<AgentConfig, Failure> {
    let template = workload.template;
    let meta = &template["metadata"];
    let containers: Vec<Value> = template["spec"]["containers"].as_array().cloned().unwrap_or_default();
    for c in containers.iter().filter(|c| c["name"] != TRAFFIC_AGENT) {
        if c["ports"].as_array().is_some_and(|ps| ps.iter().any(|p| p["containerPort"].as_u64() == Some(AGENT_PORT))) {
            return Err(Failure::User(format!("container {} exposes the agent's port {AGENT_PORT}", c["name"])));
        }
    }
    let labels = meta["labels"].as_object().cloned().unwrap_or_default();
    let mut services: Vec<&Value> = match annotation(tp, meta, "inject-service-name") {
        Some(name) => match cluster.services.iter().find(|s| s["metadata"]["name"] == name) {
            Some(s) => vec![s],
            None => {
                return Err(Failure::Refused(format!(
                    "unable to find service {name} specified by annotation {}inject-service-name",
                    super::PREFIX
                )));
            }
        },
        None if labels.is_empty() => return Err(Failure::Refused("the pod has no labels".into())),
        None => cluster.services.iter().filter(|s| selects(s, &labels)).collect(),
    };
    services.sort_by_key(|s| s["metadata"]["name"].as_str().unwrap_or_default().to_string());
    let mut agent_ports: Vec<u64> = Vec::new();
    let mut agent_port = |container_port: u64| -> u64 {
        let i = agent_ports.iter().position(|p| *p == container_port).unwrap_or_else(|| {
            agent_ports.push(container_port);
            agent_ports.len() - 1
        });
        AGENT_PORT + i as u64
    };
    let service_ports = port_list(tp, meta, "inject-service-ports", "inject-service-ports")?;
    let mut ccs: Vec<Container> = Vec::new();
    let add = |ccs: &mut Vec<Container>, ci: usize, ic: Intercept| {
        let name = containers[ci]["name"].as_str().unwrap_or_default();
        match ccs.iter_mut().find(|c| c.name == name) {
            Some(c) => c.intercepts.push(ic),
            None => {
                let n = ccs.len();
                ccs.push(new_container(&containers[ci], n, vec![ic]));
            }
        }
    };
    for svc in &services {
        let ports: Vec<&Value> = svc["spec"]["ports"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
        let ports: Vec<&Value> = if service_ports.is_empty() {
            ports
        } else {
            // upstream: filterServicePorts (each identifier in turn, every matching port).
            service_ports
                .iter()
                .flat_map(|(proto, name, num)| {
                    ports.iter().copied().filter(move |p| match name {
                        Some(n) => p["name"].as_str() == Some(n),
                        None => {
                            let target = p["targetPort"].as_u64().filter(|n| *n != 0).or_else(|| p["port"].as_u64());
                            target == Some(*num) && protocol_of(p) == *proto
                        }
                    })
                })
                .collect()
        };
        for port in ports {
            let Some((ci, pi)) = resolve(port, &containers) else { continue };
            if containers[ci]["name"] == TRAFFIC_AGENT {
                continue;
            }
            let (cp_name, cp_number) = match pi {
                Some(pi) => {
                    let p = &containers[ci]["ports"][pi];
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        p["containerPort"].as_u64().unwrap_or_default(),
                    )
                }
                None => (String::new(), port["targetPort"].as_u64().unwrap_or_default()),
            };
            let ic = Intercept {
                container_port_name: cp_name,
                service_name: svc["metadata"]["name"].as_str().unwrap_or_default().into(),
                service_uid: svc["metadata"]["uid"].as_str().unwrap_or_default().into(),
                service_port_name: port["name"].as_str().unwrap_or_default().into(),
                target_port_numeric: !port["targetPort"].is_string(),
                protocol: protocol_of(port),
                app_protocol: port["appProtocol"].as_str().unwrap_or_default().into(),
                container_port: cp_number,
                service_port: port["port"].as_u64().unwrap_or_default(),
                agent_port: agent_port(cp_number),
            };
            add(&mut ccs, ci, ic);
        }
    }
    let container_ports = match annotation(tp, meta, "inject-container-ports") {
        // `all` exists in 2.31.0, not in 2.20.2 (generator.go@v2.31.0:161-169).
        Some("all") if tp.at_least("2.31") => containers
            .iter()
            .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
            .map(|p| {
                let proto = protocol_of(&p);
                match p["name"].as_str().filter(|n| !n.is_empty()) {
                    Some(n) => (proto, Some(n.to_string()), 0),
                    None => (proto, None, p["containerPort"].as_u64().unwrap_or_default()),
                }
            })
            .collect(),
        _ => port_list(tp, meta, "inject-container-ports", "inject-container-ports")?,
    };
    for (proto, name, num) in &container_ports {
        // upstream: findContainerPort: a name or a number, with the same protocol.
        let found = containers.iter().enumerate().filter(|(_, c)| c["name"] != TRAFFIC_AGENT).find_map(|(ci, c)| {
            c["ports"].as_array()?.iter().find_map(|p| {
                let hit = name.as_deref().is_some_and(|n| p["name"].as_str() == Some(n))
                    || p["containerPort"].as_u64() == Some(*num);
                (hit && protocol_of(p) == *proto).then(|| (ci, p.clone()))
            })
        });
        let Some((ci, p)) = found else {
            if let Some(n) = name {
                return Err(Failure::User(format!("found no container port that matches port annotation {n}")));
            }
            // upstream: generator.go@v2.31.0 appendServiceLessAgentContainerConfigs dereferences the nil
            // container of an unmatched numeric port: the handler panics.
            return Err(Failure::Panic(format!(
                "inject-container-ports {num} matches no container port: the manager panics"
            )));
        };
        let cp = p["containerPort"].as_u64().unwrap_or_default();
        let ic = Intercept {
            container_port_name: p["name"].as_str().unwrap_or_default().into(),
            service_name: String::new(),
            service_uid: String::new(),
            service_port_name: String::new(),
            target_port_numeric: true,
            protocol: protocol_of(&p),
            app_protocol: String::new(),
            container_port: cp,
            service_port: 0,
            agent_port: agent_port(cp),
        };
        let cname = containers[ci]["name"].as_str().unwrap_or_default();
        match ccs.iter_mut().find(|c| c.name == cname) {
            Some(c) => {
                if !c.intercepts.iter().any(|x| x.container_port == cp) {
                    c.intercepts.push(ic);
                }
            }
            None => {
                let n = ccs.len();
                ccs.push(new_container(&containers[ci], n, vec![ic]));
            }
        }
    }
    if !tp.at_least("2.22") {
        // 2.20.2: only the intercepted containers; none is an error (agentmap/generator.go:134-137).
        if ccs.is_empty() {
            return Err(Failure::Refused("found no service with a port that matches a container".into()));
        }
        return Ok(config_of(tp, workload, cluster, ccs));
    }
    for c in containers.iter().filter(|c| c["name"] != TRAFFIC_AGENT) {
        if !ccs.iter().any(|cc| c["name"] == cc.name.as_str()) {
            let n = ccs.len();
            ccs.push(new_container(c, n, Vec::new()));
        }
    }
    Ok(config_of(tp, workload, cluster, ccs))
}

fn config_of(
    tp: &Telepresence<'_>,
    workload: &Workload<'_>,
    cluster: &Cluster<'_>,
    ccs: Vec<Container>,
) -> AgentConfig {
    AgentConfig {
        agent_image: tp.agent_image(),
        workload_name: workload.name.into(),
        workload_kind: workload.kind.into(),
        namespace: workload.namespace.into(),
        manager_host: match cluster.cluster_domain {
            Some(d) if !d.is_empty() && !cluster.manager_namespace.contains('.') => {
                format!("traffic-manager.{}.svc.{d}", cluster.manager_namespace)
            }
            _ => format!("traffic-manager.{}", cluster.manager_namespace),
        },
        containers: ccs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base26_names() {
        assert_eq!(caps_base26(0), "A");
        assert_eq!(caps_base26(25), "Z");
        assert_eq!(caps_base26(26), "BA");
    }

    #[test]
    fn port_identifiers() {
        let (new, old) = (
            Telepresence { version: super::super::v("2.31.0"), values: None },
            Telepresence { version: super::super::v("2.20.2"), values: None },
        );
        assert_eq!(parse_port_identifier(&new, "http"), Ok(("TCP".into(), Some("http".into()), 0)));
        assert_eq!(parse_port_identifier(&new, "53/udp"), Ok(("UDP".into(), None, 53)));
        assert!(parse_port_identifier(&old, "53/udp").is_err(), "2.20.2 takes TCP or UDP exactly");
        assert_eq!(
            parse_port_identifier(&new, "a-sixteen-chars-name"),
            Ok(("TCP".into(), Some("a-sixteen-chars-name".into()), 0))
        );
        assert!(parse_port_identifier(&new, "Bad_Name").is_err());
    }
}
