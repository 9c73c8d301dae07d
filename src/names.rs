//! Well-known names that more than one layer writes or reads, in one home: kyvtel's own label and
//! markers, Telepresence's and Kyverno's object and container names, and the local provider's
//! components. Compare against these, never against a literal.

/// Label key marking objects kyvtel manages (the recommended Kubernetes label).
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_KEY`] on kyvtel's objects.
pub const MANAGED_BY_VALUE: &str = "kyvtel";

/// What the in-cluster client prints after the body (curl `-w`), so the status is known.
pub const STATUS_MARKER: &str = "kyvtel-http-status=";

/// Kubernetes kinds that kyvtel finds objects by.
pub mod kind {
    /// `apps/v1` Deployment: every scenario's workload, and the traffic-manager up to 2.31.
    pub const DEPLOYMENT: &str = "Deployment";
    /// `apps/v1` StatefulSet: the traffic-manager from 2.32 (facts.md §4).
    pub const STATEFUL_SET: &str = "StatefulSet";
    /// `apps/v1` ReplicaSet: a Deployment's pods' owner, whose events carry admission refusals.
    pub const REPLICA_SET: &str = "ReplicaSet";
}

/// Telepresence's names (facts.md §4).
pub mod telepresence {
    /// The sidecar the agent injector adds to an intercepted pod.
    pub const TRAFFIC_AGENT: &str = "traffic-agent";
    /// The init container it adds for numeric or omitted targetPorts.
    pub const AGENT_INIT: &str = "tel-agent-init";
    /// The traffic-manager: Helm release, Deployment, container and local component.
    pub const TRAFFIC_MANAGER: &str = "traffic-manager";
    /// The chart's MutatingWebhookConfiguration is this prefix plus the manager's namespace.
    pub const WEBHOOK_PREFIX: &str = "agent-injector-webhook-";
    /// The machine-wide daemons' fixed sockets before 2.26.0 (facts.md §4): the only files a run
    /// leaves outside its directories while connected; each daemon removes its own on exit.
    // upstream: telepresenceio/telepresence pkg/client/socket/sockets_unix.go@v2.20.2 lines 18-25
    // (paths) and 41 (`SetUnlinkOnClose(false)`: unlinked when the process exits).
    pub const DAEMON_SOCKETS: [&str; 2] = ["/tmp/telepresence-connector.socket", "/var/run/telepresence-daemon.socket"];
    /// From this version the daemons listen on TCP and record their addresses in the user's cache
    /// directory (the run's own `XDG_CACHE_HOME`): no fixed socket is left anywhere.
    // upstream: telepresenceio/telepresence CHANGELOG.yml@v2.31.0 line 987 (2.26.0: "Use TCP/IP instead
    // of Unix sockets for all communication between local processes"); pkg/client/rootd/service.go
    // @v2.31.0 line 210 (`lc.Listen(c, "tcp", addrStr)`).
    pub const TCP_DAEMONS_SINCE: &str = "2.26.0";
}

/// Kyverno's names (facts.md §3).
pub mod kyverno {
    /// The namespace, Helm release, admission controller Deployment and local component.
    pub const KYVERNO: &str = "kyverno";
    /// The Lease the admission controller renews while healthy.
    pub const HEALTH_LEASE: &str = "kyverno-health";
    /// The webhook that enforces ClusterPolicies with `failurePolicy: Fail`.
    pub const POLICY_WEBHOOK: &str = "validate.kyverno.svc-fail";
}

/// The local provider's control-plane components (its processes and log files).
pub mod local {
    /// etcd.
    pub const ETCD: &str = "etcd";
    /// kube-apiserver.
    pub const KUBE_APISERVER: &str = "kube-apiserver";
    /// kube-controller-manager.
    pub const KUBE_CONTROLLER_MANAGER: &str = "kube-controller-manager";
    /// Every component the local provider may start, in start order.
    pub const COMPONENTS: [&str; 5] =
        [ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, super::kyverno::KYVERNO, super::telepresence::TRAFFIC_MANAGER];
}
