//! The Helm post-renderer of the Telepresence install on the local provider (`kyvtel post-render`).
//!
//! Every webhook must point at loopback before any workload exists: a `service:` webhook makes the
//! API server dial the Service's ClusterIP, the injector's webhook (failurePolicy Ignore) fails open
//! and pods are admitted **without an agent** (facts.md §7). So, in the rendered manifests (not after
//! the install, which breaks `helm upgrade`):
//! - each `MutatingWebhookConfiguration` webhook gets `clientConfig: {url: https://127.0.0.1:<port><path>, caBundle}`;
//! - the injector's TLS Secret gets the run's certificate (SAN IP 127.0.0.1).

use base64::Engine as _;
use serde_json::{Value, json};

/// What the post-renderer puts in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The injector's loopback port.
    pub port: u16,
    /// The CA (PEM).
    pub ca: String,
    /// The serving certificate (PEM).
    pub cert: String,
    /// Its key (PEM).
    pub key: String,
    /// The Secret holding the injector's certificate (`agentInjector.secret.name`).
    pub secret: String,
}

/// Splits a multi-document YAML stream into values; empty documents are dropped.
///
/// # Errors
/// A document is not YAML.
pub fn documents(stream: &str) -> Result<Vec<Value>, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(stream).map_err(|e| format!("rendered manifests: {e}"))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Rewrites the rendered manifests; returns the new stream (JSON documents, which are YAML) and what
/// was changed, for the plan and the evidence.
///
/// # Errors
/// The stream is not YAML, or it holds no injector webhook (then nothing would point at loopback).
pub fn rewrite(stream: &str, r: &Rewrite) -> Result<(String, Vec<String>), String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut docs = documents(stream)?;
    let mut changed = Vec::new();
    for d in &mut docs {
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        let name = d["metadata"]["name"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                for w in d["webhooks"].as_array_mut().into_iter().flatten() {
                    let path = w["clientConfig"]["service"]["path"]
                        .as_str()
                        .or_else(|| {
                            w["clientConfig"]["url"]
                                .as_str()
                                .and_then(|u| u.find("://").and_then(|i| u[i + 3..].find('/').map(|j| &u[i + 3 + j..])))
                        })
                        .unwrap_or("/")
                        .to_string();
                    let url = format!("https://127.0.0.1:{}{path}", r.port);
                    w["clientConfig"] = json!({"url": url, "caBundle": b64(&r.ca)});
                    changed.push(format!(
                        "{kind}/{name} webhook {}: clientConfig.url {url}",
                        w["name"].as_str().unwrap_or("?")
                    ));
                }
            }
            "Secret" if name == r.secret => {
                d["data"] = json!({"ca.crt": b64(&r.ca), "tls.crt": b64(&r.cert), "tls.key": b64(&r.key)});
                d.as_object_mut().map(|o| o.remove("stringData"));
                changed.push(format!("Secret/{name}: the run's certificate for 127.0.0.1"));
            }
            _ => {}
        }
    }
    if !changed.iter().any(|c| c.contains("WebhookConfiguration")) {
        return Err("the rendered chart holds no webhook configuration to point at loopback".into());
    }
    if !changed.iter().any(|c| c.starts_with("Secret/")) {
        // The webhook would trust the run's CA while the injector serves another certificate: the
        // call fails, the webhook (failurePolicy Ignore) fails open, pods are admitted without an agent.
        return Err(format!(
            "the rendered chart holds no Secret `{}` for the injector's certificate (agentInjector.secret.name, \
             agentInjector.certificate.method: the local provider supplies the certificate itself)",
            r.secret
        ));
    }
    let mut out = String::new();
    for d in &docs {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string(d).map_err(|e| e.to_string())?);
        out.push('\n');
    }
    Ok((out, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDERED: &str = "---\n# Source: x\napiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  name: agent-injector-webhook-ambassador\nwebhooks:\n- name: agent-injector-ambassador.getambassador.io\n  clientConfig:\n    caBundle: b2xk\n    service:\n      name: agent-injector\n      namespace: ambassador\n      path: /traffic-agent\n      port: 443\n  failurePolicy: Ignore\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: mutator-webhook-tls\ndata:\n  tls.crt: b2xk\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: agent-injector\n";

    fn rw() -> Rewrite {
        Rewrite {
            port: 8443,
            ca: "CA".into(),
            cert: "CERT".into(),
            key: "KEY".into(),
            secret: "mutator-webhook-tls".into(),
        }
    }

    #[test]
    fn the_injector_webhook_points_at_loopback_with_the_runs_ca() {
        let (out, changed) = rewrite(RENDERED, &rw()).unwrap();
        let docs = documents(&out).unwrap();
        assert_eq!(docs.len(), 3);
        let cc = &docs[0]["webhooks"][0]["clientConfig"];
        assert_eq!(cc["url"], "https://127.0.0.1:8443/traffic-agent");
        assert_eq!(cc["caBundle"], "Q0E=");
        assert!(cc.get("service").is_none(), "{cc}");
        assert_eq!(docs[0]["webhooks"][0]["failurePolicy"], "Ignore", "the rest is the chart's");
        assert_eq!(docs[1]["data"]["tls.crt"], "Q0VSVA==");
        assert_eq!(docs[2]["kind"], "Service");
        assert_eq!(changed.len(), 2);
    }

    #[test]
    fn a_chart_whose_injector_secret_is_not_found_is_refused() {
        let renamed = RENDERED.replace("name: mutator-webhook-tls", "name: other-tls");
        let e = rewrite(&renamed, &rw()).unwrap_err();
        assert!(e.contains("no Secret `mutator-webhook-tls`"), "{e}");
    }

    #[test]
    fn a_chart_without_a_webhook_is_refused() {
        let e = rewrite("apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n", &rw()).unwrap_err();
        assert!(e.contains("no webhook configuration"), "{e}");
    }
}
