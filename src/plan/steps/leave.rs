//! `leave`: undo the intercept now (its teardown entry), then wait for the workload to recover.

use super::super::action::{Action, WaitFor};
use super::super::build::limits;
use super::{Ctx, skip_without_kubelet};
use crate::plan::PhaseKind;

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    if let Some(skip) = skip_without_kubelet(ctx) {
        return skip;
    }
    let s = &ctx.loaded.scenario.spec;
    let mut actions = Vec::new();
    if let Some(i) = ctx.b.teardown.iter().rposition(|t| t.registered_by == PhaseKind::Intercept) {
        actions.push(Action::Undo { index: i });
        actions.push(Action::Wait {
            until: WaitFor::DeploymentAvailable {
                namespace: s.workload.namespace.clone(),
                name: s.workload.name.clone(),
            },
            timeout: ctx.timeout(limits::ROLLOUT),
        });
    }
    actions
}
