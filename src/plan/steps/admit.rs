//! `admit`: ask the API server to admit the step's manifests, without storing them (strict
//! server-side dry-run creates, in the workload namespace). Admission webhooks see a dry run like a
//! real create (Kyverno's declare `sideEffects: None`), so the verdict is the policies' own; the same
//! on every provider, as it needs no kubelet.

use serde_json::Value;

use super::super::action::Action;
use super::super::build::limits;
use super::Ctx;
use crate::scenario::model::Admit;

pub(super) fn actions(ctx: &mut Ctx<'_>, step: &Admit) -> Vec<Action> {
    let objects: Vec<Value> = step
        .manifests
        .iter()
        .filter_map(|rel| ctx.loaded.admit_manifests.get(rel))
        .flat_map(|f| f.documents.iter().map(|d| d.value.clone()))
        .collect();
    let names: Vec<String> = step.manifests.iter().map(|p| p.display().to_string()).collect();
    vec![Action::DryRunCreate {
        label: names.join(", "),
        namespace: ctx.loaded.scenario.spec.workload.namespace.clone(),
        objects,
        timeout: ctx.timeout(limits::APPLY),
        expect_failure: ctx.denial.is_some(),
    }]
}
