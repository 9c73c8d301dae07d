//! A recording, scriptable double of [`ClusterApi`] for offline orchestration tests, and a
//! [`Runner`] adapter that writes external commands into the same journal, so that the order of
//! commands and cluster calls can be checked together.
//!
//! Every call is journalled as one line, `<method> <key arguments>`, e.g.
//! `wait TrafficManagerReady StatefulSet ambassador` or `delete Namespace/kyvtel-app`; commands
//! run through a [`JournalRunner`] appear as `$ <command line>`. A [`Fault`] scripted with
//! [`FakeApi::on`] or [`FakeApi::once`] applies to calls whose method matches and whose journal
//! line contains a given text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kyvtel::kube::api::{ApiFailure, ApiResult, ClusterApi};
use kyvtel::plan::WaitFor;
use kyvtel::tools::runner::{RecordingRunner, Scripted};
use kyvtel::tools::{CommandLine, Output, RunError, Runner, Tool};
use serde_json::{Map, Value};

/// The shared, ordered record of cluster calls and commands.
pub type Journal = Arc<Mutex<Vec<String>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a scripted call does instead of answering normally.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fails with this message.
    Fail(String),
    /// Times out; the error carries the last observed state, as the real waits do.
    TimeOut {
        /// What the wait saw last.
        last_observed: String,
    },
    /// Refused by admission with this API status message.
    Deny(String),
    /// Sleeps this long (cancellation can interrupt it), then answers normally.
    Stall(Duration),
    /// Panics (a bug inside a run): teardown must still run.
    Panic,
}

#[derive(Debug)]
struct Rule {
    method: &'static str,
    contains: String,
    fault: Fault,
    skip: usize,
    remaining: Option<usize>,
}

/// A [`ClusterApi`] that records every call and answers from a script.
///
/// Defaults: every apply, delete, wait and restart succeeds; the canary is denied by Kyverno; the
/// workload has one old pod (`uid-old`); the new agent pod is [`FakeApi::agent_pod`]'s value
/// (`{}` unless set); no denial messages; every Service's ClusterIP is `127.0.0.1`; evidence is
/// one `events.txt` file.
#[derive(Debug)]
pub struct FakeApi {
    journal: Journal,
    rules: Mutex<Vec<Rule>>,
    agent_pod: Mutex<Value>,
    denials: Mutex<Vec<String>>,
    cluster_ip: Mutex<String>,
    canary: Mutex<String>,
    fingerprint: Mutex<Option<BTreeMap<String, String>>>,
    client_answers: Mutex<Vec<String>>,
    leftovers: Mutex<Vec<Vec<String>>>,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi {
            journal: Journal::default(),
            rules: Mutex::default(),
            agent_pod: Mutex::new(Value::Object(Map::new())),
            denials: Mutex::default(),
            fingerprint: Mutex::default(),
            client_answers: Mutex::default(),
            leftovers: Mutex::default(),
            cluster_ip: Mutex::new("127.0.0.1".into()),
            canary: Mutex::new(kyverno_denial(
                "Pod/kyvtel-app/kyvtel-canary",
                &[(
                    "require-security-context",
                    "require-pod-security-context",
                    "Pods must set runAsNonRoot",
                    "/spec/securityContext/",
                )],
            )),
        }
    }
}

impl FakeApi {
    /// A double with the defaults described on the type.
    pub fn new() -> Self {
        Self::default()
    }

    /// The journal, to share with a [`JournalRunner`].
    pub fn journal(&self) -> Journal {
        self.journal.clone()
    }

    /// Every journal line so far (cluster calls and journalled commands), in order.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.journal).clone()
    }

    /// Applies `fault` to every call of `method` whose journal line contains `contains`.
    pub fn on(&self, method: &'static str, contains: &str, fault: Fault) -> &Self {
        lock(&self.rules).push(Rule { method, contains: contains.into(), fault, skip: 0, remaining: None });
        self
    }

    /// As [`FakeApi::on`], for the next matching call only.
    pub fn once(&self, method: &'static str, contains: &str, fault: Fault) -> &Self {
        self.nth(1, method, contains, fault)
    }

    /// As [`FakeApi::on`], for the `n`-th (1-based) matching call only.
    pub fn nth(&self, n: usize, method: &'static str, contains: &str, fault: Fault) -> &Self {
        let skip = n.saturating_sub(1);
        lock(&self.rules).push(Rule { method, contains: contains.into(), fault, skip, remaining: Some(1) });
        self
    }

    /// What `release_leftovers` answers, one list per call in order; the last one repeats (none
    /// when unscripted).
    pub fn leftovers(&self, answers: &[Vec<&str>]) -> &Self {
        *lock(&self.leftovers) = answers.iter().map(|a| a.iter().map(|s| s.to_string()).collect()).collect();
        self
    }

    /// The pod `new_agent_pod` returns.
    pub fn agent_pod(&self, pod: Value) -> &Self {
        *lock(&self.agent_pod) = pod;
        self
    }

    /// The texts `denial_messages` returns.
    pub fn denial_messages_are(&self, texts: Vec<String>) -> &Self {
        *lock(&self.denials) = texts;
        self
    }

    /// What the client pod's log says (`run_client_pod`), run after run (the last one repeats);
    /// unset, the double makes the client's request itself (the URL is the last word of the pod's
    /// command) and logs what it got.
    pub fn client_answers(&self, logs: &[&str]) -> &Self {
        *lock(&self.client_answers) = logs.iter().map(|l| (*l).to_string()).collect();
        self
    }

    /// The address `cluster_ip` returns for every Service.
    pub fn cluster_ip_is(&self, ip: &str) -> &Self {
        *lock(&self.cluster_ip) = ip.into();
        self
    }

    /// What `read_fingerprint` answers (`None`: the cluster has no fingerprint).
    pub fn fingerprint_is(&self, entries: Option<BTreeMap<String, String>>) -> &Self {
        *lock(&self.fingerprint) = entries;
        self
    }

    /// The text `canary_denied` returns.
    pub fn canary_text(&self, text: impl Into<String>) -> &Self {
        *lock(&self.canary) = text.into();
        self
    }

    /// Journals the call and returns the fault scripted for it, if any.
    fn record(&self, method: &'static str, args: String) -> (String, Option<Fault>) {
        let line = if args.is_empty() { method.to_string() } else { format!("{method} {args}") };
        lock(&self.journal).push(line.clone());
        let mut rules = lock(&self.rules);
        for r in rules.iter_mut() {
            if r.method != method || r.remaining == Some(0) || !line.contains(&r.contains) {
                continue;
            }
            if r.skip > 0 {
                r.skip -= 1;
                continue;
            }
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            return (line, Some(r.fault.clone()));
        }
        (line, None)
    }

    /// Records the call, applies its fault (if any), or answers `ok`.
    async fn call<T>(
        &self,
        method: &'static str,
        args: String,
        timeout: Duration,
        ok: impl FnOnce() -> T,
    ) -> ApiResult<T> {
        let (line, fault) = self.record(method, args);
        match fault {
            None => Ok(ok()),
            Some(Fault::Fail(m)) => Err(ApiFailure::new(m)),
            Some(Fault::Deny(m)) => Err(ApiFailure::denied(m)),
            Some(Fault::TimeOut { last_observed }) => Err(ApiFailure::timed_out(format!(
                "timed out after {timeout:?} waiting for `{line}`; last observed: {last_observed}"
            ))),
            Some(Fault::Panic) => panic!("injected panic in `{line}`"),
            Some(Fault::Stall(d)) => {
                tokio::time::sleep(d).await;
                Ok(ok())
            }
        }
    }
}

/// `Kind/namespace/name` (or `Kind/name`) of an object or object reference.
fn object_id(o: &Value) -> String {
    let kind = o["kind"].as_str().unwrap_or("?");
    let name = o["name"].as_str().or_else(|| o["metadata"]["name"].as_str()).unwrap_or("?");
    match o["namespace"].as_str().or_else(|| o["metadata"]["namespace"].as_str()) {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

fn ids(objects: &[Value]) -> String {
    objects.iter().map(object_id).collect::<Vec<_>>().join(", ")
}

fn labels(selector: &Map<String, Value>) -> String {
    selector.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
}

/// The journal line arguments of a wait.
pub fn describe_wait(until: &WaitFor) -> String {
    match until {
        WaitFor::DeploymentAvailable { namespace, name } => format!("DeploymentAvailable {namespace}/{name}"),
        WaitFor::TrafficManagerReady { namespace, workload_kind } => {
            format!("TrafficManagerReady {workload_kind} {namespace}")
        }
        WaitFor::PoliciesReady { names } => format!("PoliciesReady {}", names.join(",")),
        WaitFor::NewAgentPod { namespace, selector } => format!("NewAgentPod {namespace} {}", labels(selector)),
        WaitFor::InjectedPod { namespace, selector, container } => {
            format!("InjectedPod {namespace} {} {container}", labels(selector))
        }
        WaitFor::ContainerFailure { namespace, selector, failure } => {
            format!("ContainerFailure {namespace} {} {} {}", labels(selector), failure.container, failure.reason)
        }
    }
}

impl ClusterApi for FakeApi {
    async fn apply(&self, objects: &[Value], namespace: Option<&str>, timeout: Duration) -> ApiResult<()> {
        let ns = namespace.map(|n| format!(" in {n}")).unwrap_or_default();
        self.call("apply", format!("{}{ns}", ids(objects)), timeout, || ()).await
    }

    async fn delete(&self, refs: &[Value], timeout: Duration) -> ApiResult<()> {
        self.call("delete", ids(refs), timeout, || ()).await
    }

    async fn wait(&self, until: &WaitFor, timeout: Duration) -> ApiResult<()> {
        self.call("wait", describe_wait(until), timeout, || ()).await
    }

    async fn release_leftovers(&self, name: &str, namespace: &str, webhook_prefix: &str) -> ApiResult<Vec<String>> {
        let answer = {
            let mut l = lock(&self.leftovers);
            if l.len() > 1 { l.remove(0) } else { l.first().cloned().unwrap_or_default() }
        };
        let key = format!("{namespace}/{name} {webhook_prefix}*");
        self.call("release_leftovers", key, Duration::from_secs(30), || answer).await
    }

    async fn policy_exceptions(&self) -> ApiResult<Vec<String>> {
        self.call("policy_exceptions", String::new(), Duration::from_secs(30), Vec::new).await
    }

    async fn canary_denied(&self, pod: &Value, timeout: Duration) -> ApiResult<String> {
        let text = lock(&self.canary).clone();
        self.call("canary_denied", object_id(pod), timeout, || text).await
    }

    async fn pod_uids(&self, namespace: &str, selector: &Map<String, Value>) -> ApiResult<BTreeSet<String>> {
        let args = format!("{namespace} {}", labels(selector));
        self.call("pod_uids", args, Duration::ZERO, || BTreeSet::from(["uid-old".to_string()])).await
    }

    async fn new_agent_pod(
        &self,
        namespace: &str,
        selector: &Map<String, Value>,
        old: &BTreeSet<String>,
        timeout: Duration,
    ) -> ApiResult<Value> {
        let old: Vec<&str> = old.iter().map(String::as_str).collect();
        let args = format!("{namespace} {} old=[{}]", labels(selector), old.join(","));
        let pod = lock(&self.agent_pod).clone();
        self.call("new_agent_pod", args, timeout, || pod).await
    }

    async fn denial_messages(&self, namespace: &str, deployment: &str) -> ApiResult<Vec<String>> {
        let texts = lock(&self.denials).clone();
        self.call("denial_messages", format!("{namespace}/{deployment}"), Duration::ZERO, || texts).await
    }

    async fn restart(&self, namespace: &str, deployment: &str) -> ApiResult<()> {
        self.call("restart", format!("{namespace}/{deployment}"), Duration::ZERO, || ()).await
    }

    async fn run_client_pod(&self, pod: &Value, timeout: Duration) -> ApiResult<String> {
        let id = format!(
            "{}/{}",
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default()
        );
        self.call("client_pod", id, timeout, || ()).await?;
        {
            let mut answers = lock(&self.client_answers);
            if answers.len() > 1 {
                return Ok(answers.remove(0));
            }
            if let Some(last) = answers.first() {
                return Ok(last.clone());
            }
        }
        let url = pod.pointer("/spec/containers/0/command").and_then(Value::as_array).and_then(|c| c.last());
        let url = url.and_then(Value::as_str).unwrap_or_default().to_string();
        kyvtel::run::traffic::client_log_of(&url, timeout.min(Duration::from_secs(10))).await.map_err(ApiFailure::new)
    }

    async fn cluster_ip(&self, namespace: &str, service: &str) -> ApiResult<String> {
        let ip = lock(&self.cluster_ip).clone();
        self.call("cluster_ip", format!("{namespace}/{service}"), Duration::ZERO, || ip).await
    }

    async fn server_version(&self) -> ApiResult<String> {
        self.call("server_version", String::new(), Duration::from_secs(30), || "v1.35.8".to_string()).await
    }

    async fn read_fingerprint(&self) -> ApiResult<Option<BTreeMap<String, String>>> {
        let found = lock(&self.fingerprint).clone();
        self.call("read_fingerprint", String::new(), Duration::from_secs(30), || found).await
    }

    async fn write_fingerprint(&self, entries: &BTreeMap<String, String>) -> ApiResult<()> {
        let shown = entries.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        self.call("write_fingerprint", shown, Duration::from_secs(30), || ()).await?;
        *lock(&self.fingerprint) = Some(entries.clone());
        Ok(())
    }

    async fn evidence(&self, namespaces: &[String], manager_namespace: &str) -> Vec<(String, String)> {
        let args = format!("{} manager={manager_namespace}", namespaces.join(","));
        let files = vec![("events.txt".to_string(), format!("events of {}", namespaces.join(", ")))];
        // A fault here has no error to return; only a stall applies.
        self.call("evidence", args, Duration::ZERO, || files.clone()).await.unwrap_or(files)
    }
}

/// A [`Runner`] that journals each command as `$ <command line>` and delegates to `inner`
/// (typically a [`kyvtel::tools::runner::RecordingRunner`]).
pub struct JournalRunner<R> {
    /// The runner that answers.
    pub inner: Arc<R>,
    journal: Journal,
}

impl<R> JournalRunner<R> {
    /// Journals into `journal` (see [`FakeApi::journal`]).
    pub fn new(inner: Arc<R>, journal: Journal) -> Self {
        JournalRunner { inner, journal }
    }
}

impl<R: Runner> Runner for JournalRunner<R> {
    fn run(&self, cmd: &CommandLine, timeout: Duration) -> Result<Output, RunError> {
        lock(&self.journal).push(format!("$ {cmd}"));
        self.inner.run(cmd, timeout)
    }
}

/// A Kyverno denial in the exact shape of facts.md §3 (trailing spaces after `request:` and
/// `policies`; the policy list is YAML with policies and rules sorted).
///
/// `violations` are `(policy, rule, message, path)`.
pub fn kyverno_denial(resource: &str, violations: &[(&str, &str, &str, &str)]) -> String {
    let mut by_policy: BTreeMap<&str, BTreeMap<&str, String>> = BTreeMap::new();
    for (policy, rule, message, path) in violations {
        by_policy
            .entry(policy)
            .or_default()
            .insert(rule, format!("'validation error: {message}. rule {rule} failed at path {path}'"));
    }
    let mut s = format!(
        "admission webhook \"validate.kyverno.svc-fail\" denied the request: \n\nresource {resource} was blocked due to the following policies \n\n"
    );
    for (policy, rules) in by_policy {
        s.push_str(&format!("{policy}:\n"));
        for (rule, text) in rules {
            s.push_str(&format!("  {rule}: {text}\n"));
        }
    }
    s
}

/// What the fake `kind get kubeconfig` prints.
pub const FAKE_KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters: []\n# fake kind get kubeconfig\n";

/// Answers every command of the tools a plan uses with success. Call after adding failure rules
/// (rules match in the order they were added).
pub fn answer_the_rest(r: &RecordingRunner) {
    r.on(Tool::Kind, &["get", "kubeconfig"], Scripted::ok(FAKE_KUBECONFIG));
    for tool in [Tool::Kind, Tool::Helm, Tool::Telepresence, Tool::Docker, Tool::Sudo] {
        r.on(tool, &[], Scripted::ok(""));
    }
}
