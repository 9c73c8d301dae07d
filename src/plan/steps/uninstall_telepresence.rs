//! `uninstallTelepresence`: perform the traffic-manager's teardown entry now (the release removed
//! without hooks on a cluster kyvtel owns; on the local provider with its namespace), so that
//! teardown skips it, then assert that nothing of the release is left, whatever the install did.

use super::super::action::Action;
use super::super::build::limits;
use super::Ctx;
use crate::plan::PhaseKind;

/// The release `installTelepresence` creates (`telepresence helm install` names it so).
// upstream: telepresenceio/telepresence pkg/client/cli/helm/install.go@v2.31.0 line 38
// (`trafficManagerReleaseName = agentconfig.ManagerAppName`); the local provider's `helm install`
// uses the same name. That install is atomic (line 229): on kind a denied install is rolled back by
// Telepresence itself, and this step proves that nothing survived the rollback either.
use crate::names::telepresence::TRAFFIC_MANAGER as RELEASE;

/// The agent injector's webhook configurations: `agent-injector-webhook-<manager namespace>`.
// upstream: telepresenceio/telepresence charts/*/templates/agentInjectorWebhook.yaml @v2.20.2 and
// @v2.31.0 (`{{ agentInjector.webhook.name }}-<manager namespace>`).
use crate::names::telepresence::WEBHOOK_PREFIX;

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    let namespace = ctx.loaded.scenario.spec.telepresence.manager_namespace.clone();
    let mut actions = Vec::new();
    if let Some(i) = ctx.b.teardown.iter().rposition(|t| {
        t.registered_by == PhaseKind::InstallTelepresence && t.label.starts_with("uninstall the traffic-manager")
    }) {
        actions.push(Action::Undo { index: i });
    }
    actions.push(Action::ReleaseGone {
        release: RELEASE.into(),
        namespace,
        webhook_prefix: WEBHOOK_PREFIX.into(),
        timeout: ctx.timeout(limits::TEARDOWN),
    });
    actions
}
