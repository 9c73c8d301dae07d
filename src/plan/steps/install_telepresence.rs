//! `installTelepresence`: the traffic-manager with the scenario's values. kind: `telepresence helm
//! install`, then the manager's rollout. local: the chart from the Telepresence module, packaged as
//! the CLI does and installed by Helm with a post-renderer that points the injector at loopback, then
//! the manager (its agent injector) as a host process.

use super::super::action::{Action, WaitFor};
use super::super::build::{clean, limits};
use super::super::provider::Provider;
use super::super::providers::local::paths::{module_dir, telepresence_chart_dir, traffic_name};
use super::super::providers::local::{LocalOp, Ready, layout, push_stop};
use super::Ctx;
use crate::names::telepresence::TRAFFIC_MANAGER;
use crate::tools::env::{self, TelepresenceTimeouts};
use crate::tools::{helm, telepresence};

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    let s = &ctx.loaded.scenario.spec;
    let mgr_ns = s.telepresence.manager_namespace.clone();
    let values = ctx.loaded.telepresence_values.as_ref().map(|(p, _)| clean(p));
    let name = ctx.phase();
    let tp = ctx.loaded.versions.telepresence_version();
    let mut actions = Vec::new();
    if ctx.b.provider == Provider::Local {
        let l = layout(ctx.opts);
        let version = ctx.loaded.versions.telepresence.clone();
        let pins = crate::scenario::pins::Pins::builtin();
        let module = pins.local.telepresence.get(&version).map(|b| b.module.clone()).unwrap_or_default();
        let dir = module_dir(&ctx.opts.local.module_cache, &module, &format!("v{version}"));
        let chart_dir = telepresence_chart_dir(&dir);
        let out = l.dir.join("charts");
        // Both charts are named `telepresence-oss` in their Chart.yaml (2.20.2 in charts/telepresence,
        // 2.31.0 in charts/telepresence-oss); `helm package` names the archive <name>-<version>.tgz.
        // upstream: telepresenceio/telepresence charts/telepresence/Chart.yaml@v2.20.2,
        // charts/telepresence-oss/Chart.yaml@v2.31.0 (`name: telepresence-oss`).
        let tgz = out.join(format!("telepresence-oss-{version}.tgz"));
        actions.push(ctx.b.run(helm::package(&chart_dir, &version, &out), limits::QUICK));
        // On a cell's shared stack the release goes at the scenario's end (registered before the
        // install: a failed install can leave objects behind); on a stack of its own, with the stack.
        let un = ctx.b.run(helm::uninstall_no_hooks(TRAFFIC_MANAGER, &mgr_ns), limits::TEARDOWN);
        let ns = ctx.loaded.namespace_object(&mgr_ns);
        let del_ns = Action::Delete {
            label: format!("Namespace {mgr_ns}"),
            objects: vec![super::super::build::object_ref(&ns, None)],
            timeout: limits::TEARDOWN,
            wait: !ctx.opts.resets_shared_stack(),
        };
        ctx.b.push_cluster_undo(name, "uninstall the traffic-manager (no hooks)", vec![un, del_ns], vec![], false);
        // kyvtel owns the manager namespace (its label), so that the reset can delete it.
        actions.push(Action::Apply {
            label: format!("Namespace {mgr_ns}"),
            namespace: None,
            objects: vec![ns],
            timeout: limits::APPLY,
            expect_failure: false,
        });
        // The app namespace must exist before the manager starts: a 2.31.0 manager builds its Service
        // informers for the namespaces it finds at start and adds new ones only after its webhook has
        // served for 3 s; a pod admitted in between gets a config without intercepts (2.31.0
        // cmd/traffic/cmd/manager/manager.go:115-127, mutator/service.go:208-216, watcher.go:460-503,
        // agentmap/discorvery.go:207-221; found by tests/model_differential.rs).
        let app_ns = s.workload.namespace.clone();
        // `default` exists already and is never kyvtel's to delete.
        if app_ns != mgr_ns && app_ns != "default" {
            let wait = !ctx.opts.resets_shared_stack();
            actions.push(super::own_namespace(ctx, &app_ns, wait));
        }
        let pki = l.pki();
        let post = vec![
            "post-render".to_string(),
            format!("--port={}", l.ports.injector),
            format!("--ca={}", pki.ca_crt().display()),
            format!("--cert={}", pki.injector_crt().display()),
            format!("--key={}", pki.injector_key().display()),
        ];
        actions.push(Action::Run {
            command: ctx.b.cmd(helm::install_telepresence_local(
                &tgz,
                &mgr_ns,
                &version,
                values.as_deref(),
                &ctx.opts.local.kyvtel,
                &post,
            )),
            timeout: ctx.timeout(limits::TP_INSTALL),
            expect_failure: ctx.denial.is_some(),
            best_effort: false,
        });
        // Unconfined, the manager cannot get its in-cluster files: the chart is installed (its admission
        // is real), the process is not started, and the steps that need its injector are skipped.
        if ctx.denial.is_none() && !ctx.opts.local.unconfined {
            let mut env = vec![
                ("KUBERNETES_SERVICE_HOST".to_string(), "127.0.0.1".to_string()),
                ("KUBERNETES_SERVICE_PORT".into(), l.ports.apiserver.to_string()),
                ("SERVER_HOST".into(), "127.0.0.1".into()),
                ("SERVER_PORT".into(), l.ports.manager.to_string()),
                ("MUTATOR_WEBHOOK_PORT".into(), l.ports.injector.to_string()),
                ("POD_IP".into(), "127.0.0.1".into()),
                ("HOME".into(), l.dir.join("traffic-manager-home").display().to_string()),
            ];
            // 2.31 reports usage to an external collector unless told not to (facts.md §7).
            env.push(("USAGE_REPORTING_ENABLED".into(), "false".into()));
            actions.push(Action::Local(LocalOp::StartFromChart {
                name: TRAFFIC_MANAGER.into(),
                program: l.binary(&traffic_name(&version)),
                namespace: mgr_ns.clone(),
                deployment: TRAFFIC_MANAGER.into(),
                container: TRAFFIC_MANAGER.into(),
                args: Vec::new(),
                env,
                kubeconfig: None,
                server: l.server(),
                in_cluster_files: true,
                ca: pki.ca_crt(),
                log: l.log(TRAFFIC_MANAGER),
                // The injector serves, and its webhook points at loopback: a webhook left on a Service
                // fails open and pods would be admitted without an agent (facts.md §7). Its name:
                // upstream: telepresenceio/telepresence charts/*/templates/agentInjectorWebhook.yaml
                // @v2.20.2 and @v2.31.0 (`{{ agentInjector.webhook.name }}-<manager namespace>`).
                ready: Ready::All {
                    all: vec![
                        Ready::Listening { port: l.ports.injector },
                        Ready::Webhooks {
                            kind: "MutatingWebhookConfiguration".into(),
                            name: format!("{}{mgr_ns}", crate::names::telepresence::WEBHOOK_PREFIX),
                        },
                    ],
                },
                timeout: ctx.timeout(limits::COMPONENT),
            }));
            push_stop(ctx.b, name, TRAFFIC_MANAGER);
        }
        return actions;
    }
    // Labels the scenario gives the manager namespace (e.g. Pod Security Admission's) must be there
    // before the chart's pods are admitted: the namespace is created with them first.
    if s.namespaces.get(&mgr_ns).is_some_and(|n| !n.labels.is_empty()) {
        actions.push(super::own_namespace(ctx, &mgr_ns, true));
    }
    for f in env::telepresence(&ctx.opts.run_dir, &TelepresenceTimeouts::default(), Some(&tp)).files {
        actions.push(Action::WriteFile { path: f.path, contents: f.contents });
    }
    // Without hooks on a cluster kyvtel owns: the chart's only hook is the pre-delete Job
    // `uninstall-agents` (docker.io/curlimages/curl), which the scenario's policies may deny
    // (facts.md §4: a denied hook fails the uninstall and leaves objects behind), and whose work
    // (removing injected agents) is moot there: the workload is deleted before it (LIFO).
    // Registered before the install: a failed atomic install can leave objects behind.
    // On an existing cluster other workloads may have been injected while the manager ran: there
    // the hook's cleanup matters, so it runs, with `--no-hooks` only after a failed install.
    let no_hooks = ctx.b.run(telepresence::helm_uninstall(&mgr_ns, true), limits::TEARDOWN);
    let (un, on_failure) = if ctx.b.provider == Provider::Existing {
        (ctx.b.run(telepresence::helm_uninstall(&mgr_ns, false), limits::TEARDOWN), vec![no_hooks])
    } else {
        (no_hooks, vec![])
    };
    if ctx.b.push_cluster_undo(name, "uninstall the traffic-manager", vec![un], on_failure, false).is_some() {
        ctx.b.undoes_install();
    }
    actions.push(Action::Run {
        command: ctx.b.cmd(telepresence::helm_install(&mgr_ns, values.as_deref(), &tp)),
        timeout: ctx.timeout(limits::TP_INSTALL),
        expect_failure: ctx.denial.is_some(),
        best_effort: false,
    });
    if ctx.denial.is_none() {
        actions.push(Action::Wait {
            until: WaitFor::TrafficManagerReady {
                namespace: s.expect.traffic_manager_namespace.clone().unwrap_or_else(|| mgr_ns.clone()),
                workload_kind: telepresence::manager_kind(&tp).into(),
            },
            timeout: ctx.timeout(limits::ROLLOUT),
        });
    }
    actions
}
