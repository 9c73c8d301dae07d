//! The kind provider against a recording `Runner` double: exact command lines (facts.md §2) and the
//! order in which they run.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kyvtel::provider::kind::{self, KindProvider, KindSpec};
use kyvtel::provider::{ClusterProvider, ProviderError};
use kyvtel::tools::{CommandLine, Output, RunError, Runner};

const NODE: &str = "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0";

/// Records every command; answers `kind get kubeconfig` with `kubeconfig_status` and a fake file.
struct Recorder {
    seen: Mutex<Vec<CommandLine>>,
    kubeconfig_status: i32,
    fail_create: bool,
}

impl Recorder {
    fn new(kubeconfig_status: i32, fail_create: bool) -> Arc<Self> {
        Arc::new(Recorder { seen: Mutex::new(Vec::new()), kubeconfig_status, fail_create })
    }

    fn lines(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(ToString::to_string).collect()
    }
}

impl Runner for Recorder {
    fn run(&self, cmd: &CommandLine, _timeout: Duration) -> Result<Output, RunError> {
        self.seen.lock().unwrap().push(cmd.clone());
        let out = |status, stdout: &str, stderr: &str| Output {
            status: Some(status),
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        Ok(match cmd.args.first().map(String::as_str) {
            Some("get") => out(
                self.kubeconfig_status,
                "apiVersion: v1\nkind: Config\n",
                "ERROR: could not locate any control plane nodes",
            ),
            Some("create") if self.fail_create => out(1, "", "ERROR: failed to create cluster: node(s) already exist"),
            _ => out(0, "", ""),
        })
    }
}

fn spec(dir: &Path, reuse: bool) -> KindSpec {
    KindSpec {
        name: "kyvtel-1-35".into(),
        config: PathBuf::from("kind-config/default.yaml"),
        node_image: NODE.into(),
        kubeconfig: dir.join("kubeconfig"),
        wait: kind::DEFAULT_WAIT,
        reuse,
    }
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kyvtel-provider-kind-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn builders_print_the_documented_command_lines() {
    let s = spec(Path::new("/run/r1"), false);
    assert_eq!(
        kind::create_cluster(&s).to_string(),
        format!(
            "kind create cluster --name kyvtel-1-35 --config kind-config/default.yaml --image {NODE} --kubeconfig /run/r1/kubeconfig --wait 120s"
        )
    );
    assert_eq!(
        kind::get_kubeconfig("kyvtel-1-35", &s.kubeconfig).to_string(),
        "kind get kubeconfig --name kyvtel-1-35"
    );
    assert_eq!(
        kind::load_docker_image("ghcr.io/telepresenceio/tel2:2.32.1", "kyvtel-1-35", &s.kubeconfig).to_string(),
        "kind load docker-image ghcr.io/telepresenceio/tel2:2.32.1 --name kyvtel-1-35"
    );
    assert_eq!(
        kind::export_logs(Path::new("/b/kind-logs"), "kyvtel-1-35", &s.kubeconfig).to_string(),
        "kind export logs /b/kind-logs --name kyvtel-1-35"
    );
    assert_eq!(
        kind::delete_cluster("kyvtel-1-35", &s.kubeconfig).to_string(),
        "kind delete cluster --name kyvtel-1-35 --kubeconfig /run/r1/kubeconfig"
    );
    for cmd in [kind::create_cluster(&s), kind::delete_cluster("kyvtel-1-35", &s.kubeconfig)] {
        assert_eq!(cmd.env, [("KUBECONFIG".to_string(), "/run/r1/kubeconfig".to_string())]);
    }
    assert_eq!(kind::go_seconds(Duration::from_millis(90_500)), "91s");
}

#[tokio::test]
async fn ensure_creates_then_writes_the_kubeconfig_from_kind_and_delete_passes_it() {
    let dir = tmp("create");
    let runner = Recorder::new(0, false);
    let provider = KindProvider::new(spec(&dir, false), runner.clone()).unwrap();
    let ensured = provider.ensure().await.unwrap();
    assert!(ensured.created);
    assert_eq!(ensured.cluster.kubeconfig, dir.join("kubeconfig"));
    assert_eq!(std::fs::read_to_string(dir.join("kubeconfig")).unwrap(), "apiVersion: v1\nkind: Config\n");
    provider.load_images(&["docker.io/library/nginx:1.27".to_string()]).await.unwrap();
    provider.delete().await.unwrap();
    let k = dir.join("kubeconfig").display().to_string();
    assert_eq!(
        runner.lines(),
        [
            format!(
                "kind create cluster --name kyvtel-1-35 --config kind-config/default.yaml --image {NODE} --kubeconfig {k} --wait 120s"
            ),
            "kind get kubeconfig --name kyvtel-1-35".to_string(),
            "kind load docker-image docker.io/library/nginx:1.27 --name kyvtel-1-35".to_string(),
            format!("kind delete cluster --name kyvtel-1-35 --kubeconfig {k}"),
        ]
    );
    assert!(provider.owns_cluster());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reuse_finds_an_existing_cluster_without_creating() {
    let dir = tmp("reuse");
    let runner = Recorder::new(0, false);
    let provider = KindProvider::new(spec(&dir, true), runner.clone()).unwrap();
    let ensured = provider.ensure().await.unwrap();
    assert!(!ensured.created);
    assert_eq!(runner.lines(), ["kind get kubeconfig --name kyvtel-1-35"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reuse_without_a_cluster_falls_back_to_create() {
    let dir = tmp("reuse-none");
    // `get kubeconfig` fails every time, so creation succeeds but the kubeconfig cannot be read.
    let runner = Recorder::new(1, false);
    let provider = KindProvider::new(spec(&dir, true), runner.clone()).unwrap();
    let err = provider.ensure().await.unwrap_err();
    assert!(matches!(err, ProviderError::Failed { .. }), "{err}");
    let lines = runner.lines();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("kind create cluster"));
}

#[tokio::test]
async fn a_failed_create_reports_kinds_stderr() {
    let dir = tmp("fail");
    let runner = Recorder::new(0, true);
    let provider = KindProvider::new(spec(&dir, false), runner).unwrap();
    let err = provider.ensure().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("`kind create cluster --name kyvtel-1-35")
            && text.contains("exited with 1: ERROR: failed to create cluster"),
        "{text}"
    );
    let mapped = kyvtel::Error::from(err);
    assert_eq!(mapped.exit(), kyvtel::Exit::Infra);
}

#[test]
fn a_node_image_without_digest_is_refused() {
    let mut s = spec(Path::new("/r"), false);
    s.node_image = "kindest/node:v1.35.8".into();
    let err = KindProvider::new(s, Recorder::new(0, false)).unwrap_err();
    assert!(err.to_string().contains("not pinned by digest"), "{err}");
}

#[tokio::test]
async fn existing_provider_never_creates_or_deletes() {
    use kyvtel::provider::existing::ExistingProvider;
    let dir = tmp("existing");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("config");
    std::fs::write(&file, "apiVersion: v1\nkind: Config\n").unwrap();
    let provider = ExistingProvider::new(&file, Some("prod-like".into()));
    let ensured = provider.ensure().await.unwrap();
    assert!(!ensured.created && !provider.owns_cluster());
    assert_eq!(ensured.cluster.context.as_deref(), Some("prod-like"));
    provider.delete().await.unwrap();
    assert!(file.exists());
    assert!(provider.load_images(&[]).await.is_err());
    let missing = ExistingProvider::new(dir.join("nope"), None).ensure().await.unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    let _ = std::fs::remove_dir_all(&dir);
}
