//! The control plane's command lines (facts.md §7) and the stack's files ([`Layout`], [`Pki`]), pure
//! so that `kyvtel plan --provider local` prints exactly what runs. Inside the run's network namespace
//! fixed loopback ports are safe; an unconfined run picks free ones ([`Ports`]).

use std::path::{Path, PathBuf};

use crate::names::local::{ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER};

/// A component to start.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spawn {
    /// Its name (`etcd`, `kube-apiserver`, ...).
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment (nothing is inherited but `PATH`).
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go.
    pub log: PathBuf,
}

/// The PKI files of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pki {
    /// The directory (0700).
    pub dir: PathBuf,
}

impl Pki {
    /// The CA certificate.
    #[must_use]
    pub fn ca_crt(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    /// The CA key.
    #[must_use]
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    /// The API server's serving certificate.
    #[must_use]
    pub fn apiserver_crt(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }
    /// Its key.
    #[must_use]
    pub fn apiserver_key(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }
    /// The agent injector's serving certificate (SAN IP 127.0.0.1).
    #[must_use]
    pub fn injector_crt(&self) -> PathBuf {
        self.dir.join("injector.crt")
    }
    /// Its key.
    #[must_use]
    pub fn injector_key(&self) -> PathBuf {
        self.dir.join("injector.key")
    }
    /// The service-account signing key.
    #[must_use]
    pub fn sa_key(&self) -> PathBuf {
        self.dir.join("sa.key")
    }
    /// Its public half.
    #[must_use]
    pub fn sa_pub(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }
    /// The static token file (`token,user,uid,"group"`).
    #[must_use]
    pub fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.csv")
    }
    /// The admin token.
    #[must_use]
    pub fn admin_token(&self) -> PathBuf {
        self.dir.join("admin.token")
    }
}

/// The loopback ports of a stack's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// etcd clients.
    pub etcd_client: u16,
    /// etcd peers.
    pub etcd_peer: u16,
    /// etcd metrics.
    pub etcd_metrics: u16,
    /// kube-apiserver.
    pub apiserver: u16,
    /// Kyverno's admission webhook server.
    pub kyverno_webhook: u16,
    /// Kyverno's metrics.
    pub kyverno_metrics: u16,
    /// Kyverno's controller-runtime metrics.
    pub kyverno_cr_metrics: u16,
    /// The traffic-manager's gRPC server.
    pub manager: u16,
    /// The traffic-manager's agent-injector webhook (HTTPS).
    pub injector: u16,
}

impl Ports {
    /// Fixed ports: safe inside the run's own network namespace, where nothing else listens.
    pub const CONFINED: Ports = Ports {
        etcd_client: 2379,
        etcd_peer: 2380,
        etcd_metrics: 2381,
        apiserver: 6443,
        kyverno_webhook: 9443,
        kyverno_metrics: 8000,
        kyverno_cr_metrics: 8082,
        manager: 8081,
        injector: 8443,
    };

    /// Ports free on 127.0.0.1 now, all different (an unconfined run shares the host's network
    /// namespace): each is bound on port 0 while the others are held, then released.
    ///
    /// # Errors
    /// No loopback port could be bound.
    pub fn pick() -> std::io::Result<Ports> {
        let held: Vec<std::net::TcpListener> =
            (0..9).map(|_| std::net::TcpListener::bind(("127.0.0.1", 0))).collect::<std::io::Result<_>>()?;
        let p: Vec<u16> = held.iter().map(|l| l.local_addr().map(|a| a.port())).collect::<std::io::Result<_>>()?;
        Ok(Ports {
            etcd_client: p[0],
            etcd_peer: p[1],
            etcd_metrics: p[2],
            apiserver: p[3],
            kyverno_webhook: p[4],
            kyverno_metrics: p[5],
            kyverno_cr_metrics: p[6],
            manager: p[7],
            injector: p[8],
        })
    }

    /// The listeners by name, for the console of an unconfined run.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "etcd {} (peer {}, metrics {}), kube-apiserver {}, Kyverno webhook {} (metrics {}, {})",
            self.etcd_client,
            self.etcd_peer,
            self.etcd_metrics,
            self.apiserver,
            self.kyverno_webhook,
            self.kyverno_metrics,
            self.kyverno_cr_metrics
        )
    }
}

impl Default for Ports {
    fn default() -> Self {
        Ports::CONFINED
    }
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
    /// The listeners' loopback ports.
    pub ports: Ports,
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
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.ports.apiserver)
    }
}

/// etcd.
#[must_use]
pub fn etcd(l: &Layout) -> Spawn {
    let client = format!("http://127.0.0.1:{}", l.ports.etcd_client);
    let peer = format!("http://127.0.0.1:{}", l.ports.etcd_peer);
    Spawn {
        name: ETCD.into(),
        program: l.binary("etcd"),
        args: vec![
            "--name=kyvtel".into(),
            format!("--data-dir={}", l.etcd_data().display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=kyvtel={peer}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{}", l.ports.etcd_metrics),
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
        name: KUBE_APISERVER.into(),
        program: l.binary("kube-apiserver"),
        args: vec![
            format!("--etcd-servers=http://127.0.0.1:{}", l.ports.etcd_client),
            "--bind-address=127.0.0.1".into(),
            // Without a default route the API server cannot pick an address (facts.md §7).
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={}", l.ports.apiserver),
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
        name: KUBE_CONTROLLER_MANAGER.into(),
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
        etcd = l.ports.etcd_client,
        api = l.ports.apiserver,
    )
}

/// A kubeconfig for `server` with a bearer token and the run's CA, inline.
#[must_use]
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: local\n  user:\n    token: {token}\ncontexts:\n- name: \
         local\n  context:\n    cluster: local\n    user: local\ncurrent-context: local\n",
        server
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout { dir: "/w/local".into(), bin: "/r/.tools/local".into(), ports: Ports::CONFINED }
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
