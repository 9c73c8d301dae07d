//! Prints a plan for people (text) or programs (JSON).

use std::fmt::Write;

use serde_json::Value;

use super::action::{Action, DenialSource, Plan, WaitFor};
use super::cells::Cell;
use super::providers::local::adapt::ADAPTATIONS;
use crate::duration::format as d;
use crate::tools::quote;

/// The plan as JSON.
pub fn json(plan: &Plan) -> String {
    let mut v = serde_json::to_value(plan).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("budget".into(), serde_json::to_value(super::budget::Budget::of(plan)).unwrap_or_default());
    }
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
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
        WaitFor::DeploymentAvailable { namespace, name } => format!(
            "Deployment {namespace}/{name} is rolled out (latest generation observed; updated, available and all replicas equal, as kubectl rollout status)"
        ),
        WaitFor::TrafficManagerReady { namespace, workload_kind } => {
            format!(
                "{workload_kind} {namespace}/traffic-manager is ready (pods app=traffic-manager,telepresence=manager)"
            )
        }
        WaitFor::PoliciesReady { names } => format!("ClusterPolicies {} are Ready", names.join(", ")),
        WaitFor::InjectedPod { namespace, selector, container } => {
            format!(
                "the newest pod in {namespace} matching {} has container {container} (injected at admission)",
                kv(selector)
            )
        }
        WaitFor::ContainerFailure { namespace, selector, failure } => format!(
            "a pod in {namespace} matching {} whose container {} is {}{} (pod status, events)",
            kv(selector),
            failure.container,
            failure.reason,
            failure.message.as_deref().map(|m| format!(" with \"{m}\"")).unwrap_or_default()
        ),
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
        Action::SaveOutput { command, path, timeout } => {
            writeln!(out, "{indent}run     {command} > {}   (timeout {})", path.display(), d(*timeout))
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
            "{indent}canary  dry-run create Pod {}/{} (no securityContext) must be denied by {}   (timeout {})",
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default(),
            crate::names::kyverno::POLICY_WEBHOOK,
            d(*timeout)
        ),
        Action::DryRunCreate { label, namespace, objects, timeout, expect_failure } => {
            let note = if *expect_failure { ", expected to be denied" } else { ", expected to be admitted" };
            let _ = writeln!(
                out,
                "{indent}admit?  {label} in {namespace}: server-side dry-run create, fieldValidation=Strict, nothing stored   (timeout {}{note})",
                d(*timeout)
            );
            for o in objects {
                let _ = writeln!(out, "{indent}          ---");
                out.push_str(&yaml_block(o, &format!("{indent}          ")));
            }
            Ok(())
        }
        Action::PolicyExceptions { expected } => writeln!(
            out,
            "{indent}assert  the cluster's PolicyExceptions (kyverno.io/v2, every namespace) are exactly [{}]",
            expected.join(", ")
        ),
        Action::ReleaseGone { release, namespace, webhook_prefix, timeout } => writeln!(
            out,
            "{indent}assert  nothing of release {namespace}/{release} is left (objects with its Helm annotations, its \
             release records) and no webhook configuration {webhook_prefix}*, within {}",
            d(*timeout)
        ),
        Action::ProveDenial { source, expected, only, pod_security, timeout } => {
            let from = match source {
                DenialSource::CommandOutput => "the failed command's output".to_string(),
                DenialSource::ApplyError => "the apply's API error".to_string(),
                DenialSource::Workload { namespace, name } => {
                    format!("ReplicaSets of {namespace}/{name}: ReplicaFailure condition and FailedCreate events")
                }
            };
            if let Some(p) = pod_security {
                let _ = writeln!(
                    out,
                    "{indent}prove   Pod Security Admission denial ({}) from {from}   (timeout {})",
                    p.level.as_str(),
                    d(*timeout)
                );
                for v in &p.violations {
                    let who = v.container.as_deref().map(|c| format!(" for container {c}")).unwrap_or_default();
                    let field = v.field.as_deref().map(|f| format!(", field {f}")).unwrap_or_default();
                    let _ = writeln!(out, "{indent}          failed check `{}`{who}{field}", v.check);
                }
                Ok(())
            } else {
                let _ = writeln!(out, "{indent}prove   Kyverno denial from {from}   (timeout {})", d(*timeout));
                if *only {
                    let _ = writeln!(
                        out,
                        "{indent}          by these rules only: any other policy or rule in it fails the step"
                    );
                }
                expected.iter().try_for_each(|e| {
                    let path = e.path.as_deref().map(|p| format!(" at {p}…")).unwrap_or_default();
                    writeln!(out, "{indent}          denied by {}/{}{path}", e.policy, e.rule)
                })
            }
        }
        Action::RecordPods { namespace, selector } => {
            writeln!(out, "{indent}record  pods in {namespace} matching {}", kv(selector))
        }
        Action::Serve { port } => {
            writeln!(out, "{indent}serve   HTTP on 127.0.0.1:{port}, answering with the per-run token")
        }
        Action::ClientRequest { pod, url, timeout } => {
            let _ = writeln!(
                out,
                "{indent}client  run Pod {}/{} in the cluster: GET {url} must return the per-run token   (timeout {})",
                pod["metadata"]["namespace"].as_str().unwrap_or_default(),
                pod["metadata"]["name"].as_str().unwrap_or_default(),
                d(*timeout)
            );
            let _ = writeln!(out, "{indent}          ---");
            out.push_str(&yaml_block(pod, &format!("{indent}          ")));
            Ok(())
        }
        Action::Request { url, timeout } => {
            writeln!(out, "{indent}request GET {url} must return the per-run token   (timeout {})", d(*timeout))
        }
        Action::VerifyPod { namespace, selector, expectations, model } => writeln!(
            out,
            "{indent}verify  the intercepted pod in {namespace} matching {} against {} expectation group(s){}",
            kv(selector),
            expectations.len(),
            model
                .as_ref()
                .map(|m| format!("; compare it with the injection model ({}) (drift)", model_label(m)))
                .unwrap_or_default()
        ),
        Action::CompareModel { namespace, workloads, model, timeout } => writeln!(
            out,
            "{indent}compare each pod of {} Deployment(s) in {namespace} ({}) with the injection model ({}); \
             settled within {}",
            workloads.len(),
            workloads.join(", "),
            model_label(model),
            d(*timeout)
        ),
        Action::RestartWorkload { namespace, name } => {
            writeln!(out, "{indent}restart Deployment {namespace}/{name} (rollout restart)")
        }
        Action::Delete { label, objects, timeout, wait } => {
            let names: Vec<String> = objects
                .iter()
                .map(|o| {
                    let ns = o["namespace"].as_str().map(|n| format!("{n}/")).unwrap_or_default();
                    format!("{}/{ns}{}", o["kind"].as_str().unwrap_or_default(), o["name"].as_str().unwrap_or_default())
                })
                .collect();
            if *wait {
                writeln!(out, "{indent}delete  {label}: {}   (timeout {})", names.join(", "), d(*timeout))
            } else {
                writeln!(out, "{indent}delete  {label}: {}   (not waited for: the reset check waits)", names.join(", "))
            }
        }
        Action::StopServer { port } => writeln!(out, "{indent}stop    the HTTP server on 127.0.0.1:{port}"),
        Action::PathsGone { paths, timeout } => writeln!(
            out,
            "{indent}gone    {}   (timeout {})",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
            d(*timeout)
        ),
        Action::Undo { index } => {
            writeln!(out, "{indent}undo    teardown entry #{} now (skipped at teardown)", index + 1)
        }
        Action::Local(op) => writeln!(out, "{indent}local   {op}"),
        Action::Skip { reason } => writeln!(out, "{indent}skip    {reason}"),
        Action::Only { start, action: inner } => {
            // The inner action's line, with the condition after its verb column.
            let mut line = String::new();
            action(&mut line, inner, indent);
            let at = (indent.len() + 8).min(line.len());
            out.push_str(&line[..at]);
            out.push_str(&format!("[{start} start only] "));
            out.push_str(&line[at..]);
            Ok(())
        }
    };
}

/// When a teardown runs.
const TEARDOWN_WHEN: &str =
    "LIFO; runs after success, failure, timeout, panic and Ctrl-C; only for phases that started";

/// The plan as text.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    scenario(&mut out, plan, plan.provider.name());
    if plan.provider == super::Provider::Local {
        adaptations(&mut out);
    }
    out
}

/// The local provider's adaptations, each with its reason (one list: [`ADAPTATIONS`]).
fn adaptations(out: &mut String) {
    let _ = writeln!(
        out,
        "
local provider adaptations (what differs from a real cluster, and why):"
    );
    for (what, why) in ADAPTATIONS {
        let _ = writeln!(out, "  - {what}: {why}");
    }
}

/// A scenario's plan; `cluster_note` says where its cluster comes from.
fn scenario(out: &mut String, plan: &Plan, cluster_note: &str) {
    let _ = writeln!(out, "plan for scenario {} ({})", plan.scenario, plan.source.display());
    versions(out, plan);
    let _ = writeln!(out, "cluster: {} ({cluster_note})", plan.cluster);
    environment(out, plan);
    phases(out, plan, "");
    evidence(out, plan);
    teardown(out, plan, &format!("teardown ({TEARDOWN_WHEN}):"));
    budget(out, plan);
}

/// The plan's time budget ([`super::budget`]): what a run that enters its phases may take.
fn budget(out: &mut String, plan: &Plan) {
    use crate::report::summary::human;
    let b = super::budget::Budget::of(plan);
    let phases: Vec<String> = b.phases.iter().map(|(n, t)| format!("{n} {}", human(*t))).collect();
    let _ = writeln!(
        out,
        "
budget: at most {} in all; the phases entered (each the sum of its limits: {}), then evidence {} and \
         teardown {}",
        human(b.total()),
        phases.join(", "),
        human(b.evidence),
        human(b.teardown)
    );
}

fn evidence(out: &mut String, plan: &Plan) {
    if plan.evidence.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\non failure or Ctrl-C, before the teardown: gather evidence (best effort; added redacted to the bundle):"
    );
    for g in &plan.evidence {
        let _ = writeln!(out, "   run     {}   (timeout {})", g.command, d(g.timeout));
    }
}

fn versions(out: &mut String, plan: &Plan) {
    let v = &plan.versions;
    let _ = writeln!(out, "versions:");
    let _ = writeln!(out, "  kind          {}", v.kind);
    let _ = writeln!(out, "  node image    {} (Kubernetes {})", v.node_image.reference, v.node_image.kubernetes);
    let _ = writeln!(out, "  kyverno chart {} (Kyverno {})", v.kyverno_chart, v.kyverno);
    let _ = match &plan.telepresence_binary {
        Some(bin) => writeln!(out, "  telepresence  {} (runs {})", v.telepresence, bin.display()),
        None => writeln!(out, "  telepresence  {}", v.telepresence),
    };
    let _ = writeln!(out, "  helm          {}", v.helm);
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
}

fn environment(out: &mut String, plan: &Plan) {
    let _ = writeln!(
        out,
        "run-private environment (each command gets its tool's part; ~/.kube, ~/.config/telepresence and Helm repos are never used):"
    );
    for (k, val) in &plan.env {
        let _ = writeln!(out, "  {k}={}", quote(val));
    }
}

/// The numbered phases; `note` follows each phase name.
fn phases(out: &mut String, plan: &Plan, note: &str) {
    for (i, p) in plan.phases.iter().enumerate() {
        let denial = if p.expects_denial { "   [expects a Kyverno denial]" } else { "" };
        let _ = writeln!(out, "\n{}. {}{note}{denial}", i + 1, p.kind);
        for a in &p.actions {
            action(out, a, "   ");
        }
    }
}

fn teardown(out: &mut String, plan: &Plan, heading: &str) {
    let _ = writeln!(out, "\n{heading}");
    let deletes = plan.teardown.iter().any(|t| t.deletes_cluster);
    for (i, t) in plan.teardown_order() {
        let kept = if t.skip_if_kept { "   [skipped with --keep/--reuse]" } else { "" };
        let moot = if deletes && t.cluster_only { "   [skipped when the cluster is deleted]" } else { "" };
        let _ = writeln!(out, "  #{} {} (registered by {}){kept}{moot}", i + 1, t.label, t.registered_by);
        for a in &t.actions {
            action(out, a, "       ");
        }
        if !t.on_failure.is_empty() {
            let _ = writeln!(
                out,
                "       if the install in {} did not succeed (on a cluster kyvtel owns), instead:",
                t.registered_by
            );
            for a in &t.on_failure {
                action(out, a, "       ");
            }
        }
    }
}

/// The cells as JSON: `{"cells": [...]}`.
pub fn cells_json(cells: &[Cell]) -> String {
    let mut s = serde_json::to_string_pretty(&serde_json::json!({ "cells": cells })).unwrap_or_default();
    s.push('\n');
    s
}

/// The cells as text: per cell its cluster and scenarios, the shared setup, each scenario's plan,
/// then the cell's teardown.
pub fn cells_text(cells: &[Cell]) -> String {
    let mut out = String::new();
    let scenarios: usize = cells.iter().map(|c| c.scenarios.len()).sum();
    let provider = cells.first().map_or(super::Provider::Kind, |c| c.setup.provider);
    let what = match provider {
        super::Provider::Local => "one local stack (control plane and Kyverno)",
        _ => "one kind cluster",
    };
    let _ = writeln!(
        out,
        "plan for {scenarios} scenario(s) in {} cell(s): each cell is {what}, set up once and shared by its scenarios, which run one after another",
        cells.len()
    );
    for (n, cell) in cells.iter().enumerate() {
        let setup = &cell.setup;
        let v = &setup.versions;
        let members = cell.scenarios.len();
        let _ = writeln!(
            out,
            "\n=== cell {} of {}: cluster {} ({}) ===",
            n + 1,
            cells.len(),
            cell.cluster,
            provider.name()
        );
        let _ = writeln!(out, "node image    {} (Kubernetes {})", v.node_image.reference, v.node_image.kubernetes);
        let _ = writeln!(out, "kyverno chart {} (Kyverno {})", v.kyverno_chart, v.kyverno);
        let _ = writeln!(out, "kubeconfig    {} (used by every scenario of the cell)", cell.kubeconfig.display());
        let _ = writeln!(out, "scenarios, in order:");
        for p in &cell.scenarios {
            let _ = writeln!(out, "  {} ({})", p.scenario, p.source.display());
        }
        for w in &setup.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        let shared: Vec<&str> = setup.phases.iter().map(|p| p.kind.name()).collect();
        let _ = writeln!(
            out,
            "\n--- shared setup of {} (once, before its first scenario): {} ---",
            cell.cluster,
            shared.join(", ")
        );
        environment(&mut out, setup);
        phases(&mut out, setup, &format!("   [shared by {members} scenario(s)]"));
        evidence(&mut out, setup);
        for (i, p) in cell.scenarios.iter().enumerate() {
            let _ = writeln!(
                out,
                "\n--- scenario {} of {} in {}: {} (shared phases {} omitted) ---",
                i + 1,
                members,
                cell.cluster,
                p.scenario,
                shared.join(", ")
            );
            scenario(&mut out, p, &format!("{}, shared: set up by the cell", provider.name()));
        }
        let heading = format!("--- teardown of {}, after its last scenario ({TEARDOWN_WHEN}) ---", cell.cluster);
        teardown(&mut out, setup, &heading);
        budget(&mut out, setup);
    }
    if provider == super::Provider::Local {
        adaptations(&mut out);
    }
    out
}

fn model_label(m: &super::action::ModelInput) -> String {
    let trigger = match m.trigger {
        crate::predict::inject::Trigger::Annotation => "injected by annotation",
        crate::predict::inject::Trigger::Intercept => "injected by an intercept",
    };
    format!("Telepresence {}, {trigger}, from the live template and Services", m.telepresence)
}
