//! The control plane's command lines (facts.md §7), pure so that `kyvtel plan --provider local` prints
//! exactly what runs. Inside the run's network namespace fixed loopback ports are safe.

use std::path::{Path, PathBuf};

use super::pki::Pki;
use super::process::Spawn;

/// Fixed loopback ports inside the run's network namespace.
pub mod ports {
    /// etcd clients.
    pub const ETCD_CLIENT: u16 = 2379;
    /// etcd peers.
    pub const ETCD_PEER: u16 = 2380;
    /// etcd metrics.
    pub const ETCD_METRICS: u16 = 2381;
    /// kube-apiserver.
    pub const APISERVER: u16 = 6443;
    /// Kyverno's admission webhook server.
    pub const KYVERNO_WEBHOOK: u16 = 9443;
    /// Kyverno's metrics.
    pub const KYVERNO_METRICS: u16 = 8000;
    /// Kyverno's controller-runtime metrics.
    pub const KYVERNO_CR_METRICS: u16 = 8082;
    /// The traffic-manager's gRPC server.
    pub const MANAGER: u16 = 8081;
    /// The traffic-manager's agent-injector webhook (HTTPS).
    pub const INJECTOR: u16 = 8443;
}

/// The controllers kube-controller-manager runs (1.35 names). `clusterrole-aggregation-controller`
/// is required: Kyverno's chart ClusterRoles are aggregated (facts.md §7).
pub const CONTROLLERS: &str = "deployment-controller,replicaset-controller,serviceaccount-controller,\
serviceaccount-token-controller,namespace-controller,garbage-collector-controller,\
root-ca-certificate-publisher-controller,clusterrole-aggregation-controller";

/// The run-private layout of a local stack under `dir` (the run's `local/` directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The directory.
    pub dir: PathBuf,
    /// Where the binaries are (`.tools/local`).
    pub bin: PathBuf,
}

impl Layout {
    /// The PKI.
    #[must_use]
    pub fn pki(&self) -> Pki {
        Pki { dir: self.dir.join("pki") }
    }
    /// etcd's data directory.
    #[must_use]
    pub fn etcd_data(&self) -> PathBuf {
        self.dir.join("etcd")
    }
    /// Component logs.
    #[must_use]
    pub fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }
    /// The admin kubeconfig (kyvtel's own, and Helm's).
    #[must_use]
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }
    /// A component's kubeconfig, with its ServiceAccount token.
    #[must_use]
    pub fn kubeconfig(&self, component: &str) -> PathBuf {
        self.dir.join(format!("{component}.kubeconfig"))
    }
    /// A built binary.
    #[must_use]
    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }
    /// The API server's URL.
    #[must_use]
    pub fn server() -> String {
        format!("https://127.0.0.1:{}", ports::APISERVER)
    }
}

/// etcd.
#[must_use]
pub fn etcd(l: &Layout) -> Spawn {
    let client = format!("http://127.0.0.1:{}", ports::ETCD_CLIENT);
    let peer = format!("http://127.0.0.1:{}", ports::ETCD_PEER);
    Spawn {
        name: "etcd".into(),
        program: l.binary("etcd"),
        args: vec![
            "--name=kyvtel".into(),
            format!("--data-dir={}", l.etcd_data().display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=kyvtel={peer}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{}", ports::ETCD_METRICS),
            "--unsafe-no-fsync".into(),
        ],
        env: vec![("HOME".into(), l.dir.display().to_string())],
        log: l.log("etcd"),
    }
}

/// kube-apiserver.
#[must_use]
pub fn apiserver(l: &Layout) -> Spawn {
    let p = l.pki();
    let f = |flag: &str, path: &Path| format!("--{flag}={}", path.display());
    Spawn {
        name: "kube-apiserver".into(),
        program: l.binary("kube-apiserver"),
        args: vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports::ETCD_CLIENT),
            "--bind-address=127.0.0.1".into(),
            // Without a default route the API server cannot pick an address (facts.md §7).
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", ports::APISERVER),
            f("tls-cert-file", &p.apiserver_crt()),
            f("tls-private-key-file", &p.apiserver_key()),
            f("client-ca-file", &p.ca_crt()),
            f("token-auth-file", &p.tokens()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            f("service-account-key-file", &p.sa_pub()),
            f("service-account-signing-key-file", &p.sa_key()),
            "--service-cluster-ip-range=10.96.0.0/16".into(),
            "--allow-privileged=true".into(),
            "--endpoint-reconciler-type=none".into(),
        ],
        env: vec![("HOME".into(), l.dir.display().to_string())],
        log: l.log("kube-apiserver"),
    }
}

/// kube-controller-manager.
#[must_use]
pub fn controller_manager(l: &Layout) -> Spawn {
    let p = l.pki();
    let f = |flag: &str, path: &Path| format!("--{flag}={}", path.display());
    Spawn {
        name: "kube-controller-manager".into(),
        program: l.binary("kube-controller-manager"),
        args: vec![
            f("kubeconfig", &l.admin_kubeconfig()),
            "--leader-elect=false".into(),
            "--secure-port=0".into(),
            "--use-service-account-credentials=true".into(),
            f("service-account-private-key-file", &p.sa_key()),
            f("root-ca-file", &p.ca_crt()),
            f("cluster-signing-cert-file", &p.ca_crt()),
            f("cluster-signing-key-file", &p.ca_key()),
            format!("--controllers={CONTROLLERS}"),
        ],
        env: vec![("HOME".into(), l.dir.display().to_string())],
        log: l.log("kube-controller-manager"),
    }
}

/// What `--keep` prints for a kept stack: where its state is, and the commands that bring its
/// control plane back (on this machine's loopback, outside kyvtel) to inspect what the run left.
#[must_use]
pub fn reuse_hint(l: &Layout) -> String {
    let line = |s: &Spawn| {
        let mut out = crate::tools::quote(&s.program.display().to_string());
        for a in &s.args {
            out.push(' ');
            out.push_str(&crate::tools::quote(a));
        }
        out
    };
    format!(
        "kept: the local stack in {dir} (etcd data, PKI 0600 in 0700, admin kubeconfig); no process outlives \
         kyvtel. To inspect it, start its control plane again (loopback ports {etcd} and {api}), then use the \
         kubeconfig:\n  {} &\n  {} &\n  kubectl --kubeconfig {} get namespaces,deployments,replicasets,pods -A",
        line(&etcd(l)),
        line(&apiserver(l)),
        crate::tools::quote(&l.admin_kubeconfig().display().to_string()),
        dir = l.dir.display(),
        etcd = ports::ETCD_CLIENT,
        api = ports::APISERVER,
    )
}

/// A kubeconfig for `server` with a bearer token and the run's CA, inline.
#[must_use]
pub fn kubeconfig(ca_pem: &str, token: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: local\n  user:\n    token: {token}\ncontexts:\n- name: \
         local\n  context:\n    cluster: local\n    user: local\ncurrent-context: local\n",
        Layout::server()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout { dir: "/w/local".into(), bin: "/r/.tools/local".into() }
    }

    #[test]
    fn every_listener_is_on_loopback() {
        let l = layout();
        for s in [etcd(&l), apiserver(&l), controller_manager(&l)] {
            for a in &s.args {
                assert!(!a.contains("0.0.0.0"), "{}: {a}", s.name);
                if a.contains("://") && !a.contains("kubernetes.default") {
                    assert!(a.contains("127.0.0.1"), "{}: {a}", s.name);
                }
            }
        }
        assert!(apiserver(&l).args.contains(&"--bind-address=127.0.0.1".to_string()));
        assert!(controller_manager(&l).args.contains(&"--secure-port=0".to_string()));
    }

    #[test]
    fn a_kept_stack_says_where_it_is_and_how_to_start_its_control_plane() {
        let hint = reuse_hint(&layout());
        assert!(hint.contains("kept: the local stack in /w/local"), "{hint}");
        assert!(hint.contains("/r/.tools/local/etcd --name=kyvtel --data-dir=/w/local/etcd"), "{hint}");
        assert!(hint.contains("/r/.tools/local/kube-apiserver --etcd-servers=http://127.0.0.1:2379"), "{hint}");
        assert!(hint.contains("kubectl --kubeconfig /w/local/admin.kubeconfig get"), "{hint}");
    }

    #[test]
    fn the_controller_manager_runs_the_aggregation_controller() {
        let kcm = controller_manager(&layout());
        let c = kcm.args.iter().find(|a| a.starts_with("--controllers=")).unwrap();
        assert!(c.contains("clusterrole-aggregation-controller") && c.contains("replicaset-controller"), "{c}");
    }
}
