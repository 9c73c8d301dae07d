//! `compareModel`: every Deployment among the workload manifests, as the agent injector made its pod
//! (or refused it), compared with the injection model's prediction from the same live inputs. The
//! differential check of the model (facts.md §4): any difference not listed in the committed
//! not-modelled file fails the step.

use super::super::action::{Action, ModelInput};
use super::super::build::limits;
use super::super::provider::Provider;
use super::Ctx;
use crate::predict::inject::Trigger;
use crate::scenario::Loaded;

/// The model's inputs for the scenario's installation.
pub(crate) fn model_input(loaded: &Loaded, trigger: Trigger, provider: Provider) -> ModelInput {
    ModelInput {
        provider: provider.name().to_string(),
        // A manager pod finds `cluster.local` in its resolv.conf; the local provider's host process none.
        cluster_domain: (provider != Provider::Local).then(|| "cluster.local".to_string()),
        telepresence: loaded.versions.telepresence.clone(),
        values: loaded.telepresence_values.as_ref().map(|(_, v)| v.clone()),
        manager_namespace: loaded.scenario.spec.telepresence.manager_namespace.clone(),
        trigger,
    }
}

pub(super) fn actions(ctx: &mut Ctx<'_>) -> Vec<Action> {
    if let Some(skip) = super::skip_without_injector(ctx) {
        return skip;
    }
    let workloads: Vec<String> = ctx
        .loaded
        .manifest_values()
        .filter(|o| o["kind"] == crate::names::kind::DEPLOYMENT)
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    // Each workload's own template says whether it asks for an agent; none is intercepted here.
    let trigger = Trigger::Annotation;
    vec![Action::CompareModel {
        namespace: ctx.loaded.scenario.spec.workload.namespace.clone(),
        workloads,
        model: model_input(ctx.loaded, trigger, ctx.b.provider),
        timeout: ctx.timeout(limits::INJECTED_POD),
    }]
}
