//! Pods as users hand them over: a Pod, a `List` or a `PodList` (`kubectl get pod(s) -o yaml|json`),
//! checked for the shape the engine reads, and filtered by a label selector.

use serde_json::{Map, Value};

/// A pod found in the input: which document, and where in it (`""` or `/items/<i>`).
#[derive(Debug, Clone)]
pub struct Found<'a> {
    /// The pod object.
    pub pod: &'a Value,
    /// The 0-based document it is in.
    pub document: usize,
    /// Its JSON pointer inside that document.
    pub pointer: String,
}

/// A problem with the input's shape: where (document and JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    /// The 0-based document.
    pub document: usize,
    /// JSON pointer of the offending node.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

/// Every pod in `documents`: a `Pod` document, or the items of a `List` / `PodList`. Items of a
/// `List` that are not pods (as in `kubectl get all -o yaml`) are skipped; a `PodList` item must be
/// a pod. Each pod is shape-checked with [`check_shape`].
pub fn collect(documents: &[Value]) -> Result<Vec<Found<'_>>, ShapeError> {
    let mut spots: Vec<(usize, Option<usize>)> = Vec::new();
    for (d, doc) in documents.iter().enumerate() {
        let err = |pointer: &str, message: String| ShapeError { document: d, pointer: pointer.into(), message };
        match doc["kind"].as_str() {
            Some("Pod") => spots.push((d, None)),
            Some(kind @ ("List" | "PodList")) => {
                let items =
                    doc["items"].as_array().ok_or_else(|| err("/items", format!("a {kind} needs a list `items`")))?;
                for (i, item) in items.iter().enumerate() {
                    match item["kind"].as_str() {
                        Some("Pod") => spots.push((d, Some(i))),
                        // The API server omits `kind` on PodList items.
                        None if kind == "PodList" => spots.push((d, Some(i))),
                        Some(other) if kind == "PodList" => {
                            return Err(err(
                                &format!("/items/{i}/kind"),
                                format!("expected a Pod in a PodList, found `{other}`"),
                            ));
                        }
                        _ => {}
                    }
                }
            }
            Some(other) => {
                return Err(err("/kind", format!("expected a Pod, List or PodList, found `{other}`")));
            }
            None => return Err(err("", "expected a Pod, List or PodList (no `kind`)".into())),
        }
    }
    let mut found = Vec::new();
    for (d, item) in spots {
        let pointer = item.map(|i| format!("/items/{i}")).unwrap_or_default();
        let pod = documents[d].pointer(&pointer).unwrap_or(&Value::Null);
        check_shape(pod).map_err(|(p, message)| ShapeError {
            document: d,
            pointer: format!("{pointer}{p}"),
            message,
        })?;
        found.push(Found { pod, document: d, pointer });
    }
    Ok(found)
}

/// The most containers (and, separately, init containers) one pod may list: far above any real
/// pod, low enough that every per-container comparison stays cheap.
pub const MAX_CONTAINERS: usize = 1000;

/// Checks the parts of a pod the engine reads: `metadata.labels` (map of strings), `spec` (map),
/// `spec.containers` (non-empty list) and `spec.initContainers` (list), at most
/// [`MAX_CONTAINERS`] each, of maps with a string `name`, and every `securityContext` with its
/// `capabilities` (maps) and `add`/`drop` (lists of strings). Returns the JSON pointer (relative to the pod) and message of the first problem.
pub fn check_shape(pod: &Value) -> Result<(), (String, String)> {
    let fail = |p: &str, m: &str| Err((p.to_string(), m.to_string()));
    if !pod.is_object() {
        return fail("", "expected a Pod object");
    }
    if let Some(labels) = pod.pointer("/metadata/labels").filter(|v| !v.is_null()) {
        let Some(m) = labels.as_object() else {
            return fail("/metadata/labels", "expected a map of labels");
        };
        if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
            return fail(&format!("/metadata/labels/{}", crate::yaml::escape(k)), "expected a string label value");
        }
    }
    if !pod["spec"].is_object() {
        return fail("/spec", "expected a map `spec`");
    }
    security_context_shape("/spec/securityContext", &pod["spec"]["securityContext"])?;
    for list in ["containers", "initContainers"] {
        let at = format!("/spec/{list}");
        let v = &pod["spec"][list];
        if v.is_null() && list == "initContainers" {
            continue;
        }
        let Some(items) = v.as_array() else {
            return fail(&at, &format!("expected a list `{list}`"));
        };
        if items.is_empty() && list == "containers" {
            return fail(&at, "a pod needs at least one container");
        }
        if items.len() > MAX_CONTAINERS {
            let what = if list == "containers" { "containers" } else { "init containers" };
            return fail(
                &at,
                &format!("{} {what}: more than the {MAX_CONTAINERS} kyvtel reads in one pod", items.len()),
            );
        }
        for (i, c) in items.iter().enumerate() {
            if !c["name"].is_string() {
                return fail(&format!("{at}/{i}/name"), "expected a string container name");
            }
            security_context_shape(&format!("{at}/{i}/securityContext"), &c["securityContext"])?;
        }
    }
    Ok(())
}

fn security_context_shape(at: &str, sc: &Value) -> Result<(), (String, String)> {
    if sc.is_null() {
        return Ok(());
    }
    if !sc.is_object() {
        return Err((at.into(), "expected a map `securityContext`".into()));
    }
    let caps = &sc["capabilities"];
    if caps.is_null() {
        return Ok(());
    }
    if !caps.is_object() {
        return Err((format!("{at}/capabilities"), "expected a map `capabilities`".into()));
    }
    for key in ["add", "drop"] {
        let v = &caps[key];
        let ok = v.is_null() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string));
        if !ok {
            return Err((
                format!("{at}/capabilities/{key}"),
                format!("expected `{key}` to be a list of capability names"),
            ));
        }
    }
    Ok(())
}

/// Whether the pod's labels include every `key: value` of `selector` (an empty selector matches).
#[must_use]
pub fn matches_selector(pod: &Value, selector: &Map<String, Value>) -> bool {
    selector.iter().all(|(k, v)| pod.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
}

/// The pod's `metadata.name`, or `?`.
#[must_use]
pub fn name(pod: &Value) -> &str {
    pod["metadata"]["name"].as_str().unwrap_or("?")
}
