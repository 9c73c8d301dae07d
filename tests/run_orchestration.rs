//! Offline orchestration tests of `kyvtel::run::execute`: the plan of a real scenario file runs
//! against a [`RecordingRunner`] (kind, helm, telepresence, docker, sudo) and a [`FakeApi`], both
//! writing into one journal, so that the exact order of commands and cluster calls, including the
//! LIFO teardown, is checked. Traffic is real, on loopback: the intercept's local server is served
//! in process, and the Request resolves the Service's ClusterIP to 127.0.0.1 through the FakeApi.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fake_api::{FAKE_KUBECONFIG, FakeApi, Fault, JournalRunner, answer_the_rest, kyverno_denial};
use kyvtel::plan::{Action, Options, Plan};
use kyvtel::run::executor::TeardownResult;
use kyvtel::run::failure::FailureKind;
use kyvtel::run::{ScenarioResult, Settings, Status, execute};
use kyvtel::tools::install::ToolsDir;
use kyvtel::tools::runner::{RecordingRunner, Scripted};
use kyvtel::tools::{Runner, Tool};
use rstest::rstest;
use serde_json::Value;
use tokio::sync::watch;

const NODE_IMAGE: &str = "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0";
const TOKEN: &str = "kyvtel-test-token";

/// A private temporary directory, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("kyvtel-orch-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Temp(dir)
    }
    fn run_dir(&self) -> PathBuf {
        self.0.join("run")
    }
    fn tools_dir(&self) -> PathBuf {
        self.0.join("tools")
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("dir entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// How the scenario's Telepresence version is chosen.
#[derive(Debug, Clone, Copy)]
enum Tp {
    /// The documented recipe as shipped (the pinned default, 2.32.1).
    Shipped,
    /// A temp copy of the scenario with `spec.versions.telepresence` set (a pinned release).
    Override(&'static str),
    /// The shipped scenario with the resolved version replaced after loading. Only for versions
    /// older than every pin (2.22.6 is the oldest), to exercise the "before 2.22" branches.
    Unpinned(&'static str),
}

/// A plan built from a scenario file, with the paths its command lines contain.
struct Built {
    plan: Plan,
    /// Where `scenarios/` and `kind-config/` live (the repo, or a temp copy of them).
    repo: PathBuf,
    tmp: Temp,
}

impl Built {
    /// Replaces `{repo}`, `{run}` and `{tools}` in an expected line.
    fn expand(&self, line: &str) -> String {
        line.replace("{repo}", &self.repo.display().to_string())
            .replace("{run}", &self.tmp.run_dir().display().to_string())
            .replace("{tools}", &self.tmp.tools_dir().display().to_string())
            .replace("{node}", NODE_IMAGE)
    }
}

fn build_from(scenario: &Path, repo: PathBuf, tmp: Temp, tp: Option<&str>) -> Built {
    let mut loaded =
        kyvtel::scenario::load(scenario).unwrap_or_else(|e| panic!("{} does not load: {e}", scenario.display()));
    if let Some(v) = tp {
        loaded.versions.telepresence = v.to_string();
    }
    let opts = Options { run_dir: tmp.run_dir(), tools: ToolsDir::at(tmp.tools_dir()), ..Options::default() };
    Built { plan: kyvtel::plan::build(&loaded, &opts), repo, tmp }
}

/// The plan of the documented recipe with Telepresence chosen by `tp`.
fn recipe(tp: Tp) -> Built {
    let tmp = Temp::new("recipe");
    let root = common::root();
    match tp {
        Tp::Shipped => build_from(&root.join("scenarios/documented-recipe.yaml"), root, tmp, None),
        Tp::Unpinned(v) => build_from(&root.join("scenarios/documented-recipe.yaml"), root, tmp, Some(v)),
        Tp::Override(v) => {
            let repo = tmp.0.join("repo");
            copy_tree(&root.join("scenarios"), &repo.join("scenarios"));
            copy_tree(&root.join("kind-config"), &repo.join("kind-config"));
            let file = repo.join("scenarios/documented-recipe.yaml");
            let src = std::fs::read_to_string(&file).expect("read scenario copy");
            let edited = src.replacen("\nspec:\n", &format!("\nspec:\n  versions:\n    telepresence: \"{v}\"\n"), 1);
            assert_ne!(src, edited, "the scenario has a `spec:` line to extend");
            std::fs::write(&file, edited).expect("write scenario copy");
            let built = build_from(&file, repo, tmp, None);
            assert_eq!(built.plan.versions.telepresence, v, "the override is resolved");
            built
        }
    }
}

/// The documented recipe on the shipped Telepresence, routed to loopback, and an API double whose
/// intercepted pod satisfies its expectations.
fn shipped_recipe() -> (Built, FakeApi) {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    api.agent_pod(recipe_pod("2.32.1"));
    (b, api)
}

/// A runner that answers every command (script faults on a [`RecordingRunner`] before this instead).
fn answered_runner() -> RecordingRunner {
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    runner
}

/// The expected-denial fixture scenario.
fn intercept_denied() -> Built {
    let root = common::root();
    let mut b = build_from(&root.join("tests/fixtures/run/intercept-denied.yaml"), root, Temp::new("denied"), None);
    route_to_loopback(&mut b.plan);
    b
}

/// Points the intercept's local server, the host-side Request and the in-cluster client at a free
/// loopback port: the ClusterIP URL keeps its template (the FakeApi resolves it to 127.0.0.1), and
/// the client's cluster DNS name becomes `localhost` (the FakeApi makes the client's request).
fn route_to_loopback(plan: &mut Plan) -> u16 {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let mut requests = 0;
    for a in plan.phases.iter_mut().flat_map(|p| p.actions.iter_mut()) {
        match a {
            Action::Serve { port: p } => *p = port,
            Action::Request { url, .. } => {
                let new =
                    url.replace(":80/", &format!(":{port}/")).replace("demo.kyvtel-app.svc.cluster.local", "localhost");
                assert_ne!(*url, new, "request URL {url} has the service port 80");
                *url = new;
                requests += 1;
            }
            // The in-cluster client: the double makes its request to the same loopback server.
            Action::ClientRequest { url, pod, .. } => {
                let new = url.replace("demo.kyvtel-app:80", &format!("localhost:{port}"));
                assert_ne!(*url, new, "client URL {url}");
                *url = new.clone();
                if let Some(last) =
                    pod.pointer_mut("/spec/containers/0/command").and_then(|c| c.as_array_mut()?.last_mut())
                {
                    *last = Value::String(new);
                }
                requests += 1;
            }
            _ => {}
        }
    }
    for a in plan.teardown.iter_mut().flat_map(|t| t.actions.iter_mut()) {
        if let Action::StopServer { port: p } = a {
            *p = port;
        }
    }
    let sends_traffic = plan.phases.iter().any(|p| p.kind == kyvtel::plan::PhaseKind::SendTraffic);
    assert_eq!(requests, if sends_traffic { 2 } else { 0 }, "send-traffic: the in-cluster client and the ClusterIP");
    port
}

fn pod_fixture(name: &str) -> Value {
    let path = common::root().join("tests/fixtures/pods").join(name);
    let text = std::fs::read_to_string(&path).expect("pod fixture");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A pod that satisfies the documented recipe's expectations for Telepresence `version`.
fn recipe_pod(version: &str) -> Value {
    let v = kyvtel::scenario::version::Version::parse(version).expect("version");
    let at_least_2_29 = v >= kyvtel::scenario::version::Version::parse("2.29").expect("literal");
    pod_fixture(if at_least_2_29 { "agent-recipe-2.32.yaml" } else { "agent-recipe-2.28.yaml" })
}

/// One finished execution and everything it left behind.
struct Ran {
    result: ScenarioResult,
    journal: Vec<String>,
    runner: Arc<RecordingRunner>,
    elapsed: Duration,
}

fn settings(runner: &Arc<RecordingRunner>, api: &FakeApi, keep: bool) -> (Settings, watch::Sender<bool>) {
    let (tx, rx) = watch::channel(false);
    let journalled: Arc<dyn Runner> = Arc::new(JournalRunner::new(runner.clone(), api.journal()));
    (
        Settings {
            runner: journalled,
            token: TOKEN.into(),
            keep,
            cancel: rx,
            progress: None,
            as_root: false,
            owns_cluster: true,
            processes: Default::default(),
            defer_teardown: false,
            strict_model: false,
        },
        tx,
    )
}

async fn run(plan: &Plan, api: &FakeApi, runner: RecordingRunner, keep: bool) -> Ran {
    let runner = Arc::new(runner);
    let (s, _tx) = settings(&runner, api, keep);
    let t0 = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(60), execute(plan, api, &s)).await.expect("execute finishes");
    Ran { result, journal: api.calls(), runner, elapsed: t0.elapsed() }
}

fn statuses(r: &ScenarioResult) -> Vec<(String, Status)> {
    r.phases.iter().map(|p| (p.name.clone(), p.status.clone())).collect()
}

fn failure_of(r: &ScenarioResult, phase: &str) -> String {
    match r.phases.iter().find(|p| p.name == phase).map(|p| &p.status) {
        Some(Status::Failed(m)) => m.clone(),
        other => panic!("phase {phase} did not fail: {other:?}; phases: {:?}", statuses(r)),
    }
}

fn teardown_status<'a>(r: &'a ScenarioResult, label: &str) -> &'a Status {
    &r.teardown
        .iter()
        .find(|t: &&TeardownResult| t.label == label)
        .unwrap_or_else(|| panic!("no teardown {label}"))
        .status
}

const RECIPE_PHASES: [&str; 11] = [
    "create-cluster",
    "preload-images",
    "install-kyverno",
    "apply-policies",
    "install-telepresence",
    "deploy-workload",
    "connect",
    "intercept",
    "send-traffic",
    "leave",
    "assert-still-enforced",
];

/// The documented recipe's teardown stack, by registration index, as journal lines, and whether the
/// entry undoes only objects inside the cluster (skipped when kyvtel deletes the kind cluster at the
/// end): what facts.md §2–§4 and issue 4 say undoes each setup.
const RECIPE_UNDO: [(&str, &[&str], bool); 10] = [
    ("create-cluster", &["$ kind delete cluster --name kyvtel-documented-recipe --kubeconfig {run}/kubeconfig"], false),
    ("install-kyverno", &["$ helm uninstall kyverno -n kyverno --wait --timeout 4m"], true),
    ("apply-policies", &["delete Namespace/kyvtel-app"], true),
    (
        "apply-policies",
        &["delete ClusterPolicy/require-security-context, ClusterPolicy/restrict-image-registries"],
        true,
    ),
    ("install-telepresence", &["$ telepresence helm uninstall --manager-namespace ambassador --no-hooks"], true),
    ("deploy-workload", &["delete Deployment/kyvtel-app/demo, Service/kyvtel-app/demo"], true),
    ("connect", &["$ telepresence quit -s"], false),
    ("intercept", &[], false), // stop the local server: in process, nothing journalled
    ("intercept", &["$ telepresence detach demo", "restart kyvtel-app/demo"], true),
    ("send-traffic", &["delete Pod/kyvtel-app/kyvtel-traffic-client"], true),
];

/// The journal lines the teardown must produce when the phases up to `last_started` started and
/// the entries in `done_by_steps` were already undone by a step, on a kind cluster kyvtel deletes
/// (not kept): only what lives outside the cluster, then the cluster.
fn expected_teardown(b: &Built, last_started: &str, done_by_steps: &[usize]) -> Vec<String> {
    let started_upto = RECIPE_PHASES.iter().position(|p| *p == last_started).expect("phase");
    let started = &RECIPE_PHASES[..=started_upto];
    let mut out = Vec::new();
    for (i, (by, lines, cluster_only)) in RECIPE_UNDO.iter().enumerate().rev() {
        if !started.contains(by) || done_by_steps.contains(&i) || *cluster_only {
            continue;
        }
        out.extend(lines.iter().map(|l| b.expand(l)));
    }
    out
}

/// The teardown part of a journal: everything after the `evidence` call and the evidence commands
/// (failed runs gather evidence right before teardown, while the cluster still exists).
fn after_evidence(b: &Built, journal: &[String]) -> Vec<String> {
    let at = journal.iter().position(|l| l.starts_with("evidence ")).expect("evidence was collected");
    assert_eq!(journal.iter().filter(|l| l.starts_with("evidence ")).count(), 1, "evidence is collected once");
    let gathered: Vec<String> = [
        "$ telepresence gather-logs -o {run}/evidence/telepresence-gather-logs.zip",
        "$ kind export logs {run}/evidence/kind-logs --name kyvtel-{scenario}",
    ]
    .iter()
    .map(|l| b.expand(&l.replace("{scenario}", &b.plan.scenario)))
    .collect();
    assert_eq!(journal[at + 1..].iter().take(2).cloned().collect::<Vec<_>>(), gathered, "gathered before teardown");
    journal[at + 3..].to_vec()
}

// ---------------------------------------------------------------------------------------------
// 1 + 2: the happy path, with the exact interleaving of commands and cluster calls.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_recipe_runs_every_phase_in_order_and_tears_down_lifo() {
    let mut b = recipe(Tp::Shipped);
    let port = route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    api.agent_pod(recipe_pod("2.32.1"));
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let r = &ran.result;

    assert!(r.passed, "phases: {:?}", statuses(r));
    assert!(!r.cancelled);
    assert_eq!(r.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), RECIPE_PHASES);
    assert!(r.phases.iter().all(|p| p.status == Status::Passed), "{:?}", statuses(r));
    assert!(r.failure().is_none());
    assert!(r.evidence.is_empty(), "no evidence is collected after a pass");
    assert!(!r.checks.is_empty() && r.checks.iter().all(|c| c.ok), "the pod was judged: {:?}", r.checks);
    assert!(ran.elapsed < Duration::from_secs(20), "took {:?}", ran.elapsed);

    // The run's kubeconfig is what `kind get kubeconfig` printed, readable by the user only.
    let kubeconfig = b.tmp.run_dir().join("kubeconfig");
    assert_eq!(std::fs::read_to_string(&kubeconfig).unwrap(), FAKE_KUBECONFIG);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&kubeconfig).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let expected: Vec<String> = [
        "$ kind create cluster --name kyvtel-documented-recipe --config {repo}/kind-config/default.yaml --image {node} --kubeconfig {run}/kubeconfig --wait 120s",
        "$ kind get kubeconfig --name kyvtel-documented-recipe",
        "$ docker pull --platform linux/amd64 registry.k8s.io/e2e-test-images/agnhost:2.53",
        "$ docker save --platform linux/amd64 -o {run}/images/registry.k8s.io_e2e-test-images_agnhost_2.53.tar registry.k8s.io/e2e-test-images/agnhost:2.53",
        "$ kind load image-archive {run}/images/registry.k8s.io_e2e-test-images_agnhost_2.53.tar --name kyvtel-documented-recipe",
        "$ docker pull --platform linux/amd64 ghcr.io/telepresenceio/tel2:2.32.1",
        "$ docker save --platform linux/amd64 -o {run}/images/ghcr.io_telepresenceio_tel2_2.32.1.tar ghcr.io/telepresenceio/tel2:2.32.1",
        "$ kind load image-archive {run}/images/ghcr.io_telepresenceio_tel2_2.32.1.tar --name kyvtel-documented-recipe",
        "$ helm install kyverno {tools}/charts/kyverno-3.9.1.tgz -n kyverno --create-namespace --wait --timeout 10m --set backgroundController.enabled=false --set cleanupController.enabled=false",
        "wait DeploymentAvailable kyverno/kyverno-admission-controller",
        "apply Namespace/kyvtel-app",
        "apply ClusterPolicy/require-security-context, ClusterPolicy/restrict-image-registries",
        "wait PoliciesReady require-security-context,restrict-image-registries",
        "canary_denied Pod/kyvtel-app/kyvtel-canary",
        "$ telepresence helm install --manager-namespace ambassador --values {repo}/scenarios/values/telepresence-agent-security.yaml --set usage.enabled=false",
        "wait TrafficManagerReady StatefulSet ambassador",
        "apply Deployment/demo, Service/demo in kyvtel-app",
        "wait DeploymentAvailable kyvtel-app/demo",
        "$ telepresence quit -s",
        "$ sudo -n true",
        "$ telepresence connect -n kyvtel-app --manager-namespace ambassador",
        "$ telepresence status --format json",
        "pod_uids kyvtel-app app.kubernetes.io/name=demo",
        "$ telepresence intercept demo --port 8080:80 --mount=false",
        "new_agent_pod kyvtel-app app.kubernetes.io/name=demo old=[uid-old]",
        // send-traffic: from inside the cluster first, then the host-side extra check
        "client_pod kyvtel-app/kyvtel-traffic-client",
        "cluster_ip kyvtel-app/demo",
        // leave: the step undoes the intercept now; teardown skips it later.
        "$ telepresence detach demo",
        "restart kyvtel-app/demo",
        "wait DeploymentAvailable kyvtel-app/demo",
        "canary_denied Pod/kyvtel-app/kyvtel-canary",
        "policy_exceptions",
        // teardown, LIFO: host-side undos, then the cluster (nothing inside it is undone first)
        "$ telepresence quit -s",
        "$ kind delete cluster --name kyvtel-documented-recipe --kubeconfig {run}/kubeconfig",
    ]
    .iter()
    .map(|l| b.expand(l))
    .collect();
    assert_eq!(ran.journal, expected);

    // The cluster is deleted: nothing inside it is undone first.
    let deleted = Status::Skipped("the cluster is deleted at the end of the teardown".into());
    assert_eq!(
        r.teardown.iter().map(|t| (t.label.as_str(), &t.status)).collect::<Vec<_>>(),
        vec![
            ("delete the traffic client pod", &deleted),
            ("leave the intercept of demo", &Status::Skipped("already done by a step".into())),
            ("stop the local server", &Status::Passed),
            ("stop the Telepresence daemons", &Status::Passed),
            ("delete workload demo", &deleted),
            ("uninstall the traffic-manager", &deleted),
            ("remove the policies", &deleted),
            ("delete namespace kyvtel-app", &deleted),
            ("uninstall Kyverno", &deleted),
            ("delete the kind cluster", &Status::Passed),
        ]
    );

    // Every command got the run-private environment (issue 4, "Tools").
    let run_dir = b.tmp.run_dir().display().to_string();
    for c in ran.runner.calls() {
        let env = |k: &str| c.env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(env("KUBECONFIG"), Some(format!("{run_dir}/kubeconfig")), "{c}");
        assert_eq!(env("HOME"), Some(format!("{run_dir}/home")), "{c}");
        if c.tool == Tool::Telepresence {
            assert_eq!(env("DEV_TELEPRESENCE_CONFIG_DIR"), Some(format!("{run_dir}/telepresence/config")), "{c}");
            assert_eq!(env("DEV_TELEPRESENCE_LOG_DIR"), Some(format!("{run_dir}/telepresence/logs")), "{c}");
        }
        if matches!(c.tool, Tool::Helm | Tool::Telepresence) {
            assert_eq!(env("HELM_CACHE_HOME"), Some(format!("{run_dir}/helm/cache")), "{c}");
        }
    }
    let config = b.tmp.run_dir().join("telepresence/config/config.yml");
    let config = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{}: {e}", config.display()));
    assert!(config.contains("timeouts:") && config.contains("enabled: false"), "{config}");

    // The local server was stopped by teardown.
    let mut closed = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the server on 127.0.0.1:{port} still answers after teardown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_does_not_reach_the_local_server_fails_send_traffic() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    // Shorten the request limit: the point is the failure message, not the wait.
    for a in b.plan.phases.iter_mut().flat_map(|p| p.actions.iter_mut()) {
        if let Action::Request { timeout, .. } = a {
            *timeout = Duration::from_secs(2);
        }
    }
    // 127.0.0.2 is loopback too, but the server listens on 127.0.0.1 only.
    let api = FakeApi::new();
    api.agent_pod(recipe_pod("2.32.1"));
    api.cluster_ip_is("127.0.0.2");
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, "send-traffic");
    assert!(msg.contains("GET http://127.0.0.2:") && msg.contains("did not return the run token"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// 1: exact command lines per pinned Telepresence version.
// ---------------------------------------------------------------------------------------------

/// Per version: `status` flag (facts.md §4: `--output json` up to 2.28, `--format json` from 2.29),
/// leave verb (`detach` from 2.30), traffic-manager kind (StatefulSet from 2.32), image repository
/// (ghcr.io from 2.20), restart after leave (from 2.22, pods are evicted).
#[rstest]
#[case::pinned_default_2_32_1(
    Tp::Shipped,
    "2.32.1",
    "--format",
    "detach",
    "StatefulSet",
    "ghcr.io/telepresenceio/tel2",
    true
)]
#[case::pinned_2_27_4(
    Tp::Override("2.27.4"),
    "2.27.4",
    "--output",
    "leave",
    "Deployment",
    "ghcr.io/telepresenceio/tel2",
    true
)]
#[case::pinned_2_22_6(
    Tp::Override("2.22.6"),
    "2.22.6",
    "--output",
    "leave",
    "Deployment",
    "ghcr.io/telepresenceio/tel2",
    true
)]
#[case::older_than_every_pin_2_19_1(
    Tp::Unpinned("2.19.1"),
    "2.19.1",
    "--output",
    "leave",
    "Deployment",
    "docker.io/datawire/tel2",
    false
)]
#[tokio::test(flavor = "multi_thread")]
async fn command_lines_follow_the_telepresence_version(
    #[case] tp: Tp,
    #[case] version: &str,
    #[case] status_flag: &str,
    #[case] leave_verb: &str,
    #[case] manager_kind: &str,
    #[case] image_repo: &str,
    #[case] restarts: bool,
) {
    let mut b = recipe(tp);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    api.agent_pod(recipe_pod(version));
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    assert!(ran.result.passed, "{version}: {:?}", statuses(&ran.result));

    let image = format!("{image_repo}:{version}");
    let expected: Vec<String> = [
        "kind create cluster --name kyvtel-documented-recipe --config {repo}/kind-config/default.yaml --image {node} --kubeconfig {run}/kubeconfig --wait 120s".to_string(),
        "kind get kubeconfig --name kyvtel-documented-recipe".into(),
        "docker pull --platform linux/amd64 registry.k8s.io/e2e-test-images/agnhost:2.53".into(),
        "docker save --platform linux/amd64 -o {run}/images/registry.k8s.io_e2e-test-images_agnhost_2.53.tar registry.k8s.io/e2e-test-images/agnhost:2.53".into(),
        "kind load image-archive {run}/images/registry.k8s.io_e2e-test-images_agnhost_2.53.tar --name kyvtel-documented-recipe".into(),
        format!("docker pull --platform linux/amd64 {image}"),
        format!("docker save --platform linux/amd64 -o {{run}}/images/{}.tar {image}", image.replace(['/', ':'], "_")),
        format!("kind load image-archive {{run}}/images/{}.tar --name kyvtel-documented-recipe", image.replace(['/', ':'], "_")),
        "helm install kyverno {tools}/charts/kyverno-3.9.1.tgz -n kyverno --create-namespace --wait --timeout 10m --set backgroundController.enabled=false --set cleanupController.enabled=false".into(),
        format!(
            "telepresence helm install --manager-namespace ambassador --values {{repo}}/scenarios/values/telepresence-agent-security.yaml{}",
            if kyvtel::tools::env::has_usage_key(&kyvtel::scenario::version::Version::parse(version).unwrap()) {
                " --set usage.enabled=false"
            } else {
                ""
            }
        ),
        "telepresence quit -s".into(),
        "sudo -n true".into(),
        "telepresence connect -n kyvtel-app --manager-namespace ambassador".into(),
        format!("telepresence status {status_flag} json"),
        "telepresence intercept demo --port 8080:80 --mount=false".into(),
        format!("telepresence {leave_verb} demo"),
        "telepresence quit -s".into(),
        "kind delete cluster --name kyvtel-documented-recipe --kubeconfig {run}/kubeconfig".into(),
    ]
    .iter()
    .map(|l| b.expand(l))
    .collect();
    assert_eq!(ran.runner.command_lines(), expected, "{version}");

    let waits_for_manager: Vec<&String> =
        ran.journal.iter().filter(|l| l.starts_with("wait TrafficManagerReady")).collect();
    assert_eq!(waits_for_manager, [&format!("wait TrafficManagerReady {manager_kind} ambassador")], "{version}");
    let restarted = ran.journal.iter().any(|l| l == "restart kyvtel-app/demo");
    assert_eq!(restarted, restarts, "{version}: restart after leave");
}

// ---------------------------------------------------------------------------------------------
// 3: a failure injected at each phase.
// ---------------------------------------------------------------------------------------------

/// How a phase is made to fail.
#[derive(Debug, Clone, Copy)]
enum Inject {
    /// The first command of `tool` starting with `prefix` exits 1.
    Command(Tool, &'static [&'static str]),
    /// The `nth` FakeApi call of `method` whose journal line contains `contains` fails.
    Api(usize, &'static str, &'static str),
}

#[rstest]
#[case("create-cluster", Inject::Command(Tool::Kind, &["create", "cluster"]))]
#[case("preload-images", Inject::Command(Tool::Docker, &["pull", "--platform", "linux/amd64", "ghcr.io/telepresenceio/tel2:2.32.1"]))]
#[case("install-kyverno", Inject::Command(Tool::Helm, &["install"]))]
#[case("apply-policies", Inject::Api(1, "apply", "ClusterPolicy/"))]
#[case("install-telepresence", Inject::Command(Tool::Telepresence, &["helm", "install"]))]
#[case("deploy-workload", Inject::Api(1, "apply", "Deployment/demo"))]
#[case("connect", Inject::Command(Tool::Telepresence, &["connect"]))]
#[case("intercept", Inject::Command(Tool::Telepresence, &["intercept"]))]
#[case("send-traffic", Inject::Api(1, "cluster_ip", "kyvtel-app/demo"))]
#[case("leave", Inject::Command(Tool::Telepresence, &["detach"]))]
#[case("assert-still-enforced", Inject::Api(2, "canary_denied", "kyvtel-canary"))]
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_in_a_phase_skips_the_rest_and_undoes_exactly_what_started(
    #[case] phase: &str,
    #[case] inject: Inject,
) {
    let (b, api) = shipped_recipe();
    let runner = RecordingRunner::new();
    let marker = format!("injected failure in {phase}");
    match inject {
        Inject::Command(tool, prefix) => {
            runner.once(tool, prefix, Scripted::fail(1, marker.clone()));
        }
        Inject::Api(n, method, contains) => {
            api.nth(n, method, contains, Fault::Fail(marker.clone()));
        }
    }
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let r = &ran.result;

    assert!(!r.passed && !r.cancelled, "{phase}");
    let at = RECIPE_PHASES.iter().position(|p| *p == phase).expect("known phase");
    for (i, p) in r.phases.iter().enumerate() {
        let want = match i.cmp(&at) {
            std::cmp::Ordering::Less => Status::Passed,
            std::cmp::Ordering::Equal => Status::Failed(String::new()),
            std::cmp::Ordering::Greater => Status::Skipped(format!("{phase} failed")),
        };
        match (&p.status, &want) {
            (Status::Failed(m), Status::Failed(_)) => assert!(m.contains(&marker), "{phase}: {m}"),
            (got, want) => assert_eq!(got, want, "{phase}: phase {} of {:?}", p.name, statuses(r)),
        }
    }
    assert_eq!(r.failure().as_deref().map(|f| f.starts_with(&format!("{phase}: "))), Some(true), "{phase}");

    // Teardown: exactly the undo entries of the started phases, LIFO. A failed `leave` step has
    // not undone the intercept, so teardown leaves it; after a passed `leave`, teardown skips it.
    let done_by_steps: &[usize] = if phase == "assert-still-enforced" { &[8] } else { &[] };
    assert_eq!(after_evidence(&b, &ran.journal), expected_teardown(&b, phase, done_by_steps), "{phase}");
    let gathered = r.evidence.iter().find(|(n, _)| n == "telepresence-gather-logs.command.txt");
    assert!(gathered.is_some_and(|(_, t)| t.starts_with("$ telepresence gather-logs -o ")), "{phase}: {gathered:?}");
    assert!(
        r.teardown.iter().all(|t| !matches!(t.status, Status::Failed(_))),
        "{phase}: teardown failed: {:?}",
        r.teardown
    );

    // Evidence: collected on failure, from the harness namespaces and the manager namespace.
    assert!(!r.evidence.is_empty(), "{phase}: evidence");
    let evidence_call = ran.journal.iter().find(|l| l.starts_with("evidence ")).expect("evidence call");
    assert_eq!(evidence_call, "evidence ambassador,default,kyverno,kyvtel-app manager=ambassador", "{phase}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_telepresence_install_is_cleaned_up_without_hooks_and_only_then() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    let runner = RecordingRunner::new();
    runner.once(Tool::Telepresence, &["helm", "install"], Scripted::fail(1, "Error: pre-delete hook denied"));
    answer_the_rest(&runner);
    // Kept: the release is uninstalled (a deleted cluster needs no uninstall).
    let ran = run(&b.plan, &api, runner, true).await;
    let uninstalls: Vec<String> =
        ran.runner.command_lines().into_iter().filter(|l| l.starts_with("telepresence helm uninstall")).collect();
    assert_eq!(uninstalls, ["telepresence helm uninstall --manager-namespace ambassador --no-hooks"]);
    assert_eq!(teardown_status(&ran.result, "uninstall the traffic-manager"), &Status::Passed);
}

/// problem-no-exclusions on kind: its `uninstallTelepresence` step removes the release without hooks
/// (once: teardown skips it), waits while objects are still going, and fails naming what is left.
#[rstest]
#[case::all_gone_after_a_while(vec![vec!["Service ambassador/agent-injector"], vec![]], None)]
#[case::a_webhook_stays(
    vec![vec!["MutatingWebhookConfiguration agent-injector-webhook-ambassador"]],
    Some("left of release ambassador/traffic-manager: MutatingWebhookConfiguration agent-injector-webhook-ambassador")
)]
#[tokio::test(flavor = "multi_thread")]
async fn uninstall_telepresence_removes_the_release_once_and_proves_nothing_is_left(
    #[case] answers: Vec<Vec<&str>>,
    #[case] failure: Option<&str>,
) {
    let root = common::root();
    let mut b = build_from(&root.join("scenarios/problem-no-exclusions.yaml"), root, Temp::new("no-excl"), None);
    for p in &mut b.plan.phases {
        for a in &mut p.actions {
            if let kyvtel::plan::Action::ReleaseGone { timeout, .. } = a {
                *timeout = Duration::from_secs(2);
            }
        }
    }
    let api = FakeApi::new();
    api.leftovers(&answers);
    let runner = RecordingRunner::new();
    runner.once(
        Tool::Telepresence,
        &["helm", "install"],
        Scripted::fail(
            1,
            common::fake_api::kyverno_denial(
                "StatefulSet/ambassador/traffic-manager",
                &[
                    ("require-security-context", "autogen-require-pod-security-context", "m", "/spec/template/spec/"),
                    (
                        "require-security-context",
                        "autogen-require-security-context-constraints",
                        "m",
                        "/spec/template/spec/",
                    ),
                    ("restrict-image-registries", "autogen-validate-registries", "m", "/spec/template/spec/"),
                ],
            ),
        ),
    );
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, true).await;
    let uninstalls: Vec<String> =
        ran.runner.command_lines().into_iter().filter(|l| l.starts_with("telepresence helm uninstall")).collect();
    assert_eq!(uninstalls, ["telepresence helm uninstall --manager-namespace ambassador --no-hooks"]);
    let checks = ran.journal.iter().filter(|l| l.starts_with("release_leftovers ambassador/traffic-manager")).count();
    match failure {
        None => {
            assert_eq!(
                statuses(&ran.result).iter().find(|(p, _)| p == "uninstall-telepresence").unwrap().1,
                Status::Passed
            );
            assert_eq!(checks, 2, "polled until nothing was left");
        }
        Some(text) => {
            let f = failure_of(&ran.result, "uninstall-telepresence");
            assert!(f.contains(text), "{f}");
            assert!(checks >= 2, "polled until the timeout: {checks}");
        }
    }
    assert_eq!(
        teardown_status(&ran.result, "uninstall the traffic-manager"),
        &Status::Skipped("already done by a step".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_teardown_entry_does_not_stop_the_others() {
    // Kept (the objects are undone): the workload's delete and the traffic-manager's uninstall fail;
    // the policies are still removed, and the verdict stays the run's.
    let (b, api) = shipped_recipe();
    api.once("delete", "Deployment/", Fault::Fail("the workload is stuck".into()));
    let runner = RecordingRunner::new();
    runner.once(
        Tool::Telepresence,
        &["helm", "uninstall"],
        Scripted::fail(1, "Error: uninstall: Release not loaded: traffic-manager: release: not found"),
    );
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, true).await;
    let r = &ran.result;
    assert!(r.passed, "a teardown failure never masks the verdict: {:?}", statuses(r));
    assert!(matches!(teardown_status(r, "delete workload demo"), Status::Failed(m) if m.contains("stuck")));
    let uninstall = teardown_status(r, "uninstall the traffic-manager");
    assert!(matches!(uninstall, Status::Failed(m) if m.contains("release: not found")), "{uninstall:?}");
    assert_eq!(teardown_status(r, "remove the policies"), &Status::Passed);
    assert_eq!(teardown_status(r, "stop the Telepresence daemons"), &Status::Passed);
}

// ---------------------------------------------------------------------------------------------
// 4: waits that succeed, time out and fail.
// ---------------------------------------------------------------------------------------------

#[rstest]
#[case::manager_times_out(
    "install-telepresence",
    "wait",
    "TrafficManagerReady",
    Fault::TimeOut { last_observed: "StatefulSet ambassador/traffic-manager 0/1 ready; pod traffic-manager-0 Pending: ErrImagePull".into() },
    "last observed: StatefulSet ambassador/traffic-manager 0/1 ready; pod traffic-manager-0 Pending: ErrImagePull"
)]
#[case::agent_pod_times_out(
    "intercept",
    "new_agent_pod",
    "kyvtel-app",
    Fault::TimeOut { last_observed: "pod demo-7d9c5b6f4-x2x9q: container traffic-agent not ready (CrashLoopBackOff)".into() },
    "last observed: pod demo-7d9c5b6f4-x2x9q: container traffic-agent not ready (CrashLoopBackOff)"
)]
#[case::policies_fail(
    "apply-policies",
    "wait",
    "PoliciesReady",
    Fault::Fail("ClusterPolicy require-security-context: Ready=False (policy is not ready)".into()),
    "Ready=False (policy is not ready)"
)]
#[case::workload_times_out(
    "deploy-workload",
    "wait",
    "DeploymentAvailable kyvtel-app/demo",
    Fault::TimeOut { last_observed: "Deployment kyvtel-app/demo: Available=False, ReplicaFailure=True (FailedCreate)".into() },
    "last observed: Deployment kyvtel-app/demo: Available=False, ReplicaFailure=True (FailedCreate)"
)]
#[tokio::test(flavor = "multi_thread")]
async fn a_wait_that_times_out_or_fails_names_what_it_saw(
    #[case] phase: &str,
    #[case] method: &'static str,
    #[case] contains: &str,
    #[case] fault: Fault,
    #[case] expected: &str,
) {
    let (b, api) = shipped_recipe();
    api.on(method, contains, fault);
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, phase);
    assert!(msg.contains(expected), "{phase}: {msg}");
    assert_ne!(msg.trim(), "timed out");
    // The waits before it succeeded.
    let at = RECIPE_PHASES.iter().position(|p| *p == phase).expect("phase");
    assert!(ran.result.phases[..at].iter().all(|p| p.status == Status::Passed), "{:?}", statuses(&ran.result));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_times_out_carries_its_last_output() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    let runner = RecordingRunner::new();
    runner.once(
        Tool::Helm,
        &["install"],
        Scripted::Timeout { last_output: "[stderr] client.go: 2 pods not ready: kyverno-admission-controller".into() },
    );
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, "install-kyverno");
    assert!(msg.contains("did not finish within 660s"), "{msg}");
    assert!(msg.contains("2 pods not ready: kyverno-admission-controller"), "{msg}");
}

#[rstest]
#[case::agent_copies_the_app_context("agent-copies-app.yaml", "traffic-agent")]
#[case::no_agent_injected("no-agent.yaml", "traffic-agent")]
#[tokio::test(flavor = "multi_thread")]
async fn the_intercepted_pod_is_judged_against_the_expectations(#[case] pod: &str, #[case] names: &str) {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    api.agent_pod(pod_fixture(pod));
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, "intercept");
    assert!(msg.starts_with("the intercepted pod does not match: ") && msg.contains(names), "{pod}: {msg}");
    assert!(ran.result.checks.iter().any(|c| !c.ok), "{pod}: failed checks are reported");
}

// ---------------------------------------------------------------------------------------------
// 5: keep.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn keep_skips_the_cluster_kyverno_and_namespace_but_undoes_the_rest() {
    let (b, api) = shipped_recipe();
    let runner = answered_runner();
    let ran = run(&b.plan, &api, runner, true).await;
    let r = &ran.result;
    assert!(r.passed, "{:?}", statuses(r));
    let kept = Status::Skipped("kept (--keep/--reuse)".into());
    for label in ["delete the kind cluster", "uninstall Kyverno", "delete namespace kyvtel-app"] {
        assert_eq!(teardown_status(r, label), &kept, "{label}");
    }
    for label in [
        "stop the Telepresence daemons",
        "delete workload demo",
        "uninstall the traffic-manager",
        "remove the policies",
    ] {
        assert_eq!(teardown_status(r, label), &Status::Passed, "{label}");
    }
    let last_phase_call =
        ran.journal.iter().rposition(|l| l == "policy_exceptions").expect("the last phase's last call");
    assert_eq!(
        ran.journal[last_phase_call + 1..],
        [
            "delete Pod/kyvtel-app/kyvtel-traffic-client",
            "$ telepresence quit -s",
            "delete Deployment/kyvtel-app/demo, Service/kyvtel-app/demo",
            "$ telepresence helm uninstall --manager-namespace ambassador --no-hooks",
            "delete ClusterPolicy/require-security-context, ClusterPolicy/restrict-image-registries",
        ]
    );
}

/// When kyvtel deletes the kind cluster at the end, undoing objects inside it first is wasted time
/// and a source of failures (an uninstall whose hook Job is denied): the teardown stops the host-side
/// things (the local server, Telepresence's machine-wide daemons) and deletes the cluster. The
/// traffic-manager is always uninstalled with `--no-hooks` where it is uninstalled: its only hook
/// Job (`uninstall-agents`, docker.io/curlimages/curl; facts.md §4) could be denied by the
/// scenario's policies, and the workload it would clean is deleted before it.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_kyvtel_deletes_is_not_emptied_first() {
    let (b, api) = shipped_recipe();
    let runner = answered_runner();
    let ran = run(&b.plan, &api, runner, false).await;
    let r = &ran.result;
    assert!(r.passed, "{:?}", statuses(r));
    let deleted = Status::Skipped("the cluster is deleted at the end of the teardown".into());
    for label in [
        "delete workload demo",
        "uninstall the traffic-manager",
        "remove the policies",
        "delete namespace kyvtel-app",
        "uninstall Kyverno",
    ] {
        assert_eq!(teardown_status(r, label), &deleted, "{label}");
    }
    for label in ["stop the local server", "stop the Telepresence daemons", "delete the kind cluster"] {
        assert_eq!(teardown_status(r, label), &Status::Passed, "{label}");
    }
    let last_phase_call =
        ran.journal.iter().rposition(|l| l == "policy_exceptions").expect("the last phase's last call");
    assert_eq!(
        ran.journal[last_phase_call + 1..],
        [
            "$ telepresence quit -s".to_string(),
            b.expand("$ kind delete cluster --name kyvtel-documented-recipe --kubeconfig {run}/kubeconfig"),
        ]
    );
    // Kept (--keep/--reuse): the objects are undone, the traffic-manager without hooks.
    let (_, api) = shipped_recipe();
    let ran = run(&b.plan, &api, answered_runner(), true).await;
    let uninstalls: Vec<String> =
        ran.runner.command_lines().into_iter().filter(|l| l.contains("helm uninstall")).collect();
    assert_eq!(uninstalls, ["telepresence helm uninstall --manager-namespace ambassador --no-hooks"]);
}

/// The in-cluster client's answer decides: an answer without the per-run token means the request
/// reached the app, not the intercept, and fails the step even with HTTP 200.
#[tokio::test(flavor = "multi_thread")]
async fn an_in_cluster_answer_without_the_run_token_fails_the_traffic_step() {
    let (mut b, api) = shipped_recipe();
    api.client_answers(&["NOW: 2026-12-03 (the app itself)\nkyvtel-http-status=200\n"]);
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    client_timeout(&mut b.plan, Duration::from_secs(5));
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, "send-traffic");
    assert!(msg.contains("reached the app, not the intercept"), "{msg}");
    let tries = ran.journal.iter().filter(|l| *l == "client_pod kyvtel-app/kyvtel-traffic-client").count();
    assert!(tries >= 2, "an answer without the token is tried again until the limit: {tries}");
}

/// Right after an intercept the Service may still route to the app's old pod for a moment: the
/// client is run again until its answer carries the token.
#[tokio::test(flavor = "multi_thread")]
async fn the_in_cluster_client_is_run_again_until_the_intercept_answers() {
    let (mut b, api) = shipped_recipe();
    let token = format!("kyvtel-token={TOKEN}\nkyvtel-http-status=200\n");
    api.client_answers(&["NOW: the app\nkyvtel-http-status=200\n", &token]);
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    client_timeout(&mut b.plan, Duration::from_secs(20));
    let ran = run(&b.plan, &api, runner, false).await;
    assert!(ran.result.passed, "{:?}", statuses(&ran.result));
    let tries = ran.journal.iter().filter(|l| *l == "client_pod kyvtel-app/kyvtel-traffic-client").count();
    assert_eq!(tries, 2);
}

fn client_timeout(plan: &mut Plan, limit: Duration) {
    for a in plan.phases.iter_mut().flat_map(|p| p.actions.iter_mut()) {
        if let Action::ClientRequest { timeout, .. } = a {
            *timeout = limit;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6: cancellation.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_during_a_wait_fails_that_phase_and_still_tears_down_fully() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    let pending = "wait DeploymentAvailable kyvtel-app/demo";
    api.on("wait", "DeploymentAvailable kyvtel-app/demo", Fault::Stall(Duration::from_secs(30)));
    let runner = Arc::new(RecordingRunner::new());
    answer_the_rest(&runner);
    let (s, tx) = settings(&runner, &api, false);

    let t0 = Instant::now();
    let cancel = async {
        while !api.calls().iter().any(|l| l == pending) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tx.send(true).expect("executor listens");
    };
    let (r, ()) = tokio::join!(execute(&b.plan, &api, &s), cancel);
    assert!(t0.elapsed() < Duration::from_secs(10), "the pending wait was not interrupted: {:?}", t0.elapsed());

    assert!(r.cancelled && !r.passed);
    let msg = failure_of(&r, "deploy-workload");
    assert!(msg.contains("cancelled"), "{msg}");
    let at = RECIPE_PHASES.iter().position(|p| *p == "deploy-workload").expect("phase");
    assert!(r.phases[..at].iter().all(|p| p.status == Status::Passed));
    assert!(r.phases[at + 1..].iter().all(|p| p.status == Status::Skipped("cancelled".into())), "{:?}", statuses(&r));
    assert!(!r.evidence.is_empty());
    let journal = api.calls();
    assert_eq!(after_evidence(&b, &journal), expected_teardown(&b, "deploy-workload", &[]));
    assert!(r.teardown.iter().all(|t| !matches!(t.status, Status::Failed(_))), "{:?}", r.teardown);
}

// ---------------------------------------------------------------------------------------------
// 7: an expected denial.
// ---------------------------------------------------------------------------------------------

fn literal_denial() -> String {
    let denial = kyverno_denial(
        "Pod/kyvtel-app/demo-7d9c5b6f4-x2x9q",
        &[
            (
                "require-security-context",
                "require-security-context-constraints",
                "Every container must set the restricted securityContext",
                "/spec/containers/1/securityContext/allowPrivilegeEscalation/",
            ),
            (
                "restrict-image-registries",
                "validate-registries",
                "Images must come from an allowed registry",
                "/spec/containers/1/image/",
            ),
        ],
    );
    // As a ReplicaSet FailedCreate event carries it (facts.md §3).
    format!("Error creating: {denial}")
}

fn only_the_context_rule() -> String {
    kyverno_denial(
        "Pod/kyvtel-app/demo-7d9c5b6f4-x2x9q",
        &[(
            "require-security-context",
            "require-security-context-constraints",
            "Every container must set the restricted securityContext",
            "/spec/containers/1/securityContext/allowPrivilegeEscalation/",
        )],
    )
}

fn injector_denial() -> String {
    std::fs::read_to_string(common::root().join("tests/fixtures/denials/injector-denied.txt")).expect("fixture")
}

#[rstest]
#[case::kyverno_denial_proves_it(vec![literal_denial()], None)]
#[case::no_denial_only_the_timeout(vec![], Some("no Kyverno denial was found"))]
#[case::another_webhook_denied(vec![injector_denial()], Some("denied by webhook `agent-injector-ambassador.getambassador.io`"))]
#[case::a_rule_is_missing(vec![only_the_context_rule()], Some("expected denial by restrict-image-registries/validate-registries"))]
#[tokio::test(flavor = "multi_thread")]
async fn an_expected_denial_is_proven_from_kyverno_evidence_only(
    #[case] messages: Vec<String>,
    #[case] failure: Option<&str>,
) {
    let b = intercept_denied();
    let api = FakeApi::new();
    api.denial_messages_are(messages);
    let runner = RecordingRunner::new();
    // The intercept itself only times out: that alone never proves a denial.
    runner.once(
        Tool::Telepresence,
        &["intercept"],
        Scripted::Timeout { last_output: "[stdout] Launching Telepresence User Daemon".into() },
    );
    answer_the_rest(&runner);
    // Kept (--keep): the teardown undoes what the steps did inside the cluster.
    let ran = run(&b.plan, &api, runner, true).await;
    let r = &ran.result;
    assert!(ran.journal.iter().any(|l| l == "denial_messages kyvtel-app/demo"), "{:?}", ran.journal);
    match failure {
        None => {
            assert!(r.passed, "{:?}", statuses(r));
            assert_eq!(r.phases.last().map(|p| p.name.as_str()), Some("assert-still-enforced"));
        }
        Some(why) => {
            let msg = failure_of(r, "intercept");
            assert!(msg.contains(why), "{msg}");
            assert_eq!(
                r.phases.last().map(|p| &p.status),
                Some(&Status::Skipped("intercept failed".into())),
                "{:?}",
                statuses(r)
            );
        }
    }
    // The intercept's undo runs in both cases: the ReplicaSet must recover after leave.
    assert!(ran.journal.iter().any(|l| l == "$ telepresence detach demo"));
    assert!(ran.journal.iter().any(|l| l == "restart kyvtel-app/demo"));
    assert!(!ran.journal.iter().any(|l| l.starts_with("$ kind delete cluster")), "kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intercept_that_succeeds_where_a_denial_is_expected_fails() {
    let b = intercept_denied();
    let api = FakeApi::new();
    api.denial_messages_are(vec![literal_denial()]);
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    let msg = failure_of(&ran.result, "intercept");
    assert!(msg.contains("succeeded, but the scenario expects a denial"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_evidence_of_a_failure_includes_the_replicaset_failed_create_messages() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    let denial = literal_denial();
    api.denial_messages_are(vec![denial.clone()]);
    api.on("new_agent_pod", "kyvtel-app", Fault::Fail("no new pod appeared".into()));
    let runner = RecordingRunner::new();
    answer_the_rest(&runner);
    let ran = run(&b.plan, &api, runner, false).await;
    assert!(!ran.result.passed);
    let (_, text) = ran
        .result
        .evidence
        .iter()
        .find(|(name, _)| name == "replicaset-failedcreate.txt")
        .expect("the FailedCreate messages are part of the evidence");
    assert_eq!(text, &denial);
    assert!(ran.journal.iter().any(|l| l == "denial_messages kyvtel-app/demo"), "{:#?}", ran.journal);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panic_inside_the_run_still_tears_everything_down_lifo() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    api.on("wait", "PoliciesReady", Fault::Panic);
    let runner = Arc::new(RecordingRunner::new());
    answer_the_rest(&runner);
    let (s, _tx) = settings(&runner, &api, false);
    let r = kyvtel::run::executor::execute_guarded(&b.plan, &api, &s).await;
    assert!(!r.passed);
    let msg = r.failure().unwrap();
    assert!(msg.contains("kyvtel panicked (injected panic in `wait PoliciesReady"), "{msg}");
    // Every teardown entry was attempted, in LIFO order: the cluster goes last.
    assert_eq!(r.teardown.len(), b.plan.teardown.len());
    assert!(r.teardown.last().unwrap().label.contains("delete the kind cluster"), "{:?}", r.teardown);
    let cmds = runner.command_lines();
    assert!(cmds.last().unwrap().starts_with("kind delete cluster"), "{cmds:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn on_a_cluster_kyvtel_does_not_own_a_failed_install_is_never_uninstalled() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    let api = FakeApi::new();
    let runner = Arc::new(RecordingRunner::new());
    runner.once(
        Tool::Telepresence,
        &["helm", "install"],
        Scripted::fail(1, "Error: INSTALLATION FAILED: cannot re-use a name that is still in use"),
    );
    answer_the_rest(&runner);
    // As on `--provider existing`: the teardown does not delete the cluster.
    b.plan.teardown.iter_mut().for_each(|t| t.deletes_cluster = false);
    let (mut s, _tx) = settings(&runner, &api, false);
    s.owns_cluster = false;
    let r = execute(&b.plan, &api, &s).await;
    assert!(!r.passed);
    let cmds = runner.command_lines();
    assert!(!cmds.iter().any(|l| l.starts_with("telepresence helm uninstall")), "{cmds:#?}");
    let Status::Skipped(why) = teardown_status(&r, "uninstall the traffic-manager") else { panic!("{:?}", r.teardown) };
    assert!(why.contains("left alone on a cluster it does not own"), "{why}");
    // What kyvtel did install (Kyverno, in this plan) is still removed.
    assert!(cmds.iter().any(|l| l.starts_with("helm uninstall kyverno")), "{cmds:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expected_denied_install_is_cleaned_up_without_hooks() {
    let mut b = recipe(Tp::Shipped);
    route_to_loopback(&mut b.plan);
    for p in &mut b.plan.phases {
        for a in &mut p.actions {
            if let Action::Run { command, expect_failure, .. } = a
                && command.args.starts_with(&["helm".to_string(), "install".to_string()])
            {
                *expect_failure = true;
            }
        }
    }
    let api = FakeApi::new();
    let runner = RecordingRunner::new();
    runner.once(Tool::Telepresence, &["helm", "install"], Scripted::fail(1, "denied"));
    answer_the_rest(&runner);
    // Kept: the release is uninstalled (a deleted cluster needs no uninstall).
    let ran = run(&b.plan, &api, runner, true).await;
    let uninstalls: Vec<String> =
        ran.runner.command_lines().into_iter().filter(|l| l.starts_with("telepresence helm uninstall")).collect();
    assert_eq!(uninstalls, ["telepresence helm uninstall --manager-namespace ambassador --no-hooks"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kubeconfig_that_cannot_be_read_fails_create_cluster_and_the_cluster_is_still_deleted() {
    for (answer, why) in [
        (Scripted::fail(1, "ERROR: could not locate any control plane nodes"), "exited with status 1"),
        (Scripted::ok("  \n"), "printed nothing"),
    ] {
        let b = recipe(Tp::Shipped);
        let api = FakeApi::new();
        let runner = RecordingRunner::new();
        runner.on(Tool::Kind, &["get", "kubeconfig"], answer);
        answer_the_rest(&runner);
        let ran = run(&b.plan, &api, runner, false).await;
        let failure = failure_of(&ran.result, "create-cluster");
        assert!(failure.contains("kind get kubeconfig") && failure.contains(why), "{failure}");
        assert!(!b.tmp.run_dir().join("kubeconfig").exists(), "nothing was written as the kubeconfig");
        assert_eq!(after_evidence(&b, &ran.journal), expected_teardown(&b, "create-cluster", &[]));
    }
}

// ---------------------------------------------------------------------------------------------
// 3b: the kind path's fault matrix (doubles): every (phase, fault) and what must hold after it.
// ---------------------------------------------------------------------------------------------

/// A fault on the kind path, injected through the tool and API doubles.
#[derive(Debug, Clone, Copy)]
enum KindFault {
    /// The first `tool` command starting with the prefix exits 1.
    Exits(Tool, &'static [&'static str]),
    /// It runs past its timeout: the runner's timeout error, with the command's last output.
    Hangs(Tool, &'static [&'static str]),
    /// The nth API call of a method whose journal line contains the text fails.
    ApiError(usize, &'static str, &'static str),
    /// That API wait times out, with the last observed state.
    ApiTimesOut(&'static str, &'static str),
    /// Ctrl-C (SIGINT and SIGTERM both raise the run's cancel signal) while the command runs.
    InterruptCommand(Tool, &'static [&'static str]),
    /// Ctrl-C while that API call is pending.
    InterruptApi(&'static str, &'static str),
    /// The API server stops answering: that call fails and so does every later `GET /version`.
    ApiGone(&'static str, &'static str),
}

/// The table: every phase of the kind path has a fault, every kind of fault is in a phase.
const KIND_FAULTS: &[(&str, KindFault)] = {
    use KindFault::*;
    &[
        ("create-cluster", Exits(Tool::Kind, &["create", "cluster"])),
        ("create-cluster", Hangs(Tool::Kind, &["create", "cluster"])),
        ("create-cluster", InterruptCommand(Tool::Kind, &["create", "cluster"])),
        ("preload-images", Exits(Tool::Docker, &["pull"])),
        ("preload-images", Hangs(Tool::Kind, &["load", "image-archive"])),
        ("install-kyverno", Exits(Tool::Helm, &["install"])),
        ("install-kyverno", Hangs(Tool::Helm, &["install"])),
        ("install-kyverno", ApiTimesOut("wait", "DeploymentAvailable kyverno/")),
        ("apply-policies", ApiError(1, "apply", "ClusterPolicy/")),
        ("apply-policies", ApiTimesOut("wait", "PoliciesReady")),
        ("apply-policies", InterruptApi("wait", "PoliciesReady")),
        ("install-telepresence", Exits(Tool::Telepresence, &["helm", "install"])),
        ("install-telepresence", Hangs(Tool::Telepresence, &["helm", "install"])),
        ("install-telepresence", ApiTimesOut("wait", "TrafficManagerReady")),
        ("deploy-workload", ApiError(1, "apply", "Deployment/demo")),
        ("deploy-workload", ApiTimesOut("wait", "DeploymentAvailable kyvtel-app/demo")),
        ("deploy-workload", InterruptApi("wait", "DeploymentAvailable kyvtel-app/demo")),
        ("connect", Exits(Tool::Telepresence, &["connect"])),
        ("connect", Hangs(Tool::Telepresence, &["connect"])),
        ("connect", InterruptCommand(Tool::Telepresence, &["connect"])),
        ("intercept", Exits(Tool::Telepresence, &["intercept"])),
        ("intercept", Hangs(Tool::Telepresence, &["intercept"])),
        ("intercept", ApiTimesOut("new_agent_pod", "kyvtel-app")),
        ("intercept", InterruptCommand(Tool::Telepresence, &["intercept"])),
        ("send-traffic", ApiError(1, "cluster_ip", "kyvtel-app/demo")),
        ("send-traffic", ApiError(1, "client_pod", "kyvtel-traffic-client")),
        ("leave", Exits(Tool::Telepresence, &["detach"])),
        ("assert-still-enforced", ApiError(2, "canary_denied", "kyvtel-canary")),
        ("apply-policies", ApiGone("apply", "ClusterPolicy/")),
        ("deploy-workload", ApiGone("wait", "DeploymentAvailable kyvtel-app/demo")),
        ("intercept", ApiGone("new_agent_pod", "kyvtel-app")),
    ]
};

/// Runs the documented recipe with `fault` injected; `Err` says what did not hold: the phase
/// failed with the fault's cause (exit status, the last output or observed state, or
/// "cancelled"), the ones before passed and the ones after were skipped, evidence was gathered, and
/// the teardown undid exactly what the started phases set up, LIFO, including `telepresence quit
/// -s` whenever connect started, even when connect itself was interrupted.
async fn kind_fault(phase: &str, fault: KindFault) -> Result<(), String> {
    let (b, api) = shipped_recipe();
    let runner = Arc::new(RecordingRunner::new());
    let mut cancel_on: Option<String> = None;
    let slow = || Scripted::Slow {
        after: Duration::from_secs(5),
        output: kyvtel::tools::Output { status: Some(0), stdout: String::new(), stderr: String::new() },
    };
    let cause = match fault {
        KindFault::Exits(tool, prefix) => {
            runner.once(tool, prefix, Scripted::fail(1, "injected: exit 1"));
            "injected: exit 1"
        }
        KindFault::Hangs(tool, prefix) => {
            runner.once(tool, prefix, Scripted::Timeout { last_output: "injected: still waiting".into() });
            "injected: still waiting"
        }
        KindFault::ApiError(n, method, contains) => {
            api.nth(n, method, contains, Fault::Fail("injected: API error".into()));
            "injected: API error"
        }
        KindFault::ApiTimesOut(method, contains) => {
            api.once(method, contains, Fault::TimeOut { last_observed: "injected: last state".into() });
            "injected: last state"
        }
        KindFault::InterruptCommand(tool, prefix) => {
            runner.once(tool, prefix, slow());
            cancel_on = Some(format!("$ {} {}", tool.program(), prefix.join(" ")));
            "cancelled"
        }
        KindFault::ApiGone(method, contains) => {
            api.once(method, contains, Fault::Fail("injected: connection refused".into()));
            api.on("server_version", "", Fault::Fail("connection refused".into()));
            "injected: connection refused"
        }
        KindFault::InterruptApi(method, contains) => {
            api.once(method, contains, Fault::Stall(Duration::from_secs(30)));
            cancel_on = Some(format!("{method} {contains}"));
            "cancelled"
        }
    };
    answer_the_rest(&runner);
    let (s, tx) = settings(&runner, &api, false);
    let interrupt = async {
        if let Some(line) = &cancel_on {
            while !api.calls().iter().any(|l| l.starts_with(line.as_str())) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = tx.send(true);
        }
    };
    let run =
        tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(execute(&b.plan, &api, &s), interrupt).0 });
    let r = run.await.map_err(|_| "the run did not end within 20 s".to_string())?;
    let journal = api.calls();

    let at = RECIPE_PHASES.iter().position(|p| *p == phase).ok_or("unknown phase")?;
    if r.passed {
        return Err("passed".into());
    }
    if r.cancelled != cancel_on.is_some() {
        return Err(format!("cancelled = {}", r.cancelled));
    }
    // An API server that no longer answers is the infrastructure's failure; any other fault here
    // leaves the cluster answering, so the phase's failure is the step's own.
    let gone = matches!(fault, KindFault::ApiGone(..));
    if r.infra != gone {
        return Err(format!("infrastructure failure = {}: {:?}", r.infra, r.failure()));
    }
    if gone && !r.failure().is_some_and(|f| f.contains("infrastructure failure: the API server does not answer")) {
        return Err(format!("not named an infrastructure failure: {:?}", r.failure()));
    }
    // The failure is typed as the fault is: the reports carry its kind.
    let kind = match fault {
        KindFault::Exits(..) => FailureKind::CommandFailed,
        KindFault::Hangs(..) | KindFault::ApiTimesOut(..) => FailureKind::TimedOut,
        KindFault::ApiError(..) => FailureKind::Api,
        KindFault::InterruptCommand(..) | KindFault::InterruptApi(..) => FailureKind::Interrupted,
        KindFault::ApiGone(..) => FailureKind::Infrastructure,
    };
    let failed_kind = r.phases.get(at).and_then(|p| p.failure);
    if failed_kind != Some(kind) {
        return Err(format!("the failure's kind is {failed_kind:?}, not {kind:?}: {:?}", r.failure()));
    }
    let after = if cancel_on.is_some() { "cancelled".to_string() } else { format!("{phase} failed") };
    for (i, p) in r.phases.iter().enumerate() {
        let ok = match i.cmp(&at) {
            std::cmp::Ordering::Less => p.status == Status::Passed,
            std::cmp::Ordering::Equal => matches!(&p.status, Status::Failed(m) if m.contains(cause)),
            std::cmp::Ordering::Greater => p.status == Status::Skipped(after.clone()),
        };
        if !ok {
            return Err(format!("phase {}: {:?}", p.name, p.status));
        }
    }
    if !r.evidence.iter().any(|(n, _)| n == "telepresence-gather-logs.command.txt") {
        return Err("no evidence gathered".into());
    }
    let torn = after_evidence(&b, &journal);
    let want = expected_teardown(&b, phase, &[]);
    if torn != want {
        return Err(format!("teardown {torn:#?}, expected {want:#?}"));
    }
    let connect_started = at >= RECIPE_PHASES.iter().position(|p| *p == "connect").unwrap_or(usize::MAX);
    if connect_started != torn.iter().any(|l| l == "$ telepresence quit -s") {
        return Err(format!("`telepresence quit -s` in the teardown: {}", !connect_started));
    }
    if let Some(failed) = r.teardown.iter().find(|t| matches!(t.status, Status::Failed(_))) {
        return Err(format!("teardown entry failed: {failed:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_kind_path_fault_matrix_fails_the_phase_and_undoes_exactly_what_started() {
    let phases: std::collections::BTreeSet<&str> = KIND_FAULTS.iter().map(|(p, _)| *p).collect();
    assert_eq!(phases.len(), RECIPE_PHASES.len(), "every phase has a fault: {phases:?}");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for (phase, fault) in KIND_FAULTS {
        let t0 = Instant::now();
        let outcome = kind_fault(phase, *fault).await;
        let took = t0.elapsed().as_secs_f64();
        match &outcome {
            Ok(()) => rows.push(format!("| {phase} | {fault:?} | held | {took:.2}s |")),
            Err(e) => {
                rows.push(format!("| {phase} | {fault:?} | FAILED | {took:.2}s |"));
                failures.push(format!("{phase} {fault:?}: {e}"));
            }
        }
    }
    // Straight to stderr, past the test harness's capture: `make test` shows the table too.
    let table = format!(
        "| phase | fault | result | time |\n|---|---|---|---|\n{}\nkind-path fault matrix: {} case(s), {} held\n",
        rows.join("\n"),
        KIND_FAULTS.len(),
        KIND_FAULTS.len() - failures.len()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), table.as_bytes());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Telepresence's machine-wide daemons, doubled: `connect` creates their fixed sockets (under
/// `root`, as the paths the plan checks are moved there) before it answers, and `quit -s` removes
/// them, except `leaves`, a socket a daemon that died hard would leave behind.
struct DaemonDouble {
    inner: Arc<dyn Runner>,
    sockets: Vec<PathBuf>,
    leaves: Option<PathBuf>,
}

impl Runner for DaemonDouble {
    fn run(
        &self,
        cmd: &kyvtel::tools::CommandLine,
        timeout: Duration,
    ) -> Result<kyvtel::tools::Output, kyvtel::tools::RunError> {
        let args: Vec<&str> = cmd.args.iter().map(String::as_str).collect();
        if cmd.tool == Tool::Telepresence && args.first() == Some(&"connect") {
            for s in &self.sockets {
                std::fs::create_dir_all(s.parent().unwrap()).unwrap();
                std::fs::write(s, "").unwrap();
            }
        }
        if cmd.tool == Tool::Telepresence && args == ["quit", "-s"] {
            for s in self.sockets.iter().filter(|s| Some(*s) != self.leaves.as_ref()) {
                let _ = std::fs::remove_file(s);
            }
        }
        self.inner.run(cmd, timeout)
    }
}

/// The daemon sockets a plan checks, moved under `root` (with a 1 s limit); returns them.
fn sockets_under(plan: &mut Plan, root: &Path) -> Vec<PathBuf> {
    let mut moved = Vec::new();
    for t in &mut plan.teardown {
        for a in &mut t.actions {
            if let Action::PathsGone { paths, timeout } = a {
                for p in paths.iter_mut() {
                    *p = root.join(p.strip_prefix("/").unwrap());
                    moved.push(p.clone());
                }
                *timeout = Duration::from_secs(1);
            }
        }
    }
    moved
}

#[rstest]
#[case::connect_interrupted("connect", None, true)]
#[case::intercept_failed("intercept", None, false)]
#[case::a_socket_left_behind("intercept", Some(1), false)]
#[tokio::test(flavor = "multi_thread")]
async fn telepresence_quit_removes_the_daemon_sockets_even_when_connect_was_interrupted(
    #[case] phase: &str,
    #[case] left: Option<usize>,
    #[case] interrupt: bool,
) {
    // Before 2.26.0 the daemons listen on fixed sockets (facts.md §4); the plan checks that they go.
    let mut b = recipe(Tp::Override("2.22.6"));
    route_to_loopback(&mut b.plan);
    let root = Temp::new("daemons");
    let sockets = sockets_under(&mut b.plan, &root.0);
    assert_eq!(sockets.len(), 2, "the plan checks both fixed sockets");
    let api = FakeApi::new();
    let runner = Arc::new(RecordingRunner::new());
    if interrupt {
        let output = kyvtel::tools::Output { status: Some(0), stdout: String::new(), stderr: String::new() };
        runner.once(Tool::Telepresence, &["connect"], Scripted::Slow { after: Duration::from_secs(3), output });
    } else {
        runner.once(Tool::Telepresence, &["intercept"], Scripted::fail(1, "injected: exit 1"));
    }
    answer_the_rest(&runner);
    let (mut s, tx) = settings(&runner, &api, false);
    let leaves = left.map(|i| sockets[i].clone());
    s.runner = Arc::new(DaemonDouble { inner: s.runner.clone(), sockets: sockets.clone(), leaves: leaves.clone() });
    let cancel = async {
        if interrupt {
            while !sockets.iter().all(|p| p.exists()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _ = tx.send(true);
        }
    };
    let r = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(execute(&b.plan, &api, &s), cancel).0 })
        .await
        .expect("the run ends");
    assert!(!r.passed);
    let failed = r.phases.iter().find(|p| !matches!(p.status, Status::Passed | Status::Skipped(_)));
    assert_eq!(failed.map(|p| p.name.as_str()), Some(phase), "{:?}", r.phases);
    let stop = r.teardown.iter().find(|t| t.label == "stop the Telepresence daemons").expect("the teardown stops them");
    let journal = api.calls();
    assert!(journal.iter().any(|l| l == "$ telepresence quit -s"), "{journal:#?}");
    match leaves {
        None => {
            assert_eq!(stop.status, Status::Passed);
            assert!(sockets.iter().all(|p| !p.exists()), "quit -s removed the sockets");
        }
        Some(path) => {
            let why = match &stop.status {
                Status::Failed(why) => why.clone(),
                other => panic!("a socket left behind passed the teardown: {other:?}"),
            };
            assert!(why.contains(&path.display().to_string()) && why.contains("still there"), "{why}");
        }
    }
}
