//! The real [`ClusterApi`]: every cluster operation of a run, on top of the Kubernetes layer
//! ([`crate::kube`]).
//!
//! The cluster usually does not exist when a run starts (the plan's create-cluster phase writes the
//! run's kubeconfig), so [`KubeApi::new`] only remembers where the kubeconfig will be and connects on
//! first use. A connection failure is an [`ApiFailure`] of the call that needed it, and is retried by
//! the next call.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use ::kube::api::{Api, DynamicObject, Patch, PatchParams};
use ::kube::core::GroupVersionKind;
use ::kube::discovery::{Discovery, Scope};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::{Map, Value, json};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::kube::api::{ApiFailure, ApiResult, ClusterApi};
use crate::kube::apply::{self, AppliedRef, ApplyOptions, ApplyReport};
use crate::kube::dry_run::{self, Denial};
use crate::kube::ownership::Owner;
use crate::kube::{FIELD_MANAGER, KubeError, WorkloadRef, client_for, denials, evidence, rfc3339, wait};
use crate::names::kyverno::POLICY_WEBHOOK;
use crate::names::telepresence::TRAFFIC_MANAGER;
use crate::plan::WaitFor;

/// The pod-template annotation `kubectl rollout restart` sets to the current time.
// upstream: kubernetes/kubectl pkg/polymorphichelpers/objectrestarter.go@v0.36.3 (appsv1.Deployment case)
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";
/// Time limit of a single call that has none of its own (reads, patches, deletes).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between polls (canary dry-runs, pod lists, apply retries).
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Where the client comes from.
#[derive(Debug, Clone)]
enum Source {
    /// A kubeconfig file (and context), read on first use.
    Kubeconfig { path: PathBuf, context: Option<String> },
    /// A client given up front ([`KubeApi::with_client`]).
    Given,
}

/// [`ClusterApi`] over kube-rs, connecting lazily.
pub struct KubeApi {
    source: Source,
    client: OnceCell<::kube::Client>,
    owner: Owner,
    poll_interval: Duration,
    call_timeout: Duration,
}

impl KubeApi {
    /// An API that connects through `kubeconfig` (and `context`) on first use, and labels what it
    /// applies with `owner`.
    #[must_use]
    pub fn new(kubeconfig: PathBuf, context: Option<String>, owner: Owner) -> Self {
        KubeApi {
            source: Source::Kubeconfig { path: kubeconfig, context },
            client: OnceCell::new(),
            owner,
            poll_interval: POLL_INTERVAL,
            call_timeout: CALL_TIMEOUT,
        }
    }

    /// An API over an existing client (e.g. the tower-test mock).
    #[must_use]
    pub fn with_client(client: ::kube::Client, owner: Owner) -> Self {
        KubeApi {
            source: Source::Given,
            client: OnceCell::new_with(Some(client)),
            owner,
            poll_interval: POLL_INTERVAL,
            call_timeout: CALL_TIMEOUT,
        }
    }

    /// The same API with another pause between polls (default [`POLL_INTERVAL`]).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The same API with another limit for single calls (default [`CALL_TIMEOUT`]).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The client, connecting on first use.
    async fn client(&self) -> ApiResult<&::kube::Client> {
        self.client
            .get_or_try_init(|| async {
                match &self.source {
                    Source::Kubeconfig { path, context } => {
                        if !path.exists() {
                            return Err(ApiFailure::new(format!(
                                "cannot connect to the cluster: kubeconfig {} does not exist (it is written when \
                                 the cluster is created)",
                                path.display()
                            )));
                        }
                        client_for(path, context.as_deref())
                            .await
                            .map_err(|e| ApiFailure::unreachable(format!("cannot connect to the cluster: {e}")))
                    }
                    Source::Given => Err(ApiFailure::new("no Kubernetes client was given")),
                }
            })
            .await
    }

    /// Runs one call under [`Self::call_timeout`].
    async fn bounded<T>(&self, what: &str, call: impl Future<Output = ApiResult<T>>) -> ApiResult<T> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .unwrap_or_else(|_| Err(ApiFailure::new(format!("{what}: no answer within {:?}", self.call_timeout))))
    }

    /// Resolves delete refs to resources with discovery. A kind the server no longer serves (its CRD is
    /// gone) has no objects left, so its refs are dropped.
    async fn resolve(&self, client: &::kube::Client, refs: &[Value]) -> ApiResult<Vec<AppliedRef>> {
        let parsed = refs.iter().map(parse_ref).collect::<ApiResult<Vec<_>>>()?;
        let discovery = Discovery::new(client.clone())
            .run_aggregated()
            .await
            .map_err(|e| ApiFailure::new(KubeError::api("API discovery", e).to_string()))?;
        let mut out = Vec::new();
        for (gvk, name, namespace) in parsed {
            let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
                tracing::info!("delete {}/{name}: the server does not serve this kind any more", gvk.kind);
                continue;
            };
            let namespace = match caps.scope {
                Scope::Namespaced => Some(namespace.ok_or_else(|| {
                    ApiFailure::new(format!("delete {}/{name}: a namespaced object needs a namespace", gvk.kind))
                })?),
                Scope::Cluster => None,
            };
            out.push(AppliedRef { resource, namespace, name });
        }
        Ok(out)
    }

    /// Keeps the targets that are kyvtel's (labelled `app.kubernetes.io/managed-by=kyvtel`) or
    /// already gone. Anything else is left alone: an existing cluster's own namespace or policy of
    /// the same name is never deleted.
    async fn owned_only(&self, client: &::kube::Client, targets: Vec<AppliedRef>) -> ApiResult<Vec<AppliedRef>> {
        let mut out = Vec::new();
        for t in targets {
            let api: Api<DynamicObject> = match &t.namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &t.resource),
                None => Api::all_with(client.clone(), &t.resource),
            };
            match api.get_opt(&t.name).await {
                Ok(Some(obj)) if crate::kube::ownership::is_owned(&obj.metadata) => out.push(t),
                Ok(Some(_)) => tracing::warn!("not deleting {t}: it is not labelled as kyvtel's"),
                Ok(None) => {}
                Err(e) => return Err(ApiFailure::new(format!("read {t} before deleting it: {e}"))),
            }
        }
        Ok(out)
    }

    /// Waits until every target is gone, sharing one deadline; reports the last observed state.
    /// Deletes the objects of `refs` that kyvtel owns; returns them (not waited for).
    async fn start_delete(&self, client: &::kube::Client, refs: &[Value]) -> ApiResult<Vec<AppliedRef>> {
        let resolved = self.bounded("delete", self.resolve(client, refs)).await?;
        let targets = self.bounded("delete", self.owned_only(client, resolved)).await?;
        self.bounded("delete", async { apply::delete(client, &targets).await.map_err(failure) }).await?;
        Ok(targets)
    }

    async fn await_gone(&self, client: &::kube::Client, targets: &[AppliedRef], timeout: Duration) -> ApiResult<()> {
        let deadline = crate::duration::tokio_deadline(timeout);
        for target in targets.iter().rev() {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = if target.resource.group.is_empty() && target.resource.kind == "Namespace" {
                wait::namespace_gone(client, &target.name, left).await
            } else {
                let api: Api<DynamicObject> = match &target.namespace {
                    Some(ns) => Api::namespaced_with(client.clone(), ns, &target.resource),
                    None => Api::all_with(client.clone(), &target.resource),
                };
                let what = format!("{target} to be deleted");
                wait::wait_for(api, &target.name, &what, left, wait::conditions::gone(), wait::never).await.map(drop)
            };
            result.map_err(failure)?;
        }
        Ok(())
    }
}

/// A kube-layer error as an [`ApiFailure`] of its kind: its text carries the context and, for waits,
/// the last observed state.
fn failure(e: KubeError) -> ApiFailure {
    let message = e.to_string();
    match e {
        KubeError::TimedOut { .. } => ApiFailure::timed_out(message),
        _ if e.is_unreachable() => ApiFailure::unreachable(message),
        _ => ApiFailure::new(message),
    }
}

/// An apply error: a refusal by an admission webhook becomes a denial carrying the API status
/// message (the executor parses it as a Kyverno denial); anything else is a plain failure.
fn apply_failure(e: KubeError) -> ApiFailure {
    let refusal = e.status().filter(|s| (400..500).contains(&s.code)).map(|s| Denial {
        code: s.code,
        reason: s.reason.clone(),
        message: s.message.clone(),
    });
    match refusal {
        // A webhook's denial, or Pod Security Admission's (built into the API server).
        Some(denial) if denial.webhook().is_some() || denial.message.contains("violates PodSecurity") => {
            ApiFailure::denied(denial.message)
        }
        _ => failure(e),
    }
}

/// `{apiVersion, kind, name, namespace?}` (as `plan::build` writes delete refs).
fn parse_ref(r: &Value) -> ApiResult<(GroupVersionKind, String, Option<String>)> {
    let field = |k: &str| r.get(k).and_then(Value::as_str);
    let (Some(api_version), Some(kind), Some(name)) = (field("apiVersion"), field("kind"), field("name")) else {
        return Err(ApiFailure::new(format!("delete: {r} is not a reference with apiVersion, kind and name")));
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok((GroupVersionKind::gvk(group, version, kind), name.to_string(), field("namespace").map(str::to_string)))
}

/// A matchLabels map as a label selector, `k=v,k2=v2`.
///
/// # Errors
/// When the map is empty (it would select every pod) or a value is not a string.
pub fn label_selector(labels: &Map<String, Value>) -> ApiResult<String> {
    if labels.is_empty() {
        return Err(ApiFailure::new("the pod selector is empty; it would select every pod in the namespace"));
    }
    let parts = labels
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(v) => Ok(format!("{k}={v}")),
            None => Err(ApiFailure::new(format!("pod selector label {k} has a non-string value {v}"))),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(parts.join(","))
}

/// The merge patch `kubectl rollout restart` amounts to for a Deployment: the pod-template annotation
/// [`RESTARTED_AT`] set to `now` in RFC 3339. (kubectl computes a strategic merge patch from the
/// annotated object; for one map key the merge patch is the same change.)
// upstream: kubernetes/kubectl pkg/polymorphichelpers/objectrestarter.go@v0.36.3 (time.Now().Format(time.RFC3339))
// upstream: kubernetes/kubectl pkg/cmd/rollout/rollout_restart.go@v0.36.3 (patches spec.template through the API)
#[must_use]
pub fn restart_patch(now: k8s_openapi::jiff::Timestamp) -> Value {
    json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: rfc3339(now)}}}}})
}

/// Splits `objects` into runs of consecutive objects that go into the same namespace: `namespace` if
/// given, else the object's own `metadata.namespace`, else `default_ns`. (Cluster-scoped objects ignore
/// it; [`apply::apply`] drops their namespace.)
fn by_namespace<'o>(objects: &'o [Value], namespace: Option<&str>, default_ns: &str) -> Vec<(String, &'o [Value])> {
    let target = |o: &Value| {
        namespace.or_else(|| o.pointer("/metadata/namespace").and_then(Value::as_str)).unwrap_or(default_ns).to_string()
    };
    let mut groups: Vec<(String, &'o [Value])> = Vec::new();
    let mut start = 0;
    for i in 1..=objects.len() {
        if i == objects.len() || target(&objects[i]) != target(&objects[start]) {
            groups.push((target(&objects[start]), &objects[start..i]));
            start = i;
        }
    }
    groups
}

impl KubeApi {
    /// Server-side applies `objects`, or (`dry_run`) asks for their admission only.
    async fn apply_or_dry_run(
        &self,
        objects: &[Value],
        namespace: Option<&str>,
        timeout: Duration,
        dry_run: bool,
    ) -> ApiResult<()> {
        let client = self.client().await?;

        // Never take over what kyvtel does not own (an existing cluster's policies or namespaces).
        let named = |kind: &str| -> Vec<&str> {
            objects.iter().filter(|o| o["kind"] == kind).filter_map(|o| o["metadata"]["name"].as_str()).collect()
        };
        let (policies, namespaces) = (named("ClusterPolicy"), named("Namespace"));
        if !policies.is_empty() && !dry_run {
            self.bounded("apply", async {
                crate::kube::ownership::ensure_policies_replaceable(client, &policies).await.map_err(failure)
            })
            .await?;
        }
        if !namespaces.is_empty() && !dry_run {
            self.bounded("apply", async {
                crate::kube::ownership::ensure_namespaces_ownable(client, &namespaces).await.map_err(failure)
            })
            .await?;
        }
        let deadline = crate::duration::tokio_deadline(timeout);
        for (ns, docs) in by_namespace(objects, namespace, client.default_namespace()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let options = ApplyOptions {
                namespace: ns,
                owner: self.owner.clone(),
                timeout: left,
                retry_interval: self.poll_interval,
                dry_run,
            };
            let mut report = ApplyReport::default();
            // The kube layer's deadline covers its retries; this one also bounds a call that hangs.
            let result =
                tokio::time::timeout(left + self.call_timeout, apply::apply(client, docs, &options, &mut report))
                    .await
                    .unwrap_or_else(|_| {
                        Err(KubeError::TimedOut {
                            what: "the API server to accept the objects".into(),
                            timeout: left,
                            last_observed: format!("applied {} of {}", report.applied.len(), docs.len()),
                        })
                    });
            for w in &report.warnings {
                tracing::warn!("{w}");
            }
            result.map_err(apply_failure)?;
        }
        Ok(())
    }
}

impl ClusterApi for KubeApi {
    async fn apply(&self, objects: &[Value], namespace: Option<&str>, timeout: Duration) -> ApiResult<()> {
        self.apply_or_dry_run(objects, namespace, timeout, false).await
    }

    async fn dry_run_create(&self, objects: &[Value], namespace: &str, timeout: Duration) -> ApiResult<()> {
        self.apply_or_dry_run(objects, Some(namespace), timeout, true).await
    }

    async fn delete(&self, refs: &[Value], timeout: Duration) -> ApiResult<()> {
        let client = self.client().await?;
        let targets = self.start_delete(client, refs).await?;
        self.await_gone(client, &targets, timeout).await
    }

    async fn delete_started(&self, refs: &[Value]) -> ApiResult<()> {
        self.start_delete(self.client().await?, refs).await.map(drop)
    }

    async fn wait(&self, until: &WaitFor, timeout: Duration) -> ApiResult<()> {
        let client = self.client().await?;
        match until {
            WaitFor::DeploymentAvailable { namespace, name } => {
                wait::deployment_available(client, namespace, name, timeout).await.map(drop).map_err(failure)
            }
            WaitFor::TrafficManagerReady { namespace, workload_kind } => {
                let workload = match workload_kind.as_str() {
                    crate::names::kind::DEPLOYMENT => WorkloadRef::deployment(namespace, TRAFFIC_MANAGER),
                    crate::names::kind::STATEFUL_SET => WorkloadRef::statefulset(namespace, TRAFFIC_MANAGER),
                    other => {
                        return Err(ApiFailure::new(format!(
                            "unknown traffic-manager workload kind `{other}` (expected Deployment or StatefulSet)"
                        )));
                    }
                };
                wait::workload_ready(client, &workload, timeout).await.map_err(failure)
            }
            WaitFor::PoliciesReady { names } => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                wait::cluster_policies_ready(client, &names, timeout).await.map_err(failure)
            }
            WaitFor::InjectedPod { .. } => {
                Err(ApiFailure::new("waiting for an injected pod returns the pod (injected_pod)"))
            }
            WaitFor::ContainerFailure { .. } => {
                Err(ApiFailure::new("internal: container failures are judged by the executor, not by wait()"))
            }
            WaitFor::NewAgentPod { .. } => Err(ApiFailure::new(
                "waiting for a new agent pod needs the pods recorded before the intercept (new_agent_pod)",
            )),
        }
    }

    async fn canary_denied(&self, pod: &Value, timeout: Duration) -> ApiResult<String> {
        let client = self.client().await?;
        let namespace = pod
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiFailure::new("the canary Pod has no metadata.namespace"))?;
        dry_run::await_denial(client, namespace, pod, POLICY_WEBHOOK, timeout, self.poll_interval)
            .await
            .map(|denial| denial.message)
            .map_err(failure)
    }

    async fn pod_uids(&self, namespace: &str, selector: &Map<String, Value>) -> ApiResult<BTreeSet<String>> {
        let selector = label_selector(selector)?;
        let client = self.client().await?;
        self.bounded("list pods", async { wait::pod_uids(client, namespace, &selector).await.map_err(failure) }).await
    }

    async fn new_agent_pod(
        &self,
        namespace: &str,
        selector: &Map<String, Value>,
        old: &BTreeSet<String>,
        timeout: Duration,
    ) -> ApiResult<Value> {
        let selector = label_selector(selector)?;
        let client = self.client().await?;
        let pod = wait::new_pod_with_ready_agent(client, namespace, &selector, old, timeout, self.poll_interval)
            .await
            .map_err(failure)?;
        serde_json::to_value(&pod).map_err(|e| ApiFailure::new(format!("serialize the new agent pod: {e}")))
    }

    async fn denial_messages(&self, namespace: &str, deployment: &str) -> ApiResult<Vec<String>> {
        let client = self.client().await?;
        let workload = WorkloadRef::deployment(namespace, deployment);
        let found =
            self.bounded("read denials", async { denials::gather(client, &workload).await.map_err(failure) }).await?;
        Ok(found.into_iter().map(|d| d.message).collect())
    }

    async fn restart(&self, namespace: &str, deployment: &str) -> ApiResult<()> {
        let client = self.client().await?;
        let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_string()), ..PatchParams::default() };
        let patch = restart_patch(k8s_openapi::jiff::Timestamp::now());
        let what = format!("restart deployment {namespace}/{deployment}");
        self.bounded(&what, async {
            api.patch(deployment, &params, &Patch::Merge(&patch))
                .await
                .map(drop)
                .map_err(|e| failure(KubeError::api(what.clone(), e)))
        })
        .await
    }

    async fn run_client_pod(&self, pod: &Value, timeout: Duration) -> ApiResult<String> {
        let client = self.client().await?;
        // The run's labels: the teardown deletes only what the run owns.
        let mut pod = pod.clone();
        self.owner.stamp(&mut pod).map_err(ApiFailure::new)?;
        crate::kube::client_pod::run_to_completion(client, &pod, timeout).await.map_err(apply_failure)
    }

    async fn cluster_ip(&self, namespace: &str, service: &str) -> ApiResult<String> {
        let client = self.client().await?;
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let what = format!("read Service {namespace}/{service}");
        let svc = self
            .bounded(&what, async { api.get(service).await.map_err(|e| failure(KubeError::api(what.clone(), e))) })
            .await?;
        match svc.spec.and_then(|s| s.cluster_ip) {
            Some(ip) if !ip.is_empty() && ip != "None" => Ok(ip),
            Some(ip) if ip == "None" => {
                Err(ApiFailure::new(format!("Service {namespace}/{service} is headless (spec.clusterIP: None)")))
            }
            _ => Err(ApiFailure::new(format!("Service {namespace}/{service} has no spec.clusterIP"))),
        }
    }

    async fn server_version(&self) -> ApiResult<String> {
        let client = self.client().await?;
        let info = self
            .bounded("server version", async {
                client
                    .apiserver_version()
                    .await
                    .map_err(|e| ApiFailure::unreachable(format!("read the server version: {e}")))
            })
            .await?;
        Ok(info.git_version)
    }

    async fn read_fingerprint(&self) -> ApiResult<Option<BTreeMap<String, String>>> {
        let client = self.client().await?;
        let found = crate::kube::fingerprint::read(client).await.map_err(|e| ApiFailure::new(e.to_string()))?;
        Ok(found.map(|f| f.entries))
    }

    async fn write_fingerprint(&self, entries: &BTreeMap<String, String>) -> ApiResult<()> {
        let client = self.client().await?;
        let fp = crate::kube::fingerprint::Fingerprint { entries: entries.clone() };
        crate::kube::fingerprint::write(client, &fp, &self.owner).await.map_err(|e| ApiFailure::new(e.to_string()))
    }

    async fn evidence(&self, namespaces: &[String], manager_namespace: &str) -> Vec<(String, String)> {
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => return vec![("kubernetes-api.error.txt".to_string(), format!("could not collect: {e}\n"))],
        };
        let namespaces: Vec<&str> = namespaces.iter().map(String::as_str).collect();
        evidence::collect_all(client, &namespaces, &namespaces, manager_namespace)
            .await
            .into_iter()
            .map(|item| (item.name, item.content))
            .collect()
    }

    async fn settled_workloads(
        &self,
        namespace: &str,
        deployments: &[String],
        quiet: Duration,
        timeout: Duration,
    ) -> ApiResult<Vec<crate::kube::injection::Settled>> {
        let client = self.client().await?;
        crate::kube::injection::settle(client, namespace, deployments, quiet, timeout).await.map_err(failure)
    }

    async fn defaulted_pod(&self, pod: &Value, after_webhook: bool) -> ApiResult<Value> {
        let client = self.client().await?;
        let call = async {
            if after_webhook {
                crate::kube::injection::defaulted_after_webhook(client, pod).await
            } else {
                crate::kube::injection::defaulted(client, pod).await
            }
        };
        self.bounded("dry-run create in kube-system", async { call.await.map_err(failure) }).await
    }

    async fn release_leftovers(&self, name: &str, namespace: &str, webhook_prefix: &str) -> ApiResult<Vec<String>> {
        let client = self.client().await?;
        let release = crate::kube::release::Release { name, namespace };
        self.bounded("list what is left of a release", async {
            crate::kube::release::leftovers(client, &release, webhook_prefix).await.map_err(failure)
        })
        .await
    }

    async fn policy_exceptions(&self) -> ApiResult<Vec<String>> {
        let client = self.client().await?;
        let path = "/apis/kyverno.io/v2/policyexceptions";
        let req = http::Request::get(path).body(Vec::new()).map_err(|e| ApiFailure::new(format!("GET {path}: {e}")))?;
        let text = self
            .bounded("list PolicyExceptions", async {
                match client.request_text(req).await {
                    Ok(t) => Ok(Some(t)),
                    // The CRD is not served (Kyverno not installed): no exception can exist.
                    Err(::kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err(ApiFailure::new(format!("GET {path}: {e}"))),
                }
            })
            .await?;
        let Some(text) = text else { return Ok(Vec::new()) };
        let list: Value = serde_json::from_str(&text).map_err(|e| ApiFailure::new(format!("GET {path}: {e}")))?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                format!(
                    "{}/{}",
                    i["metadata"]["namespace"].as_str().unwrap_or_default(),
                    i["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect())
    }

    async fn get_json(&self, path: &str) -> ApiResult<Value> {
        let text = self.get_text(path).await?;
        serde_json::from_str(&text).map_err(|e| ApiFailure::new(format!("GET {path}: {e}")))
    }

    async fn get_text(&self, path: &str) -> ApiResult<String> {
        let client = self.client().await?;
        let req = http::Request::get(path).body(Vec::new()).map_err(|e| ApiFailure::new(format!("GET {path}: {e}")))?;
        self.bounded(&format!("GET {path}"), async {
            client.request_text(req).await.map_err(|e| ApiFailure::new(format!("GET {path}: {e}")))
        })
        .await
    }

    async fn merge_patch(&self, path: &str, patch: &Value) -> ApiResult<()> {
        let client = self.client().await?;
        let body = serde_json::to_vec(patch).map_err(|e| ApiFailure::new(e.to_string()))?;
        let req = http::Request::patch(path)
            .header("content-type", "application/merge-patch+json")
            .body(body)
            .map_err(|e| ApiFailure::new(format!("PATCH {path}: {e}")))?;
        self.bounded(&format!("PATCH {path}"), async {
            client.request_text(req).await.map(drop).map_err(|e| ApiFailure::new(format!("PATCH {path}: {e}")))
        })
        .await
    }

    async fn create_token(&self, namespace: &str, service_account: &str) -> ApiResult<String> {
        let client = self.client().await?;
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token");
        let body = serde_json::to_vec(&json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 86400}
        }))
        .map_err(|e| ApiFailure::new(e.to_string()))?;
        let req = http::Request::post(&path)
            .header("content-type", "application/json")
            .body(body)
            .map_err(|e| ApiFailure::new(format!("POST {path}: {e}")))?;
        let answer: Value = self
            .bounded(&format!("TokenRequest {namespace}/{service_account}"), async {
                client.request::<Value>(req).await.map_err(|e| ApiFailure::new(format!("POST {path}: {e}")))
            })
            .await?;
        answer["status"]["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ApiFailure::new(format!("POST {path}: no token in the answer")))
    }

    async fn injected_pod(
        &self,
        namespace: &str,
        selector: &Map<String, Value>,
        container: &str,
        timeout: Duration,
    ) -> ApiResult<Value> {
        let start = Instant::now();
        let mut last = String::from("no pod yet");
        loop {
            match self.pods(namespace, selector).await {
                Ok(pods) => {
                    if let Some(p) = pods.last() {
                        let names: Vec<&str> = p["spec"]["containers"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|c| c["name"].as_str())
                            .collect();
                        if names.contains(&container) {
                            return Ok(p.clone());
                        }
                        last = format!(
                            "newest pod {} has containers [{}], no `{container}`",
                            p["metadata"]["name"].as_str().unwrap_or("?"),
                            names.join(", ")
                        );
                    }
                }
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() >= timeout {
                let denials = self.denial_messages_any(namespace).await;
                return Err(ApiFailure::timed_out(format!(
                    "no pod with container `{container}` in {namespace} within {}; last observed: {last}{denials}",
                    crate::duration::format(timeout)
                )));
            }
            tokio::time::sleep(self.poll_interval.min(Duration::from_millis(250))).await;
        }
    }
}

impl KubeApi {
    /// The ReplicaSet failures in `namespace`, for a wait's last observed state.
    async fn denial_messages_any(&self, namespace: &str) -> String {
        let Ok(list) = self.get_json(&format!("/apis/apps/v1/namespaces/{namespace}/replicasets")).await else {
            return String::new();
        };
        let msgs: Vec<String> = list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|rs| rs["status"]["conditions"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["message"].as_str().map(str::to_string))
            .collect();
        if msgs.is_empty() { String::new() } else { format!("; ReplicaSet conditions: {}", msgs.join(" | ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run may drive the API from spawned tasks: its futures must be `Send`.
    #[allow(dead_code)]
    fn futures_are_send(api: &KubeApi, v: &Value, m: &Map<String, Value>, old: &BTreeSet<String>, w: &WaitFor) {
        fn send<T: Send>(_: T) {}
        let d = Duration::ZERO;
        send(api.apply(std::slice::from_ref(v), None, d));
        send(api.delete(std::slice::from_ref(v), d));
        send(api.wait(w, d));
        send(api.canary_denied(v, d));
        send(api.new_agent_pod("a", m, old, d));
        send(api.evidence(&[], "a"));
    }

    #[test]
    fn selector_is_comma_separated_and_rejects_bad_maps() {
        let m = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(label_selector(&m(json!({"app": "demo", "tier": "web"}))).unwrap(), "app=demo,tier=web");
        assert!(label_selector(&m(json!({}))).unwrap_err().message.contains("empty"));
        assert!(label_selector(&m(json!({"app": 1}))).unwrap_err().message.contains("non-string"));
    }

    #[test]
    fn restart_patch_sets_the_rfc3339_annotation() {
        let now: k8s_openapi::jiff::Timestamp = "2026-03-04T05:06:07.891Z".parse().unwrap();
        assert_eq!(
            restart_patch(now),
            json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-03-04T05:06:07Z"}}}}})
        );
    }

    #[test]
    fn objects_are_grouped_by_target_namespace_in_order() {
        let o = |ns: Option<&str>| json!({"metadata": {"name": "x", "namespace": ns}});
        let objects = [o(None), o(Some("a")), o(Some("a")), o(None)];
        let groups: Vec<(String, usize)> =
            by_namespace(&objects, None, "default").into_iter().map(|(n, d)| (n, d.len())).collect();
        assert_eq!(groups, [("default".into(), 1), ("a".into(), 2), ("default".into(), 1)]);
        let forced: Vec<(String, usize)> =
            by_namespace(&objects, Some("app"), "default").into_iter().map(|(n, d)| (n, d.len())).collect();
        assert_eq!(forced, [("app".into(), 4)]);
        assert!(by_namespace(&[], None, "default").is_empty());
    }

    #[test]
    fn only_a_webhook_refusal_is_a_denial() {
        let api_err = |code: u16, message: &str| {
            KubeError::api(
                "apply Deployment/app/demo",
                ::kube::Error::Api(::kube::core::Status::failure(message, "Forbidden").with_code(code).boxed()),
            )
        };
        let text = "deployments.apps \"demo\" is forbidden: admission webhook \"validate.kyverno.svc-fail\" denied \
                    the request: \n\nresource Deployment/app/demo was blocked";
        assert_eq!(apply_failure(api_err(400, text)).denial(), Some(text));
        let strict = apply_failure(api_err(400, "strict decoding error: unknown field \"spec.foo\""));
        assert_eq!(strict.denial(), None);
        assert!(strict.message.contains("apply Deployment/app/demo") && strict.message.contains("unknown field"));
    }
}
