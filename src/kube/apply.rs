//! Apply multi-document manifests: discovery, server-side apply with strict field validation, the
//! harness labels, and retries while an admission webhook is not yet serving.
//!
//! This is step 2 of the Kyverno readiness gate (facts.md §3): policies are applied as
//! `DynamicObject`s with `fieldValidation=Strict`, so a typo in a policy fails the apply instead of being
//! pruned. Right after `helm install`, Kyverno's policy webhook may not serve yet; the API server then
//! answers 500 `failed calling webhook` ([`super::is_webhook_unavailable`]) and the document is retried
//! until the timeout. Warnings (ClusterPolicy is deprecated in Kyverno 1.19) are collected, never fatal.

use std::fmt;
use std::time::Duration;

use ::kube::api::{Api, DeleteParams, DynamicObject};
use ::kube::core::{ApiResource, GroupVersionKind, Resource};
use ::kube::discovery::{Discovery, Scope};
use tokio::time::{Instant, sleep};

use super::ownership::Owner;
use super::{Call, KubeError, is_not_found, is_webhook_unavailable, send};

/// How [`apply`] places and retries objects.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Namespace for namespaced objects that name none. An object naming another namespace is an error:
    /// the harness touches only the namespaces it was given.
    pub namespace: String,
    /// The run that owns the objects (their labels).
    pub owner: Owner,
    /// Total time for retries while a webhook is unavailable or a kind is not yet served.
    pub timeout: Duration,
    /// Pause between attempts.
    pub retry_interval: Duration,
    /// Ask for admission only: strict server-side dry-run creates, nothing stored (or reported applied).
    pub dry_run: bool,
}

/// One applied object, enough to delete it at teardown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRef {
    /// The resolved resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// The object's namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl fmt::Display for AppliedRef {
    /// `Kind/namespace/name` or `Kind/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{}/{}", self.resource.kind, ns, self.name),
            None => write!(f, "{}/{}", self.resource.kind, self.name),
        }
    }
}

/// What [`apply`] did (filled in as it goes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// The objects applied, in document order. Delete them in reverse ([`delete`]).
    pub applied: Vec<AppliedRef>,
    /// Warnings the API server returned, each prefixed with the object (`ClusterPolicy/x: text`).
    pub warnings: Vec<String>,
    /// How many attempts failed because a webhook was not serving or a kind was not served yet.
    pub retries: u32,
}

/// The GVK, name and namespace a document declares.
fn identity(index: usize, doc: &serde_json::Value) -> Result<(GroupVersionKind, String, Option<String>), KubeError> {
    let bad = |message: &str| KubeError::Manifest { index, message: message.to_string() };
    let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).ok_or_else(|| bad("missing apiVersion"))?;
    let kind = doc.get("kind").and_then(|v| v.as_str()).ok_or_else(|| bad("missing kind"))?;
    let meta = doc.get("metadata");
    let name = meta.and_then(|m| m.get("name")).and_then(|v| v.as_str()).ok_or_else(|| bad("missing metadata.name"))?;
    let namespace = meta.and_then(|m| m.get("namespace")).and_then(|v| v.as_str()).map(str::to_string);
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    Ok((GroupVersionKind::gvk(group, version, kind), name.to_string(), namespace))
}

/// Applies every document with server-side apply (`fieldManager=kyvtel`, `force`,
/// `fieldValidation=Strict`), stamped with the owner labels.
///
/// Namespaced objects go into `options.namespace` unless they name it already; cluster-scoped objects
/// lose any namespace they name. Documents are applied in order; a document that fails with a
/// non-retryable error stops the apply. Every applied object is appended to `report` as soon as the
/// server accepts it, so after an error `report.applied` still lists what teardown must [`delete`].
///
/// # Errors
/// [`KubeError::Manifest`] for a document without apiVersion/kind/name or naming a foreign namespace;
/// [`KubeError::Api`] for a refusal (strict validation, a policy denial) or, after `options.timeout`, for
/// the last "webhook unavailable" / "kind not served" failure.
pub async fn apply(
    client: &::kube::Client,
    docs: &[serde_json::Value],
    options: &ApplyOptions,
    report: &mut ApplyReport,
) -> Result<(), KubeError> {
    let deadline = crate::duration::tokio_deadline(options.timeout);
    let mut discovery = run_discovery(client).await?;
    for (index, doc) in docs.iter().enumerate() {
        let (gvk, name, declared_ns) = identity(index, doc)?;
        loop {
            let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
                if Instant::now() >= deadline {
                    return Err(KubeError::Manifest {
                        index,
                        message: format!(
                            "the API server does not serve {}/{} (kind {}) after {:?}",
                            gvk.group, gvk.version, gvk.kind, options.timeout
                        ),
                    });
                }
                // A CRD installed a moment ago may not be served yet: look again.
                report.retries += 1;
                sleep(options.retry_interval).await;
                discovery = run_discovery(client).await?;
                continue;
            };
            let namespace = match caps.scope {
                Scope::Namespaced => match &declared_ns {
                    Some(ns) if *ns != options.namespace => {
                        return Err(KubeError::Manifest {
                            index,
                            message: format!(
                                "{}/{name} names namespace {ns}, but this step applies into {}",
                                gvk.kind, options.namespace
                            ),
                        });
                    }
                    _ => Some(options.namespace.clone()),
                },
                Scope::Cluster => None,
            };
            let object = prepare(index, doc, namespace.as_deref(), &options.owner)?;
            let target = AppliedRef { resource: resource.clone(), namespace: namespace.clone(), name: name.clone() };
            let url = DynamicObject::url_path(&resource, namespace.as_deref());
            let call = if options.dry_run {
                Call::DryRunCreate { object: &object }
            } else {
                Call::Apply { name: &name, object: &object }
            };
            match send(client, &url, call).await {
                Ok(answer) => {
                    report.warnings.extend(answer.warnings.into_iter().map(|w| format!("{target}: {w}")));
                    if !options.dry_run {
                        report.applied.push(target);
                    }
                    break;
                }
                Err(e) if is_webhook_unavailable(&e) && Instant::now() < deadline => {
                    tracing::info!("apply {target}: webhook not serving yet, retrying: {e}");
                    report.retries += 1;
                    sleep(options.retry_interval).await;
                }
                Err(e) => {
                    return Err(KubeError::api(format!("apply {target} (document {index})"), e));
                }
            }
        }
    }
    Ok(())
}

/// The document with its namespace set (or removed) and the owner labels added.
fn prepare(
    index: usize,
    doc: &serde_json::Value,
    namespace: Option<&str>,
    owner: &Owner,
) -> Result<serde_json::Value, KubeError> {
    let mut object = doc.clone();
    owner.stamp(&mut object).map_err(|message| KubeError::Manifest { index, message })?;
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        match namespace {
            Some(ns) => {
                meta.insert("namespace".to_string(), serde_json::Value::String(ns.to_string()));
            }
            None => {
                meta.remove("namespace");
            }
        }
    }
    Ok(object)
}

async fn run_discovery(client: &::kube::Client) -> Result<Discovery, KubeError> {
    Discovery::new(client.clone()).run_aggregated().await.map_err(|e| KubeError::api("API discovery", e))
}

/// Deletes applied objects in reverse order (LIFO). Objects already gone are fine.
///
/// # Errors
/// [`KubeError::Api`] for the first deletion that fails otherwise; later objects are still attempted
/// and their failures are listed in the same error's context.
pub async fn delete(client: &::kube::Client, applied: &[AppliedRef]) -> Result<(), KubeError> {
    let mut first: Option<KubeError> = None;
    let mut failed = Vec::new();
    for target in applied.iter().rev() {
        let api: Api<DynamicObject> = match &target.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &target.resource),
            None => Api::all_with(client.clone(), &target.resource),
        };
        match api.delete(&target.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                failed.push(target.to_string());
                if first.is_none() {
                    first = Some(KubeError::api(format!("delete {target}"), e));
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(KubeError::Api { source, .. }) => {
            Err(KubeError::Api { context: format!("delete {}", failed.join(", ")), source })
        }
        Some(other) => Err(other),
    }
}
