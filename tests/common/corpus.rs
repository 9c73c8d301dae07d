//! Generated workloads for the differential tests of the injection model: Deployments with their
//! Services, drawn by a proptest strategy from a fixed seed, covering the inputs that change what
//! Telepresence's agent injector does (facts.md §4, "Injection").

use proptest::prelude::*;
use proptest::strategy::{NewTree, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{Value, json};

/// A container port.
#[derive(Debug, Clone)]
pub struct CPort {
    /// Its name (`None`: unnamed).
    pub name: Option<String>,
    /// Its number.
    pub number: u16,
    /// `UDP` when true, else TCP (written out, or omitted, by `explicit_tcp`).
    pub udp: bool,
    /// Whether a TCP port writes `protocol: TCP` (else omitted).
    pub explicit_tcp: bool,
}

/// A container's securityContext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sc {
    /// None at all.
    Absent,
    /// `{}`.
    Empty,
    /// `{runAsUser: 1000, runAsGroup: <gid>}`.
    Group(u32),
    /// `{runAsUser: 1000, runAsNonRoot: true}`: no group.
    NoGroup,
}

/// A container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its ports (empty: none declared).
    pub ports: Vec<CPort>,
    /// Its securityContext.
    pub sc: Sc,
    /// Whether a readinessProbe names its first named port.
    pub probe: bool,
}

/// Where a Service port points.
#[derive(Debug, Clone)]
pub enum Target {
    /// A named targetPort: the name of a container port, or a name no container has.
    Named(String),
    /// A numeric targetPort.
    Numeric(u16),
    /// No targetPort (it defaults to `port`).
    Omitted,
}

/// A Service port.
#[derive(Debug, Clone)]
pub struct SPort {
    /// Its name (required by Kubernetes when the Service has several ports).
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// The target.
    pub target: Target,
    /// UDP when true.
    pub udp: bool,
}

/// A Service selecting the workload.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name suffix: the Service is `<workload>-<suffix>`.
    pub suffix: String,
    /// Its ports.
    pub ports: Vec<SPort>,
}

/// The `inject-traffic-agent` annotation's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inject {
    /// `enabled`.
    Enabled,
    /// `disabled`.
    Disabled,
    /// `false`.
    False,
    /// A value Telepresence does not know (`true`).
    Invalid,
}

/// The agent's `agent.securityContext` Helm value: one per stack, so one per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AgentValues {
    /// A context set in the values.
    Set,
    /// `{}`.
    Empty,
    /// Not set.
    Unset,
}

impl AgentValues {
    /// All three.
    pub const ALL: [AgentValues; 3] = [AgentValues::Set, AgentValues::Empty, AgentValues::Unset];

    /// The Helm values file.
    #[must_use]
    pub fn values(self) -> Value {
        match self {
            AgentValues::Set => json!({"agent": {"securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]},
                "readOnlyRootFilesystem": true, "runAsNonRoot": true, "runAsUser": 1000}}}),
            AgentValues::Empty => json!({"agent": {"securityContext": {}}}),
            AgentValues::Unset => json!({}),
        }
    }

    /// A short label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            AgentValues::Set => "set",
            AgentValues::Empty => "{}",
            AgentValues::Unset => "unset",
        }
    }
}

/// One generated workload.
#[derive(Debug, Clone)]
pub struct Case {
    /// Its containers, in order.
    pub containers: Vec<Container>,
    /// The pod securityContext's `runAsGroup`, if any.
    pub pod_group: Option<u32>,
    /// Services selecting it, in creation order.
    pub services: Vec<Service>,
    /// `inject-traffic-agent`.
    pub inject: Inject,
    /// `inject-service-name`: the index of one of its Services.
    pub service_name: Option<usize>,
    /// `inject-service-ports` (or the legacy singular when the flag is set): Service port names or numbers.
    pub service_ports: Option<(bool, Vec<String>)>,
    /// `inject-container-ports`: container port names or numbers.
    pub container_ports: Option<Vec<String>>,
}

const NUMBERS: [u16; 4] = [8080, 8081, 9090, 5353];
const NAMES: [&str; 4] = ["http", "grpc", "metrics", "dns"];
const GROUPS: [u32; 3] = [3000, 7439, 7440];

fn cport() -> impl Strategy<Value = CPort> {
    (prop::option::weighted(0.7, 0..NAMES.len()), 0..NUMBERS.len(), prop::bool::weighted(0.2), any::<bool>()).prop_map(
        |(n, k, udp, explicit_tcp)| CPort {
            name: n.map(|i| NAMES[i].to_string()),
            number: NUMBERS[k],
            udp,
            explicit_tcp,
        },
    )
}

fn sc() -> impl Strategy<Value = Sc> {
    prop_oneof![
        2 => Just(Sc::Absent),
        1 => Just(Sc::Empty),
        3 => (0..GROUPS.len()).prop_map(|i| Sc::Group(GROUPS[i])),
        1 => Just(Sc::NoGroup),
    ]
}

fn container() -> impl Strategy<Value = Container> {
    (prop::collection::vec(cport(), 0..=2), sc(), prop::bool::weighted(0.3)).prop_map(|(ports, sc, probe)| Container {
        ports,
        sc,
        probe,
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => (0..NAMES.len() + 1).prop_map(|i| Target::Named(NAMES.get(i).copied().unwrap_or("nope").to_string())),
        3 => (0..NUMBERS.len() + 1).prop_map(|i| Target::Numeric(NUMBERS.get(i).copied().unwrap_or(7777))),
        1 => Just(Target::Omitted),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (0..4usize, prop::collection::vec((target(), prop::bool::weighted(0.15)), 1..=2)).prop_map(|(s, ports)| Service {
        suffix: ["c", "a", "d", "b"][s].to_string(),
        ports: ports
            .into_iter()
            .enumerate()
            .map(|(i, (target, udp))| SPort {
                name: Some(format!("p{i}")),
                port: match &target {
                    Target::Omitted => NUMBERS[i % NUMBERS.len()],
                    _ => 80 + i as u16,
                },
                target,
                udp,
            })
            .collect(),
    })
}

fn inject() -> impl Strategy<Value = Inject> {
    prop_oneof![
        12 => Just(Inject::Enabled),
        1 => Just(Inject::Disabled),
        1 => Just(Inject::False),
        1 => Just(Inject::Invalid),
    ]
}

/// The strategy of one workload.
pub fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(container(), 1..=3),
        prop::option::weighted(0.3, (0..GROUPS.len()).prop_map(|i| GROUPS[i])),
        prop::collection::vec(service(), 0..=3),
        inject(),
        prop::option::weighted(0.1, 0..3usize),
        prop::option::weighted(0.12, (any::<bool>(), prop::collection::vec(0..4usize, 1..=2))),
        prop::option::weighted(0.1, prop::collection::vec(0..(NAMES.len() + NUMBERS.len()), 1..=2)),
    )
        .prop_map(|(containers, pod_group, services, inject, service_name, service_ports, container_ports)| {
            let mut case = Case {
                containers,
                pod_group,
                services,
                inject,
                service_name,
                service_ports: service_ports.map(|(legacy, l)| {
                    (legacy, l.into_iter().map(|i| ["p0", "p1", "80", "81"][i].to_string()).collect())
                }),
                container_ports: container_ports.map(|l| {
                    l.into_iter()
                        .map(|i| {
                            NAMES.get(i).map_or_else(|| NUMBERS[i - NAMES.len()].to_string(), |s| (*s).to_string())
                        })
                        .collect()
                }),
            };
            case.make_valid();
            case
        })
}

impl Case {
    /// Drops what the API server would reject: duplicate port names or numbers in the pod, duplicate
    /// Service names, a service-name index out of range.
    fn make_valid(&mut self) {
        let mut names = std::collections::HashSet::new();
        let mut numbers = std::collections::HashSet::new();
        for c in &mut self.containers {
            c.ports.retain(|p| {
                numbers.insert((p.number, p.udp)) && p.name.as_ref().is_none_or(|n| names.insert(n.clone()))
            });
        }
        let mut seen = std::collections::HashSet::new();
        self.services.retain(|s| seen.insert(s.suffix.clone()));
        for s in &mut self.services {
            let mut ports = std::collections::HashSet::new();
            s.ports.retain(|p| ports.insert((p.port, p.udp)));
        }
        if self.service_name.is_some_and(|i| i >= self.services.len()) {
            self.service_name = None;
        }
    }

    fn named_ports(&self) -> Vec<&str> {
        self.containers.iter().flat_map(|c| c.ports.iter().filter_map(|p| p.name.as_deref())).collect()
    }

    /// The Deployment and its Services, named after `name`, labelled `kyvtel.dev/case: <name>`.
    #[must_use]
    pub fn manifests(&self, name: &str, annotation_prefix: &str) -> Vec<Value> {
        let labels = json!({"kyvtel.dev/case": name});
        let mut annotations = serde_json::Map::new();
        let inject = match self.inject {
            Inject::Enabled => "enabled",
            Inject::Disabled => "disabled",
            Inject::False => "false",
            Inject::Invalid => "true",
        };
        annotations.insert(format!("{annotation_prefix}inject-traffic-agent"), json!(inject));
        if let Some(i) = self.service_name {
            annotations.insert(format!("{annotation_prefix}inject-service-name"), json!(self.service(name, i)));
        }
        if let Some((legacy, ports)) = &self.service_ports {
            // The deprecated singular exists only under the legacy prefix (facts.md §4).
            let key = if *legacy {
                "telepresence.getambassador.io/inject-service-port".to_string()
            } else {
                format!("{annotation_prefix}inject-service-ports")
            };
            annotations.insert(key, json!(ports.join(",")));
        }
        if let Some(ports) = &self.container_ports {
            annotations.insert(format!("{annotation_prefix}inject-container-ports"), json!(ports.join(",")));
        }
        let containers: Vec<Value> = self
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut v = json!({"name": format!("c{i}"), "image": "registry.k8s.io/e2e-test-images/agnhost:2.53"});
                if !c.ports.is_empty() {
                    v["ports"] = c
                        .ports
                        .iter()
                        .map(|p| {
                            let mut port = json!({"containerPort": p.number});
                            if let Some(n) = &p.name {
                                port["name"] = json!(n);
                            }
                            if p.udp {
                                port["protocol"] = json!("UDP");
                            } else if p.explicit_tcp {
                                port["protocol"] = json!("TCP");
                            }
                            port
                        })
                        .collect();
                }
                if let Some(named) = c.ports.iter().find_map(|p| p.name.as_deref().filter(|_| !p.udp && c.probe)) {
                    v["readinessProbe"] = json!({"httpGet": {"path": "/", "port": named}});
                }
                match c.sc {
                    Sc::Absent => {}
                    Sc::Empty => v["securityContext"] = json!({}),
                    Sc::Group(g) => v["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": g}),
                    Sc::NoGroup => v["securityContext"] = json!({"runAsUser": 1000, "runAsNonRoot": true}),
                }
                v
            })
            .collect();
        let mut spec = json!({"containers": containers});
        if let Some(g) = self.pod_group {
            spec["securityContext"] = json!({"runAsGroup": g});
        }
        let mut out = Vec::new();
        for (i, s) in self.services.iter().enumerate() {
            let ports: Vec<Value> = s
                .ports
                .iter()
                .map(|p| {
                    let mut v = json!({"port": p.port});
                    if let Some(n) = &p.name {
                        v["name"] = json!(n);
                    }
                    if p.udp {
                        v["protocol"] = json!("UDP");
                    }
                    match &p.target {
                        Target::Named(n) => v["targetPort"] = json!(n),
                        Target::Numeric(n) => v["targetPort"] = json!(n),
                        Target::Omitted => {}
                    }
                    v
                })
                .collect();
            out.push(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": self.service(name, i), "labels": labels},
                "spec": {"selector": labels, "ports": ports},
            }));
        }
        out.push(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
            },
        }));
        out
    }

    fn service(&self, workload: &str, i: usize) -> String {
        format!("{workload}-{}", self.services[i].suffix)
    }

    /// The dimensions this case covers, as `(dimension, value)` pairs.
    #[must_use]
    pub fn dimensions(&self, values: AgentValues) -> Vec<(&'static str, String)> {
        let mut d = vec![
            ("containers", self.containers.len().to_string()),
            ("services", self.services.len().min(2).to_string()),
            ("agent.securityContext", values.label().to_string()),
            ("inject-traffic-agent", format!("{:?}", self.inject).to_lowercase()),
        ];
        let sorted: Vec<&String> = self.services.iter().map(|s| &s.suffix).collect();
        if sorted.windows(2).any(|w| w[0] > w[1]) {
            d.push(("services", "unsorted".into()));
        }
        let named = self.named_ports();
        for p in self.services.iter().flat_map(|s| &s.ports) {
            let t = match &p.target {
                Target::Named(n) if named.contains(&n.as_str()) => "named",
                Target::Named(_) => "named, unmatched",
                Target::Numeric(n) if self.containers.iter().any(|c| c.ports.iter().any(|x| x.number == *n)) => {
                    "numeric"
                }
                Target::Numeric(_) => "numeric, unmatched",
                Target::Omitted => "omitted",
            };
            d.push(("targetPort", t.into()));
            if p.udp {
                d.push(("protocol", "UDP service port".into()));
            }
        }
        if self.containers.iter().any(|c| c.ports.iter().any(|p| p.udp)) {
            d.push(("protocol", "UDP container port".into()));
        }
        if self.containers.iter().any(|c| c.ports.is_empty()) {
            d.push(("container without ports", "yes".into()));
        }
        if self.containers.iter().any(|c| c.probe && c.ports.iter().any(|p| p.name.is_some() && !p.udp)) {
            d.push(("probe by port name", "yes".into()));
        }
        for c in &self.containers {
            d.push((
                "app securityContext",
                match c.sc {
                    Sc::Absent => "absent".into(),
                    Sc::Empty => "{}".into(),
                    Sc::Group(_) => "with runAsGroup".into(),
                    Sc::NoGroup => "without runAsGroup".into(),
                },
            ));
        }
        let groups: Vec<u32> = self
            .containers
            .iter()
            .filter_map(|c| if let Sc::Group(g) = c.sc { Some(g) } else { None })
            .chain(self.pod_group)
            .collect();
        if groups.contains(&7439) {
            d.push(("GID collision", if groups.contains(&7440) { "7439 and 7440" } else { "7439" }.into()));
        }
        if self.pod_group.is_some() {
            d.push(("pod runAsGroup", "set".into()));
        }
        if self.service_name.is_some() {
            d.push(("annotation", "inject-service-name".into()));
        }
        if let Some((legacy, _)) = &self.service_ports {
            d.push((
                "annotation",
                if *legacy { "inject-service-port (legacy)" } else { "inject-service-ports" }.into(),
            ));
        }
        if self.container_ports.is_some() {
            d.push(("annotation", "inject-container-ports".into()));
        }
        d.sort();
        d.dedup();
        d
    }
}

/// `count` cases drawn from `seed`, each with its value tree (for bounded shrinking).
#[must_use]
pub fn draw(seed: u64, count: usize) -> Vec<Box<dyn ValueTree<Value = Case>>> {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config { failure_persistence: None, ..Config::default() }, rng);
    let strategy = case().boxed();
    (0..count)
        .map(|_| {
            let tree: NewTree<BoxedStrategy<Case>> = strategy.new_tree(&mut runner);
            Box::new(tree.expect("the case strategy never rejects")) as Box<dyn ValueTree<Value = Case>>
        })
        .collect()
}

/// Every `(dimension, value)` the strategy is meant to produce: each must occur (the differential
/// test requires 5 per version), so a generator change cannot silently drop one.
pub const EXPECTED: &[(&str, &str)] = &[
    ("GID collision", "7439"),
    ("GID collision", "7439 and 7440"),
    ("agent.securityContext", "set"),
    ("agent.securityContext", "unset"),
    ("agent.securityContext", "{}"),
    ("annotation", "inject-container-ports"),
    ("annotation", "inject-service-name"),
    ("annotation", "inject-service-port (legacy)"),
    ("annotation", "inject-service-ports"),
    ("app securityContext", "absent"),
    ("app securityContext", "with runAsGroup"),
    ("app securityContext", "without runAsGroup"),
    ("app securityContext", "{}"),
    ("container without ports", "yes"),
    ("containers", "1"),
    ("containers", "2"),
    ("containers", "3"),
    ("inject-traffic-agent", "disabled"),
    ("inject-traffic-agent", "enabled"),
    ("inject-traffic-agent", "false"),
    ("inject-traffic-agent", "invalid"),
    ("pod runAsGroup", "set"),
    ("probe by port name", "yes"),
    ("protocol", "UDP container port"),
    ("protocol", "UDP service port"),
    ("services", "0"),
    ("services", "1"),
    ("services", "2"),
    ("services", "unsorted"),
    ("targetPort", "named"),
    ("targetPort", "named, unmatched"),
    ("targetPort", "numeric"),
    ("targetPort", "numeric, unmatched"),
    ("targetPort", "omitted"),
];
