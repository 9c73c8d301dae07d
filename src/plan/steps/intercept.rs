//! `intercept`: kind: serve locally, intercept, wait for the new pod with a ready agent, verify it.
//! local: the agent was injected at admission (annotation): wait for the newest pod that has it and
//! verify it with the same checks; an expected denial is read from the ReplicaSet either way.

use super::super::action::{Action, WaitFor};
use super::super::build::limits;
use super::super::provider::Provider;
use super::Ctx;
use crate::predict::inject::Trigger;
use crate::scenario::expect::StepOutcome;
use crate::scenario::model::Intercept;
use crate::scenario::version::Version;
use crate::tools::telepresence;

pub(super) fn actions(ctx: &mut Ctx<'_>, i: &Intercept) -> Vec<Action> {
    if let Some(skip) = super::skip_without_injector(ctx) {
        return skip;
    }
    let v = &ctx.loaded.versions;
    let after = match ctx.step.expect().for_versions(|w| v.satisfies(w)) {
        StepOutcome::FailsAfterAdmission(a) => Some(a),
        _ => None,
    };
    // Without a kubelet, a failure after admission cannot happen: the pod's admission and injection
    // are verified (below), then the rest of the step is skipped with the reason.
    let after_skipped = after.as_ref().and_then(|a| {
        ctx.b.provider.no_kubelet().map(|reason| Action::Skip {
            reason: format!(
                "{reason}: the expected failure after admission ({} {}) needs one; the pod's admission was verified",
                a.container, a.reason
            ),
        })
    });
    if after_skipped.is_some() && ctx.b.provider != Provider::Local {
        return after_skipped.into_iter().collect();
    }
    let s = &ctx.loaded.scenario.spec;
    let v = &ctx.loaded.versions;
    let app_ns = s.workload.namespace.clone();
    let selector = ctx.loaded.workload_selector();
    let tp = v.telepresence_version();
    let expectations: Vec<_> =
        s.expect.pod.iter().filter(|g| g.when.as_ref().is_none_or(|w| v.satisfies(w))).cloned().collect();
    let trigger = if ctx.b.provider == Provider::Local { Trigger::Annotation } else { Trigger::Intercept };
    let model = super::compare_model::model_input(ctx.loaded, trigger, ctx.b.provider);
    let verify = |actions: &mut Vec<Action>| {
        if !expectations.is_empty() {
            actions.push(Action::VerifyPod {
                namespace: app_ns.clone(),
                selector: selector.clone(),
                expectations: expectations.clone(),
                model: Some(model.clone()),
            });
        }
    };
    let mut actions = Vec::new();
    if ctx.b.provider == Provider::Local {
        if ctx.denial.is_none() {
            actions.push(Action::Wait {
                until: WaitFor::InjectedPod {
                    namespace: app_ns.clone(),
                    selector: selector.clone(),
                    container: crate::names::telepresence::TRAFFIC_AGENT.into(),
                },
                timeout: ctx.timeout(limits::INJECTED_POD),
            });
            verify(&mut actions);
        }
        actions.extend(after_skipped);
        return actions;
    }
    let name = ctx.phase();
    actions.push(Action::Serve { port: i.port });
    ctx.b.push_undo(name, "stop the local server", vec![Action::StopServer { port: i.port }], vec![], false);
    actions.push(Action::RecordPods { namespace: app_ns.clone(), selector: selector.clone() });
    let mut leave = vec![ctx.b.run(telepresence::leave(&tp, &i.workload), limits::QUICK)];
    if tp >= Version::parse("2.22").expect("literal") {
        // From 2.22 the intercept evicts pods; recovery after leave can take minutes.
        leave.push(Action::RestartWorkload { namespace: app_ns.clone(), name: i.workload.clone() });
    }
    // Cluster-only: `telepresence quit -s` (the connect step's undo, after this one) ends the
    // intercept on the workstation's side whatever happens here.
    ctx.b.push_cluster_undo(name, &format!("leave the intercept of {}", i.workload), leave, vec![], false);
    actions.push(Action::Run {
        command: ctx.b.cmd(telepresence::intercept(&i.workload, i.port, i.service_port)),
        timeout: ctx.timeout(limits::INTERCEPT),
        expect_failure: ctx.denial.is_some() || after.is_some(),
        best_effort: false,
    });
    if let Some(failure) = after {
        // The intercept fails (its agent never becomes ready); the cause is read from the pod.
        actions.push(Action::Wait {
            until: WaitFor::ContainerFailure { namespace: app_ns.clone(), selector: selector.clone(), failure },
            timeout: ctx.timeout(limits::AGENT_POD),
        });
    } else if ctx.denial.is_none() {
        actions.push(Action::Wait {
            until: WaitFor::NewAgentPod { namespace: app_ns.clone(), selector: selector.clone() },
            timeout: ctx.timeout(limits::AGENT_POD),
        });
        verify(&mut actions);
    }
    actions
}
