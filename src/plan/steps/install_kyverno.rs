//! `installKyverno`: the real chart with the scenario's values. kind: `helm install --wait` of the
//! verified chart, then the admission controller's rollout. local: the chart from the Kyverno module
//! (no `--wait`), then the admission controller as a host process, ready when its webhooks are
//! registered on loopback.

use super::super::action::{Action, WaitFor};
use super::super::build::limits;
use super::super::provider::Provider;
use super::super::providers::local::paths::module_dir;
use super::super::providers::local::{LocalOp, Ready, cold_only, layout, push_stop, save_snapshot, warm_only};
use super::Ctx;
use crate::names::kyverno::{HEALTH_LEASE, KYVERNO};
use crate::tools::helm;

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    let s = &ctx.loaded.scenario.spec;
    let v = &ctx.loaded.versions;
    let mut actions = Vec::new();
    let values = s.kyverno.values.as_ref().map(|vals| {
        let path = ctx.opts.run_dir.join("kyverno-values.yaml");
        actions.push(Action::WriteFile {
            path: path.clone(),
            contents: serde_saphyr::to_string(vals).unwrap_or_default(),
        });
        path
    });
    let name = ctx.phase();
    if ctx.b.provider == Provider::Local {
        let l = layout(ctx.opts);
        let pins = crate::scenario::pins::Pins::builtin();
        // The default Kyverno, or the nightly one whose chart the scenario's cell pins.
        let Some(kyverno) = pins.local.kyverno(&v.kyverno) else {
            let built = pins.local.kyverno_versions().join(", ");
            return vec![Action::Skip {
                reason: format!("the local provider builds Kyverno {built}, not {}", v.kyverno),
            }];
        };
        let binary = kyverno.name;
        let chart = l.dir.join("charts/kyverno");
        let cache = &ctx.opts.local.module_cache;
        let module = |m: &str, ver: &str| module_dir(cache, m, ver);
        actions.insert(
            0,
            Action::Local(LocalOp::PrepareKyvernoChart {
                kyverno_module: module(&kyverno.binary.module, &kyverno.binary.version),
                api_module: module(&kyverno.kyverno_api.module, &kyverno.kyverno_api.version),
                chart: chart.clone(),
            }),
        );
        actions.push(Action::Run {
            command: ctx.b.cmd(helm::install_kyverno_local(&chart, values.as_deref())),
            timeout: ctx.timeout(limits::HELM_KYVERNO),
            expect_failure: ctx.denial.is_some(),
            best_effort: false,
        });
        // Only a stack's own setup (a cell's, or a scenario's own stack) is snapshotted and restored;
        // Kyverno installed by a scenario on a shared stack is always installed.
        let snapshots = ctx.denial.is_none() && !ctx.opts.resets_shared_stack();
        if snapshots {
            // A warm start restores what the chart's install created: only the process starts again.
            actions = actions.into_iter().map(|a| cold_only(ctx.opts, a)).collect();
            let health = LocalOp::RefreshHealthLease { namespace: KYVERNO.into(), name: HEALTH_LEASE.into() };
            actions.extend(warm_only(ctx.opts, Action::Local(health)));
        }
        if ctx.denial.is_none() {
            let pki = l.pki();
            actions.push(Action::Local(LocalOp::StartFromChart {
                name: KYVERNO.into(),
                program: l.binary(binary),
                namespace: KYVERNO.into(),
                deployment: "kyverno-admission-controller".into(),
                container: KYVERNO.into(),
                // facts.md §7: the overrides, appended (last flag wins).
                args: vec![
                    format!("--serverIP=127.0.0.1:{}", l.ports.kyverno_webhook),
                    "--webhookServerHost=127.0.0.1".into(),
                    format!("--webhookServerPort={}", l.ports.kyverno_webhook),
                    "--metricsHost=127.0.0.1".into(),
                    format!("--metricsPort={}", l.ports.kyverno_metrics),
                    format!("--controllerRuntimeMetricsAddress=127.0.0.1:{}", l.ports.kyverno_cr_metrics),
                    "--autoMemLimitEnabled=false".into(),
                ],
                env: vec![("TUF_ROOT".into(), l.dir.join("kyverno-tuf").display().to_string())],
                kubeconfig: Some(l.kubeconfig(KYVERNO)),
                server: l.server(),
                in_cluster_files: false,
                ca: pki.ca_crt(),
                log: l.log(KYVERNO),
                // Listening first: a restored stack already holds the webhook configurations.
                ready: Ready::All {
                    all: vec![
                        Ready::Listening { port: l.ports.kyverno_webhook },
                        Ready::Webhooks {
                            kind: "ValidatingWebhookConfiguration".into(),
                            name: "kyverno-policy-validating-webhook-cfg".into(),
                        },
                    ],
                },
                timeout: ctx.timeout(limits::COMPONENT),
            }));
            push_stop(ctx.b, name, KYVERNO);
            if snapshots {
                actions.extend(save_snapshot(ctx.opts, binary));
            }
        }
        return actions;
    }
    let chart = ctx.opts.tools.charts().join(format!("kyverno-{}.tgz", v.kyverno_chart));
    actions.push(Action::Run {
        command: ctx.b.cmd(helm::install_kyverno(&chart, values.as_deref())),
        timeout: ctx.timeout(limits::HELM_KYVERNO),
        expect_failure: ctx.denial.is_some(),
        best_effort: false,
    });
    let un = ctx.b.run(helm::uninstall_kyverno(), limits::TEARDOWN);
    if ctx.b.push_cluster_undo(name, "uninstall Kyverno", vec![un], vec![], true).is_some() {
        ctx.b.undoes_install();
    }
    actions.push(Action::Wait {
        until: WaitFor::DeploymentAvailable { namespace: KYVERNO.into(), name: "kyverno-admission-controller".into() },
        timeout: ctx.timeout(limits::ROLLOUT),
    });
    actions
}
