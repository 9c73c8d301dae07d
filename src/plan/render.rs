//! Prints a plan for people (text) or programs (JSON).

use std::fmt::Write;

use serde_json::Value;

use super::action::{Action, DenialSource, Plan, WaitFor};
use super::duration::format as d;
use crate::tools::quote;

/// The plan as JSON.
pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

fn yaml_block(v: &Value, indent: &str) -> String {
    let y = serde_saphyr::to_string(v).unwrap_or_default();
    y.lines().map(|l| format!("{indent}{l}\n")).collect()
}

fn kv(map: &serde_json::Map<String, Value>) -> String {
    map.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",")
}

fn wait(w: &WaitFor) -> String {
    match w {
        WaitFor::DeploymentAvailable { namespace, name } => format!("Deployment {namespace}/{name} is Available"),
        WaitFor::TrafficManagerReady { namespace, workload_kind } => {
            format!(
                "{workload_kind} {namespace}/traffic-manager is ready (pods app=traffic-manager,telepresence=manager)"
            )
        }
        WaitFor::PoliciesReady { names } => format!("ClusterPolicies {} are Ready", names.join(", ")),
        WaitFor::NewAgentPod { namespace, selector } => {
            format!("a new pod in {namespace} matching {} with container traffic-agent ready", kv(selector))
        }
    }
}

fn action(out: &mut String, a: &Action, indent: &str) {
    let _ = match a {
        Action::Run { command, timeout, expect_failure, best_effort } => {
            let note = if *expect_failure {
                ", expected to fail"
            } else if *best_effort {
                ", best effort"
            } else {
                ""
            };
            writeln!(out, "{indent}run     {command}   (timeout {}{note})", d(*timeout))
        }
        Action::WriteFile { path, contents } => {
            let _ = writeln!(out, "{indent}write   {}", path.display());
            contents.lines().try_for_each(|l| writeln!(out, "{indent}          {l}"))
        }
        Action::Apply { label, namespace, objects, timeout, expect_failure } => {
            let ns = namespace.as_deref().map(|n| format!(" in {n}")).unwrap_or_default();
            let note = if *expect_failure { ", expected to be denied" } else { "" };
            let _ = writeln!(
                out,
                "{indent}apply   {label}{ns}: server-side apply, fieldValidation=Strict, retried while the webhook starts   (timeout {}{note})",
                d(*timeout)
            );
            for o in objects {
                let _ = writeln!(out, "{indent}          ---");
                out.push_str(&yaml_block(o, &format!("{indent}          ")));
            }
            Ok(())
        }
        Action::Wait { until, timeout } => writeln!(out, "{indent}wait    {}   (timeout {})", wait(until), d(*timeout)),
        Action::CanaryDenied { pod, timeout } => writeln!(
            out,
            "{indent}canary  dry-run create Pod {}/{} (no securityContext) must be denied by validate.kyverno.svc-fail   (timeout {})",
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default(),
            d(*timeout)
        ),
        Action::ProveDenial { source, expected, timeout } => {
            let from = match source {
                DenialSource::CommandOutput => "the failed command's output".to_string(),
                DenialSource::ApplyError => "the apply's API error".to_string(),
                DenialSource::Workload { namespace, name } => {
                    format!("ReplicaSets of {namespace}/{name}: ReplicaFailure condition and FailedCreate events")
                }
            };
            let _ = writeln!(out, "{indent}prove   Kyverno denial from {from}   (timeout {})", d(*timeout));
            expected.iter().try_for_each(|e| {
                let path = e.path.as_deref().map(|p| format!(" at {p}…")).unwrap_or_default();
                writeln!(out, "{indent}          denied by {}/{}{path}", e.policy, e.rule)
            })
        }
        Action::RecordPods { namespace, selector } => {
            writeln!(out, "{indent}record  pods in {namespace} matching {}", kv(selector))
        }
        Action::Serve { port } => {
            writeln!(out, "{indent}serve   HTTP on 127.0.0.1:{port}, answering with the per-run token")
        }
        Action::Request { url, timeout } => {
            writeln!(out, "{indent}request GET {url} must return the per-run token   (timeout {})", d(*timeout))
        }
        Action::VerifyPod { namespace, selector, expectations, predicted } => writeln!(
            out,
            "{indent}verify  the intercepted pod in {namespace} matching {} against {} expectation group(s){}",
            kv(selector),
            expectations.len(),
            if predicted.is_some() { "; compare it with the injection model (drift)" } else { "" }
        ),
        Action::RestartWorkload { namespace, name } => {
            writeln!(out, "{indent}restart Deployment {namespace}/{name} (rollout restart)")
        }
        Action::Delete { label, objects, timeout } => {
            let names: Vec<String> = objects
                .iter()
                .map(|o| {
                    let ns = o["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
                    format!("{}/{ns}{}", o["kind"].as_str().unwrap_or_default(), o["name"].as_str().unwrap_or_default())
                })
                .collect();
            writeln!(out, "{indent}delete  {label}: {}   (timeout {})", names.join(", "), d(*timeout))
        }
        Action::StopServer { port } => writeln!(out, "{indent}stop    the HTTP server on 127.0.0.1:{port}"),
        Action::Undo { index } => {
            writeln!(out, "{indent}undo    teardown entry #{} now (skipped at teardown)", index + 1)
        }
    };
}

/// The plan as text.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let v = &plan.versions;
    let _ = writeln!(out, "plan for scenario {} ({})", plan.scenario, plan.source.display());
    let _ = writeln!(out, "versions:");
    let _ = writeln!(out, "  kind          {}", v.kind);
    let _ = writeln!(out, "  node image    {} (Kubernetes {})", v.node_image.reference, v.node_image.kubernetes);
    let _ = writeln!(out, "  kyverno chart {} (Kyverno {})", v.kyverno_chart, v.kyverno);
    let _ = writeln!(out, "  telepresence  {}", v.telepresence);
    let _ = writeln!(out, "  helm          {}", v.helm);
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "cluster: {} (kind)", plan.cluster);
    let _ = writeln!(
        out,
        "run-private environment (each command gets its tool's part; ~/.kube, ~/.config/telepresence and Helm repos are never used):"
    );
    for (k, val) in &plan.env {
        let _ = writeln!(out, "  {k}={}", quote(val));
    }
    for (i, p) in plan.phases.iter().enumerate() {
        let note = if p.expects_denial { "   [expects a Kyverno denial]" } else { "" };
        let _ = writeln!(out, "\n{}. {}{note}", i + 1, p.name);
        for a in &p.actions {
            action(&mut out, a, "   ");
        }
    }
    let _ = writeln!(
        out,
        "\nteardown (LIFO; runs after success, failure, timeout, panic and Ctrl-C; only for phases that started):"
    );
    for (i, t) in plan.teardown_order() {
        let kept = if t.skip_if_kept { "   [skipped with --keep/--reuse]" } else { "" };
        let _ = writeln!(out, "  #{} {} (registered by {}){kept}", i + 1, t.label, t.registered_by);
        for a in &t.actions {
            action(&mut out, a, "       ");
        }
        if !t.on_failure.is_empty() {
            let _ = writeln!(out, "       if {} failed, instead:", t.registered_by);
            for a in &t.on_failure {
                action(&mut out, a, "       ");
            }
        }
    }
    out
}
