//! One file per step kind: each turns its scenario step into the actions of one phase, for the plan's
//! provider. Adding a step is a new file here and a variant of [`Step`].

mod admit;
mod apply_policies;
mod compare_model;
mod connect;
mod deploy_workload;
mod install_kyverno;
mod install_telepresence;
mod intercept;
mod leave;
mod send_traffic;
mod uninstall_telepresence;

use super::action::{Action, DenialSource, Phase};
use super::build::{Builder, Options, limits, timeout_for};
use crate::plan::PhaseKind;
use crate::scenario::Loaded;
use crate::scenario::expect::ExpectedDenial;
use crate::scenario::model::Step;

/// What every step builder gets.
pub(crate) struct Ctx<'a> {
    /// Phases so far and the teardown stack.
    pub b: &'a mut Builder,
    /// The scenario.
    pub loaded: &'a Loaded,
    /// The plan options.
    pub opts: &'a Options,
    /// The step.
    pub step: &'a Step,
    /// The denial the step expects, if it expects one (for the plan's versions).
    pub denial: Option<ExpectedDenial>,
}

impl Ctx<'_> {
    /// The step's phase.
    pub fn phase(&self) -> PhaseKind {
        PhaseKind::of(self.step)
    }

    /// The step's own timeout, or `default`.
    pub fn timeout(&self, default: std::time::Duration) -> std::time::Duration {
        timeout_for(self.step, default)
    }
}

/// The phase of `step`.
pub(crate) fn phase(b: &mut Builder, loaded: &Loaded, opts: &Options, step: &Step) -> Phase {
    let v = &loaded.versions;
    let name = PhaseKind::of(step);
    if let Some(w) = step.when().filter(|w| !v.satisfies(w)) {
        let reason = format!(
            "when: {w} does not hold (Telepresence {}, Kyverno {}, Kubernetes {})",
            v.telepresence, v.kyverno, v.node_image.kubernetes
        );
        return Phase { kind: name, expects_denial: false, actions: vec![Action::Skip { reason }] };
    }
    let denial = step.expect().for_versions(|w| v.satisfies(w)).denial();
    let mut ctx = Ctx { b, loaded, opts, step, denial };
    let mut actions = match step {
        Step::InstallKyverno(_) => install_kyverno::actions(&mut ctx),
        Step::ApplyPolicies(_) => apply_policies::actions(&mut ctx),
        Step::InstallTelepresence(_) => install_telepresence::actions(&mut ctx),
        Step::DeployWorkload(_) => deploy_workload::actions(&mut ctx),
        Step::Connect(_) => connect::actions(&mut ctx),
        Step::Intercept(i) => intercept::actions(&mut ctx, i),
        Step::SendTraffic(t) => send_traffic::actions(&mut ctx, t),
        Step::Leave(_) => leave::actions(&mut ctx),
        Step::UninstallTelepresence(_) => uninstall_telepresence::actions(&mut ctx),
        Step::CompareModel(_) => compare_model::actions(&mut ctx),
        Step::Admit(a) => admit::actions(&mut ctx, a),
    };
    let skipped = matches!(actions.as_slice(), [Action::Skip { .. }]);
    if let Some(expected) = ctx.denial.clone().filter(|_| !skipped) {
        let source = match step {
            Step::Intercept(i) => DenialSource::Workload {
                namespace: loaded.scenario.spec.workload.namespace.clone(),
                name: i.workload.clone(),
            },
            Step::DeployWorkload(_) | Step::ApplyPolicies(_) | Step::Admit(_) => DenialSource::ApplyError,
            _ => DenialSource::CommandOutput,
        };
        actions.push(Action::ProveDenial {
            source,
            expected: expected.violations,
            only: expected.only,
            pod_security: expected.pod_security,
            timeout: ctx.timeout(limits::DENIAL_EVIDENCE),
        });
    }
    Phase { kind: name, expects_denial: ctx.denial.is_some() && !skipped, actions }
}

/// The apply that creates the scenario's namespace `namespace` (with the labels the scenario gives
/// it), its deletion registered as this step's cluster undo (`wait`: until it is gone).
pub(crate) fn own_namespace(ctx: &mut Ctx<'_>, namespace: &str, wait: bool) -> Action {
    let ns = ctx.loaded.namespace_object(namespace);
    let del = Action::Delete {
        label: format!("Namespace {namespace}"),
        objects: vec![super::build::object_ref(&ns, None)],
        timeout: limits::TEARDOWN,
        wait,
    };
    ctx.b.push_cluster_undo(ctx.phase(), &format!("delete namespace {namespace}"), vec![del], vec![], true);
    Action::Apply {
        label: format!("Namespace {namespace}"),
        namespace: None,
        objects: vec![ns],
        timeout: limits::APPLY,
        expect_failure: false,
    }
}

/// The single action of a step that cannot run on this provider, if it cannot.
pub(crate) fn skip_without_kubelet(ctx: &Ctx<'_>) -> Option<Vec<Action>> {
    ctx.b.provider.no_kubelet().map(|reason| vec![Action::Skip { reason: reason.into() }])
}

/// The single action of a step that needs the agent injector, on an unconfined local run (which does
/// not start the traffic-manager: [`super::provider::UNCONFINED`]).
pub(crate) fn skip_without_injector(ctx: &Ctx<'_>) -> Option<Vec<Action>> {
    (ctx.b.provider == super::provider::Provider::Local && ctx.opts.local.unconfined)
        .then(|| vec![Action::Skip { reason: super::provider::UNCONFINED.into() }])
}
