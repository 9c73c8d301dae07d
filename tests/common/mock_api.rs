//! A scripted mock Kubernetes API server (`tower_test::mock::pair`, facts.md §6) shared by the
//! kube-layer and `KubeApi` tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use kube::client::Body;
use serde_json::{Value, json};

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// The content-type header.
    pub content_type: String,
    /// The body, as text.
    pub body: String,
}

/// The mock's answer to a request.
pub enum Reply {
    /// Status code and JSON body.
    Json(u16, Value),
    /// Status code, JSON body and one `Warning` header.
    Warn(u16, Value, &'static str),
    /// Never answer (a watch that sees no change).
    Hang,
}

pub type Log = Arc<Mutex<Vec<Seen>>>;

/// A client whose requests are answered by `script` (given the request and how many requests came
/// before it), and the log of what was sent.
pub fn mock(script: impl Fn(&Seen, usize) -> Reply + Send + 'static) -> (kube::Client, Log) {
    let (svc, mut handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = Arc::clone(&log);
    tokio::spawn(async move {
        let mut parked = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let body = body.collect_bytes().await.expect("request body");
            let seen = Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string(),
                body: String::from_utf8_lossy(&body).into_owned(),
            };
            let n = {
                let mut l = seen_log.lock().unwrap();
                l.push(seen.clone());
                l.len() - 1
            };
            let (code, value, warning) = match script(&seen, n) {
                Reply::Json(code, v) => (code, v, None),
                Reply::Warn(code, v, w) => (code, v, Some(w)),
                Reply::Hang => {
                    parked.push(respond);
                    continue;
                }
            };
            let mut response = http::Response::builder().status(code).header("content-type", "application/json");
            if let Some(w) = warning {
                response = response.header("warning", w);
            }
            respond.send_response(response.body(Body::from(serde_json::to_vec(&value).unwrap())).unwrap());
        }
    });
    (kube::Client::new(svc, "default"), log)
}

/// One resource of an aggregated discovery document (`apidiscovery.k8s.io/v2`).
pub fn discovery_resource(plural: &str, group: &str, version: &str, kind: &str, scope: &str) -> Value {
    json!({"resource": plural, "responseKind": {"group": group, "version": version, "kind": kind},
           "scope": scope, "verbs": ["get", "list", "patch", "create", "delete"]})
}

/// An aggregated discovery list (`/api`, `/apis`) of `items` (API groups).
pub fn discovery_list(items: Value) -> Value {
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}
